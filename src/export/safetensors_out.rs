//! Streaming safetensors shards: the header is computed up front, then each tensor's bytes are
//! copied from the source map in chunks, so memory use does not depend on the model's size.

use std::{
    fs::File,
    io::{BufWriter, Write},
    ops::Range,
    path::Path,
};

use serde_json::{Map, Value, json};

use super::ExportError;
use crate::checkpoint::{Model, TensorEntry, dtype_name};

/// A tensor of the output: its new name and where its bytes come from.
#[derive(Debug, Clone)]
pub struct OutTensor<'a> {
    pub name: String,
    pub source: &'a TensorEntry,
}

/// Bytes copied between progress reports, cancel checks and page releases.
pub(crate) const CHUNK: usize = 16 << 20;

/// Chunks whose reading is requested ahead of the copy (64 MiB in flight; page cache, not
/// resident in this process).
const READ_AHEAD: usize = 4;

/// Greedy split: a shard is closed when the next tensor would push its data past `limit`
/// bytes (a tensor larger than `limit` gets a shard of its own).
pub(crate) fn split_shards(tensors: &[OutTensor<'_>], limit: u64) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut size = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let n = t.source.num_bytes();
        match out.last_mut() {
            Some(r) if size + n <= limit => {
                r.end = i + 1;
                size += n;
            }
            _ => {
                out.push(i..i + 1);
                size = n;
            }
        }
    }
    out
}

/// `model.safetensors` for one shard, `model-00002-of-00005.safetensors` for several.
pub(crate) fn shard_file_name(i: usize, n: usize) -> String {
    if n == 1 {
        "model.safetensors".into()
    } else {
        format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
    }
}

/// The 8-byte length prefix and the JSON header (with `__metadata__: {"format": "pt"}`),
/// padded with spaces to a multiple of 8 bytes as the safetensors crate does; data offsets
/// are contiguous in the given order.
pub fn header(tensors: &[OutTensor<'_>]) -> Vec<u8> {
    let mut map = Map::new();
    map.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for t in tensors {
        let n = t.source.num_bytes();
        map.insert(
            t.name.clone(),
            json!({
                "dtype": dtype_name(t.source.dtype),
                "shape": t.source.shape,
                "data_offsets": [offset, offset + n],
            }),
        );
        offset += n;
    }
    let mut text = serde_json::to_vec(&Value::Object(map)).expect("JSON of strings and numbers");
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out
}

/// Writes one shard to `path`. After every chunk, `after_chunk(bytes)` is called; an error
/// from it (cancel, injected failure) stops the copy. The file is synced before returning.
pub(crate) fn write_shard(
    path: &Path,
    model: &Model,
    tensors: &[OutTensor<'_>],
    after_chunk: &mut dyn FnMut(u64) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let werr = |e| ExportError::io(path, "cannot write", e);
    let file = File::create(path).map_err(|e| ExportError::io(path, "cannot create", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header(tensors)).map_err(werr)?;
    // Every chunk of every tensor, in write order; the reads run READ_AHEAD chunks ahead.
    let chunks: Vec<TensorEntry> = tensors
        .iter()
        .flat_map(|t| {
            let r = t.source.range.clone();
            (r.start..r.end)
                .step_by(CHUNK)
                .map(move |start| TensorEntry {
                    range: start..(start + CHUNK).min(r.end),
                    ..t.source.clone()
                })
        })
        .collect();
    for c in chunks.iter().take(READ_AHEAD) {
        model.prefetch(c);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(ahead) = chunks.get(i + READ_AHEAD) {
            model.prefetch(ahead);
        }
        let bytes = model.bytes(chunk).map_err(|e| ExportError::BadModel {
            path: model.source.clone(),
            problem: e.to_string(),
        })?;
        w.write_all(&bytes).map_err(werr)?;
        // Freed here, so the resident set stays at about one chunk.
        drop(bytes);
        after_chunk(chunk.num_bytes())?;
    }
    let file = w.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    Ok(())
}
