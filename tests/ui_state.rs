//! The explorer's state machine, driven without a terminal: the real `App`, real scans of a
//! generated model, synthetic actions and synthetic scan events. Expected layer sets come
//! from how the model was generated (`infinite_layers`), never from the code under test.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::Receiver;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use snrscope::{
    demo::{ModelSpec, write_model},
    model::Model,
    plan::Mark,
    scan::{MatrixResult, Progress, ScanEvent},
    scanfile,
    snr::{Method, stats_from_singular_values},
    ui::{
        Action, App, AppOptions, Msg,
        app::{DialogKind, Kind, Overlay, ScanState, StatusKind},
        summary::summary_text,
    },
};
use tempfile::TempDir;

/// An 8-layer model whose v_proj SNR is infinite in layers 2 and 5.
fn tiny(autoscan: bool) -> (TempDir, App, Receiver<Msg>) {
    tiny_with(8, &[2, 5], autoscan)
}

fn tiny_with(layers: usize, inf: &[usize], autoscan: bool) -> (TempDir, App, Receiver<Msg>) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(layers, inf)).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let (tx, rx) = crossbeam_channel::unbounded();
    let app = App::for_model(
        model,
        tx,
        AppOptions {
            autoscan,
            threads: 2,
        },
    )
    .unwrap();
    (tmp, app, rx)
}

/// Feeds every message to the app until no scan or export runs (bounded, so a hang fails the test).
fn drain(app: &mut App, rx: &Receiver<Msg>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.scanning() || app.export.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "scan did not finish within 60 s");
        if let Ok(m) = rx.recv_timeout(left) {
            app.handle(m);
        }
    }
}

fn scanned() -> (TempDir, App, Receiver<Msg>) {
    let (tmp, mut app, rx) = tiny(true);
    drain(&mut app, &rx);
    (tmp, app, rx)
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn dropped(app: &App) -> Vec<usize> {
    app.selection.dropped()
}

#[test]
fn opens_on_the_value_projection_and_the_seed_rule_drops_the_infinite_layers() {
    let (_t, app, _rx) = scanned();
    assert_eq!(app.module().name, "self_attn.v_proj");
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
    assert_eq!(app.module().state, ScanState::Done);
    assert_eq!(dropped(&app), vec![2, 5]);
    assert_eq!(app.selection.mark(2), Mark::DropByRule);
    let inf: Vec<usize> = (0..8)
        .filter(|&i| app.module().cells[i].kind() == Kind::Infinite)
        .collect();
    assert_eq!(inf, vec![2, 5]);
    assert!(summary_text(&app).starts_with("keep [0,2) [3,5) [6,8)  6/8 layers  "));
    assert!(!app.unsaved(), "nothing was changed by hand yet");
}

#[test]
fn toggling_marks_manual_overrides_and_moves_the_ranges() {
    let (_t, mut app, _rx) = scanned();
    app.handle(key(KeyCode::Right));
    app.handle(key(KeyCode::Char('l')));
    assert_eq!(app.cursor, 2);
    app.handle(key(KeyCode::Char(' ')));
    assert_eq!(app.selection.mark(2), Mark::KeepManual);
    assert_eq!(dropped(&app), vec![5]);
    app.update(Action::Home);
    app.update(Action::Toggle);
    assert_eq!(app.selection.mark(0), Mark::DropManual);
    assert_eq!(dropped(&app), vec![0, 5]);
    assert!(summary_text(&app).starts_with("keep [1,5) [6,8)  6/8 layers"));
    assert!(app.unsaved());
    // Toggling back to what the rule says removes the override.
    app.update(Action::Toggle);
    assert_eq!(app.selection.mark(0), Mark::Keep);
}

#[test]
fn apply_clear_and_invert() {
    let (_t, mut app, _rx) = scanned();
    app.set_cursor(3);
    app.update(Action::Toggle);
    assert_eq!(dropped(&app), vec![2, 3, 5]);
    app.update(Action::ApplyRule);
    assert_eq!(dropped(&app), vec![2, 5]);
    assert!(!app.selection.has_manual());
    app.update(Action::Clear);
    assert_eq!(dropped(&app), Vec::<usize>::new());
    app.update(Action::Invert);
    assert_eq!(dropped(&app), (0..8).collect::<Vec<_>>());
    assert!(summary_text(&app).starts_with("keep nothing  0/8 layers"));
}

#[test]
fn slice_ranges_at_the_edges() {
    let (_t, mut app, _rx) = scanned();
    let choose = |app: &mut App, layers: &[usize]| {
        app.update(Action::Clear);
        for &l in layers {
            app.set_cursor(l);
            app.update(Action::Toggle);
        }
        app.selection.kept_ranges()
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
    let (_t, mut app, rx) = scanned();
    app.set_cursor(1);
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Tab));
    // Module types in name order; v_proj is the last, so Tab wraps to the first.
    assert_eq!(app.module().name, "mlp.down_proj");
    assert_eq!(app.module().state, ScanState::Running);
    assert!(app.scanning());
    drain(&mut app, &rx);
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
    let (_t, mut app, rx) = tiny(true);
    assert!(app.scanning());
    app.update(Action::NextModule); // mlp.down_proj
    app.update(Action::NextModule); // mlp.gate_proj
    assert_eq!(app.modules[0].state, ScanState::Queued);
    assert_eq!(app.modules[1].state, ScanState::Queued);
    drain(&mut app, &rx);
    for i in [0, 1, 6] {
        assert_eq!(
            app.modules[i].state,
            ScanState::Done,
            "{}",
            app.modules[i].name
        );
    }
    assert_eq!(app.modules[2].state, ScanState::NotStarted);
}

