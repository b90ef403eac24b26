//! The explorer's state machine, driven without a terminal: the real `App`, real scans of a
//! generated model, synthetic actions and synthetic scan events. Expected layer sets come
//! from how the model was generated (`infinite_layers`), never from the code under test.

use std::{path::Path, sync::Arc, time::Duration};

use crate::ui::{
    action::Action,
    app::{App, AppOptions},
    msg::Msg,
    state::{
        document::{Kind, ScanState},
        overlay::{Dialog, DialogKind, Overlay, Question, StatusKind},
    },
    view::bars::summary_text,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    plan::Mark,
    scanfile,
    spectrum::{
        scan::{MatrixResult, Progress, ScanEvent},
        snr::{Method, stats_from_singular_values},
    },
};
use tempfile::TempDir;

use super::{Session, key, scans_started, support};

/// An 8-layer model whose v_proj SNR is infinite in layers 2 and 5.
fn tiny(autoscan: bool) -> (TempDir, Session) {
    tiny_with(8, &[2, 5], autoscan)
}

fn tiny_with(layers: usize, inf: &[usize], autoscan: bool) -> (TempDir, Session) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(layers, inf)).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let app = Session::new(
        App::for_model(
            model,
            AppOptions {
                autoscan,
                threads: 2,
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    (tmp, app)
}

/// An app whose first scan was asked for (its id returned) but not started: tests send its
/// results by hand.
fn unstarted(layers: usize, inf: &[usize]) -> (TempDir, App, u64) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(layers, inf)).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let mut app = App::for_model(
        model,
        AppOptions {
            autoscan: true,
            ..AppOptions::default()
        },
    )
    .unwrap();
    let ids = scans_started(&app.take_effects());
    assert_eq!(ids.len(), 1, "the first scan is asked for");
    (tmp, app, ids[0])
}

fn scanned() -> (TempDir, Session) {
    let (tmp, mut app) = tiny(true);
    app.drain();
    (tmp, app)
}

/// Types `text` into the focused dialog field after clearing it (Ctrl-U).
fn type_into(app: &mut Session, text: &str) {
    app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    for c in text.chars() {
        app.handle(key(KeyCode::Char(c)));
    }
}

fn dialog(app: &App) -> &Dialog {
    match app.overlay() {
        Overlay::Dialog(d) => d,
        o => panic!("no dialog: {o:?}"),
    }
}

fn status(app: &App) -> (StatusKind, String) {
    let s = app.status().cloned().expect("a status line");
    (s.kind, s.text)
}

fn dropped(app: &App) -> Vec<usize> {
    app.choice().selection().dropped()
}

#[test]
fn opens_on_the_value_projection_and_the_seed_rule_drops_the_infinite_layers() {
    let (_t, app) = scanned();
    assert_eq!(app.module().name, "self_attn.v_proj");
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
    assert_eq!(app.module().state, ScanState::Done);
    assert_eq!(dropped(&app), vec![2, 5]);
    assert_eq!(app.choice().mark(2), Mark::DropByRule);
    let inf: Vec<usize> = (0..8)
        .filter(|&i| app.module().cells[i].kind() == Kind::Infinite)
        .collect();
    assert_eq!(inf, vec![2, 5]);
    assert!(summary_text(&app).starts_with("keep [0,2) [3,5) [6,8)  6/8 layers  "));
    assert!(!app.unsaved(), "nothing was changed by hand yet");
}

#[test]
fn toggling_marks_manual_overrides_and_moves_the_ranges() {
    let (_t, mut app) = scanned();
    app.handle(key(KeyCode::Right));
    app.handle(key(KeyCode::Char('l')));
    assert_eq!(app.view().cursor, 2);
    app.handle(key(KeyCode::Char(' ')));
    assert_eq!(app.choice().mark(2), Mark::KeepManual);
    assert_eq!(dropped(&app), vec![5]);
    app.update(Action::Home);
    app.update(Action::Toggle);
    assert_eq!(app.choice().mark(0), Mark::DropManual);
    assert_eq!(dropped(&app), vec![0, 5]);
    assert!(summary_text(&app).starts_with("keep [1,5) [6,8)  6/8 layers"));
    assert!(app.unsaved());
    // Toggling back to what the rule says keeps the hand choice, agreeing (it returns when
    // the rule changes); it no longer counts as a change from the rule.
    app.update(Action::Toggle);
    assert_eq!(app.choice().mark(0), Mark::KeepManualAgrees);
    assert_eq!(app.choice().selection().against_rule(), 1);
}

#[test]
fn apply_clear_and_invert() {
    let (_t, mut app) = scanned();
    app.set_cursor(3);
    app.update(Action::Toggle);
    assert_eq!(dropped(&app), vec![2, 3, 5]);
    app.update(Action::ApplyRule);
    assert_eq!(
        *app.overlay(),
        Overlay::Question(Question::DiscardHandChoices(1))
    );
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dropped(&app), vec![2, 5]);
    assert!(!app.choice().selection().has_manual());
    app.update(Action::KeepAll);
    assert_eq!(dropped(&app), Vec::<usize>::new());
    app.update(Action::Invert);
    assert_eq!(dropped(&app), (0..8).collect::<Vec<_>>());
    assert!(summary_text(&app).starts_with("keep nothing  0/8 layers"));
}

#[test]
fn slice_ranges_at_the_edges() {
    let (_t, mut app) = scanned();
    let choose = |app: &mut Session, layers: &[usize]| {
        app.update(Action::KeepAll);
        for &l in layers {
            app.set_cursor(l);
            app.update(Action::Toggle);
        }
        app.choice().selection().kept_ranges()
    };
    // All kept.
    assert_eq!(choose(&mut app, &[]), vec![0..8]);
    assert!(summary_text(&app).starts_with("keep [0,8)  8/8 layers"));
    // First and last dropped.
    assert_eq!(choose(&mut app, &[0, 7]), vec![1..7]);
    // Adjacent drops.
    assert_eq!(choose(&mut app, &[3, 4]), vec![0..3, 5..8]);
    // All but one dropped.
    assert_eq!(choose(&mut app, &[0, 1, 2, 3, 5, 6, 7]), vec![4..5]);
    assert!(summary_text(&app).starts_with("keep [4,5)  1/8 layers"));
    let plan = app.plan();
    assert_eq!(plan.dropped, vec![0, 1, 2, 3, 5, 6, 7]);
    assert_eq!(plan.stack_prefix, "model.layers");
    assert_eq!(plan.module_type, "self_attn.v_proj");
    assert_eq!(plan.dtype, "bfloat16");
    assert_eq!(plan.num_layers, 8);
}

#[test]
fn switching_modules_scans_in_the_background_and_keeps_the_choice_on_v_proj() {
    let (_t, mut app) = scanned();
    app.set_cursor(1);
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Tab));
    // Module types in name order; v_proj is the last, so Tab wraps to the first.
    assert_eq!(app.module().name, "mlp.down_proj");
    assert_eq!(app.module().state, ScanState::Running);
    assert!(app.scanning());
    app.drain();
    assert_eq!(app.module().state, ScanState::Done);
    assert_eq!(app.module().count(|k| k == Kind::Pending), 0);
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
    assert_eq!(dropped(&app), vec![1, 2, 5]);
    // Cached: going back does not rescan.
    app.handle(Msg::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.module().name, "self_attn.v_proj");
    assert!(!app.scanning());
    app.update(Action::NextModule);
    assert!(!app.scanning(), "mlp.down_proj results are cached");
}

