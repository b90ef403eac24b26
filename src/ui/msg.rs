//! Everything that can wake the UI thread. The input thread, the scan workers, the export
//! thread, the perplexity thread and the signal thread all send these on one channel, so the
//! loop has a single place to wait; the runtime also hands back what it did for the state
//! (`Written`).

use crossterm::event::{KeyEvent, MouseEvent};

use snrscope::{
    export::{ExportProgress, ExportSummary},
    forward::EvalEvent,
    spectrum::scan::ScanEvent,
};

use super::{
    eval_text::EvalText,
    write_job::{Outcome, WriteJob},
};

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Scan {
        /// Generation of the scan, so events of a cancelled-and-restarted scan cannot be
        /// mistaken for the new one's.
        scan_id: u64,
        event: ScanEvent,
    },
    Export(ExportMsg),
    /// A perplexity job's report; `id` tells a cancelled job's late reports from the new one's.
    Eval {
        id: u64,
        msg: EvalMsg,
    },
    /// The explorer's probe (`P`); `id` as for `Eval`.
    Probe {
        id: u64,
        msg: ProbeMsg,
    },
    /// A file the state asked for was written (or not: the reason).
    Written {
        job: Box<WriteJob>,
        outcome: Outcome,
    },
    Tick,
    /// SIGTERM / SIGINT / SIGHUP.
    Terminate,
}

#[derive(Debug)]
pub enum ExportMsg {
    Progress(ExportProgress),
    Done(Result<ExportSummary, String>),
}

#[derive(Debug)]
pub enum ProbeMsg {
    /// The pass's progress.
    Event(EvalEvent),
    /// Its end: the metrics, `None` when cancelled, or why it failed.
    Done(Result<Option<snrscope::probe::ProbeDoc>, String>),
}

#[derive(Debug)]
pub enum EvalMsg {
    /// The text, tokenized (sent once, before the first forward pass).
    Text(Result<EvalText, String>),
    Event(EvalEvent),
}
