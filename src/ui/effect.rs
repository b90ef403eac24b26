//! What the explorer's state asks the outside world to do. `App::handle` and `App::update`
//! return these instead of doing them: the state owns no channel, spawns no thread and writes
//! no file, so it can be tested by looking at what it asks for. The runtime
//! (`ui::jobs::Executor`) carries them out and reports back as messages.

use std::sync::Arc;

use snrscope::{
    checkpoint::Model,
    spectrum::scan::{ScanJob, ScanOptions},
};

use super::{
    eval_text::{EvalSetup, EvalText},
    write_job::WriteJob,
};

#[derive(Debug)]
pub enum Effect {
    /// Scan `jobs` of `model`; results come back as `Msg::Scan { scan_id: id, .. }`.
    StartScan {
        id: u64,
        model: Arc<Model>,
        jobs: Vec<ScanJob>,
        options: ScanOptions,
    },
    /// Stop the scan `id` (jobs not started are skipped; `Finished` still comes).
    CancelScan {
        id: u64,
    },
    /// The perplexity of each choice (dropped layers) in order, on `text` (read from `setup`
    /// when `None`); reports come back as `Msg::Eval { id, .. }`.
    StartEval {
        id: u64,
        model: Arc<Model>,
        text: Option<EvalText>,
        setup: EvalSetup,
        choices: Vec<Vec<usize>>,
    },
    CancelEval {
        id: u64,
    },
    /// Probe `model` on the text of `setup` (the explorer's `P`); reports come back as
    /// `Msg::Probe { id, .. }`.
    StartProbe {
        id: u64,
        model: Arc<Model>,
        setup: EvalSetup,
        use_cache: bool,
    },
    CancelProbe {
        id: u64,
    },
    /// Stop the running export (it removes its temporary folder; its end comes back as
    /// `Msg::Export`).
    CancelExport,
    /// Write a file, or start the export of the pruned model; the outcome comes back as
    /// `Msg::Written`, the export's progress and end as `Msg::Export`.
    Write(Box<WriteJob>),
}
