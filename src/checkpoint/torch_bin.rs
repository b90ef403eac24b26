//! PyTorch `.bin` checkpoints (`pytorch_model.bin`, the zip archive `torch.save` writes since
//! torch 1.6): `<archive>/data.pkl` describes the tensors, `<archive>/data/<key>` holds each
//! storage's raw little-endian bytes. The zip's central directory is read with the `zip` crate,
//! the pickle with [`crate::checkpoint::pickle`] (which runs nothing and refuses every global but the
//! tensor rebuilds), and each tensor becomes an ordinary [`TensorEntry`]: torch stores its
//! entries uncompressed, so a tensor is a contiguous byte range of the `.bin` file itself and is
//! read exactly like a safetensors tensor — one at a time, never loaded whole.

use std::{collections::HashMap, fs::File, io::Read, path::Path};

use zip::{CompressionMethod, ZipArchive};

use super::{error::OpenError, pickle, shard::Shard, tensor::TensorEntry};

/// The pickle is read into memory; a state dict's takes ~200 bytes per tensor.
const MAX_PICKLE: u64 = 64 << 20;

/// Why a `.bin` could not be read (the caller names the file).
pub(crate) type Problem = String;

/// One PyTorch `.bin` file: its zip directory and pickle are read, nothing else.
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
    let entries = read_entries(&file, len, shard_index).map_err(|problem| OpenError::BadBin {
        path: path.to_path_buf(),
        problem,
    })?;
    let shard = Shard {
        path: path.to_path_buf(),
        file_name,
        metadata: None,
        len,
        file,
    };
    Ok((shard, entries))
}

/// The tensors of one `.bin` file, as entries of shard `shard`, in the pickle's order.
pub(crate) fn read_entries(
    file: &File,
    len: u64,
    shard: usize,
) -> Result<Vec<TensorEntry>, Problem> {
    let mut zip = match ZipArchive::new(file) {
        Ok(z) => z,
        Err(e) => return Err(not_a_zip(file, len, &e)),
    };
    // torch.save: every record under one top-level folder (`archive/`, or the file's stem).
    let mut pickles = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| format!("cannot read zip entry {i}: {e} (truncated or corrupt?)"))?;
        let name = entry
            .name()
            .map_err(|e| format!("zip entry {i}: {e}"))?
            .to_string();
        if let Some(prefix) = name.strip_suffix("/data.pkl")
            && !prefix.contains('/')
        {
            pickles.push((i, prefix.to_string()));
        }
        names.insert(name, i);
    }
    let (pkl_index, prefix) = match pickles.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(
                "a zip archive without data.pkl: not a PyTorch checkpoint written by torch.save"
                    .into(),
            );
        }
        _ => return Err("a zip archive with more than one data.pkl".into()),
    };
    if let Some(&i) = names.get(&format!("{prefix}/byteorder")) {
        let order = read_small(&mut zip, i, 16)?;
        if order != b"little" {
            return Err(format!(
                "its tensors are stored {} (byteorder), snrscope reads little-endian only",
                crate::util::text::escape_controls(&String::from_utf8_lossy(&order))
            ));
        }
    }
    let pkl = read_small(&mut zip, pkl_index, MAX_PICKLE)?;
    let tensors = pickle::read_state_dict(&pkl).map_err(|e| match e {
        pickle::PickleError::Refused { .. } => {
            format!(
                "refused: its pickle ({prefix}/data.pkl) {e}",
                prefix = crate::util::text::escape_controls(&prefix)
            )
        }
        other => format!(
            "its pickle ({}/data.pkl) is not a state dict torch.save writes: {other}",
            crate::util::text::escape_controls(&prefix)
        ),
    })?;

    // Each storage's place in the file: (data start, size).
    let mut storages: HashMap<String, (u64, u64)> = HashMap::new();
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let entry_name = format!("{prefix}/data/{}", t.storage_key);
        let (start, size) = match storages.get(&t.storage_key) {
            Some(&s) => s,
            None => {
                let s = storage_place(&mut zip, &names, &entry_name, len)?;
                storages.insert(t.storage_key.clone(), s);
                s
            }
        };
        out.push(entry_for(t, start, size, shard)?);
    }
    Ok(out)
}

