//! The pruned GGUF: one file holding the kept `blk.N.` tensors, copied byte for byte in their
//! own types and renumbered from 0, every other tensor unchanged, and the metadata llama.cpp
//! needs to load it:
//! - `{arch}.block_count` set to the kept count, in its own integer type;
//! - every per-layer array (any array under `{arch}.` as long as `block_count`: per-layer head
//!   counts, feed-forward lengths, sliding-window flags, ...) shortened to the kept layers —
//!   what `llama-quantize --prune-layers` does not do (llama.cpp issue 27976);
//! - `{arch}.leading_dense_block_count` (dense layers before the experts) counted again;
//! - where llama.cpp derives sliding-window layers from the layer index (gemma2, gemma3,
//!   cohere2), the kept layers' own pattern written as a bool array when renumbering would
//!   change it, so every kept layer keeps its attention type;
//! - `split.*` dropped (the output is one file); everything else, `general.name` included,
//!   copied byte for byte.
//!
//! Tensor data is streamed part by part with `copy_file_range` (in-kernel, no user buffer) or,
//! where that is unavailable, 8 MiB reads and writes: memory stays flat whatever the model's
//! size. The output is written to `.NAME.snrscope-tmp-PID` beside the target, synced, checked
//! again against every input (by identity) and renamed into place without replacing anything
//! that appeared meanwhile; two writers of one target are serialised by `.NAME.snrscope-lock`.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::{ExportError, Inputs, leftovers, lock::TargetLock, rename::rename_noreplace};
use crate::{
    checkpoint::gguf::{
        Array, GgufError, GgufFile, GgufModel, MetaEntry, TensorInfo, Value, encode_str,
        names::layer_of, shown,
    },
    util::cancel::CancelToken,
};

/// Per-layer arrays whose length can equal `block_count` by coincidence but are not per layer.
const NOT_PER_LAYER: &[&str] = &[
    "rope.dimension_sections",
    "ple.head_offsets",
    "ple.head_vocab_sizes",
    "target_layers",
];

/// Architectures whose sliding-window layers llama.cpp computes from the layer index when no
/// bool array is given (`load_swa_pattern(n, dense_first)` in llama.cpp's `src/models/`).
const SWA_PATTERNS: &[(&str, u32, bool)] = &[
    ("gemma2", 2, false),
    ("gemma3", 6, false),
    ("cohere2", 4, false),
];

/// Bytes per `copy_file_range` call (no user memory: only progress and cancelling see it) and
/// per buffered read/write where the kernel cannot copy.
const KERNEL_CHUNK: usize = 64 << 20;
const COPY_CHUNK: usize = 8 << 20;

thread_local! {
    /// Tests set it to take the buffered path that filesystems without `copy_file_range` use.
    static FORCE_BUFFERED_COPY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What to write.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Original layer numbers to keep, ascending and distinct.
    pub kept: Vec<usize>,
    /// The output file.
    pub out: PathBuf,
    /// Replace an existing `out`.
    pub replace: bool,
    /// Inputs besides the model's own files that must not be the output (a scan file).
    pub inputs: Inputs,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneSummary {
    pub out: PathBuf,
    pub tensors: usize,
    /// Bytes of the output file.
    pub bytes: u64,
    /// Metadata keys that were changed, added or dropped, with what happened.
    pub edited: Vec<String>,
    /// Leftovers of interrupted runs removed beside the target, and the like.
    pub notes: Vec<String>,
}

/// One output tensor: where its bytes come from and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct OutTensor {
    pub name: String,
    /// Index into the model's parts.
    pub part: usize,
    pub source: TensorInfo,
    /// Relative to the output's data section.
    pub offset: u64,
}

/// The pruned file's header bytes (up to the aligned data start) and its tensors.
#[derive(Debug, Clone)]
pub struct PrunedLayout {
    pub header: Vec<u8>,
    pub tensors: Vec<OutTensor>,
    pub alignment: u64,
    /// Total output size.
    pub file_len: u64,
    pub edited: Vec<String>,
}

