//! `.safetensors` files: the header read and checked, the tensors listed.

use std::{fs::File, path::Path};

use safetensors::{SafeTensorError, SafeTensors};

use super::{error::OpenError, layers, shard::Shard, tensor::TensorEntry};

/// The folder's `.safetensors` files in natural order (maybe none).
pub(crate) fn list_safetensors(dir: &Path) -> Result<Vec<String>, OpenError> {
    let rd = std::fs::read_dir(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        // Not only regular files: a FIFO or a device named like a shard is refused by name
        // when it is opened, not skipped in silence.
        .filter(|e| !e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    names.sort_by(|a, b| layers::natural_cmp(a, b));
    Ok(names)
}

pub(crate) fn open_shard(
    path: &Path,
    file_name: String,
    shard_index: usize,
) -> Result<(Shard, Vec<TensorEntry>), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, meta) = crate::util::files::open_regular(path).map_err(io)?;
    let len = meta.len();
    // Only the header is read: opening reads no tensor data.
    let head = read_head(&file, len).map_err(io)?;
    let (header_len, metadata) = match SafeTensors::read_metadata(&head) {
        Ok((n, _)) if len != head.len() as u64 => {
            return Err(
                header_error(path, &head, len, SafeTensorError::MetadataIncompleteBuffer)
                    .unwrap_or_else(|| bad_header(path, n)),
            );
        }
        Ok(r) => r,
        // The header is complete and valid (read_metadata validates it before it compares the
        // buffer with the data size); only the data was not read.
        Err(SafeTensorError::MetadataIncompleteBuffer) => {
            match header_error(path, &head, len, SafeTensorError::MetadataIncompleteBuffer) {
                Some(e) => return Err(e),
                None => {
                    let n = head.len() - 8;
                    let metadata =
                        serde_json::from_slice::<safetensors::tensor::Metadata>(&head[8..])
                            .map_err(|_| bad_header(path, n))?;
                    (n, metadata)
                }
            }
        }
        Err(e) => {
            return Err(header_error(path, &head, len, e).unwrap_or_else(|| bad_header(path, 0)));
        }
    };
    let data_start = 8 + header_len;
    let entries = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| TensorEntry {
            name,
            dtype: info.dtype.into(),
            shape: info.shape.clone(),
            shard: shard_index,
            range: data_start + info.data_offsets.0..data_start + info.data_offsets.1,
        })
        .collect();
    let shard = Shard {
        path: path.to_path_buf(),
        file_name,
        metadata: metadata.metadata().clone(),
        len,
        file,
    };
    Ok((shard, entries))
}

/// The 8-byte length and the header it announces (as much of it as the file holds; at most
/// safetensors' 100 MB header limit, beyond which the length alone is an error).
fn read_head(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = file;
    let mut head = Vec::new();
    f.take(8).read_to_end(&mut head)?;
    if head.len() == 8 {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let want = n.min(100_000_001).min(len.saturating_sub(8));
        f.take(want).read_to_end(&mut head)?;
    }
    Ok(head)
}

fn bad_header(path: &Path, n: usize) -> OpenError {
    OpenError::BadHeader {
        path: path.to_path_buf(),
        problem: format!("its {n}-byte header could not be read back"),
    }
}

/// The error for a header `read_metadata` refused, given the file's real length; `None` when
/// the only complaint was the data size and the file has exactly the size the header promises.
fn header_error(path: &Path, bytes: &[u8], actual: u64, e: SafeTensorError) -> Option<OpenError> {
    let path = path.to_path_buf();
    let declared_header = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    Some(match e {
        SafeTensorError::HeaderTooSmall => OpenError::BadHeader {
            path,
            problem: format!("only {actual} bytes, shorter than the 8-byte header length"),
        },
        SafeTensorError::InvalidHeaderLength => OpenError::Truncated {
            path,
            expected: declared_header.unwrap_or(0).saturating_add(8),
            actual,
            // A truncated header is reported as truncation: that is the common cause.
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            // Work out the size the header promises, to say which way it is off.
            let n = declared_header.unwrap_or(0) as usize;
            let data_len = bytes
                .get(8..8 + n)
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
                .and_then(|v| {
                    v.as_object().map(|o| {
                        o.values()
                            .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                            .max()
                            .unwrap_or(0)
                    })
                })
                .unwrap_or(0);
            let expected = 8 + n as u64 + data_len;
            if expected == actual {
                return None;
            }
            if expected > actual {
                OpenError::Truncated {
                    path,
                    expected,
                    actual,
                }
            } else {
                OpenError::BadHeader {
                    path,
                    problem: format!(
                        "{} bytes after the last tensor's data (the header accounts for {expected})",
                        actual - expected
                    ),
                }
            }
        }
        SafeTensorError::InvalidOffset(name) => OpenError::BadHeader {
            path,
            problem: format!(
                "data_offsets of tensor {name} overlap another tensor, leave a gap, or point past the data"
            ),
        },
        SafeTensorError::TensorInvalidInfo => OpenError::BadHeader {
            path,
            problem: "a tensor's byte range does not match its shape and dtype".into(),
        },
        other => OpenError::BadHeader {
            path,
            problem: other.to_string(),
        },
    })
}
