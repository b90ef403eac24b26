//! The explorer's own probe (`P`) as the screen sees it: which job runs and how far it is.

use std::time::Duration;

use snrscope::forward::EvalEvent;

/// The running probe's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeRun {
    pub id: u64,
    /// Fraction of the pass done, 0..=1.
    pub fraction: f64,
    pub elapsed: Duration,
    pub eta: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Probes {
    running: Option<ProbeRun>,
    next_id: u64,
}

impl Probes {
    pub fn running(&self) -> Option<&ProbeRun> {
        self.running.as_ref()
    }

    /// A new job's id (it runs from now on).
    pub fn start(&mut self) -> u64 {
        self.next_id += 1;
        self.running = Some(ProbeRun {
            id: self.next_id,
            fraction: 0.0,
            elapsed: Duration::ZERO,
            eta: None,
        });
        self.next_id
    }

    /// Whether `id` is the job running (a cancelled job's late reports are not).
    pub fn is_running(&self, id: u64) -> bool {
        self.running.is_some_and(|r| r.id == id)
    }

    pub fn progress(&mut self, e: &EvalEvent) {
        if let (
            Some(r),
            EvalEvent::Progress {
                fraction,
                elapsed,
                eta,
                ..
            },
        ) = (&mut self.running, e)
        {
            r.fraction = *fraction;
            r.elapsed = *elapsed;
            r.eta = *eta;
        }
    }

    pub fn finished(&mut self) {
        self.running = None;
    }
}