#[test]
fn a_second_module_waits_for_the_running_scan() {
    let (_t, mut app) = tiny(true);
    assert!(app.scanning());
    app.update(Action::NextModule); // mlp.down_proj
    app.update(Action::NextModule); // mlp.gate_proj
    assert_eq!(app.doc().modules[0].state, ScanState::Queued);
    assert_eq!(app.doc().modules[1].state, ScanState::Queued);
    app.drain();
    for i in [0, 1, 6] {
        assert_eq!(
            app.doc().modules[i].state,
            ScanState::Done,
            "{}",
            app.doc().modules[i].name
        );
    }
    assert_eq!(app.doc().modules[2].state, ScanState::NotStarted);
}

/// Synthetic events: a hand-made spectrum per layer, in any order.
#[test]
fn synthetic_results_refresh_the_rule_but_keep_hand_changes() {
    // The scan is asked for but never run: its results are made here.
    let (_t, mut app, scan_id) = unstarted(8, &[2, 5]);
    let infinite = || Ok(stats_from_singular_values(vec![1.5, 1.4, 1.3, 1.2], 4, 8));
    let finite = || {
        Ok(stats_from_singular_values(
            vec![10.0, 4.0, 3.0, 2.0, 1.0],
            5,
            5,
        ))
    };
    let zero = || Ok(stats_from_singular_values(vec![0.0, 0.0, 0.0], 3, 4));
    let send = |app: &mut App, job: usize, outcome| {
        app.handle(Msg::Scan {
            scan_id,
            event: ScanEvent::Result {
                result: Box::new(MatrixResult {
                    job,
                    outcome,
                    elapsed: Duration::from_millis(3),
                    cached: false,
                    method: Method::Svd,
                }),
                progress: Progress::default(),
            },
        });
    };
    // Before any result: nothing dropped; the user drops layer 0 by hand.
    assert_eq!(dropped(&app), Vec::<usize>::new());
    app.update(Action::Toggle);
    send(&mut app, 3, infinite());
    send(&mut app, 1, finite());
    assert_eq!(dropped(&app), vec![0, 3]);
    assert_eq!(app.choice().mark(0), Mark::DropManual);
    assert_eq!(app.choice().mark(3), Mark::DropByRule);
    send(
        &mut app,
        4,
        Err("matrix contains 2 NaN or infinite entries".into()),
    );
    send(&mut app, 6, zero());
    let kinds: Vec<Kind> = app.module().cells.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds[4], Kind::Failed);
    assert_eq!(kinds[6], Kind::NaN);
    assert_eq!(kinds[7], Kind::Pending);
    assert!(matches!(kinds[1], Kind::Finite(x) if (x - 17.0 / 30.0).abs() < 1e-12));
    // Failed and all-zero layers are not "infinite".
    assert_eq!(dropped(&app), vec![0, 3]);
    // Events of another scan generation are ignored.
    app.handle(Msg::Scan {
        scan_id: scan_id + 100,
        event: ScanEvent::Result {
            result: Box::new(MatrixResult {
                job: 7,
                outcome: infinite(),
                elapsed: Duration::ZERO,
                cached: false,
                method: Method::Svd,
            }),
            progress: Progress::default(),
        },
    });
    assert_eq!(app.module().cells[7].kind(), Kind::Pending);
}

#[test]
fn other_rules_cycle_and_adjust() {
    let (_t, mut app) = scanned();
    let finite: Vec<(usize, f64)> = app
        .drive_module()
        .cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.kind() {
            Kind::Finite(v) => Some((i, v)),
            _ => None,
        })
        .collect();
    let mut by_value = finite.clone();
    by_value.sort_by(|a, b| a.1.total_cmp(&b.1));
    app.update(Action::CycleRule); // lowest K, K = max(1, 8/8) = 1
    assert_eq!(dropped(&app), vec![by_value[0].0]);
    app.update(Action::RuleUp);
    let mut two = vec![by_value[0].0, by_value[1].0];
    two.sort();
    assert_eq!(dropped(&app), two);
    app.update(Action::RuleDown);
    app.update(Action::RuleDown);
    assert_eq!(dropped(&app), Vec::<usize>::new());
    app.update(Action::CycleRule); // below X
    let n_below = dropped(&app).len();
    app.update(Action::RuleUp);
    assert_eq!(dropped(&app).len(), n_below + 1);
    for d in dropped(&app) {
        assert!(!app.drive_module().cells[d].kind().eq(&Kind::Infinite));
    }
    app.update(Action::CycleRule); // back to infinite
    assert_eq!(dropped(&app), vec![2, 5]);
}

#[test]
fn cursor_movement_clamps() {
    let (_t, mut app) = scanned();
    app.update(Action::Left);
    assert_eq!(app.view().cursor, 0);
    app.update(Action::End);
    assert_eq!(app.view().cursor, 7);
    app.update(Action::Right);
    assert_eq!(app.view().cursor, 7);
    app.update(Action::PageLeft);
    assert_eq!(app.view().cursor, 0);
    app.update(Action::PageRight);
    assert_eq!(app.view().cursor, 7);
}

#[test]
fn paging_and_scrolling_on_a_narrow_terminal() {
    let (_t, mut app) = tiny_with(80, &[3], false);
    // 60 columns: 58 inside the border, 11 for the axis: 47 columns, 23 layers of 2.
    app.handle(Msg::Resize(60, 30));
    app.update(Action::PageRight);
    assert_eq!(app.view().cursor, 23);
    assert_eq!(app.view().offset, 1);
    app.update(Action::End);
    assert_eq!((app.view().cursor, app.view().offset), (79, 57));
    app.update(Action::Home);
    assert_eq!((app.view().cursor, app.view().offset), (0, 0));
}

#[test]
fn quit_asks_only_when_the_choice_changed() {
    let (_t, mut app) = scanned();
    app.handle(key(KeyCode::Char('q')));
    assert!(app.quit(), "no hand changes: quits at once");

    let (_t, mut app) = scanned();
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Char('q')));
    assert!(!app.quit());
    assert_eq!(*app.overlay(), Overlay::QuitPrompt);
    app.handle(key(KeyCode::Esc));
    assert!(!app.quit());
    assert_eq!(*app.overlay(), Overlay::None, "Esc stays");
    app.handle(key(KeyCode::Char('q')));
    app.handle(key(KeyCode::Char('q')));
    assert!(app.quit(), "q at the prompt quits without writing");

    let (_t, mut app) = scanned();
    app.update(Action::Toggle);
    let ctrl_c = || Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    app.handle(ctrl_c());
    assert!(
        !app.quit(),
        "Ctrl-C asks, as q does, when the choice is not written"
    );
    assert_eq!(*app.overlay(), Overlay::QuitPrompt);
    app.handle(ctrl_c());
    assert!(app.quit(), "Ctrl-C at the prompt quits at once");

    let (_t, mut app) = scanned();
    app.handle(Msg::Terminate);
    assert!(app.quit());
}

