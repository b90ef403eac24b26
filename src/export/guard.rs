//! The input is never written to: every output path (file or folder, from the command line or
//! the explorer) is checked against every input file and folder by identity — device and inode,
//! after resolving symlinks — so a bind mount, a symlink, a hard link or `..` cannot disguise
//! the model folder. Checked when an output is chosen and again right before it is renamed into
//! place; `--force` does not override it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::ExportError;
use crate::{
    checkpoint::Model,
    util::fsid::{self, FileId},
};

/// The files and folders a run reads from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// Each input with its identity; `true` for folders (nothing may be written inside them).
    items: Vec<(PathBuf, FileId, bool)>,
    /// Every folder that holds an input (the inputs' ancestors), with one input it holds: an
    /// output with such an identity would contain that input.
    holders: HashMap<FileId, PathBuf>,
}

impl Inputs {
    pub fn new() -> Inputs {
        Inputs::default()
    }

    /// What an opened model reads: its folder (for a model folder), the file named, config.json,
    /// the index and every shard (a shard that is a symlink counts under both names).
    pub fn of_model(model: &Model) -> Inputs {
        let mut inputs = Inputs::new();
        inputs.add(&model.source);
        if model.source.is_dir() {
            inputs.add(&model.dir);
        }
        for p in [&model.config_path, &model.index_path]
            .into_iter()
            .flatten()
        {
            inputs.add(p);
        }
        for s in &model.shards {
            inputs.add(&s.path);
        }
        inputs
    }

    /// A single input file (a scan file), or folder.
    pub fn of_path(path: &Path) -> Inputs {
        let mut inputs = Inputs::new();
        inputs.add(path);
        inputs
    }

    /// Adds an input; one that does not exist is ignored (there is nothing to protect).
    pub fn add(&mut self, path: &Path) {
        let Some(id) = FileId::of(path) else {
            return;
        };
        let is_dir = path.is_dir();
        if self.items.iter().any(|(_, i, _)| *i == id) {
            return;
        }
        // The input's own name and its resolved name can have different ancestors (a symlinked
        // shard in a Hugging Face cache snapshot lives in ../../blobs).
        let mut chains = fsid::ancestor_ids(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            chains.extend(fsid::ancestor_ids(parent));
        }
        for (_, anc) in chains {
            self.holders
                .entry(anc)
                .or_insert_with(|| path.to_path_buf());
        }
        self.items.push((path.to_path_buf(), id, is_dir));
    }

    pub fn merge(mut self, other: &Inputs) -> Inputs {
        for (p, _, _) in &other.items {
            self.add(p);
        }
        self
    }

    /// Refuses an output that is an input, lies inside an input folder, or contains an input.
    pub fn check(&self, out: &Path) -> Result<(), ExportError> {
        let bad = |problem: String| ExportError::BadTarget {
            out: out.to_path_buf(),
            problem,
        };
        let out_id = FileId::of(out);
        if let Some(id) = &out_id
            && let Some((p, _, _)) = self.items.iter().find(|(_, i, _)| i == id)
        {
            return Err(bad(format!(
                "is the input {} (the same file or folder under another name); \
                 snrscope never writes over its input",
                p.display()
            )));
        }
        let resolved = fsid::resolve(out);
        if let Some(parent) = resolved.parent() {
            for (_, anc) in fsid::ancestor_ids(parent) {
                if let Some((p, _, _)) = self.items.iter().find(|(_, i, d)| *d && *i == anc) {
                    return Err(bad(format!(
                        "lies inside the input model folder {}; snrscope never writes into \
                         its input: choose a path outside it",
                        p.display()
                    )));
                }
            }
        }
        if let Some(id) = &out_id
            && let Some(p) = self.holders.get(id)
        {
            return Err(bad(format!(
                "contains the input {}; replacing it would destroy the source",
                p.display()
            )));
        }
        Ok(())
    }
}
