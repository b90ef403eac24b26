//! The pruned model folder, exactly what mergekit writes for the plan's passthrough config:
//! kept layers' tensors copied byte for byte and renumbered, everything else copied unchanged,
//! config.json edited, tokenizer and other small files copied, mergekit_config.yml and a model
//! card added. Built in a temporary folder beside the target and renamed when complete.

use std::{
    collections::HashMap,
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde_json::json;

use super::{
    ExportError, ExportOptions, ExportProgress, ExportSummary,
    atomic_dir::TempDir,
    config_edit::{per_layer_list_warnings, prune_config, prune_config_text},
    guard::Inputs,
    mergekit, model_card,
    model_files::model_file_kind,
    safetensors_out::{OutTensor, shard_file_name, split_shards, write_shard},
};
use crate::plan::Plan;
use crate::{
    checkpoint::{
        Model, WeightFormat,
        layers::{self, natural_cmp},
    },
    util::cancel::CancelToken,
};

/// Files never copied: weights in any format and their indexes (the new ones are written),
/// and the files written anew.
pub(crate) fn is_weight_file(name: &str) -> bool {
    const WEIGHT_EXT: &[&str] = &[
        ".safetensors",
        ".bin",
        ".pt",
        ".pth",
        ".gguf",
        ".ckpt",
        ".h5",
        ".msgpack",
        ".onnx",
        ".npz",
        ".ot",
    ];
    WEIGHT_EXT.iter().any(|e| name.ends_with(e)) || name.ends_with(".index.json")
}

const WRITTEN_ANEW: &[&str] = &["config.json", "README.md", "mergekit_config.yml"];

/// Other files larger than this are not "small": skipped (and reported) rather than copied.
const LARGE_FILE: u64 = 1 << 30;

/// Refuses targets that would lose data: an input, inside an input folder, containing an input
/// (by identity: see [`super::guard`]), an existing folder without `--force`, something that is
/// not a folder, a missing parent. The export checks again right before its final rename.
pub fn check_output_folder(inputs: &Inputs, out: &Path, force: bool) -> Result<(), ExportError> {
    let bad = |problem: String| ExportError::BadTarget {
        out: out.to_path_buf(),
        problem,
    };
    out.file_name()
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| bad("not a folder name".into()))?;
    super::atomic_file::check_parent(out)?;
    inputs.check(out)?;
    if out.symlink_metadata().is_ok() {
        if !force {
            return Err(ExportError::TargetExists {
                path: out.to_path_buf(),
            });
        }
        if !out.is_dir() {
            return Err(bad("exists and is not a folder; not replacing it".into()));
        }
    }
    Ok(())
}

/// The pruned model's tensors: main-stack layers renamed to contiguous indices, dropped layers
/// left out, everything else unchanged; in natural order of the new names. The export writes
/// them; the perplexity evaluation reads them from the model's files under the same names.
pub(crate) fn pruned_tensors<'m>(
    model: &'m Model,
    plan: &Plan,
) -> Result<Vec<OutTensor<'m>>, ExportError> {
    let stack = model
        .layout
        .stack(&plan.stack_prefix)
        .ok_or_else(|| ExportError::BadModel {
            path: model.source.clone(),
            problem: format!("has no layer stack `{}`", plan.stack_prefix),
        })?;
    if stack.num_layers != plan.num_layers {
        return Err(ExportError::BadModel {
            path: model.source.clone(),
            problem: format!(
                "the plan is for {} layers but `{}` has {}",
                plan.num_layers, plan.stack_prefix, stack.num_layers
            ),
        });
    }
    let missing: Vec<usize> = stack
        .missing_layers()
        .into_iter()
        .filter(|l| plan.dropped.binary_search(l).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(ExportError::BadModel {
            path: model.source.clone(),
            problem: format!(
                "`{}` has no tensors for kept layer(s) {missing:?}; the pruned model would have \
                 holes (drop them, or check the checkpoint is complete)",
                plan.stack_prefix
            ),
        });
    }
    let new_index: HashMap<usize, usize> = plan
        .kept()
        .into_iter()
        .enumerate()
        .map(|(new, old)| (old, new))
        .collect();
    let mut out = Vec::with_capacity(model.tensors.len());
    for t in &model.tensors {
        let parsed = layers::parse_layer_name(&t.name).filter(|p| p.stack == plan.stack_prefix);
        let name = match parsed {
            None => t.name.clone(),
            Some(p) => match new_index.get(&p.index) {
                Some(new) => format!("{}.{new}.{}", p.stack, p.rest),
                None => continue,
            },
        };
        out.push(OutTensor { name, source: t });
    }
    out.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(out)
}