/// The help scrolls with j/k, PgDn/PgUp, Home/End, within its rows; other keys do nothing
/// (any key used to close it); Esc, ? and q close it (q without quitting).
#[test]
fn help_overlay_scrolls_and_closes_only_on_esc_question_mark_or_q() {
    let (_t, mut app) = scanned();
    app.handle(Msg::Resize(80, 24));
    for close in [KeyCode::Esc, KeyCode::Char('?'), KeyCode::Char('q')] {
        app.handle(key(KeyCode::Char('?')));
        assert_eq!(*app.overlay(), Overlay::Help(0));
        app.handle(key(KeyCode::Char('j')));
        app.handle(key(KeyCode::Down));
        assert_eq!(*app.overlay(), Overlay::Help(2));
        app.handle(key(KeyCode::Char('k')));
        assert_eq!(*app.overlay(), Overlay::Help(1));
        for other in [
            KeyCode::Char(' '),
            KeyCode::Char('x'),
            KeyCode::Enter,
            KeyCode::Left,
        ] {
            app.handle(key(other));
            assert!(
                matches!(app.overlay(), Overlay::Help(_)),
                "{other:?} closed it"
            );
        }
        app.handle(key(KeyCode::End));
        let max = crate::ui::help_rows::max_scroll(80, 24);
        assert!(max > 0, "the help fits 80x24 without scrolling?");
        assert_eq!(*app.overlay(), Overlay::Help(max));
        app.handle(key(KeyCode::Char('j')));
        assert_eq!(*app.overlay(), Overlay::Help(max), "scrolled past the end");
        app.handle(key(KeyCode::PageUp));
        let Overlay::Help(after_page) = *app.overlay() else {
            panic!("PgUp closed the help")
        };
        assert!(
            after_page < max && after_page + 22 >= max,
            "{after_page} of {max}"
        );
        app.handle(key(KeyCode::Home));
        assert_eq!(*app.overlay(), Overlay::Help(0));
        app.handle(key(close));
        assert_eq!(*app.overlay(), Overlay::None, "{close:?}");
        assert!(!app.quit());
    }
    assert_eq!(dropped(&app), vec![2, 5], "the keys only moved the help");
}

#[test]
fn scan_json_dialog_writes_a_readable_file() {
    let (t, mut app) = scanned();
    app.handle(key(KeyCode::Char('w')));
    let d = dialog(&app);
    assert_eq!(d.kind, DialogKind::ScanJson);
    assert_eq!(d.path(), "tiny-model-snr.json");
    // Replace the default path by typing.
    for _ in 0..d.path().len() {
        app.handle(key(KeyCode::Backspace));
    }
    let out = t.path().join("out.json");
    for c in out.display().to_string().chars() {
        app.handle(key(KeyCode::Char(c)));
    }
    app.handle(key(KeyCode::Enter));
    assert_eq!(*app.overlay(), Overlay::None);
    let status = app.status().cloned().unwrap();
    assert_eq!(status.kind, StatusKind::Ok, "{}", status.text);
    let (_, entries) = scanfile::read(&out).unwrap();
    assert_eq!(entries.len(), 8);
    let inf: Vec<&str> = entries
        .iter()
        .filter(|e| e.snr.is_infinite())
        .map(|e| e.module.as_str())
        .collect();
    assert_eq!(
        inf,
        [
            "model.layers.2.self_attn.v_proj",
            "model.layers.5.self_attn.v_proj"
        ]
    );
}

#[test]
fn yaml_dialog_writes_the_kept_slices() {
    let (t, mut app) = scanned();
    app.set_cursor(7);
    app.update(Action::Toggle); // drop the last layer by hand as well
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app).path(), "tiny-model-pruned.yml");
    let out = t.path().join("p.yml");
    type_into(&mut app, &out.display().to_string());
    assert!(app.unsaved());
    app.handle(key(KeyCode::Enter));
    let status = app.status().cloned().expect("a status line");
    assert_eq!(status.kind, StatusKind::Ok, "{}", status.text);
    assert!(!app.unsaved(), "written: quitting no longer asks");
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ranges: Vec<(u64, u64)> = yaml["slices"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            let src = &s["sources"][0];
            // mergekit reads a relative path as a repo id: the folder's absolute path.
            assert_eq!(
                src["model"].as_str().unwrap(),
                std::fs::canonicalize(&app.doc().source_path)
                    .unwrap()
                    .display()
                    .to_string()
            );
            let r = src["layer_range"].as_sequence().unwrap();
            (r[0].as_u64().unwrap(), r[1].as_u64().unwrap())
        })
        .collect();
    assert_eq!(ranges, vec![(0, 2), (3, 5), (6, 7)]);
    assert_eq!(yaml["merge_method"].as_str(), Some("passthrough"));
    assert_eq!(yaml["dtype"].as_str(), Some("bfloat16"));
}

#[test]
fn export_dialog_writes_the_pruned_model_in_the_background() {
    let (t, mut app) = scanned();
    app.handle(key(KeyCode::Char('e')));
    let d = dialog(&app);
    assert_eq!(d.kind, DialogKind::Model);
    assert_eq!(d.path(), "tiny-model-pruned");
    let out = t.path().join("pruned");
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(
        app.export().is_some(),
        "{:?}",
        app.status().map(|s| &s.text)
    );
    app.drain();
    let (kind, text) = status(&app);
    assert_eq!(kind, StatusKind::Ok, "{text}");
    let pruned = Model::open(&out).unwrap();
    let stack = pruned.layout.main_stack().unwrap();
    assert_eq!(stack.num_layers, 6, "8 layers minus the infinite 2 and 5");
    // Old layer 3 is new layer 2: same bytes.
    let src = app.model().unwrap();
    let a = src
        .tensor("model.layers.3.self_attn.v_proj.weight")
        .unwrap();
    let b = pruned
        .tensor("model.layers.2.self_attn.v_proj.weight")
        .unwrap();
    assert_eq!(*src.bytes(a).unwrap(), *pruned.bytes(b).unwrap());
    // A second export to the same folder asks first, and replaces only on yes.
    std::fs::write(out.join("marker"), "old").unwrap();
    app.handle(key(KeyCode::Char('e')));
    assert_eq!(
        dialog(&app).path(),
        out.display().to_string(),
        "the last path"
    );
    app.handle(key(KeyCode::Enter));
    assert_eq!(dialog(&app).replace.as_deref(), Some(out.as_path()));
    app.handle(key(KeyCode::Char('n')));
    assert!(dialog(&app).replace.is_none(), "back to the path");
    assert!(app.export().is_none() && out.join("marker").exists());
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::Char('y')));
    assert!(app.export().is_some());
    app.drain();
    assert_eq!(status(&app).0, StatusKind::Ok, "{}", status(&app).1);
    assert!(!out.join("marker").exists(), "replaced");
    assert!(out.join("config.json").is_file());
}

#[test]
fn escape_cancels_a_running_scan() {
    let (_t, mut app) = tiny_with(24, &[], true);
    app.handle(key(KeyCode::Esc));
    app.drain();
    let st = app.module().state;
    // A fast machine may finish before the cancel lands; either way the scan stops.
    assert!(
        matches!(st, ScanState::Cancelled | ScanState::Done),
        "{st:?}"
    );
}