/// Why the zip could not be opened, with the legacy (pre-1.6) format told apart.
fn not_a_zip(file: &File, len: u64, e: &zip::result::ZipError) -> Problem {
    let mut head = [0u8; 2];
    let legacy = {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(0)).is_ok() && f.read_exact(&mut head).is_ok() && head[0] == 0x80
    };
    if legacy && head[1] <= 5 {
        "a PyTorch checkpoint in the legacy format of torch < 1.6 (a bare pickle, not a zip), \
         which snrscope does not read; re-save it with a current torch.save, or convert it to \
         safetensors"
            .into()
    } else {
        format!(
            "not a PyTorch .bin checkpoint: not a readable zip archive ({len} bytes; {e}); \
             torch.save writes a zip (truncated or corrupt?)"
        )
    }
}

/// A small entry's bytes (data.pkl, byteorder), at most `max`.
fn read_small(zip: &mut ZipArchive<&File>, i: usize, max: u64) -> Result<Vec<u8>, Problem> {
    let entry = zip
        .by_index(i)
        .map_err(|e| format!("cannot read zip entry {i}: {e}"))?;
    let name = crate::util::text::escape_controls(&entry.name().unwrap_or_default()).into_owned();
    if entry.size() > max {
        return Err(format!(
            "{name} holds {} bytes, more than the {max} snrscope reads",
            entry.size()
        ));
    }
    let mut buf = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {name}: {} (truncated or corrupt?)", e))?;
    if buf.len() as u64 > max {
        return Err(format!(
            "{name} is larger than the {max} bytes snrscope reads"
        ));
    }
    Ok(buf)
}

/// Where a storage's bytes lie in the file: (first byte, length). Only stored (uncompressed)
/// entries are read, as torch.save writes them: they are ranges of the file itself.
fn storage_place(
    zip: &mut ZipArchive<&File>,
    names: &HashMap<String, usize>,
    entry_name: &str,
    file_len: u64,
) -> Result<(u64, u64), Problem> {
    let shown = crate::util::text::escape_controls(entry_name);
    let &i = names
        .get(entry_name)
        .ok_or_else(|| format!("its pickle names storage {shown}, which the archive lacks"))?;
    let entry = zip
        .by_index_raw(i)
        .map_err(|e| format!("cannot read zip entry {shown}: {e} (truncated or corrupt?)"))?;
    if entry.encrypted() {
        return Err(format!("{shown} is encrypted"));
    }
    if entry.compression() != CompressionMethod::Stored || entry.compressed_size() != entry.size() {
        return Err(format!(
            "{shown} is compressed ({}); torch.save stores tensors uncompressed and snrscope \
             reads only such entries (re-save the checkpoint with torch.save, or convert it to \
             safetensors)",
            entry.compression()
        ));
    }
    let start = entry
        .data_start()
        .ok_or_else(|| format!("{shown}: its data offset is unknown"))?;
    let size = entry.size();
    match start.checked_add(size) {
        Some(end) if end <= file_len => Ok((start, size)),
        _ => Err(format!(
            "{shown} claims bytes {start}..{} but the file holds {file_len} (truncated?)",
            start.saturating_add(size)
        )),
    }
}

