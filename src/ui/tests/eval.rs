//! Perplexity in the explorer (`p`), driven without a terminal: the real `App`, real scans and
//! real forward passes of generated models. The numbers themselves are checked against
//! transformers in tests/eval_reference.rs; here the question is whether the explorer computes
//! the right thing at the right time, shows it, keeps it apart from later choices, and stops
//! when asked.

use std::sync::Arc;

use crate::ui::{
    app::{App, AppOptions},
    eval_text::EvalSetup,
    msg::Msg,
    state::overlay::StatusKind,
    view::bars::{PplLook, ppl_text},
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    forward::{self, EvalOptions},
    scanfile,
    util::cancel::CancelToken,
};
use tempfile::TempDir;

use super::Session;

/// An 8-layer Llama-style model whose v_proj SNR is infinite in layers 2 and 5.
fn open(setup: EvalSetup) -> (TempDir, Arc<Model>, Session) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(8, &[2, 5])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let app = Session::new(
        App::for_model(
            model.clone(),
            AppOptions {
                autoscan: true,
                threads: 2,
                eval: setup,
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    (tmp, model, app)
}

fn setup() -> EvalSetup {
    EvalSetup {
        max_tokens: 256,
        window: Some(128),
        threads: 2,
        ..EvalSetup::default()
    }
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn esc() -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE))
}

fn status(app: &App) -> (StatusKind, String) {
    let s = app.status().cloned().expect("a status line");
    (s.kind, s.text)
}

/// What `snrscope eval` computes for the same choice and text, for comparison.
fn eval_directly(model: &Arc<Model>, app: &App, dropped: &[usize]) -> f64 {
    let text = app
        .evals()
        .text
        .as_ref()
        .expect("the explorer read the text");
    let s = app.evals().setup();
    let r = forward::evaluate(
        model,
        &text.tokens,
        &[dropped.to_vec()],
        &EvalOptions {
            threads: 2,
            window: s.window,
            max_tokens: Some(s.max_tokens),
            check_memory: true,
        },
        &CancelToken::default(),
        |_| {},
        None,
    );
    r[0].clone().unwrap().unwrap().perplexity
}

