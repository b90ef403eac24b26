//! The model types the forward pass runs (`model_type` in config.json).

/// `model_type` values that can be evaluated.
pub const SUPPORTED: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "gemma2",
    "gemma3_text",
    "phi3",
];