/// Writes and syncs a small file: the folder is renamed into place only once every byte in it
/// is on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let write = || -> io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| ExportError::io(path, "cannot write", e))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), ExportError> {
    let mut text = serde_json::to_string_pretty(v).expect("JSON values serialize");
    text.push('\n');
    write_synced(path, text.as_bytes())
}

/// Test hooks of [`export_model_with_hooks`].
#[derive(Default)]
pub struct Hooks<'a> {
    /// The shard writer fails as a full disk would once this many tensor bytes were written.
    pub fail_after_bytes: Option<u64>,
    /// Runs when everything is written, just before the final rename (e.g. to create the
    /// target meanwhile, as a concurrent process could).
    pub before_commit: Option<&'a mut dyn FnMut()>,
}

/// [`super::export_model`] with test hooks.
#[doc(hidden)]
pub fn export_model_with_hooks(
    model: &Model,
    plan: &Plan,
    options: &ExportOptions,
    progress: &mut dyn FnMut(ExportProgress),
    cancel: &CancelToken,
    hooks: Hooks<'_>,
) -> Result<ExportSummary, ExportError> {
    plan.validate()?;
    if options.shard_size == 0 {
        return Err(ExportError::InvalidPlan(
            "the shard size must be positive".into(),
        ));
    }
    let tensors = pruned_tensors(model, plan)?;
    let inputs = Inputs::of_model(model).merge(&options.inputs);
    check_output_folder(&inputs, &options.out, options.force)?;
    let others = other_files(model, &options.extra_files)?;
    let out = options.out.clone();
    let yaml = mergekit::yaml(plan)?;

    let mut notes = Vec::new();
    if model.format == WeightFormat::PytorchBin {
        notes.push(
            "the source is a PyTorch .bin checkpoint; the pruned model is written as safetensors \
             (same tensors, bytes and names; its pytorch_model.bin files are not copied)"
                .to_string(),
        );
    }
    let tmp = TempDir::beside(&out, &inputs, options.force, &mut notes).map_err(|e| match e {
        ExportError::Io { source, .. } => {
            ExportError::io(&out, "cannot create the output folder beside it", source)
        }
        e => e,
    })?;
    let dir = tmp.path().to_path_buf();

    let total: u64 = tensors.iter().map(|t| t.source.num_bytes()).sum();
    let mut done = 0u64;
    progress(ExportProgress {
        bytes_done: 0,
        bytes_total: total,
    });
    let shards = split_shards(&tensors, options.shard_size);
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (i, range) in shards.iter().enumerate() {
        let file = shard_file_name(i, n);
        let path = dir.join(&file);
        let group = &tensors[range.clone()];
        let mut after_chunk = |bytes: u64| {
            done += bytes;
            progress(ExportProgress {
                bytes_done: done,
                bytes_total: total,
            });
            if cancel.is_cancelled() {
                return Err(ExportError::Cancelled { out: out.clone() });
            }
            if hooks.fail_after_bytes.is_some_and(|limit| done >= limit) {
                return Err(ExportError::io(
                    &path,
                    "cannot write",
                    io::Error::other("simulated write failure (test hook)"),
                ));
            }
            Ok(())
        };
        write_shard(&path, model, group, &mut after_chunk)?;
        for t in group {
            weight_map.insert(t.name.clone(), json!(file));
        }
    }
    if cancel.is_cancelled() {
        return Err(ExportError::Cancelled { out });
    }
    if n > 1 {
        write_json(
            &dir.join("model.safetensors.index.json"),
            &json!({"metadata": {"total_size": total}, "weight_map": weight_map}),
        )?;
    }

    match &model.config {
        Some(config) => {
            notes.extend(per_layer_list_warnings(config, plan.num_layers));
            // The source text with only the changed values rewritten (a text diff of the two
            // configs shows the edits and nothing else); re-serialized only if that fails.
            let text = model
                .config_path
                .as_deref()
                .and_then(|p| {
                    crate::util::files::read_string_bounded(
                        p,
                        crate::util::files::limit::JSON,
                        "a config",
                    )
                    .ok()
                })
                .and_then(|t| prune_config_text(&t, plan.num_layers, &plan.kept()).ok());
            let edits = match text {
                Some((text, edits)) => {
                    write_synced(&dir.join("config.json"), text.as_bytes())?;
                    edits
                }
                None => {
                    let (config, edits) = prune_config(config, plan.num_layers, &plan.kept());
                    notes.push(
                        "config.json was re-serialized (its text could not be edited in place)"
                            .into(),
                    );
                    write_json(&dir.join("config.json"), &config)?;
                    edits
                }
            };
            // Count edits read "key: old -> new"; list edits do not.
            if !edits.iter().any(|e| e.contains(" -> ")) {
                notes.push(format!(
                    "config.json declares no layer count equal to {}; it was not lowered",
                    plan.num_layers
                ));
            }
        }
        None => notes.push("the source has no config.json; none was written".into()),
    }
    let copied = copy_files(&others.copy, &dir)?;
    write_synced(&dir.join("mergekit_config.yml"), yaml.as_bytes())?;
    let kept_params: u64 = tensors.iter().map(|t| t.source.num_elements()).sum();
    let card = model_card::model_card(plan, &yaml, Some((model.total_params(), kept_params)));
    write_synced(&dir.join("README.md"), card.as_bytes())?;

    if cancel.is_cancelled() {
        return Err(ExportError::Cancelled { out });
    }
    if let Some(hook) = hooks.before_commit {
        hook();
    }
    notes.extend(tmp.commit()?);
    Ok(ExportSummary {
        out,
        shards: n,
        tensors: tensors.len(),
        bytes: total,
        copied,
        skipped: others.skipped,
        notes,
    })
}