#[test]
fn p_computes_the_original_then_the_choice_and_marks_it_stale_when_the_choice_moves() {
    let (_t, model, mut app) = open(setup());
    app.drain();
    assert_eq!(app.choice().selection().dropped(), vec![2, 5]);
    assert!(ppl_text(&app).is_none(), "nothing shown before the first p");

    app.handle(key('p'));
    assert!(app.evals().running());
    assert_eq!(
        app.last_eval().1,
        vec![vec![], vec![2, 5]],
        "the original first, then the choice on screen"
    );
    assert_eq!(ppl_text(&app).unwrap().1, PplLook::Running);
    app.drain();

    let st = &app.evals().state;
    let (orig, pruned) = (st.original.clone().unwrap(), st.pruned.clone().unwrap());
    assert_eq!(orig.layers, 8);
    assert_eq!(pruned.layers, 6);
    assert_eq!(pruned.dropped, vec![2, 5]);
    assert_eq!(
        orig.tokens, 254,
        "256 tokens in two windows of 128, each first one unscored"
    );
    assert_eq!(orig.perplexity, eval_directly(&model, &app, &[]));
    assert_eq!(pruned.perplexity, eval_directly(&model, &app, &[2, 5]));
    let (text, look) = ppl_text(&app).unwrap();
    assert_eq!(look, PplLook::Current);
    let change = 100.0 * (pruned.perplexity / orig.perplexity - 1.0);
    assert!(text.starts_with("ppl ") && text.contains(" → "), "{text}");
    assert!(text.ends_with(&format!("({change:+.1} %)")), "{text}");
    let (kind, s) = status(&app);
    assert_eq!(kind, StatusKind::Ok);
    assert!(
        s.contains("dropping 2,5") && s.contains("254 tokens of built-in sample"),
        "{s}"
    );

    // Keep layer 5 by hand: the shown value belongs to the old choice now.
    app.set_cursor(5);
    app.handle(key(' '));
    assert_eq!(app.choice().selection().dropped(), vec![2]);
    let (text, look) = ppl_text(&app).unwrap();
    assert_eq!(look, PplLook::Stale);
    assert!(text.contains("for 2,5") && text.contains("stale"), "{text}");
    // On screen: the old value on the summary line, dimmed (also without colour).
    let area = ratatui::layout::Rect::new(0, 0, 120, 40);
    let mut buf = ratatui::buffer::Buffer::empty(area);
    crate::ui::view::draw(&app, area, &mut buf);
    let row = (0..40)
        .find(|&y| {
            let line: String = (0..120).map(|x| buf[(x, y)].symbol()).collect();
            line.contains("keep [0,2) [3,8)") && line.contains(&text)
        })
        .expect("the summary line shows the stale perplexity");
    // At 80 columns too, shorter (it vanished there).
    let narrow = ratatui::layout::Rect::new(0, 0, 80, 24);
    let mut nbuf = ratatui::buffer::Buffer::empty(narrow);
    crate::ui::view::draw(&app, narrow, &mut nbuf);
    assert!(
        (0..24).any(|y| {
            let line: String = (0..80).map(|x| nbuf[(x, y)].symbol()).collect();
            line.contains("keep [0,2) [3,8)") && line.contains("ppl ") && line.contains("stale")
        }),
        "no stale perplexity at 80x24"
    );
    let line: String = (0..120).map(|x| buf[(x, row)].symbol()).collect();
    let col = line.find("ppl").unwrap();
    let x = line[..col].chars().count() as u16;
    assert!(
        buf[(x, row)]
            .modifier
            .contains(ratatui::style::Modifier::DIM)
    );

    // p again: only the new choice is computed; the original is not repeated.
    app.handle(key('p'));
    assert_eq!(app.last_eval().1, vec![vec![2]]);
    app.drain();
    assert_eq!(app.evals().state.original, Some(orig));
    let pruned2 = app.evals().state.pruned.clone().unwrap();
    assert_eq!(pruned2.dropped, vec![2]);
    assert_eq!(pruned2.perplexity, eval_directly(&model, &app, &[2]));
    assert_eq!(ppl_text(&app).unwrap().1, PplLook::Current);

    // Nothing new to compute: p says so instead of starting a job.
    app.handle(key('p'));
    assert!(!app.evals().running());
    assert!(
        status(&app).1.starts_with("already computed"),
        "{:?}",
        status(&app)
    );

    // Back to the original choice (nothing dropped): the original's value is the answer.
    app.handle(key('c'));
    assert!(app.choice().selection().dropped().is_empty());
    app.handle(key('p'));
    assert!(!app.evals().running());
}

#[test]
fn esc_cancels_the_evaluation_before_the_scan_and_late_reports_are_ignored() {
    let (_t, _model, mut app) = open(EvalSetup {
        max_tokens: 1 << 20,
        window: Some(256),
        threads: 1,
        ..EvalSetup::default()
    });
    app.drain();
    app.handle(key('p'));
    assert!(app.evals().running());
    app.handle(esc());
    assert_eq!(status(&app).1, "cancelling the perplexity…");
    let cancelled_job = app.last_eval().0;
    app.drain();
    assert_eq!(status(&app).1, "perplexity cancelled (p starts again)");
    assert!(app.evals().state.original.is_none());
    assert!(app.evals().state.pruned.is_none());
    assert!(ppl_text(&app).is_none());

    // A fresh job runs to the end; the old job's id no longer changes anything.
    app.handle(key('p'));
    assert_ne!(app.last_eval().0, cancelled_job);
    app.drain();
    assert!(app.evals().state.original.is_some());
    assert!(app.evals().state.pruned.is_some());
}