#[test]
fn a_resumed_scan_computes_only_what_is_missing() {
    let (_t, mut app, scan_id) = unstarted(24, &[]);
    let hand_made = stats_from_singular_values(vec![10.0, 4.0, 3.0, 2.0, 1.0], 5, 5);
    for job in 0..4 {
        app.handle(Msg::Scan {
            scan_id,
            event: ScanEvent::Result {
                result: Box::new(MatrixResult {
                    job,
                    outcome: Ok(hand_made.clone()),
                    elapsed: Duration::ZERO,
                    cached: false,
                    method: Method::Svd,
                }),
                progress: Progress::default(),
            },
        });
    }
    app.handle(Msg::Scan {
        scan_id,
        event: ScanEvent::Finished {
            progress: Progress::default(),
            cancelled: true,
        },
    });
    assert_eq!(app.module().state, ScanState::Cancelled);
    // From here on, scans really run. Away and back resumes it.
    let mut app = Session::new(app);
    app.update(Action::NextModule);
    app.update(Action::PrevModule);
    app.drain();
    let v = app.choice().drive;
    assert_eq!(app.doc().modules[v].state, ScanState::Done);
    assert_eq!(
        app.doc().modules[v].progress.total,
        20,
        "24 layers, 4 already known"
    );
    assert_eq!(app.doc().modules[v].count(|k| k == Kind::Pending), 0);
    // The known ones were not recomputed (the real matrices have another spectrum).
    assert_eq!(app.doc().modules[v].cells[3].stats(), Some(&hand_made));
    assert_ne!(app.doc().modules[v].cells[4].stats(), Some(&hand_made));
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn scan_file_mode_uses_the_entries() {
    let tmp = TempDir::new().unwrap();
    let p = tmp.path().join("snr_results_test.json");
    write(
        &p,
        r#"{
  "model.layers.0.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
  "model.layers.1.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"},
  "model.layers.2.self_attn.v_proj": {"snr": 0.25, "type": "self_attn.v_proj"},
  "model.layers.3.self_attn.v_proj": {"snr": NaN, "type": "self_attn.v_proj", "error": "boom"},
  "model.layers.0.mlp.down_proj": {"snr": 3.0, "type": "mlp.down_proj"},
  "model.layers.3.mlp.down_proj": {"snr": 4.0, "type": "mlp.down_proj"}
}"#,
    );
    let (_, entries) = scanfile::read(&p).unwrap();
    let mut app = Session::new(App::for_scan_file(&p, entries).unwrap());
    assert_eq!(app.num_layers(), 4);
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
    assert_eq!(app.module().name, "self_attn.v_proj");
    assert_eq!(dropped(&app), vec![1]);
    assert_eq!(app.module().cells[3].kind(), Kind::Failed);
    assert!(summary_text(&app).starts_with("keep [0,1) [2,4)  3/4 layers"));
    app.update(Action::NextModule);
    assert_eq!(app.module().name, "mlp.down_proj");
    assert_eq!(app.module().cells[1].kind(), Kind::Missing);
    assert!(!app.scanning());
    app.update(Action::ExportModel);
    assert_eq!(*app.overlay(), Overlay::None);
    assert_eq!(app.status().unwrap().kind, StatusKind::Error);
    app.update(Action::CycleRule); // lowest 1 of the finite: layer 2 (0.25)
    assert_eq!(dropped(&app), vec![2]);
}

#[test]
fn clicking_a_bar_moves_the_cursor() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let (_t, mut app) = scanned();
    app.handle(Msg::Resize(120, 40));
    // 120 columns: 118 inside the border, 11 for the axis: 107 columns, 13 per layer at
    // most 8: bars start at column 12, layer 5 at 12 + 5 * 8 = 52.
    let click = |app: &mut Session, column: u16, row: u16| {
        app.handle(Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }));
    };
    click(&mut app, 53, 10);
    assert_eq!(app.view().cursor, 5);
    click(&mut app, 12, 10);
    assert_eq!(app.view().cursor, 0);
    // Outside the bars: nothing moves.
    click(&mut app, 11, 10);
    click(&mut app, 52, 0);
    assert_eq!(app.view().cursor, 0);
}

#[test]
fn long_summaries_elide_whole_ranges_but_keep_the_counts() {
    let (_t, mut app) = tiny_with(80, &[], false);
    for l in (1..80).step_by(3) {
        app.set_cursor(l);
        app.update(Action::Toggle);
    }
    // 27 layers dropped (1, 4, …, 79): kept runs [0,1) [2,4) … [77,79).
    let full = crate::ui::view::bars::summary_text(&app);
    assert!(full.starts_with("keep [0,1) [2,4) [5,7) "), "{full}");
    assert!(full.contains(" [74,76) [77,79)  53/80 layers  "), "{full}");
    let fitted = crate::ui::view::bars::summary_fitted(&app, 70);
    assert!(fitted.chars().count() <= 70, "{fitted}");
    assert!(fitted.starts_with("keep [0,1) [2,4) "), "{fitted}");
    assert!(fitted.contains(" … [77,79)  53/80 layers  "), "{fitted}");
    assert!(fitted.ends_with(" params"), "{fitted}");
}

#[test]
fn the_key_table_binds_each_key_once_and_describes_every_row() {
    use crate::ui::keys::NORMAL;
    let mut seen = Vec::new();
    for b in NORMAL {
        assert!(!b.help.is_empty() && !b.shown.is_empty());
        for k in b.keys {
            assert!(!seen.contains(&(*k, b.ctrl)), "{k:?} is bound twice");
            seen.push((*k, b.ctrl));
        }
    }
    let seen: Vec<KeyCode> = seen
        .into_iter()
        .filter(|(_, c)| !c)
        .map(|(k, _)| k)
        .collect();
    // The keys the issue asks for are all there.
    for k in [
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::Char('h'),
        KeyCode::Char('l'),
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Tab,
        KeyCode::BackTab,
        KeyCode::Char(' '),
        KeyCode::Char('a'),
        KeyCode::Char('c'),
        KeyCode::Char('i'),
        KeyCode::Char('y'),
        KeyCode::Char('e'),
        KeyCode::Char('w'),
        KeyCode::Char('?'),
        KeyCode::Char('q'),
        KeyCode::Esc,
        KeyCode::Char('u'),
        KeyCode::Char(':'),
        KeyCode::Char('n'),
        KeyCode::Char('N'),
        KeyCode::Char('d'),
        KeyCode::Char('o'),
        KeyCode::Char('U'),
        KeyCode::Char('!'),
        KeyCode::Char('x'),
    ] {
        assert!(seen.contains(&k), "{k:?} is not bound");
    }
}