/// Computes the pruned file's header and tensor placement (no data is read).
pub fn pruned_layout(model: &GgufModel, kept: &[usize]) -> Result<PrunedLayout, ExportError> {
    let main = model.main();
    let path = &main.path;
    let arch = model
        .arch()
        .ok_or_else(|| bad_model(path, "has no general.architecture; cannot prune it"))?
        .to_string();
    let bc_key = format!("{arch}.block_count");
    let n_layers = model
        .get(&bc_key)
        .and_then(Value::as_usize)
        .ok_or_else(|| bad_model(path, format!("has no integer {}", shown(&bc_key))))?;
    if kept.is_empty() {
        return Err(ExportError::InvalidPlan(format!(
            "the plan drops all {n_layers} layers of {}; keep at least one",
            path.display()
        )));
    }
    if let Some(&bad) = kept.iter().find(|&&l| l >= n_layers) {
        return Err(ExportError::InvalidPlan(format!(
            "layer {bad} is kept but {} has {n_layers} layers (0-{})",
            path.display(),
            n_layers - 1
        )));
    }
    if kept.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ExportError::InvalidPlan(
            "kept layers must be ascending and distinct".into(),
        ));
    }
    let new_index = |old: usize| kept.binary_search(&old).ok();

    // Metadata.
    let mut edited = Vec::new();
    let mut kvs: Vec<Vec<u8>> = Vec::new();
    let arch_prefix = format!("{arch}.");
    let swa_key = format!("{arch}.attention.sliding_window_pattern");
    let swa = swa_flags(model, &arch, n_layers);
    let mut swa_written = false;
    for e in &main.metadata {
        let key = e.key.as_str();
        if key.starts_with("split.") {
            edited.push(format!("{key}: dropped (the output is one file)"));
            continue;
        }
        let mut new_value = None;
        if key == bc_key {
            new_value = Some(e.value.with_int(kept.len() as u64).ok_or_else(|| {
                bad_model(
                    path,
                    format!("{key} has a type that cannot hold {}", kept.len()),
                )
            })?);
            edited.push(format!("{key}: {n_layers} -> {}", kept.len()));
        } else if key == format!("{arch}.leading_dense_block_count")
            && let Some(n) = e.value.as_usize()
        {
            let now = kept.iter().filter(|&&l| l < n).count();
            if now != n {
                new_value = e.value.with_int(now as u64);
                edited.push(format!("{key}: {n} -> {now}"));
            }
        } else if let Some(rest) = key.strip_prefix(&arch_prefix)
            && let Value::Array(a) = &e.value
            && a.len() == n_layers
            && !NOT_PER_LAYER.contains(&rest)
        {
            new_value = Some(Value::Array(a.select(kept)));
            edited.push(format!(
                "{key}: per-layer array shortened from {n_layers} to {}",
                kept.len()
            ));
            if key == swa_key {
                swa_written = true;
            }
        } else if key == swa_key
            && let Some(flags) = &swa
            && let Some(v) = renumbered_swa(flags, kept, &arch)
        {
            new_value = Some(v);
            swa_written = true;
            edited.push(format!(
                "{key}: written as the kept layers' own sliding-window flags (renumbering \
                 would change them)"
            ));
        }
        kvs.push(match new_value {
            Some(v) => encode_kv(key, &v),
            None => raw_bytes(main, e)?,
        });
    }
    if !swa_written
        && main.get(&swa_key).is_none()
        && let Some(flags) = &swa
        && let Some(v) = renumbered_swa(flags, kept, &arch)
    {
        kvs.push(encode_kv(&swa_key, &v));
        edited.push(format!(
            "{swa_key}: added, the kept layers' own sliding-window flags (llama.cpp would \
             otherwise derive them from the new layer numbers)"
        ));
    }

    // Tensors.
    let alignment = main.alignment;
    let mut tensors = Vec::new();
    let mut offset = 0u64;
    for t in model.tensors() {
        let part = model
            .parts
            .iter()
            .position(|p| std::ptr::eq(p, t.part))
            .expect("a model's tensor lives in one of its parts");
        let name = match layer_of(&t.info.name) {
            Some((n, rest)) => {
                if n >= n_layers {
                    return Err(bad_model(
                        &t.part.path,
                        format!(
                            "tensor {} belongs to layer {n}, but {bc_key} is {n_layers}",
                            shown(&t.info.name)
                        ),
                    ));
                }
                match new_index(n) {
                    Some(i) => format!("blk.{i}.{rest}"),
                    None => continue,
                }
            }
            None => t.info.name.clone(),
        };
        tensors.push(OutTensor {
            name,
            part,
            source: t.info.clone(),
            offset,
        });
        offset = (offset + t.info.n_bytes)
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| bad_model(path, "the pruned file would be too large"))?;
    }

    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&main.version.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for kv in &kvs {
        header.extend_from_slice(kv);
    }
    for t in &tensors {
        encode_str(&t.name, &mut header);
        header.extend_from_slice(&(t.source.dims.len() as u32).to_le_bytes());
        for d in &t.source.dims {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&t.source.ggml_type.0.to_le_bytes());
        header.extend_from_slice(&t.offset.to_le_bytes());
    }
    let data_start = (header.len() as u64).next_multiple_of(alignment);
    header.resize(data_start as usize, 0);
    Ok(PrunedLayout {
        header,
        file_len: data_start + offset,
        tensors,
        alignment,
        edited,
    })
}

