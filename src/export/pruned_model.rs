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
    ExportError, ExportOptions, ExportProgress, ExportSummary, Plan,
    atomic_dir::TempDir,
    config_edit::prune_config,
    mergekit, model_card,
    safetensors_out::{OutTensor, shard_file_name, split_shards, write_shard},
};
use crate::{
    layers::{self, natural_cmp},
    model::Model,
    scan::CancelToken,
};

/// Files never copied: weights in any format and their indexes (the new ones are written),
/// and the files written anew.
pub fn is_weight_file(name: &str) -> bool {
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

fn canonical(p: &Path) -> Result<PathBuf, ExportError> {
    std::fs::canonicalize(p).map_err(|e| ExportError::io(p, "cannot resolve the path", e))
}

/// Refuses targets that would lose data: inside the input, containing the input, an existing
/// folder without `--force`, something that is not a folder, a missing parent.
pub fn check_output_folder(model: &Model, out: &Path, force: bool) -> Result<(), ExportError> {
    let bad = |problem: String| ExportError::BadTarget {
        out: out.to_path_buf(),
        problem,
    };
    let name = out
        .file_name()
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| bad("not a folder name".into()))?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(bad(format!(
            "its parent folder {} does not exist",
            parent.display()
        )));
    }
    let out_abs = canonical(parent)?.join(name);
    let out_abs = if out_abs.exists() {
        canonical(&out_abs)?
    } else {
        out_abs
    };
    let input = canonical(&model.source)?;
    if input.is_dir() && out_abs.starts_with(&input) {
        return Err(bad(format!(
            "is inside the input model folder {}; write the pruned model elsewhere",
            input.display()
        )));
    }
    let sources = std::iter::once(input.clone()).chain(
        model
            .shards
            .iter()
            .filter_map(|s| std::fs::canonicalize(&s.path).ok()),
    );
    for src in sources {
        if src.starts_with(&out_abs) {
            return Err(bad(format!(
                "contains the input {}; replacing it would destroy the source",
                src.display()
            )));
        }
    }
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
/// them; the perplexity evaluation serves them from the memory map under the same names.
pub fn pruned_tensors<'m>(
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

/// [`super::export_model`] with a test hook: `fail_after_bytes` makes the shard writer fail as
/// a full disk would once that many tensor bytes were written.
#[doc(hidden)]
pub fn export_model_with_hooks(
    model: &Model,
    plan: &Plan,
    options: &ExportOptions,
    progress: &mut dyn FnMut(ExportProgress),
    cancel: &CancelToken,
    fail_after_bytes: Option<u64>,
) -> Result<ExportSummary, ExportError> {
    plan.validate()?;
    if options.shard_size == 0 {
        return Err(ExportError::InvalidPlan(
            "the shard size must be positive".into(),
        ));
    }
    let tensors = pruned_tensors(model, plan)?;
    check_output_folder(model, &options.out, options.force)?;
    let out = options.out.clone();
    let yaml = mergekit::yaml(plan)?;

    let tmp = TempDir::beside(&out).map_err(|e| match e {
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
            if fail_after_bytes.is_some_and(|limit| done >= limit) {
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

    let mut notes = Vec::new();
    match &model.config {
        Some(config) => {
            let (config, edits) = prune_config(config, plan.num_layers, &plan.kept());
            // Count edits read "key: old -> new"; list edits do not.
            if !edits.iter().any(|e| e.contains(" -> ")) {
                notes.push(format!(
                    "config.json declares no layer count equal to {}; it was not lowered",
                    plan.num_layers
                ));
            }
            write_json(&dir.join("config.json"), &config)?;
        }
        None => notes.push("the source has no config.json; none was written".into()),
    }
    let copied = copy_other_files(model, &dir, &mut notes)?;
    write_synced(&dir.join("mergekit_config.yml"), yaml.as_bytes())?;
    let kept_params: u64 = tensors.iter().map(|t| t.source.num_elements()).sum();
    let card = model_card::model_card(plan, &yaml, Some((model.total_params(), kept_params)));
    write_synced(&dir.join("README.md"), card.as_bytes())?;

    if cancel.is_cancelled() {
        return Err(ExportError::Cancelled { out });
    }
    notes.extend(tmp.commit()?);
    Ok(ExportSummary {
        out,
        shards: n,
        tensors: tensors.len(),
        bytes: total,
        copied,
        notes,
    })
}

/// Copies the source folder's other files (tokenizer, generation config, chat templates, ...)
/// unchanged. Only for model folders: a lone .safetensors file's folder is copied from only
/// when it holds that model's config.json.
fn copy_other_files(
    model: &Model,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ExportError> {
    if !model.source.is_dir() && model.config_path.is_none() {
        return Ok(Vec::new());
    }
    let rd =
        std::fs::read_dir(&model.dir).map_err(|e| ExportError::io(&model.dir, "cannot list", e))?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| ExportError::io(&model.dir, "cannot list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if !name.starts_with('.') {
                notes.push(format!("subfolder {name}/ not copied"));
            }
            continue;
        }
        if !path.is_file()
            || is_weight_file(&name)
            || WRITTEN_ANEW.contains(&name.as_str())
            || name.contains(".snrscope-tmp-")
        {
            continue;
        }
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        if size > LARGE_FILE {
            notes.push(format!(
                "{name} not copied: {size} bytes is too large for a config file"
            ));
            continue;
        }
        names.push((name, path));
    }
    names.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    for (name, path) in &names {
        let to = dir.join(name);
        std::fs::copy(path, &to)
            .and_then(|_| std::fs::File::open(&to)?.sync_all())
            .map_err(|e| ExportError::io(path, "cannot copy", e))?;
    }
    Ok(names.into_iter().map(|(n, _)| n).collect())
}
