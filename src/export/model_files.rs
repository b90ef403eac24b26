//! Which files of a model folder belong in the pruned model. An allow-list, because pruned
//! models are usually uploaded right away: a `.env`, an SSH key, a token or someone's notes that
//! happen to sit in the folder must never travel with them. Anything else is skipped and listed;
//! `--copy NAME` adds a file by name.

/// Exact names of files a Hugging Face model folder carries besides its weights.
pub(crate) const MODEL_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "tokenizer.model.v3",
    "tekken.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "feature_extractor_config.json",
    "image_processor_config.json",
    "normalizer.json",
    "params.json",
    "LICENSE",
    "LICENSE.txt",
    "LICENSE.md",
    "LICENCE",
    "LICENCE.txt",
    "NOTICE",
    "NOTICE.txt",
    "NOTICE.md",
    "USE_POLICY.md",
];

/// Why a file is copied: `Some(what)` for a model file, `None` for anything else.
pub(crate) fn model_file_kind(name: &str) -> Option<&'static str> {
    if name.starts_with('.') {
        return None;
    }
    if MODEL_FILES.contains(&name) {
        return Some("model file");
    }
    let lower = name.to_ascii_lowercase();
    // Tokenizers shipped as tiktoken ranks (Qwen, Kimi) and chat templates in subformats.
    if lower.ends_with(".tiktoken")
        || lower.starts_with("chat_template") && lower.ends_with(".jinja")
    {
        return Some("tokenizer file");
    }
    // trust_remote_code models need their code to load at all.
    let code_prefixes = [
        "configuration_",
        "modeling_",
        "tokenization_",
        "processing_",
        "image_processing_",
    ];
    if lower.ends_with(".py") && code_prefixes.iter().any(|p| lower.starts_with(p)) {
        return Some("remote code");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_files_in_private_files_out() {
        for ok in [
            "tokenizer.json",
            "generation_config.json",
            "qwen.tiktoken",
            "modeling_phi3.py",
            "LICENSE",
            "chat_template.jinja",
        ] {
            assert!(model_file_kind(ok).is_some(), "{ok}");
        }
        for no in [
            ".env",
            "id_rsa",
            ".huggingface_token",
            "notes.txt",
            "secrets.py",
            ".gitattributes",
            "train.py",
            "token",
        ] {
            assert!(model_file_kind(no).is_none(), "{no}");
        }
    }
}
