//! The pruned-model export as the state sees it: where it goes, how far it got, and whether
//! the user asked it to stop. The runtime runs it on its own thread (`ui::jobs`).

use std::path::PathBuf;

use snrscope::export::ExportProgress;

pub struct ExportJob {
    pub out: PathBuf,
    pub progress: ExportProgress,
    /// Esc (or quitting) asked it to stop: its end is then reported as cancelled.
    pub cancelling: bool,
}

impl ExportJob {
    pub fn new(out: PathBuf) -> ExportJob {
        ExportJob {
            out,
            progress: ExportProgress::default(),
            cancelling: false,
        }
    }
}
