//! A scan file names each module by the model's own file naming: a GGUF model's scan says
//! `blk.3.attn_v` (llama.cpp's names, what a llama.cpp user reads), while snrscope lists its
//! tensors under Hugging Face names inside (`model.layers.3.self_attn.v_proj`). These two
//! functions cross that line, when a scan is written and when a saved scan meets its model.

use super::{ScanEntry, type_of};
use crate::checkpoint::Model;

/// `entries` under the keys `model`'s scan files use (unchanged but for a GGUF model).
pub fn to_file_keys(model: &Model, mut entries: Vec<ScanEntry>) -> Vec<ScanEntry> {
    if model.gguf.is_some() {
        for e in &mut entries {
            e.module = model.scan_key(&e.module);
            e.module_type = type_of(&e.module);
        }
    }
    entries
}

/// `entries` of a scan file under `model`'s module names (unchanged but for a GGUF model,
/// whose scan files may use either naming).
pub fn to_model_names(model: &Model, mut entries: Vec<ScanEntry>) -> Vec<ScanEntry> {
    if model.gguf.is_some() {
        for e in &mut entries {
            e.module = model.module_of_key(&e.module);
            e.module_type = type_of(&e.module);
        }
    }
    entries
}
