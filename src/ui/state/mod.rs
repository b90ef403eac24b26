//! The explorer's state, one concern per module. Nothing here draws; the drawing modules
//! (`ui::view`) only read it.

pub mod choice;
pub mod document;
pub mod eval_job;
pub mod export_job;
pub mod overlay;
pub mod probe_job;
pub mod scans;
pub mod view;