/// Synthetic events: a hand-made spectrum per layer, in any order.
#[test]
fn synthetic_results_refresh_the_rule_but_keep_hand_changes() {
    let (_t, mut app, _rx) = tiny(false);
    let v = app.drive;
    app.modules[v].scan_id = 42;
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
            scan_id: 42,
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
    assert_eq!(app.selection.mark(0), Mark::DropManual);
    assert_eq!(app.selection.mark(3), Mark::DropByRule);
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
        scan_id: 7,
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
    let (_t, mut app, _rx) = scanned();
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
    let (_t, mut app, _rx) = scanned();
    app.update(Action::Left);
    assert_eq!(app.cursor, 0);
    app.update(Action::End);
    assert_eq!(app.cursor, 7);
    app.update(Action::Right);
    assert_eq!(app.cursor, 7);
    app.update(Action::PageLeft);
    assert_eq!(app.cursor, 0);
    app.update(Action::PageRight);
    assert_eq!(app.cursor, 7);
}

#[test]
fn paging_and_scrolling_on_a_narrow_terminal() {
    let (_t, mut app, _rx) = tiny_with(80, &[3], false);
    // 60 columns: 58 inside the border, 9 for the axis: 49 columns, 24 layers of 2.
    app.handle(Msg::Resize(60, 30));
    app.update(Action::PageRight);
    assert_eq!(app.cursor, 24);
    assert_eq!(app.offset, 1);
    app.update(Action::End);
    assert_eq!((app.cursor, app.offset), (79, 56));
    app.update(Action::Home);
    assert_eq!((app.cursor, app.offset), (0, 0));
}

