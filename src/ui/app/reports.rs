//! The wording of what finished: a file written, the export, the perplexity. One sentence each,
//! for the status line.

use std::path::Path;

use snrscope::{
    export::ExportSummary,
    forward::format_perplexity,
    plan,
    util::{bytes::human_bytes, text::escape_controls},
};

use super::App;
use crate::ui::write_job::Content;

/// "wrote prune.yml (keep [0,12) [13,60); model: org/name)".
pub(super) fn written(path: &Path, content: &Content) -> String {
    match content {
        Content::MergekitYaml(p) => format!(
            "wrote {} (keep {}; model: {})",
            path.display(),
            plan::format_ranges(&p.kept_ranges()),
            p.model_ref
        ),
        Content::ScanJson { entries, .. } => {
            format!("wrote {entries} scan entries to {}", path.display())
        }
        Content::Unfrozen {
            groups,
            top_percent,
        } => format!(
            "wrote {} (top {top_percent}% of {} module type(s) scanned so far)",
            path.display(),
            groups.len()
        ),
        Content::Model { .. } => format!("exported to {}", path.display()),
    }
}

/// "exported 291 tensors (1 shard, 526.5 kB) to ./pruned; 1 file(s) of the folder not copied (…)".
pub(super) fn exported(s: &ExportSummary) -> String {
    let mut text = format!(
        "exported {} tensors ({} shard{}, {}) to {}",
        s.tensors,
        s.shards,
        if s.shards == 1 { "" } else { "s" },
        human_bytes(s.bytes),
        s.out.display()
    );
    if !s.skipped.is_empty() {
        text.push_str(&format!(
            "; {} file(s) of the folder not copied ({})",
            s.skipped.len(),
            s.skipped
                .iter()
                .map(|(n, _)| escape_controls(n).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(note) = s.notes.first() {
        text.push_str(&format!(" — note: {note}"));
    }
    text
}

impl App {
    /// The finished evaluation in one line: what was scored, both perplexities, the speed.
    pub(super) fn eval_report(&self) -> String {
        let st = &self.evals.state;
        let mut s = match (&st.original, self.evals.summary()) {
            (_, Some(sum)) if !sum.is_stale(&self.choice.selection().dropped()) => format!(
                "{} dropping {}",
                sum.text(),
                plan::format_layer_list(&sum.dropped)
            ),
            (Some(o), _) => format!("ppl {} (original)", format_perplexity(o.perplexity)),
            (None, _) => return "perplexity: nothing computed".into(),
        };
        let last = st.pruned.iter().chain(&st.original).next();
        if let (Some(p), Some(t)) = (last, &self.evals.text) {
            s.push_str(&format!(
                " — {} tokens of {}, {:.0} tokens/s",
                p.tokens,
                escape_controls(&t.name),
                p.tokens_per_second
            ));
            if t.unknown * 10 > t.tokens.len() {
                s.push_str(&format!(
                    "; {} of {} tokens unknown to the tokenizer, so the number says little \
                     about the text",
                    t.unknown,
                    t.tokens.len()
                ));
            }
        }
        s
    }
}