#[test]
fn dialog_path_editing() {
    let (_t, mut app) = scanned();
    app.handle(key(KeyCode::Char('w')));
    let ctrl = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    let input = |app: &App| match &app.overlay() {
        Overlay::Dialog(d) => (d.path().to_string(), d.fields[0].edit.cursor),
        o => panic!("no dialog: {o:?}"),
    };
    assert_eq!(input(&app), ("tiny-model-snr.json".to_string(), 19));
    app.handle(ctrl('u'));
    assert_eq!(input(&app), (String::new(), 0));
    for c in ['a', 'é', 'b'] {
        app.handle(key(KeyCode::Char(c)));
    }
    app.handle(key(KeyCode::Left));
    app.handle(key(KeyCode::Char('X')));
    assert_eq!(input(&app), ("aéXb".to_string(), 3));
    app.handle(key(KeyCode::Home));
    app.handle(key(KeyCode::Delete));
    assert_eq!(input(&app), ("éXb".to_string(), 0));
    app.handle(key(KeyCode::Right));
    app.handle(key(KeyCode::Backspace));
    assert_eq!(input(&app), ("Xb".to_string(), 0));
    // Keys that would act on the chart only edit the path while the dialog is open.
    app.handle(key(KeyCode::End));
    app.handle(key(KeyCode::Char('q')));
    app.handle(key(KeyCode::Char(' ')));
    assert_eq!(input(&app), ("Xbq ".to_string(), 4));
    assert!(!app.quit());
    assert_eq!(app.view().cursor, 0);
    assert_eq!(dropped(&app), vec![2, 5]);
    app.handle(key(KeyCode::Esc));
    assert_eq!(*app.overlay(), Overlay::None);
}

// ---- issue 8: the explorer keeps the user's work, item by item ----

/// Item 1: `y` on an existing file asks inside the dialog and writes only after `y`; the dialog
/// remembers the path; `~` expands; a folder means the default name in it.
#[test]
fn writing_over_an_existing_file_asks_first() {
    let (t, mut app) = scanned();
    let out = t.path().join("hand-edited.yml");
    std::fs::write(&out, "# my edits\n").unwrap();
    app.handle(key(KeyCode::Char('y')));
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert_eq!(dialog(&app).replace.as_deref(), Some(out.as_path()));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# my edits\n");
    app.handle(key(KeyCode::Char('n')));
    assert_eq!(dialog(&app).path(), out.display().to_string(), "text kept");
    app.handle(key(KeyCode::Esc));
    assert_eq!(*app.overlay(), Overlay::None);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# my edits\n");
    // The next `y` starts from the path used last, and replaces only after yes.
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app).path(), out.display().to_string());
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(*app.overlay(), Overlay::None);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("merge_method: passthrough")
    );
    // A folder: the default name inside it.
    let folder = t.path().join("configs");
    std::fs::create_dir(&folder).unwrap();
    app.handle(key(KeyCode::Char('y')));
    type_into(&mut app, &folder.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert_eq!(status(&app).0, StatusKind::Ok, "{}", status(&app).1);
    assert!(folder.join("tiny-model-pruned.yml").is_file());
}

#[test]
fn a_tilde_path_expands_to_home() {
    let (t, mut app) = scanned();
    let home = std::env::var("HOME").unwrap();
    // A name no one has: written under $HOME, then removed.
    let name = format!(
        "snrscope-test-{}-{}.json",
        std::process::id(),
        t.path().display().to_string().len()
    );
    app.handle(key(KeyCode::Char('w')));
    type_into(&mut app, &format!("~/{name}"));
    app.handle(key(KeyCode::Enter));
    let written = Path::new(&home).join(&name);
    let ok = written.is_file();
    let _ = std::fs::remove_file(&written);
    assert!(ok, "{:?}", app.status().map(|s| &s.text));
}

/// Items 1 and 5: an error keeps the dialog open with the text, in one sentence that names the path
/// once, without "(os error N)".
#[test]
fn a_failed_write_keeps_the_dialog_and_says_why_once() {
    let (t, mut app) = scanned();
    let bad = t.path().join("no-such-folder").join("p.yml");
    app.handle(key(KeyCode::Char('y')));
    type_into(&mut app, &bad.display().to_string());
    app.handle(key(KeyCode::Enter));
    let d = dialog(&app);
    assert_eq!(d.path(), bad.display().to_string());
    let err = d.error.clone().expect("an error");
    assert_eq!(err.matches(&bad.display().to_string()).count(), 1, "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(err.contains("its folder does not exist"), "{err}");
    // Writing into the model itself: refused, whatever is answered.
    let inside = app.doc().source_path.join("p.yml");
    type_into(&mut app, &inside.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(
        dialog(&app)
            .error
            .clone()
            .unwrap()
            .contains("inside the input")
    );
    assert!(!inside.exists());
}

/// Item 2: A hand choice survives three rule cycles, `a` asks, undo and redo walk back and forth.
#[test]
fn hand_choices_survive_rule_changes_and_undo_restores() {
    let (_t, mut app) = scanned();
    app.set_cursor(2);
    app.handle(key(KeyCode::Char(' '))); // keep the infinite layer 2 by hand
    assert_eq!(app.choice().mark(2), Mark::KeepManual);
    for _ in 0..3 {
        app.handle(key(KeyCode::Char('r')));
        assert!(!dropped(&app).contains(&2), "rule {:?}", app.choice().rule);
    }
    assert_eq!(app.choice().rule, snrscope::plan::Rule::Infinite);
    assert_eq!(
        app.choice().mark(2),
        Mark::KeepManual,
        "still there after r r r"
    );
    assert_eq!(dropped(&app), vec![5]);
    // `a` asks, and `n` keeps everything.
    app.handle(key(KeyCode::Char('a')));
    assert_eq!(
        *app.overlay(),
        Overlay::Question(Question::DiscardHandChoices(1))
    );
    app.handle(key(KeyCode::Char('n')));
    assert_eq!(app.choice().mark(2), Mark::KeepManual);
    app.handle(key(KeyCode::Char('a')));
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dropped(&app), vec![2, 5]);
    // Undo brings the hand choice back; redo drops it again; Ctrl-R is redo.
    app.handle(key(KeyCode::Char('u')));
    assert_eq!(dropped(&app), vec![5]);
    app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('r'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(dropped(&app), vec![2, 5]);
    // All the way back to the start: 1 toggle + 3 rule changes + the reset.
    for _ in 0..5 {
        app.handle(key(KeyCode::Char('u')));
    }
    assert_eq!(dropped(&app), vec![2, 5]);
    assert!(!app.choice().selection().has_manual());
    app.handle(key(KeyCode::Char('u')));
    assert_eq!(status(&app).1, "nothing to undo");
}

#[test]
fn x_hands_a_layer_back_to_the_rule() {
    let (_t, mut app) = scanned();
    app.set_cursor(5);
    app.update(Action::Toggle);
    app.update(Action::Toggle); // dropped by hand, as the rule would: recorded, agreeing
    assert_eq!(app.choice().mark(5), Mark::DropManualAgrees);
    app.handle(key(KeyCode::Char('x')));
    assert_eq!(app.choice().mark(5), Mark::DropByRule);
}

/// Item 3: Esc during an export cancels the export only, says so, and the scan goes on.
#[test]
fn escape_during_an_export_cancels_only_the_export() {
    let tmp = TempDir::new().unwrap();
    let src = tmp.path().join("big");
    write_model(&src, &ModelSpec::tiny(4, &[1])).unwrap();
    // Big sparse matrices: a slow export (hundreds of MB to copy) and a slow scan.
    let big = tmp.path().join("big-sparse");
    support::sparse_model(&big, 8);
    let model = Arc::new(Model::open(&big).unwrap());
    let mut app = Session::new(
        App::for_model(
            model,
            AppOptions {
                autoscan: false,
                threads: 1,
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    app.click_tab("mlp.up_proj"); // its scan starts
    assert!(app.scanning());
    app.set_cursor(0);
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Char('e')));
    // Not every layer is scanned: asked first.
    assert!(matches!(
        app.overlay(),
        Overlay::Question(Question::ExportAnyway(_))
    ));
    app.handle(key(KeyCode::Char('y')));
    type_into(&mut app, &tmp.path().join("out").display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(app.export().is_some(), "{:?}", app.status());
    app.handle(key(KeyCode::Esc));
    app.run_until(|a| a.export().is_none());
    let (kind, text) = status(&app);
    assert_eq!(kind, StatusKind::Info, "{text}");
    assert!(text.contains("export cancelled, nothing written"), "{text}");
    assert!(app.scanning(), "the scan goes on");
    assert!(!tmp.path().join("out").exists());
    app.handle(key(KeyCode::Esc)); // now the scan
    app.drain();
    assert_eq!(app.module().state, ScanState::Cancelled);
}

/// Item 4: The YAML's `model:` is the folder's absolute path by default, editable, and preset by
/// `--model-name`; for a scan file it is required.
#[test]
fn the_model_name_field() {
    let (t, mut app) = scanned();
    app.handle(key(KeyCode::Char('y')));
    let abs = std::fs::canonicalize(&app.doc().source_path).unwrap();
    assert_eq!(dialog(&app).field("model"), Some(abs.to_str().unwrap()));
    let out = t.path().join("named.yml");
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Tab));
    type_into(&mut app, "01-ai/Yi-34B");
    app.handle(key(KeyCode::Enter));
    let yaml = std::fs::read_to_string(&out).unwrap();
    assert!(yaml.contains("model: 01-ai/Yi-34B"), "{yaml}");
    // Preset from the command line.
    let model = app.model().unwrap().clone();
    let app2 = Session::new(
        App::for_model(
            model,
            AppOptions {
                model_name: Some("org/name".into()),
                ..AppOptions::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(app2.model_name(), "org/name");
    // A scan file: empty and required.
    let p = t.path().join("scan.json");
    std::fs::write(
        &p,
        r#"{"model.layers.0.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
            "model.layers.1.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"}}"#,
    )
    .unwrap();
    let (_, entries) = scanfile::read(&p).unwrap();
    let mut app3 = Session::new(App::for_scan_file(&p, entries).unwrap());
    app3.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app3).field("model"), Some(""));
    type_into(&mut app3, &t.path().join("s.yml").display().to_string());
    app3.handle(key(KeyCode::Enter));
    assert!(dialog(&app3).error.clone().unwrap().contains("model name"));
    assert_eq!(dialog(&app3).focus, 1, "the field to fill");
    assert!(!t.path().join("s.yml").exists());
}

/// Item 6: The quit prompt: `w` writes the YAML, then quits.
#[test]
fn quit_prompt_w_writes_the_yaml_then_quits() {
    let (t, mut app) = scanned();
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Char('q')));
    assert_eq!(*app.overlay(), Overlay::QuitPrompt);
    app.handle(key(KeyCode::Char('w')));
    assert_eq!(dialog(&app).kind, DialogKind::Yaml);
    assert!(!app.quit());
    let out = t.path().join("final.yml");
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(app.quit());
    assert!(out.is_file());
}