#[test]
fn quit_asks_only_when_the_choice_changed() {
    let (_t, mut app, _rx) = scanned();
    app.handle(key(KeyCode::Char('q')));
    assert!(app.quit, "no hand changes: quits at once");

    let (_t, mut app, _rx) = scanned();
    app.update(Action::Toggle);
    app.handle(key(KeyCode::Char('q')));
    assert!(!app.quit);
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    app.handle(key(KeyCode::Char('n')));
    assert!(!app.quit);
    assert_eq!(app.overlay, Overlay::None);
    app.handle(key(KeyCode::Char('q')));
    app.handle(key(KeyCode::Char('y')));
    assert!(app.quit);

    let (_t, mut app, _rx) = scanned();
    app.update(Action::Toggle);
    app.handle(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(app.quit, "Ctrl-C never asks");

    let (_t, mut app, _rx) = scanned();
    app.handle(Msg::Terminate);
    assert!(app.quit);
}

#[test]
fn help_overlay_opens_and_any_key_closes_it() {
    let (_t, mut app, _rx) = scanned();
    app.handle(key(KeyCode::Char('?')));
    assert_eq!(app.overlay, Overlay::Help);
    app.handle(key(KeyCode::Char(' ')));
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(dropped(&app), vec![2, 5], "the key only closed the help");
}

#[test]
fn scan_json_dialog_writes_a_readable_file() {
    let (t, mut app, _rx) = scanned();
    app.handle(key(KeyCode::Char('w')));
    let Overlay::Dialog(d) = &app.overlay else {
        panic!("no dialog: {:?}", app.overlay)
    };
    assert_eq!(d.kind, DialogKind::ScanJson);
    assert_eq!(d.input, "tiny-model-snr.json");
    // Replace the default path by typing.
    for _ in 0..d.input.len() {
        app.handle(key(KeyCode::Backspace));
    }
    let out = t.path().join("out.json");
    for c in out.display().to_string().chars() {
        app.handle(key(KeyCode::Char(c)));
    }
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.overlay, Overlay::None);
    let status = app.status.clone().unwrap();
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
    let (t, mut app, _rx) = scanned();
    app.set_cursor(7);
    app.update(Action::Toggle); // drop the last layer by hand as well
    app.handle(key(KeyCode::Char('y')));
    let Overlay::Dialog(d) = &app.overlay else {
        panic!("no dialog")
    };
    assert_eq!(d.input, "tiny-model-pruned.yml");
    let out = t.path().join("p.yml");
    app.overlay = Overlay::Dialog(snrscope::ui::app::Dialog::new(
        DialogKind::Yaml,
        out.display().to_string(),
    ));
    assert!(app.unsaved());
    app.update(Action::DialogSubmit);
    let status = app.status.clone().expect("a status line");
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
            assert_eq!(
                src["model"].as_str().unwrap(),
                app.source_path.display().to_string()
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
    let (t, mut app, rx) = scanned();
    app.handle(key(KeyCode::Char('e')));
    let Overlay::Dialog(d) = &app.overlay else {
        panic!("no dialog")
    };
    assert_eq!(d.kind, DialogKind::Model);
    assert_eq!(d.input, "tiny-model-pruned/");
    let out = t.path().join("pruned");
    app.overlay = Overlay::Dialog(snrscope::ui::app::Dialog::new(
        DialogKind::Model,
        out.display().to_string(),
    ));
    app.update(Action::DialogSubmit);
    assert!(
        app.export.is_some(),
        "{:?}",
        app.status.as_ref().map(|s| &s.text)
    );
    drain(&mut app, &rx);
    let status = app.status.clone().unwrap();
    assert_eq!(status.kind, StatusKind::Ok, "{}", status.text);
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
    // A second export to the same folder is refused, and the explorer says why.
    app.overlay = Overlay::Dialog(snrscope::ui::app::Dialog::new(
        DialogKind::Model,
        out.display().to_string(),
    ));
    app.update(Action::DialogSubmit);
    drain(&mut app, &rx);
    let status = app.status.clone().unwrap();
    assert_eq!(status.kind, StatusKind::Error, "{}", status.text);
    assert!(status.text.contains("exists"), "{}", status.text);
}

#[test]
fn escape_cancels_a_running_scan() {
    let (_t, mut app, rx) = tiny_with(24, &[], true);
    app.handle(key(KeyCode::Esc));
    drain(&mut app, &rx);
    let st = app.module().state;
    // A fast machine may finish before the cancel lands; either way the scan stops.
    assert!(
        matches!(st, ScanState::Cancelled | ScanState::Done),
        "{st:?}"
    );
}

#[test]
fn a_resumed_scan_computes_only_what_is_missing() {
    let (_t, mut app, rx) = tiny_with(24, &[], false);
    let v = app.drive;
    app.modules[v].scan_id = 77;
    app.modules[v].state = ScanState::Running;
    let hand_made = stats_from_singular_values(vec![10.0, 4.0, 3.0, 2.0, 1.0], 5, 5);
    for job in 0..4 {
        app.handle(Msg::Scan {
            scan_id: 77,
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
        scan_id: 77,
        event: ScanEvent::Finished {
            progress: Progress::default(),
            cancelled: true,
        },
    });
    assert_eq!(app.module().state, ScanState::Cancelled);
    // Away and back resumes it.
    app.update(Action::NextModule);
    app.update(Action::PrevModule);
    drain(&mut app, &rx);
    let v = app.drive;
    assert_eq!(app.modules[v].state, ScanState::Done);
    assert_eq!(
        app.modules[v].progress.total, 20,
        "24 layers, 4 already known"
    );
    assert_eq!(app.modules[v].count(|k| k == Kind::Pending), 0);
    // The known ones were not recomputed (the real matrices have another spectrum).
    assert_eq!(app.modules[v].cells[3].stats(), Some(&hand_made));
    assert_ne!(app.modules[v].cells[4].stats(), Some(&hand_made));
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
    let (tx, _rx) = crossbeam_channel::unbounded();
    let mut app = App::for_scan_file(&p, entries, tx).unwrap();
    assert_eq!(app.num_layers, 4);
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
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(app.status.as_ref().unwrap().kind, StatusKind::Error);
    app.update(Action::CycleRule); // lowest 1 of the finite: layer 2 (0.25)
    assert_eq!(dropped(&app), vec![2]);
}

#[test]
fn clicking_a_bar_moves_the_cursor() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let (_t, mut app, _rx) = scanned();
    app.handle(Msg::Resize(120, 40));
    // 120 columns: 118 inside the border, 9 for the axis: 109 columns, 13 per layer at
    // most 8: bars start at column 10, layer 5 at 10 + 5 * 8 = 50.
    let click = |app: &mut App, column: u16, row: u16| {
        app.handle(Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }));
    };
    click(&mut app, 52, 10);
    assert_eq!(app.cursor, 5);
    click(&mut app, 10, 10);
    assert_eq!(app.cursor, 0);
    // Outside the bars: nothing moves.
    click(&mut app, 5, 10);
    click(&mut app, 52, 0);
    assert_eq!(app.cursor, 0);
}

