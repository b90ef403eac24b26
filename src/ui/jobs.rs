//! The runtime's side of the explorer's effects: scans, the perplexity and the export run on
//! their own threads and report over the UI's channel; files are written here, on the UI
//! thread, and their outcome handed straight back to the state. This is the only place in
//! `ui` that starts threads or writes files.

use std::{collections::VecDeque, path::PathBuf, sync::Arc};

use crossbeam_channel::Sender;
use snrscope::{
    checkpoint::Model,
    export::{self, ExportOptions, ExportProgress, ExportSummary},
    forward::{self, EvalEvent, EvalOptions},
    plan::Plan,
    spectrum::scan::{self, ScanHandle},
    util::cancel::CancelToken,
};

use super::{
    app::App,
    effect::Effect,
    eval_text::{EvalSetup, EvalText},
    msg::{EvalMsg, ExportMsg, Msg},
    write_job::{self, Content, Outcome, WriteJob},
};

/// Carries out what the state asks for. At most one scan, one perplexity job and one export
/// run at a time (the state asks for no more), so one handle of each is kept.
pub struct Executor {
    tx: Sender<Msg>,
    scan: Option<(u64, ScanHandle)>,
    eval: Option<(u64, CancelToken)>,
    probe: Option<(u64, CancelToken)>,
    export: Option<CancelToken>,
}

impl Executor {
    pub fn new(tx: Sender<Msg>) -> Executor {
        Executor {
            tx,
            scan: None,
            eval: None,
            probe: None,
            export: None,
        }
    }