/// The tensor as a byte range of the file; a view that is not one contiguous run of its
/// storage is refused (reading it would need a strided gather, and the export copies bytes).
fn entry_for(
    t: pickle::PickledTensor,
    start: u64,
    size: u64,
    shard: usize,
) -> Result<TensorEntry, Problem> {
    let name = crate::util::text::escape_controls(&t.name);
    let es = (t.dtype.bitsize() / 8) as u64;
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| format!("tensor {name}: its shape {:?} overflows", t.shape))?;
    if numel > 0 {
        let mut expect = 1u64;
        for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
            // A dimension of size 1 may have any stride (e.g. an `expand`ed buffer).
            if d != 1 && s as u64 != expect {
                return Err(format!(
                    "tensor {name} is a non-contiguous view of its storage (shape {:?}, strides \
                     {:?}); snrscope reads contiguous tensors only: re-save it with \
                     `.contiguous()` tensors, or convert the checkpoint to safetensors",
                    t.shape, t.stride
                ));
            }
            expect = expect.saturating_mul(d as u64);
        }
    }
    let dtype_bytes = |n: u64| n.checked_mul(es);
    let (Some(storage_bytes), Some(first), Some(len)) = (
        dtype_bytes(t.storage_numel),
        dtype_bytes(t.storage_offset),
        dtype_bytes(numel),
    ) else {
        return Err(format!("tensor {name}: its size overflows"));
    };
    let storage = crate::util::text::escape_controls(&t.storage_key);
    if storage_bytes > size {
        return Err(format!(
            "storage {storage} is declared {storage_bytes} bytes but its zip entry holds {size} \
             (truncated or corrupt?)"
        ));
    }
    match first.checked_add(len) {
        Some(end) if end <= storage_bytes => {}
        _ => {
            return Err(format!(
                "tensor {name} reaches past the end of its storage {storage} (elements {}..{} \
                 of {})",
                t.storage_offset,
                t.storage_offset.saturating_add(numel),
                t.storage_numel
            ));
        }
    }
    let (Ok(a), Ok(b)) = (
        usize::try_from(start + first),
        usize::try_from(start + first + len),
    ) else {
        return Err(format!(
            "tensor {name} lies beyond this platform's addresses"
        ));
    };
    Ok(TensorEntry {
        name: t.name,
        dtype: t.dtype.into(),
        shape: t.shape,
        shard,
        range: a..b,
    })
}

/// `true` for a file name this module reads (a single `.bin` given by the user).
pub(crate) fn is_bin_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "bin")
}

#[cfg(test)]
mod tests {
    use safetensors::Dtype;

    use super::*;

    fn view(shape: &[usize], stride: &[usize], offset: u64, numel: u64) -> pickle::PickledTensor {
        pickle::PickledTensor {
            name: "t".into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            storage_offset: offset,
            storage_key: "0".into(),
            storage_numel: numel,
        }
    }

    #[test]
    fn contiguous_views_become_byte_ranges() {
        // Rows 2..4 of a 6x3 storage at file offset 1000.
        let e = entry_for(view(&[2, 3], &[3, 1], 6, 18), 1000, 72, 0).unwrap();
        assert_eq!(e.range, 1024..1048);
        // An expanded buffer (size-1 dimension with stride 0), as `position_ids` often is.
        let e = entry_for(view(&[1, 4], &[0, 1], 0, 4), 0, 16, 0).unwrap();
        assert_eq!(e.range, 0..16);
        // Empty tensors have no stride constraint.
        assert!(entry_for(view(&[0, 3], &[7, 9], 0, 0), 0, 0, 0).is_ok());
    }

    #[test]
    fn strided_or_overlong_views_are_refused() {
        let e = entry_for(view(&[3, 2], &[1, 3], 0, 6), 0, 24, 0).unwrap_err();
        assert!(e.contains("non-contiguous"), "{e}");
        let e = entry_for(view(&[2, 2], &[2, 1], 3, 6), 0, 24, 0).unwrap_err();
        assert!(e.contains("reaches past the end of its storage"), "{e}");
        let e = entry_for(view(&[2, 2], &[2, 1], 0, 6), 0, 16, 0).unwrap_err();
        assert!(e.contains("declared 24 bytes"), "{e}");
        let e = entry_for(view(&[usize::MAX, 4], &[4, 1], 0, 6), 0, 16, 0).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }
}