#[test]
fn errors_are_reported_in_the_status_line_and_nothing_is_shown_as_a_result() {
    // A text file given with --text that is not UTF-8.
    let tmp = TempDir::new().unwrap();
    let bad = tmp.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    let (_t, _m, mut app) = open(EvalSetup {
        text: Some(bad.clone()),
        ..setup()
    });
    app.drain();
    app.handle(key('p'));
    app.drain();
    let (kind, s) = status(&app);
    assert_eq!(kind, StatusKind::Error);
    assert!(s.contains("latin1.txt"), "the message names the file: {s}");
    assert!(ppl_text(&app).is_none());

    // A model type candle cannot run: the scan works, the perplexity says which types do.
    let (t2, _m, _a) = open(setup());
    let dir = t2.path().join("tiny-model");
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"llama\"", "\"olmo2\"");
    std::fs::write(&cfg, text).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let mut app = Session::new(
        App::for_model(
            model,
            AppOptions {
                autoscan: true,
                threads: 2,
                eval: setup(),
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    app.drain();
    assert_eq!(
        app.choice().selection().dropped(),
        vec![2, 5],
        "the scan still works"
    );
    app.handle(key('p'));
    app.drain();
    let (kind, s) = status(&app);
    assert_eq!(kind, StatusKind::Error);
    assert!(s.contains("olmo2") && s.contains("llama"), "{s}");
}

#[test]
fn a_scan_file_has_no_weights_to_evaluate() {
    let tmp = TempDir::new().unwrap();
    let p = tmp.path().join("scan.json");
    std::fs::write(
        &p,
        r#"{"model.layers.0.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
            "model.layers.1.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"}}"#,
    )
    .unwrap();
    let (_, entries) = scanfile::read(&p).unwrap();
    let mut app = Session::new(App::for_scan_file(&p, entries).unwrap());
    app.handle(key('p'));
    assert!(!app.evals().running());
    let (kind, s) = status(&app);
    assert_eq!(kind, StatusKind::Info);
    assert!(s.contains("model's weights"), "{s}");
}

#[test]
fn a_text_of_known_words_is_scored_and_named() {
    let tmp = TempDir::new().unwrap();
    let txt = tmp.path().join("words.txt");
    // The generated tokenizer knows t3…t127: every word is a token, none unknown.
    let words: Vec<String> = (0..300)
        .map(|i| format!("t{}", 3 + (i * 7) % 120))
        .collect();
    std::fs::write(&txt, words.join(" ")).unwrap();
    let (_t, _m, mut app) = open(EvalSetup {
        text: Some(txt.clone()),
        ..setup()
    });
    app.drain();
    app.handle(key('p'));
    app.drain();
    let t = app.evals().text.clone().unwrap();
    assert_eq!(t.tokens.len(), 300);
    assert_eq!(t.unknown, 0);
    assert_eq!(t.name, txt.display().to_string());
    let (kind, s) = status(&app);
    assert_eq!(kind, StatusKind::Ok, "{s}");
    assert!(!s.contains("unknown"), "{s}");
    assert!(app.evals().state.original.as_ref().unwrap().tokens == 254);
}

/// The demo's tokenizer knows every word of the built-in sample, so `p` on the demo scores
/// real tokens. 3177 is the count of `\w+|[^\w\s]+` matches in assets/sample-en.txt (Python's
/// `re.findall`), the Whitespace pre-tokenizer's rule.
#[test]
fn the_demo_tokenizer_knows_the_sample() {
    let tmp = TempDir::new().unwrap();
    let p = tmp.path().join("tokenizer.json");
    std::fs::write(
        &p,
        serde_json::to_string(&snrscope::demo::english_tokenizer_json(1024)).unwrap(),
    )
    .unwrap();
    let (ids, unknown) =
        forward::tokens::tokenize_counting_unknown(&p, forward::tokens::SAMPLE_TEXT).unwrap();
    assert_eq!(ids.len(), 3177);
    assert_eq!(unknown, 0);
    assert!(ids.iter().all(|&i| i < 1024));
}
