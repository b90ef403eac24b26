//! GGUF, llama.cpp's model format: opening (single files, split sets, a folder holding one
//! model), dequantizing tensors one at a time, llama.cpp ↔ Hugging Face names and shapes,
//! and the tokenizer stored in the metadata.
//!
//! Self-contained: it uses the rest of the crate only for error text (it must not import
//! `export`, which imports `checkpoint`). The integration (model opening, scans, export, explorer, forward pass) calls:
//! - [`GgufModel::open`], [`GgufModel::tensors`] / [`GgufModel::tensor`] ([`TensorRef`]: info,
//!   part file, byte range), [`GgufModel::get`] for metadata;
//! - [`TensorRef::to_f64`] / [`TensorRef::to_f32`] / [`TensorRef::dequantize_rows`];
//! - [`names`]: Hugging Face names, shapes, the llama Q/K row permutation, fused QKV's V rows;
//! - the pruned GGUF is written by `export::gguf_out`;
//! - [`Tokenizer::from_model`]: llama.cpp's SPM and BPE tokenizers from the metadata.

mod dequant;
mod error;
mod header;
mod hf_config;
mod metadata;
pub mod names;
mod open;
mod read;
mod tokenizer;
mod types;

pub use dequant::{DequantError, Float, can_dequantize, dequantize};
pub use error::GgufError;
pub(crate) use error::shown;
pub use header::{GgufFile, TensorInfo};
pub use hf_config::hf_config;
pub(crate) use metadata::encode_str;
pub use metadata::{Array, MetaEntry, Value};
pub use open::{GgufModel, TensorRef};
pub use tokenizer::Tokenizer;
pub use types::GgmlType;