/// Item 8: Any module can drive the choice; `d` again goes back to the default.
#[test]
fn the_module_on_screen_can_drive_the_choice() {
    let (_t, mut app) = scanned();
    app.handle(key(KeyCode::Tab)); // mlp.down_proj
    app.drain();
    app.handle(key(KeyCode::Char('d')));
    assert_eq!(app.drive_module().name, "mlp.down_proj");
    assert_eq!(
        dropped(&app),
        Vec::<usize>::new(),
        "no infinite down_proj layer"
    );
    app.handle(key(KeyCode::Char('r'))); // lowest K reads down_proj now
    let down: Vec<Option<f64>> = app.module().snr();
    let lowest = (0..8)
        .min_by(|&a, &b| down[a].unwrap().total_cmp(&down[b].unwrap()))
        .unwrap();
    assert_eq!(dropped(&app), vec![lowest]);
    assert!(app.rule_text().contains("mlp.down_proj"));
    app.handle(key(KeyCode::Char('d'))); // on screen = drive: back to the default
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
    app.handle(key(KeyCode::Char('u')));
    assert_eq!(app.drive_module().name, "mlp.down_proj", "undoable");
}

/// Item 10: `e` asks when nothing is dropped, and says how much it would copy.
#[test]
fn exporting_a_plan_that_drops_nothing_asks_first() {
    let (_t, mut app) = scanned();
    app.update(Action::KeepAll);
    app.handle(key(KeyCode::Char('e')));
    match app.overlay() {
        Overlay::Question(Question::ExportAnyway(why)) => {
            assert!(
                why.contains("nothing is dropped: this writes a full copy of"),
                "{why}"
            );
            assert!(why.contains(" kB") || why.contains(" MB"), "{why}");
        }
        o => panic!("{o:?}"),
    }
    app.handle(key(KeyCode::Char('n')));
    assert_eq!(*app.overlay(), Overlay::None);
}

/// Item 11: The model's warnings can be read.
#[test]
fn warnings_overlay_lists_the_warnings() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("m");
    let mut spec = ModelSpec::tiny(4, &[1]);
    spec.extra_config
        .insert("num_hidden_layers".into(), serde_json::json!(5));
    write_model(&dir, &spec).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    assert!(!model.warnings.is_empty());
    let mut app = Session::new(App::for_model(model, AppOptions::default()).unwrap());
    assert!(
        status(&app)
            .1
            .starts_with("warning: config.json declares 5 layers")
    );
    app.handle(key(KeyCode::Char('!')));
    assert_eq!(*app.overlay(), Overlay::Warnings);
    app.handle(key(KeyCode::Char('j')));
    assert_eq!(*app.overlay(), Overlay::None, "any key closes");
}

/// Keyboard reach: jump to a layer, next/previous infinite layer, the sorted view.
#[test]
fn jump_next_infinite_and_the_sorted_view() {
    let (_t, mut app) = scanned();
    app.handle(key(KeyCode::Char('6')));
    assert!(matches!(app.overlay(), Overlay::Jump(_)));
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.view().cursor, 6);
    app.handle(key(KeyCode::Char(':')));
    app.handle(key(KeyCode::Char('9')));
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.view().cursor, 6);
    assert!(status(&app).1.contains("no layer 9"));
    app.handle(key(KeyCode::Char('N')));
    assert_eq!(app.view().cursor, 5);
    app.handle(key(KeyCode::Char('N')));
    assert_eq!(app.view().cursor, 2);
    app.handle(key(KeyCode::Char('n')));
    assert_eq!(app.view().cursor, 5);
    // The sorted view: infinite layers first, then by SNR descending; Space works there.
    app.handle(key(KeyCode::Char('o')));
    assert!(app.view().sorted);
    let order = app.sorted_layers();
    assert_eq!(&order[..2], &[2, 5]);
    let snr = app.module().snr();
    for w in order[2..].windows(2) {
        assert!(snr[w[0]].unwrap() >= snr[w[1]].unwrap());
    }
    app.handle(key(KeyCode::Home));
    assert_eq!(app.view().cursor, 2);
    app.handle(key(KeyCode::Down));
    app.handle(key(KeyCode::Down));
    assert_eq!(app.view().cursor, order[2]);
    app.handle(key(KeyCode::Char(' ')));
    assert_eq!(app.choice().mark(order[2]), Mark::DropManual);
}

