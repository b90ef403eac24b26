//! The pruned-model export running on its own thread, reporting progress and its end as
//! messages.

use std::{path::PathBuf, sync::Arc};

use crossbeam_channel::Sender;

use crate::ui::msg::{ExportMsg, Msg};
use snrscope::{
    checkpoint::Model,
    export::{self, ExportOptions, ExportProgress},
    plan::Plan,
    util::cancel::CancelToken,
};

pub struct ExportJob {
    pub out: PathBuf,
    pub progress: ExportProgress,
    pub cancel: CancelToken,
}

impl ExportJob {
    /// Starts writing `plan` of `model` to `options.out`.
    pub fn start(
        model: Arc<Model>,
        plan: Plan,
        options: ExportOptions,
        tx: Sender<Msg>,
    ) -> std::io::Result<ExportJob> {
        let cancel = CancelToken::default();
        let token = cancel.clone();
        let out = options.out.clone();
        std::thread::Builder::new()
            .name("snr-export".into())
            .spawn(move || {
                let progress_tx = tx.clone();
                let mut progress = move |p: ExportProgress| {
                    let _ = progress_tx.send(Msg::Export(ExportMsg::Progress(p)));
                };
                let r = export::export_model(&model, &plan, &options, &mut progress, &token)
                    .map_err(|e| e.to_string());
                let _ = tx.send(Msg::Export(ExportMsg::Done(r)));
            })?;
        Ok(ExportJob {
            out,
            progress: ExportProgress::default(),
            cancel,
        })
    }
}