    /// Carries out `effects`; a write's outcome goes back to `app` at once, and whatever that
    /// asks for is carried out too.
    pub fn run(&mut self, app: &mut App, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::StartScan {
                    id,
                    model,
                    jobs,
                    options,
                } => {
                    let tx = self.tx.clone();
                    // A previous scan has finished or was cancelled: dropping its handle
                    // detaches what is left of it.
                    let handle = scan::start(model, jobs, options, move |event| {
                        let _ = tx.send(Msg::Scan { scan_id: id, event });
                    });
                    self.scan = Some((id, handle));
                }
                Effect::CancelScan { id } => {
                    if let Some((running, h)) = &self.scan
                        && *running == id
                    {
                        h.cancel();
                    }
                }
                Effect::StartEval {
                    id,
                    model,
                    text,
                    setup,
                    choices,
                } => self.start_eval(id, model, text, setup, choices),
                Effect::CancelEval { id } => {
                    if let Some((running, c)) = &self.eval
                        && *running == id
                    {
                        c.cancel();
                    }
                }
                Effect::StartProbe {
                    id,
                    model,
                    setup,
                    use_cache,
                } => {
                    let cancel = CancelToken::default();
                    let token = cancel.clone();
                    let tx = self.tx.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("probe".into())
                            .spawn(move || {
                                super::probe_job::run_probe(
                                    &model, &setup, use_cache, &token, id, &tx,
                                )
                            });
                    if let Err(e) = spawned {
                        let _ = self.tx.send(Msg::Probe {
                            id,
                            msg: super::msg::ProbeMsg::Done(Err(format!(
                                "cannot start the probe's thread: {e}"
                            ))),
                        });
                    }
                    self.probe = Some((id, cancel));
                }
                Effect::CancelProbe { id } => {
                    if let Some((running, c)) = &self.probe
                        && *running == id
                    {
                        c.cancel();
                    }
                }
                Effect::CancelExport => {
                    if let Some(c) = &self.export {
                        c.cancel();
                    }
                }
                Effect::Write(job) => {
                    let outcome = self.write(&job);
                    queue.extend(app.handle(Msg::Written { job, outcome }));
                }
            }
        }
    }

    fn start_eval(
        &mut self,
        id: u64,
        model: Arc<Model>,
        text: Option<EvalText>,
        setup: EvalSetup,
        choices: Vec<Vec<usize>>,
    ) {
        let cancel = CancelToken::default();
        let token = cancel.clone();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("ppl-eval".into())
            .spawn(move || run_eval(&model, text, &setup, &choices, &token, id, &tx));
        if let Err(e) = spawned {
            // Reported as the job's own failure, so the state forgets it like any other end.
            let send = |m| {
                let _ = self.tx.send(Msg::Eval { id, msg: m });
            };
            send(EvalMsg::Text(Err(format!(
                "cannot start the evaluation thread: {e}"
            ))));
            send(EvalMsg::Event(EvalEvent::Finished { cancelled: false }));
        }
        self.eval = Some((id, cancel));
    }

    /// Resolves where a dialog's path points, refuses what would touch an input, asks before
    /// replacing, then writes (or starts the export).
    fn write(&mut self, job: &WriteJob) -> Outcome {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path = write_job::resolve(
            job.dialog.kind,
            job.dialog.path(),
            &job.default_name,
            home.as_deref(),
        );
        if let Err(e) = job.inputs.check(&path) {
            return Outcome::Failed(e.to_string());
        }
        if !job.replace && path.symlink_metadata().is_ok() {
            return Outcome::Exists(path);
        }
        let r = match &job.content {
            Content::MergekitYaml(plan) => {
                export::write_mergekit_yaml(plan, &path, &job.inputs, job.replace)
            }
            Content::Unfrozen {
                groups,
                top_percent,
            } => export::write_unfrozen_yaml(groups, *top_percent, &path, &job.inputs, job.replace),
            Content::ScanJson { text, .. } => {
                export::write_file_atomically(&path, text.as_bytes(), &job.inputs, job.replace)
            }
            Content::Model { model, plan } => {
                let mut options = ExportOptions::new(path.clone());
                options.force = job.replace;
                options.inputs = job.inputs.clone();
                options.extra_files = write_job::copy_names(job.dialog.field("copy"));
                self.start_export(model.clone(), plan.clone(), options);
                return Outcome::Started(path);
            }
        };
        match r {
            Ok(()) => Outcome::Written(path),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn start_export(&mut self, model: Arc<Model>, plan: Plan, options: ExportOptions) {
        let cancel = CancelToken::default();
        let token = cancel.clone();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("snr-export".into())
            .spawn(move || {
                let progress_tx = tx.clone();
                let mut progress = move |p: ExportProgress| {
                    let _ = progress_tx.send(Msg::Export(ExportMsg::Progress(p)));
                };
                let r = match &model.gguf {
                    // A GGUF is pruned to one GGUF file (see export::write_pruned).
                    Some(_) => export_gguf(&model, &plan, &options, &mut progress, &token),
                    None => export::export_model(&model, &plan, &options, &mut progress, &token),
                }
                .map_err(|e| e.to_string());
                let _ = tx.send(Msg::Export(ExportMsg::Done(r)));
            });
        if let Err(e) = spawned {
            let _ = self.tx.send(Msg::Export(ExportMsg::Done(Err(format!(
                "cannot start the export: {}",
                snrscope::util::text::io_reason(&e)
            )))));
        }
        self.export = Some(cancel);
    }
}

/// The pruned GGUF of a GGUF model, reported as a one-shard export.
fn export_gguf(
    model: &Model,
    plan: &Plan,
    options: &ExportOptions,
    progress: &mut dyn FnMut(ExportProgress),
    cancel: &CancelToken,
) -> Result<ExportSummary, export::ExportError> {
    let gguf = model.gguf.as_ref().expect("called for a GGUF model");
    let prune = export::PruneOptions {
        kept: (0..plan.num_layers)
            .filter(|l| !plan.dropped.contains(l))
            .collect(),
        out: options.out.clone(),
        replace: options.force,
        inputs: options.inputs.clone(),
    };
    let s = export::write_pruned(
        &gguf.file,
        &prune,
        &mut |bytes_done, bytes_total| {
            progress(ExportProgress {
                bytes_done,
                bytes_total,
            })
        },
        cancel,
    )?;
    Ok(ExportSummary {
        out: s.out,
        shards: 1,
        tensors: s.tensors,
        bytes: s.bytes,
        copied: Vec::new(),
        skipped: Vec::new(),
        notes: s.notes.into_iter().chain(s.edited).collect(),
    })
}

/// The job's thread: the text first (unless known), then the forward passes.
fn run_eval(
    model: &Arc<Model>,
    text: Option<EvalText>,
    setup: &EvalSetup,
    choices: &[Vec<usize>],
    cancel: &CancelToken,
    id: u64,
    tx: &Sender<Msg>,
) {
    let send = |m: EvalMsg| {
        let _ = tx.send(Msg::Eval { id, msg: m });
    };
    let text = match text {
        Some(t) => t,
        None => match read_text(model, setup) {
            Ok(t) => {
                send(EvalMsg::Text(Ok(t.clone())));
                t
            }
            Err(e) => {
                send(EvalMsg::Text(Err(e)));
                send(EvalMsg::Event(EvalEvent::Finished { cancelled: false }));
                return;
            }
        },
    };
    let options = EvalOptions {
        threads: setup.threads,
        window: setup.window,
        max_tokens: Some(setup.max_tokens),
        check_memory: true,
    };
    let sink_tx = tx.clone();
    forward::evaluate(
        model,
        &text.tokens,
        choices,
        &options,
        cancel,
        move |e| {
            let _ = sink_tx.send(Msg::Eval {
                id,
                msg: EvalMsg::Event(e),
            });
        },
        None,
    );
}

fn read_text(model: &Model, setup: &EvalSetup) -> Result<EvalText, String> {
    let (ids, name, unknown) = forward::tokens::model_text_tokens(model, setup.text.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(EvalText {
        tokens: ids.into(),
        name,
        unknown,
    })
}