/// `snrscope MODEL --scan FILE`: the saved module is shown from the file, not scanned.
#[test]
fn a_saved_scan_opens_with_the_model() {
    let (t, app) = scanned();
    let saved = t.path().join("saved.json");
    std::fs::write(&saved, scanfile::to_json(&app.scan_entries())).unwrap();
    let app2 = Session::new(
        App::for_model_with_scan(
            app.model().unwrap().clone(),
            &saved,
            &scanfile::read(&saved).unwrap().1,
            AppOptions::interactive(),
        )
        .unwrap(),
    );
    assert!(!app2.scanning(), "nothing left to scan");
    assert_eq!(app2.drive_module().state, ScanState::Loaded);
    assert_eq!(dropped(&app2), vec![2, 5]);
}

/// Issue 10 in the explorer: a model scanned once is drawn from the scan cache when it is
/// opened again (every cell marked cached, nothing computed), and `m` switches new scans to the
/// Gram route.
#[test]
fn reopening_draws_every_bar_from_the_cache() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(8, &[2, 5])).unwrap();
    let cache = Arc::new(snrscope::spectrum::cache::Cache::at(
        tmp.path().join("cache"),
    ));
    let open = || {
        Session::new(
            App::for_model(
                Arc::new(Model::open(&dir).unwrap()),
                AppOptions {
                    autoscan: true,
                    threads: 2,
                    cache: Some(cache.clone()),
                    ..AppOptions::default()
                },
            )
            .unwrap(),
        )
    };
    let mut first = open();
    first.drain();
    assert!(first.module().cells.iter().all(|c| !c.cached));
    let mut second = open();
    second.drain();
    assert!(
        second.module().cells.iter().all(|c| c.cached),
        "all from the cache"
    );
    assert_eq!(second.module().progress.cached, 8);
    assert_eq!(dropped(&second), vec![2, 5]);
    for (a, b) in first.module().cells.iter().zip(&second.module().cells) {
        assert_eq!(a.stats(), b.stats(), "bit-identical statistics");
    }
    // `m`: the next module's scan uses the Gram route, and the cells say so.
    second.handle(key(KeyCode::Char('m')));
    second.handle(key(KeyCode::Tab));
    second.drain();
    assert!(
        second
            .module()
            .cells
            .iter()
            .all(|c| c.method.is_some() && !c.cached)
    );
    assert!(
        second
            .module()
            .cells
            .iter()
            .any(|c| c.method == Some(snrscope::spectrum::snr::Method::Gram))
    );
}

#[test]
fn a_huge_layer_number_in_a_scan_file_is_refused_before_anything_is_allocated() {
    let tmp = TempDir::new().unwrap();
    for (layer, words) in [
        ("1000000000000", "no entry names a numbered layer"),
        ("90000", "not a scan of a real model"),
    ] {
        let text = format!(
            r#"{{"model.layers.{layer}.self_attn.v_proj": {{"snr": 1.0, "type": "self_attn.v_proj"}}}}"#
        );
        let file = tmp.path().join("huge.json");
        std::fs::write(&file, text).unwrap();
        let (_, entries) = scanfile::read(&file).unwrap();
        let e = App::for_scan_file(&file, entries).err().expect("refused");
        assert!(e.to_string().contains(words), "{e}");
    }
}

/// Scan files of every shape the parser accepts open in the explorer or are refused with a
/// message; none panics (the library's own fuzz test covers the parser and the plans).
#[test]
fn fuzzed_scan_files_open_or_are_refused_never_panic() {
    use proptest::prelude::*;
    let entry = (
        prop_oneof![
            Just("model.layers"),
            Just("encoder.layer"),
            Just("h"),
            Just("x.y.layers")
        ],
        0usize..40,
        prop_oneof![
            Just("self_attn.v_proj"),
            Just("mlp.up_proj"),
            Just("attn.c_attn")
        ],
        prop_oneof![
            Just(f64::INFINITY),
            Just(f64::NAN),
            Just(0.0),
            -1e3f64..1e3,
            Just(-f64::INFINITY)
        ],
    );
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 300,
        failure_persistence: None,
        ..Default::default()
    });
    runner
        .run(&proptest::collection::vec(entry, 0..60), |entries| {
            let body: Vec<String> = entries
                .iter()
                .map(|(stack, layer, module, snr)| {
                    let v = if snr.is_nan() {
                        "NaN".to_string()
                    } else if snr.is_infinite() {
                        if *snr > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                    } else {
                        format!("{snr}")
                    };
                    format!(r#""{stack}.{layer}.{module}": {{"snr": {v}, "type": "{module}"}}"#)
                })
                .collect();
            let text = format!("{{{}}}", body.join(", "));
            if let Ok((_, entries)) = scanfile::parse(&text, "fuzz.json") {
                let _ = App::for_scan_file(Path::new("fuzz.json"), entries);
            }
            Ok(())
        })
        .unwrap();
}

// ---- issue 19: smaller things ----

/// A refused YAML dialog names the field that is wrong and puts the cursor in it; a path that
/// was refused is not offered again next time (one that worked is).
#[test]
fn a_refused_yaml_dialog_names_the_field_and_forgets_the_path() {
    let t = TempDir::new().unwrap();
    let p = t.path().join("scan.json");
    std::fs::write(
        &p,
        r#"{"model.layers.0.self_attn.v_proj": {"snr": 0.5, "type": "self_attn.v_proj"},
            "model.layers.1.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"}}"#,
    )
    .unwrap();
    let (_, entries) = scanfile::read(&p).unwrap();
    let mut app = Session::new(App::for_scan_file(&p, entries).unwrap());
    app.handle(key(KeyCode::Char('y')));
    let default = dialog(&app).path().to_string();
    let first = t.path().join("first.yml");
    type_into(&mut app, &first.display().to_string());
    app.handle(key(KeyCode::Enter));
    let e = dialog(&app).error.clone().unwrap();
    assert!(e.starts_with("model: "), "{e}");
    assert_eq!(dialog(&app).focus, 1, "the field to fill");
    app.handle(key(KeyCode::Esc));
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app).path(), default, "the refused path is not kept");
    // A path that cannot be written: the error names the path field, the cursor goes there.
    let bad = t.path().join("missing").join("x.yml");
    type_into(&mut app, &bad.display().to_string());
    app.handle(key(KeyCode::Tab));
    type_into(&mut app, "org/name");
    app.handle(key(KeyCode::Enter));
    let e = dialog(&app).error.clone().unwrap();
    assert!(e.starts_with("path: "), "{e}");
    assert_eq!(dialog(&app).focus, 0, "back on the path");
    app.handle(key(KeyCode::Esc));
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app).path(), default, "the refused path is not kept");
    // One that worked is the next default.
    let good = t.path().join("good.yml");
    type_into(&mut app, &good.display().to_string());
    app.handle(key(KeyCode::Tab));
    type_into(&mut app, "org/name");
    app.handle(key(KeyCode::Enter));
    assert!(good.is_file(), "{:?}", app.status());
    app.handle(key(KeyCode::Char('y')));
    assert_eq!(dialog(&app).path(), good.display().to_string());
}

