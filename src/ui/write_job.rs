//! A file (or the pruned model's folder) the explorer writes: asked for by the state as an
//! effect, carried out by the runtime — which also resolves the path and checks it against
//! the inputs and what exists, so the state touches no file — and handed back with the
//! outcome, so the dialog can ask "Replace?" or say why it failed.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use snrscope::{
    checkpoint::Model,
    export::{Inputs, UnfrozenGroup},
    plan::Plan,
};

use super::state::overlay::{Dialog, DialogKind};

#[derive(Debug, Clone)]
pub struct WriteJob {
    /// The dialog it came from: its kind and the path as typed; reopened with the reason (or
    /// the "Replace?" question) unless the write succeeds.
    pub dialog: Dialog,
    /// The file name a folder stands for (`e` writes into it only when typed with a `/`).
    pub default_name: String,
    /// The user said yes to replacing what exists.
    pub replace: bool,
    /// What the output must not touch.
    pub inputs: Inputs,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// mergekit's passthrough YAML of the plan.
    MergekitYaml(Plan),
    /// Spectrum's unfrozen-parameters YAML: the top `top_percent` of each group.
    Unfrozen {
        groups: Vec<UnfrozenGroup>,
        top_percent: f64,
    },
    /// A scan JSON of `entries` entries.
    ScanJson { text: String, entries: usize },
    /// The pruned model: written by a background export, which this starts.
    Model { model: Arc<Model>, plan: Plan },
}

/// How a write went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written(PathBuf),
    /// The export of the model to this folder is running.
    Started(PathBuf),
    /// Something is there already and replacing was not confirmed.
    Exists(PathBuf),
    /// The reason, in one sentence.
    Failed(String),
}

/// Where a dialog's path points: `~` expanded; a folder means `default_name` in it (for the
/// model export, only when typed with a trailing `/`: `out/` is "inside out", `out` is "out").
pub fn resolve(kind: DialogKind, typed: &str, default_name: &str, home: Option<&Path>) -> PathBuf {
    let text = typed.trim();
    let expanded = match (text.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(text),
    };
    let into_folder = match kind {
        DialogKind::Model => text.ends_with('/') && expanded.is_dir(),
        _ => expanded.is_dir(),
    };
    if into_folder {
        expanded.join(default_name)
    } else {
        expanded
    }
}

/// The export dialog's "copy" field as file names (`--copy`): separated by commas or spaces.
pub fn copy_names(field: Option<&str>) -> Vec<String> {
    field
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}
