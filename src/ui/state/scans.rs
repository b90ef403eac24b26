//! The scan scheduler: one scan at a time (two pools would only share the same cores and delay
//! both), the module on screen first, results into the document as they arrive. Its fields are
//! private: requests, events and cancels are the only ways in, and starting or stopping a scan
//! is an [`Effect`] for the runtime.

use std::collections::VecDeque;

use super::document::{Document, Kind, ScanState, Value};
use snrscope::spectrum::{
    scan::{Progress, ScanEvent, ScanJob, ScanOptions},
    snr::Method,
};

use crate::ui::{effect::Effect, format};

pub struct Scans {
    /// Threads, method and cache of every scan started.
    options: ScanOptions,
    /// The id of the scan running.
    running: Option<u64>,
    queue: VecDeque<usize>,
    next_id: u64,
}

/// What a finished scan means for the user.
pub struct Finished {
    pub module: usize,
    pub text: String,
    /// Some matrices have no SNR, or the scan was cancelled.
    pub failed: usize,
    pub cancelled: bool,
}

impl Scans {
    pub fn new(options: ScanOptions) -> Scans {
        Scans {
            options,
            running: None,
            queue: VecDeque::new(),
            next_id: 1,
        }
    }

    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// How scans started from now on get their singular values.
    pub fn set_method(&mut self, method: Method) {
        self.options.method = method;
    }

    /// Scans module `mi` now, or after the running scan; `prefer` is the module on screen,
    /// which goes first when several wait.
    pub fn request(&mut self, doc: &mut Document, mi: usize, out: &mut Vec<Effect>) {
        if doc.model().is_none() || self.queue.contains(&mi) || mi >= doc.modules.len() {
            return;
        }
        if self
            .running
            .as_ref()
            .is_some_and(|_| doc.modules[mi].state == ScanState::Running)
        {
            return;
        }
        if self.running.is_none() {
            self.start(doc, mi, out);
        } else {
            doc.modules[mi].state = ScanState::Queued;
            self.queue.push_back(mi);
        }
    }

    fn start(&mut self, doc: &mut Document, mi: usize, out: &mut Vec<Effect>) {
        let Some(model) = doc.model().cloned() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let m = &mut doc.modules[mi];
        // Resuming after a cancel: only what is not known yet.
        m.scan_jobs = (0..m.jobs.len())
            .filter(|&j| !m.cells[m.job_layer[j]].is_known())
            .collect();
        if m.scan_jobs.is_empty() {
            if m.state != ScanState::Loaded {
                m.state = ScanState::Done;
            }
            return;
        }
        m.scan_id = id;
        m.state = ScanState::Running;
        let jobs: Vec<ScanJob> = m.scan_jobs.iter().map(|&j| m.jobs[j].clone()).collect();
        m.progress = Progress {
            total: jobs.len(),
            bytes_total: jobs.iter().map(|j| j.bytes).sum(),
            ..Progress::default()
        };
        for &j in &m.scan_jobs {
            let layer = m.job_layer[j];
            m.cells[layer].value = Value::Pending;
        }
        out.push(Effect::StartScan {
            id,
            model,
            jobs,
            options: self.options.clone(),
        });
        self.running = Some(id);
    }

    /// Applies a scan event; `Some` when the scan finished (and the next one started). Returns
    /// the module a result landed in through `touched`.
    pub fn on_event(
        &mut self,
        doc: &mut Document,
        scan_id: u64,
        event: ScanEvent,
        current: usize,
        touched: &mut Option<usize>,
        out: &mut Vec<Effect>,
    ) -> Option<Finished> {
        let mi = doc.modules.iter().position(|m| m.scan_id == scan_id)?;
        match event {
            ScanEvent::Result { result, progress } => {
                let m = &mut doc.modules[mi];
                m.progress = progress;
                // Jobs are numbered within the running scan; no list means all of them.
                let job = if m.scan_jobs.is_empty() {
                    Some(result.job)
                } else {
                    m.scan_jobs.get(result.job).copied()
                };
                if let Some(&layer) = job.and_then(|j| m.job_layer.get(j))
                    && let Some(cell) = m.cells.get_mut(layer)
                {
                    cell.elapsed = Some(result.elapsed);
                    cell.cached = result.cached;
                    cell.method = Some(result.method);
                    cell.value = match result.outcome {
                        Ok(s) => Value::Stats(Box::new(s)),
                        Err(e) => Value::Failed(e),
                    };
                }
                *touched = Some(mi);
                None
            }
            ScanEvent::Finished {
                progress,
                cancelled,
            } => {
                let m = &mut doc.modules[mi];
                m.progress = progress;
                m.state = if cancelled {
                    ScanState::Cancelled
                } else {
                    ScanState::Done
                };
                let failed = m.count(|k| matches!(k, Kind::Failed | Kind::NaN));
                let text = if cancelled {
                    format!(
                        "scan of {} cancelled after {}/{} matrices",
                        m.label, progress.done, progress.total
                    )
                } else {
                    format!(
                        "scanned {} {} matrices in {}{}",
                        progress.total,
                        m.label,
                        format::duration(progress.elapsed),
                        if failed > 0 {
                            format!(", {failed} without an SNR")
                        } else {
                            String::new()
                        }
                    )
                };
                if self.running == Some(scan_id) {
                    self.running = None;
                }
                self.start_next(doc, current, out);
                Some(Finished {
                    module: mi,
                    text,
                    failed,
                    cancelled,
                })
            }
        }
    }

    fn start_next(&mut self, doc: &mut Document, current: usize, out: &mut Vec<Effect>) {
        if self.running.is_some() {
            return;
        }
        // The module on screen first: that is what the user is waiting for.
        let next = match self.queue.iter().position(|&m| m == current) {
            Some(pos) => self.queue.remove(pos),
            None => self.queue.pop_front(),
        };
        if let Some(mi) = next {
            self.start(doc, mi, out);
        }
    }

    /// Stops the running scan and forgets the queue; whether anything was stopped.
    pub fn cancel_all(&mut self, doc: &mut Document, out: &mut Vec<Effect>) -> bool {
        let mut stopped = false;
        for mi in self.queue.drain(..) {
            doc.modules[mi].state = ScanState::NotStarted;
            stopped = true;
        }
        if let Some(id) = self.running {
            out.push(Effect::CancelScan { id });
            stopped = true;
        }
        stopped
    }
}