fn bad_model(path: &Path, problem: impl Into<String>) -> ExportError {
    ExportError::BadModel {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn encode_kv(key: &str, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_str(key, &mut out);
    v.encode(&mut out);
    out
}

fn raw_bytes(part: &GgufFile, e: &MetaEntry) -> Result<Vec<u8>, GgufError> {
    let mut buf = vec![0u8; (e.raw.end - e.raw.start) as usize];
    part.read_at(e.raw.start, &mut buf)?;
    Ok(buf)
}

/// The source's sliding-window flag per layer, where llama.cpp derives it from the index (see
/// [`SWA_PATTERNS`]); `None` where it does not (or a bool array already spells it out).
fn swa_flags(model: &GgufModel, arch: &str, n_layers: usize) -> Option<Vec<bool>> {
    let &(_, default, dense_first) = SWA_PATTERNS.iter().find(|p| p.0 == arch)?;
    let window = model
        .arch_value("attention.sliding_window")
        .and_then(Value::as_usize);
    if window.is_some_and(|w| w == 0) || (arch == "gemma3" && window.is_none()) {
        return None;
    }
    let n = match model.arch_value("attention.sliding_window_pattern") {
        None => default,
        Some(Value::Array(_)) => return None,
        Some(v) => u32::try_from(v.as_int()?).ok()?,
    };
    Some((0..n_layers).map(|il| swa_at(il, n, dense_first)).collect())
}

/// llama.cpp's `llama_hparams::set_swa_pattern`.
fn swa_at(il: usize, n: u32, dense_first: bool) -> bool {
    let n = n as usize;
    if n == 0 {
        return true;
    }
    if dense_first {
        !il.is_multiple_of(n)
    } else {
        il % n < n - 1
    }
}

/// The kept layers' flags as a bool array, unless llama.cpp would compute the same flags from
/// the new numbering anyway (then the metadata stays as it was).
fn renumbered_swa(flags: &[bool], kept: &[usize], arch: &str) -> Option<Value> {
    let &(_, default, dense_first) = SWA_PATTERNS.iter().find(|p| p.0 == arch)?;
    let kept_flags: Vec<bool> = kept.iter().map(|&l| flags[l]).collect();
    // The source's pattern period, recovered from its flags: llama.cpp recomputes with it.
    let n = (0..=flags.len() as u32 + 1)
        .find(|&n| (0..flags.len()).all(|il| swa_at(il, n, dense_first) == flags[il]))
        .unwrap_or(default);
    let same = kept_flags
        .iter()
        .enumerate()
        .all(|(il, &f)| swa_at(il, n, dense_first) == f);
    (!same).then_some(Value::Array(Array::Bool(kept_flags)))
}

/// Writes the pruned GGUF. `progress(done, total)` gets bytes; `cancel` stops the copy and
/// removes what was written. The target's safety is the folder export's: the input is never
/// the output, nothing is replaced unless `replace`, one writer per target (the same lock
/// file, so a GGUF and a folder export of one name exclude each other), leftovers of killed
/// runs removed first.
pub fn write_pruned(
    model: &GgufModel,
    options: &PruneOptions,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelToken,
) -> Result<PruneSummary, ExportError> {
    let out = &options.out;
    let mut inputs = options.inputs.clone();
    inputs.add(&model.source);
    for p in &model.parts {
        inputs.add(&p.path);
    }
    check_target(out, &inputs, options.replace)?;
    let layout = pruned_layout(model, &options.kept)?;
    let _lock = TargetLock::acquire(out)?;
    let notes = leftovers::clean(out);
    let tmp = super::sibling_of_this_process(out, "tmp");
    let result = write_to(model, &layout, &tmp, out, progress, cancel).and_then(|()| {
        inputs.check(out)?;
        commit(&tmp, out, options.replace)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(PruneSummary {
        out: out.clone(),
        tensors: layout.tensors.len(),
        bytes: layout.file_len,
        edited: layout.edited,
        notes,
    })
}

/// Refuses a target that is not a file name in an existing folder, is an input, is a folder,
/// or exists (unless `replace`).
pub fn check_target(out: &Path, inputs: &Inputs, replace: bool) -> Result<(), ExportError> {
    let bad = |problem: String| ExportError::BadTarget {
        out: out.to_path_buf(),
        problem,
    };
    if out.file_name().is_none_or(|n| n == "." || n == "..") {
        return Err(bad("not a file name".into()));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(bad(format!(
            "its folder {} does not exist",
            parent.display()
        )));
    }
    inputs.check(out)?;
    if out.is_dir() {
        return Err(bad("is a folder, not a file".into()));
    }
    if !replace && out.symlink_metadata().is_ok() {
        return Err(ExportError::TargetExists {
            path: out.to_path_buf(),
        });
    }
    Ok(())
}

fn write_to(
    model: &GgufModel,
    layout: &PrunedLayout,
    tmp: &Path,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &CancelToken,
) -> Result<(), ExportError> {
    let wio = |action, e| ExportError::io(tmp, action, e);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| wio("cannot create", e))?;
    f.write_all(&layout.header)
        .map_err(|e| wio("cannot write", e))?;
    let data_start = layout.header.len() as u64;
    let total = layout.file_len;
    let mut done = data_start;
    progress(done, total);
    let mut buf = Vec::new();
    let zeros = vec![0u8; layout.alignment as usize];
    for t in &layout.tensors {
        let part = &model.parts[t.part];
        let src = part.data_range(&t.source);
        let dst = data_start + t.offset;
        copy_range(
            part,
            src.start,
            &f,
            dst,
            t.source.n_bytes,
            &mut buf,
            tmp,
            &mut |n| {
                done += n;
                progress(done, total);
                if cancel.is_cancelled() {
                    Err(())
                } else {
                    Ok(())
                }
            },
        )
        .map_err(|e| {
            e.unwrap_or_else(|| ExportError::Cancelled {
                out: out.to_path_buf(),
            })
        })?;
        let end = dst + t.source.n_bytes;
        let pad = (end.next_multiple_of(layout.alignment) - end) as usize;
        f.write_all_at(&zeros[..pad], end)
            .map_err(|e| wio("cannot write", e))?;
        done += pad as u64;
    }
    f.set_len(total).map_err(|e| wio("cannot write", e))?;
    f.sync_all().map_err(|e| wio("cannot write", e))?;
    progress(total, total);
    Ok(())
}

/// Copies `len` bytes from `part` at `src` to `out` at `dst`: `copy_file_range` where the
/// kernel and filesystems allow it, else through `buf`. `tick(bytes)` after each chunk; `Err(())`
/// from it cancels (returned as `Err(None)`).
#[allow(clippy::too_many_arguments)]
fn copy_range(
    part: &GgufFile,
    src: u64,
    out: &File,
    dst: u64,
    len: u64,
    buf: &mut Vec<u8>,
    out_path: &Path,
    tick: &mut dyn FnMut(u64) -> Result<(), ()>,
) -> Result<(), Option<ExportError>> {
    let mut copied = 0u64;
    let mut kernel = cfg!(target_os = "linux") && !FORCE_BUFFERED_COPY.with(|f| f.get());
    while copied < len {
        let left = (len - copied) as usize;
        let n = left.min(COPY_CHUNK);
        let mut moved = 0usize;
        if kernel {
            match kernel_copy(
                &part.file,
                src + copied,
                out,
                dst + copied,
                left.min(KERNEL_CHUNK),
            ) {
                Ok(0) => kernel = false,
                Ok(m) => moved = m,
                Err(_) => kernel = false,
            }
        }
        if moved == 0 {
            buf.resize(n, 0);
            part.read_at(src + copied, &mut buf[..n])
                .map_err(|e| Some(e.into()))?;
            out.write_all_at(&buf[..n], dst + copied)
                .map_err(|e| Some(ExportError::io(out_path, "cannot write", e)))?;
            moved = n;
        }
        copied += moved as u64;
        tick(moved as u64).map_err(|()| None)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn kernel_copy(from: &File, src: u64, to: &File, dst: u64, n: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let (mut off_in, mut off_out) = (src as libc::loff_t, dst as libc::loff_t);
    // SAFETY: both descriptors are open for the call's duration; the offsets are ours.
    let r = unsafe {
        libc::copy_file_range(
            from.as_raw_fd(),
            &mut off_in,
            to.as_raw_fd(),
            &mut off_out,
            n,
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn kernel_copy(_: &File, _: u64, _: &File, _: u64, _: usize) -> std::io::Result<usize> {
    Ok(0)
}

fn commit(tmp: &Path, out: &Path, replace: bool) -> Result<(), ExportError> {
    // Replacing a file by rename is atomic: the target name never goes missing.
    let r = if replace {
        std::fs::rename(tmp, out)
    } else {
        rename_noreplace(tmp, out)
    };
    r.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::TargetChanged {
                path: out.to_path_buf(),
                what: "appeared while it was being written".into(),
            }
        } else {
            ExportError::io(out, "cannot rename the finished file into place", e)
        }
    })?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffered_copy_writes_the_same_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("m.gguf");
        // A one-layer GGUF by hand: one 3 MiB F32 tensor.
        let n: u64 = 3 << 18;
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        let (k, v) = ("general.architecture", "llama");
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend((v.len() as u64).to_le_bytes());
        b.extend(v.as_bytes());
        let k = "llama.block_count";
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        let t = "blk.0.attn_v.weight";
        b.extend((t.len() as u64).to_le_bytes());
        b.extend(t.as_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(n.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.resize(b.len().next_multiple_of(32), 0);
        b.extend((0..n * 4).map(|i| (i * 7 % 251) as u8));
        std::fs::write(&src, &b).unwrap();
        let m = GgufModel::open(&src).unwrap();
        let run = |name: &str, buffered: bool| {
            FORCE_BUFFERED_COPY.with(|f| f.set(buffered));
            let opts = PruneOptions {
                kept: vec![0],
                out: d.path().join(name),
                replace: false,
                inputs: Inputs::new(),
            };
            write_pruned(&m, &opts, &mut |_, _| {}, &CancelToken::default()).unwrap();
            std::fs::read(d.path().join(name)).unwrap()
        };
        let kernel = run("a.gguf", false);
        let buffered = run("b.gguf", true);
        assert_eq!(kernel, buffered);
        assert_eq!(kernel, b, "keeping every layer reproduces the file");
    }

    #[test]
    fn swa_patterns_follow_llama_cpp() {
        // gemma2: even layers slide.
        let g2: Vec<bool> = (0..4).map(|il| swa_at(il, 2, false)).collect();
        assert_eq!(g2, [true, false, true, false]);
        // Dropping layer 1 of gemma2 would make old layer 2 (sliding) new layer 1 (global).
        assert_eq!(
            renumbered_swa(&g2, &[0, 2, 3], "gemma2"),
            Some(Value::Array(Array::Bool(vec![true, true, false])))
        );
        // Dropping a pair keeps the parity: nothing to write.
        assert_eq!(renumbered_swa(&g2, &[0, 1], "gemma2"), None);
        // gemma3: five sliding, one global.
        let g3: Vec<bool> = (0..7).map(|il| swa_at(il, 6, false)).collect();
        assert_eq!(g3, [true, true, true, true, true, false, true]);
    }
}
