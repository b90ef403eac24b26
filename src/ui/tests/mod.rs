//! The explorer tested as its user meets it, without a terminal.
//!
//! - `effects`: the state machine alone: actions and synthetic messages in, [`Effect`]s out —
//!   no thread is started, nothing is written;
//! - `state`, `eval`: whole sessions, the real `App` with the real runtime behind it
//!   ([`Session`]: scans, forward passes and writes really happen), driven by keys;
//! - `render`: whole screens drawn into ratatui's `TestBackend`, compared with reviewed insta
//!   snapshots.

mod effects;
mod eval;
mod gguf;
mod probe;
mod render;
mod state;

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use snrscope_testkit::models as support;

use super::{
    action::{Action, Edit},
    app::App,
    effect::Effect,
    jobs::Executor,
    layout,
    msg::Msg,
};

/// An app with the runtime's executor behind it: what `update` and `handle` ask for is
/// carried out, and [`Session::drain`] feeds back what the background work reports.
pub struct Session {
    app: App,
    exec: Executor,
    rx: Receiver<Msg>,
    /// The last perplexity job asked for: its id and its choices, in order.
    last_eval: Option<(u64, Vec<Vec<usize>>)>,
}

impl Session {
    /// Starts what the new app asked for (the first scan).
    pub fn new(mut app: App) -> Session {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut exec = Executor::new(tx);
        let first = app.take_effects();
        exec.run(&mut app, first);
        Session {
            app,
            exec,
            rx,
            last_eval: None,
        }
    }

    pub fn handle(&mut self, msg: Msg) {
        let effects = self.app.handle(msg);
        self.run(effects);
    }

    pub fn update(&mut self, action: Action) {
        let effects = self.app.update(action);
        self.run(effects);
    }

    fn run(&mut self, effects: Vec<Effect>) {
        for e in &effects {
            if let Effect::StartEval { id, choices, .. } = e {
                self.last_eval = Some((*id, choices.clone()));
            }
        }
        self.exec.run(&mut self.app, effects);
    }

    /// The last perplexity job asked for: its id and the choices it computes, in order.
    pub fn last_eval(&self) -> (u64, Vec<Vec<usize>>) {
        self.last_eval
            .clone()
            .expect("a perplexity job was asked for")
    }

    /// Feeds every message to the app until no scan, export or perplexity runs (bounded: a
    /// hang fails the test).
    pub fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.app.busy() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "background work did not finish within 120 s"
            );
            if let Ok(m) = self.rx.recv_timeout(left) {
                self.handle(m);
            }
        }
    }

    /// Feeds messages until `done` holds (bounded).
    pub fn run_until(&mut self, done: impl Fn(&App) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done(&self.app) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the condition did not come true within 120 s"
            );
            if let Ok(m) = self.rx.recv_timeout(left) {
                self.handle(m);
            }
        }
    }

    /// Puts the cursor on `layer` the way a user does: `:`, the number, Enter.
    pub fn set_cursor(&mut self, layer: usize) {
        self.update(Action::Jump(None));
        for c in layer.to_string().chars() {
            self.update(Action::Edit(Edit::Insert(c)));
        }
        self.update(Action::Submit);
    }

    /// Shows module type `name` by clicking its tab (on a 120-column screen), which scans it
    /// if it was never scanned — and no other module on the way, as Tab would.
    pub fn click_tab(&mut self, name: &str) {
        let (w, h) = (120, 40);
        self.handle(Msg::Resize(w, h));
        let target = self
            .doc()
            .modules
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no module type {name}"));
        let current = self.view().current;
        let (_, _, tabs) = layout::tabs(&self.doc().tab_widths(current), current, w);
        let &(_, x, _) = tabs
            .iter()
            .find(|(mi, ..)| *mi == target)
            .unwrap_or_else(|| panic!("the tab of {name} is not on screen"));
        let y = layout::areas(w, h, self.layout_flags()).tabs.y;
        self.handle(Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y,
            modifiers: KeyModifiers::NONE,
        }));
        assert_eq!(self.view().current, target, "the click showed {name}");
    }
}

impl std::ops::Deref for Session {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

pub fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

/// The scans an effect list starts, by id.
pub fn scans_started(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartScan { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The explorer on an 8-layer model whose v_proj layers 2 and 5 have infinite SNR, with its
/// first scan asked for and never run (the test makes the results): the folder, the app and
/// the scan's id. `model_name` is fixed, as the default is the (temporary) folder's path.
pub fn tiny_app(threads: usize, model_name: &str) -> (tempfile::TempDir, super::app::App, u64) {
    use snrscope::{
        checkpoint::Model,
        demo::{ModelSpec, write_model},
    };
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(8, &[2, 5])).unwrap();
    let model = std::sync::Arc::new(Model::open(&dir).unwrap());
    let mut app = super::app::App::for_model(
        model,
        super::app::AppOptions {
            autoscan: true,
            threads,
            model_name: Some(model_name.into()),
            ..super::app::AppOptions::default()
        },
    )
    .unwrap();
    let effects = app.take_effects();
    let ids = scans_started(&effects);
    assert_eq!(ids.len(), 1, "{effects:?}");
    (tmp, app, ids[0])
}