/// `--yaml FILE`: a saved passthrough YAML carries a session on: its kept layers become hand
/// choices, undoable, counted as written; a config of another model is refused (layers beyond
/// this one) or warned about (another model named).
#[test]
fn a_saved_yaml_carries_the_session_on() {
    let (t, mut app) = scanned();
    let model = app.model_name().to_string();
    let yaml = |model: &str, ranges: &[[usize; 2]]| {
        let mut s = String::from("slices:\n");
        for [a, b] in ranges {
            s.push_str(&format!(
                "  - sources:\n      - model: {model}\n        layer_range: [{a}, {b}]\n"
            ));
        }
        s + "merge_method: passthrough\ndtype: bfloat16\n"
    };
    let saved = t.path().join("prune.yml");
    std::fs::write(&saved, yaml(&model, &[[0, 1], [3, 7]])).unwrap();
    let rule_dropped = dropped(&app);
    crate::ui::carry_on_file(&mut app.app, &saved, false).unwrap();
    assert_eq!(dropped(&app), vec![1, 2, 7]);
    for l in 0..8 {
        assert!(app.choice().mark(l).is_override(), "layer {l}: by hand");
    }
    assert!(!app.unsaved(), "as written in the file");
    assert_eq!(status(&app).0, StatusKind::Ok, "{}", status(&app).1);
    app.handle(key(KeyCode::Char('u')));
    assert_eq!(dropped(&app), rule_dropped, "undone");
    // Layers beyond the model: refused, naming the file.
    std::fs::write(&saved, yaml(&model, &[[0, 9]])).unwrap();
    let e = crate::ui::carry_on_file(&mut app.app, &saved, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prune.yml") && e.contains("beyond the model's 8 layers"),
        "{e}"
    );
    // Not a pruning at all.
    std::fs::write(&saved, "merge_method: slerp\n").unwrap();
    let e = crate::ui::carry_on_file(&mut app.app, &saved, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("slerp"), "{e}");
    // Another model folder: used, with a warning.
    std::fs::write(&saved, yaml(&t.path().display().to_string(), &[[0, 4]])).unwrap();
    crate::ui::carry_on_file(&mut app.app, &saved, false).unwrap();
    assert_eq!(dropped(&app), vec![4, 5, 6, 7]);
    let (kind, text) = status(&app);
    assert_eq!(kind, StatusKind::Error);
    assert!(text.contains("not of this model"), "{text}");
    // A repo id with no --model-name: taken as the model name for the next YAML.
    std::fs::write(&saved, yaml("org/tiny", &[[2, 8]])).unwrap();
    crate::ui::carry_on_file(&mut app.app, &saved, false).unwrap();
    assert_eq!(app.model_name(), "org/tiny");
    assert_eq!(dropped(&app), vec![0, 1]);
}

/// `/` finds a layer by number; Ctrl-D / Ctrl-U move half a page; an unwritten choice says
/// "modified" in words, not only in colour.
#[test]
fn search_half_pages_and_the_modified_marker() {
    let (t, mut app) = tiny_with(80, &[2, 5], false);
    app.handle(Msg::Resize(80, 24));
    app.handle(key(KeyCode::Char('/')));
    for c in "30".chars() {
        app.handle(key(KeyCode::Char(c)));
    }
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.view().cursor, 30);
    let half = (app.chart_geom().visible / 2).max(1);
    assert!(
        half <= 30 && app.chart_geom().visible < 80,
        "a half page of {half} layers"
    );
    let ctrl = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    app.handle(ctrl('d'));
    assert_eq!(app.view().cursor, 30 + half);
    app.handle(ctrl('u'));
    app.handle(ctrl('u'));
    assert_eq!(app.view().cursor, 30 - half);
    // The header's first row at 80 columns.
    let header = |app: &App| {
        let area = ratatui::layout::Rect::new(0, 0, 80, 24);
        let mut buf = ratatui::buffer::Buffer::empty(area);
        crate::ui::view::draw(app, area, &mut buf);
        (0..80).map(|x| buf[(x, 0)].symbol()).collect::<String>()
    };
    assert!(!header(&app).contains("modified"), "{}", header(&app));
    app.update(Action::Toggle);
    assert!(header(&app).contains(" modified · "), "{}", header(&app));
    assert!(header(&app).contains("? help  q quit"), "{}", header(&app));
    app.handle(key(KeyCode::Char('y')));
    type_into(&mut app, &t.path().join("p.yml").display().to_string());
    app.handle(key(KeyCode::Enter));
    assert!(!header(&app).contains("modified"), "{}", header(&app));
}

/// The export dialog offers the CLI's `--copy`: files of the model folder that are not model
/// files (sentence-transformers' modules.json) are copied when named in its "copy" field, and
/// left out (and said so) when not.
#[test]
fn the_export_dialog_copies_the_files_it_is_asked_to() {
    let (t, mut app) = tiny(false);
    let dir = app.doc().source_path.clone();
    std::fs::write(dir.join("modules.json"), "[]\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "mine\n").unwrap();
    std::fs::create_dir(dir.join("1_Pooling")).unwrap();
    std::fs::write(dir.join("1_Pooling/config.json"), "{}\n").unwrap();
    app.update(Action::Toggle); // something dropped: no question first
    app.handle(key(KeyCode::Char('e')));
    if matches!(app.overlay(), Overlay::Question(_)) {
        app.handle(key(KeyCode::Char('y')));
    }
    assert_eq!(dialog(&app).fields[1].label, "copy");
    let out = t.path().join("pruned");
    type_into(&mut app, &out.display().to_string());
    app.handle(key(KeyCode::Tab));
    type_into(&mut app, "modules.json, 1_Pooling");
    app.handle(key(KeyCode::Enter));
    assert!(app.export().is_some(), "{:?}", app.status());
    app.drain();
    let (kind, text) = status(&app);
    assert_eq!(kind, StatusKind::Ok, "{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("modules.json")).unwrap(),
        "[]\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("1_Pooling/config.json")).unwrap(),
        "{}\n"
    );
    assert!(!out.join("notes.txt").exists());
    assert!(text.contains("notes.txt"), "said what was left out: {text}");
    // The next export dialog offers the same list again.
    app.handle(key(KeyCode::Char('e')));
    if matches!(app.overlay(), Overlay::Question(_)) {
        app.handle(key(KeyCode::Char('y')));
    }
    assert_eq!(dialog(&app).field("copy"), Some("modules.json, 1_Pooling"));
}
