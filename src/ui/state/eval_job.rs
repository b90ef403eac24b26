//! Perplexity in the explorer: the original's once, then the current choice's, each as a
//! background job (an [`Effect`]) that reports back as messages. The text is read and
//! tokenized on the job's thread (the UI thread does no I/O) and handed back, so later jobs
//! reuse it.

use std::sync::Arc;

use snrscope::{
    checkpoint::Model,
    forward::{EvalEvent, EvalState, PplSummary},
};

use crate::ui::{
    effect::Effect,
    eval_text::{EvalSetup, EvalText},
    msg::EvalMsg,
};

/// Everything the screen shows about perplexity.
#[derive(Default)]
pub struct Evals {
    setup: EvalSetup,
    pub state: EvalState,
    pub text: Option<EvalText>,
    /// The id of the job running.
    running: Option<u64>,
    next_id: u64,
}

impl Evals {
    pub fn new(setup: EvalSetup) -> Evals {
        Evals {
            setup,
            ..Evals::default()
        }
    }

    /// What `p` evaluates on (and `P` probes on).
    pub fn setup(&self) -> &EvalSetup {
        &self.setup
    }

    pub fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Original and pruned perplexity, when both are known.
    pub fn summary(&self) -> Option<PplSummary> {
        self.state.summary()
    }

    /// Asks for `choices` of `model` to be computed (see [`EvalState::choices_for`]).
    pub fn start(&mut self, model: Arc<Model>, choices: Vec<Vec<usize>>) -> Effect {
        self.next_id += 1;
        let id = self.next_id;
        self.state.started();
        self.running = Some(id);
        Effect::StartEval {
            id,
            model,
            text: self.text.clone(),
            setup: self.setup.clone(),
            choices,
        }
    }

    /// Stops the running job, if any.
    pub fn cancel(&self) -> Option<Effect> {
        self.running.map(|id| Effect::CancelEval { id })
    }

    /// Folds in a message; returns it when it belongs to the running job (else `None`: a
    /// cancelled job's late reports change nothing).
    pub fn on_msg(&mut self, id: u64, msg: EvalMsg) -> Option<EvalMsg> {
        if self.running != Some(id) {
            return None;
        }
        match &msg {
            EvalMsg::Text(Ok(t)) => self.text = Some(t.clone()),
            EvalMsg::Text(Err(e)) => self.state.error = Some(e.clone()),
            EvalMsg::Event(e) => {
                self.state.apply(e);
                if matches!(e, EvalEvent::Finished { .. }) {
                    self.running = None;
                }
            }
        }
        Some(msg)
    }
}