/// The model folder's other files, sorted into what is copied and what is not (with why).
struct OtherFiles {
    /// (name, path to read it from)
    copy: Vec<(String, PathBuf)>,
    skipped: Vec<(String, String)>,
}

/// Only for model folders: a lone .safetensors file's folder is copied from only when it holds
/// that model's config.json. `extra` names files the user asked for (`--copy`); one that does
/// not exist is an error, before anything is written.
fn other_files(model: &Model, extra: &[String]) -> Result<OtherFiles, ExportError> {
    let mut out = OtherFiles {
        copy: Vec::new(),
        skipped: Vec::new(),
    };
    for name in extra {
        let plain = Path::new(name)
            .file_name()
            .is_some_and(|n| n == name.as_str());
        let there = model.dir.join(name);
        // A folder (sentence-transformers' 1_Pooling/) is copied too, but not through a link.
        let folder = there.symlink_metadata().is_ok_and(|m| m.is_dir());
        if !plain || !(there.is_file() || folder) {
            return Err(ExportError::BadModel {
                path: model.dir.clone(),
                problem: format!(
                    "--copy {}: no such file or folder in the model folder (give a name in it)",
                    crate::util::text::escape_controls(name)
                ),
            });
        }
    }
    if !model.source.is_dir() && model.config_path.is_none() {
        return Ok(out);
    }
    let rd =
        std::fs::read_dir(&model.dir).map_err(|e| ExportError::io(&model.dir, "cannot list", e))?;
    let home = allowed_link_roots(&model.dir);
    for entry in rd {
        let entry = entry.map_err(|e| ExportError::io(&model.dir, "cannot list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if is_weight_file(&name)
            || WRITTEN_ANEW.contains(&name.as_str())
            || name.contains(".snrscope-")
        {
            continue;
        }
        let asked = extra.contains(&name);
        if asked && path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            folder_files(&name, &path, 0, &mut out);
            continue;
        }
        let mut skip = |why: String| out.skipped.push((name.clone(), why));
        if path.is_dir() {
            skip(format!(
                "a folder (copied when named: --copy {name}, or the explorer's copy field)"
            ));
            continue;
        }
        if !asked && model_file_kind(&name).is_none() {
            skip(if name.starts_with('.') {
                "hidden file, copied only when named (--copy, or the explorer's copy field)".into()
            } else {
                format!(
                    "not a model file (copied when named: --copy {name}, or the explorer's copy field)"
                )
            });
            continue;
        }
        if path.is_symlink() {
            match std::fs::canonicalize(&path) {
                Ok(target) if home.iter().any(|h| target.starts_with(h)) => {}
                Ok(target) => {
                    skip(format!(
                        "a link to {}, outside the model folder",
                        target.display()
                    ));
                    continue;
                }
                Err(_) => {
                    skip("a broken link".into());
                    continue;
                }
            }
        }
        if !path.is_file() {
            skip("not a regular file".into());
            continue;
        }
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        if size > LARGE_FILE && !asked {
            skip(format!(
                "{} is too large for a model file (copied when named: --copy {name}, or the explorer's \
                 copy field)",
                crate::util::bytes::human_bytes(size)
            ));
            continue;
        }
        out.copy.push((name, path));
    }
    out.copy.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    out.skipped.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    Ok(out)
}

/// Where a symlinked model file may point: inside the model folder, or — for a Hugging Face
/// cache snapshot (`…/models--org--name/snapshots/REV`, every file a link into `../../blobs`) —
/// into that repository's blobs.
fn allowed_link_roots(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let mut roots = vec![dir.clone()];
    if let Some(snapshots) = dir.parent()
        && snapshots.file_name().is_some_and(|n| n == "snapshots")
        && let Some(repo) = snapshots.parent()
        && let Ok(blobs) = std::fs::canonicalize(repo.join("blobs"))
    {
        roots.push(blobs);
    }
    roots
}

/// The regular files of a folder asked for by name (`--copy 1_Pooling`), as `folder/file`
/// names, a few levels deep; links and other special files are listed as not copied.
fn folder_files(name: &str, path: &Path, depth: usize, out: &mut OtherFiles) {
    const MAX_DEPTH: usize = 4;
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => {
            out.skipped
                .push((name.to_string(), format!("cannot list: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let sub = format!("{name}/{file_name}");
        let p = entry.path();
        if file_name.starts_with('.') {
            out.skipped.push((sub, "hidden file, never copied".into()));
            continue;
        }
        match p.symlink_metadata() {
            Ok(m) if m.is_file() => out.copy.push((sub, p)),
            Ok(m) if m.is_dir() && depth < MAX_DEPTH => folder_files(&sub, &p, depth + 1, out),
            Ok(m) if m.is_dir() => out.skipped.push((sub, "nested too deep".into())),
            Ok(m) if m.file_type().is_symlink() => out
                .skipped
                .push((sub, "a link inside a copied folder".into())),
            _ => out.skipped.push((sub, "not a regular file".into())),
        }
    }
}

fn copy_files(files: &[(String, PathBuf)], dir: &Path) -> Result<Vec<String>, ExportError> {
    for (name, path) in files {
        let to = dir.join(name);
        if let Some(parent) = to.parent()
            && parent != dir
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| ExportError::io(parent, "cannot create", e))?;
        }
        // Only a regular file is copied (one that became a FIFO since it was listed would block).
        crate::util::files::open_regular(path)
            .and_then(|(mut from, meta)| {
                let mut file = std::fs::File::create(&to)?;
                std::io::copy(&mut from, &mut file)?;
                // As fs::copy: the source's permissions.
                file.set_permissions(meta.permissions())?;
                file.sync_all()
            })
            .map_err(|e| ExportError::io(path, "cannot copy", e))?;
    }
    Ok(files.iter().map(|(n, _)| n.clone()).collect())
}
