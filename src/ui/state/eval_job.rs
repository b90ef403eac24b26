//! Perplexity in the explorer: the original's once, then the current choice's, each as a
//! background job that reports over the UI's channel. The text is read and tokenized on the
//! job's thread (the UI thread does no I/O) and handed back, so later jobs reuse it.

use std::{path::PathBuf, sync::Arc};

use crossbeam_channel::Sender;

use crate::ui::msg::{EvalMsg, Msg};
use snrscope::{
    checkpoint::Model,
    forward::{self, EvalEvent, EvalOptions, EvalState, PplSummary},
    util::cancel::CancelToken,
};

/// What the explorer evaluates on (`--text`, `--max-tokens`, `--window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalSetup {
    /// A UTF-8 text; the built-in English sample when `None`.
    pub text: Option<PathBuf>,
    /// Tokens scored: the explorer answers in seconds rather than minutes, so a choice can be
    /// compared with the next one quickly.
    pub max_tokens: usize,
    /// Longest window [default: the model's context, capped by `max_tokens`].
    pub window: Option<usize>,
    pub threads: usize,
}

impl Default for EvalSetup {
    fn default() -> Self {
        EvalSetup {
            text: None,
            max_tokens: 1024,
            window: Some(512),
            threads: 0,
        }
    }
}

/// The tokenized text, once read.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalText {
    pub tokens: Arc<[u32]>,
    /// The file, or the built-in sample's name.
    pub name: String,
    /// Ids that are the tokenizer's unknown token.
    pub unknown: usize,
}

pub struct RunningEval {
    pub id: u64,
    pub cancel: CancelToken,
    /// The choices it computes, in order.
    #[cfg(test)]
    pub choices: Vec<Vec<usize>>,
}

/// Everything the screen shows about perplexity.
#[derive(Default)]
pub struct Evals {
    pub setup: EvalSetup,
    pub state: EvalState,
    pub text: Option<EvalText>,
    pub job: Option<RunningEval>,
    next_id: u64,
}

impl Evals {
    pub fn new(setup: EvalSetup) -> Evals {
        Evals {
            setup,
            ..Evals::default()
        }
    }

    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// Original and pruned perplexity, when both are known.
    pub fn summary(&self) -> Option<PplSummary> {
        self.state.summary()
    }

    /// Starts computing `choices` of `model` (see [`EvalState::choices_for`]).
    pub fn start(&mut self, model: Arc<Model>, choices: Vec<Vec<usize>>, tx: Sender<Msg>) {
        self.next_id += 1;
        let id = self.next_id;
        let cancel = CancelToken::default();
        let token = cancel.clone();
        let text = self.text.clone();
        let setup = self.setup.clone();
        let job_choices = choices.clone();
        let spawned = std::thread::Builder::new()
            .name("ppl-eval".into())
            .spawn(move || run(&model, text, &setup, &job_choices, &token, id, &tx));
        self.state.started();
        if let Err(e) = spawned {
            self.state.error = Some(format!("cannot start the evaluation thread: {e}"));
            self.state.running = false;
            return;
        }
        self.job = Some(RunningEval {
            id,
            cancel,
            #[cfg(test)]
            choices,
        });
    }

    /// Asks the running job to stop; `true` when there was one.
    pub fn cancel(&self) -> bool {
        match &self.job {
            Some(j) => {
                j.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Folds in a message; returns it when it belongs to the running job (else `None`: a
    /// cancelled job's late reports change nothing).
    pub fn on_msg(&mut self, id: u64, msg: EvalMsg) -> Option<EvalMsg> {
        if self.job.as_ref().map(|j| j.id) != Some(id) {
            return None;
        }
        match &msg {
            EvalMsg::Text(Ok(t)) => self.text = Some(t.clone()),
            EvalMsg::Text(Err(e)) => self.state.error = Some(e.clone()),
            EvalMsg::Event(e) => {
                self.state.apply(e);
                if matches!(e, EvalEvent::Finished { .. }) {
                    self.job = None;
                }
            }
        }
        Some(msg)
    }
}

/// The job's thread: the text first (unless known), then the forward passes.
fn run(
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
    let (ids, name, unknown) = forward::tokens::text_tokens(&model.dir, setup.text.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(EvalText {
        tokens: ids.into(),
        name,
        unknown,
    })
}