#[test]
fn long_summaries_elide_whole_ranges_but_keep_the_counts() {
    let (_t, mut app, _rx) = tiny_with(80, &[], false);
    for l in (1..80).step_by(3) {
        app.set_cursor(l);
        app.update(Action::Toggle);
    }
    // 27 layers dropped (1, 4, …, 79): kept runs [0,1) [2,4) … [77,79).
    let full = snrscope::ui::summary::summary_text(&app);
    assert!(full.starts_with("keep [0,1) [2,4) [5,7) "), "{full}");
    assert!(full.contains(" [74,76) [77,79)  53/80 layers  "), "{full}");
    let fitted = snrscope::ui::summary::summary_fitted(&app, 70);
    assert!(fitted.chars().count() <= 70, "{fitted}");
    assert!(fitted.starts_with("keep [0,1) [2,4) "), "{fitted}");
    assert!(fitted.contains(" … [77,79)  53/80 layers  "), "{fitted}");
    assert!(fitted.ends_with(" params"), "{fitted}");
}

#[test]
fn the_key_table_binds_each_key_once_and_describes_every_row() {
    use snrscope::ui::keys::BINDINGS;
    let mut seen = Vec::new();
    for b in BINDINGS {
        assert!(!b.help.is_empty() && !b.shown.is_empty());
        for k in b.keys {
            assert!(!seen.contains(k), "{k:?} is bound twice");
            seen.push(*k);
        }
    }
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
    ] {
        assert!(seen.contains(&k), "{k:?} is not bound");
    }
}

#[test]
fn dialog_path_editing() {
    let (_t, mut app, _rx) = scanned();
    app.handle(key(KeyCode::Char('w')));
    let ctrl = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    let input = |app: &App| match &app.overlay {
        Overlay::Dialog(d) => (d.input.clone(), d.cursor),
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
    assert!(!app.quit);
    assert_eq!(app.cursor, 0);
    assert_eq!(dropped(&app), vec![2, 5]);
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.overlay, Overlay::None);
}
