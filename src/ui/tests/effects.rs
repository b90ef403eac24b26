//! The state machine alone: actions and synthetic messages go in, effects come out. No thread
//! starts and nothing is written; what the runtime would do is read off the effects, and what
//! it would report is made here. (The model folder is only opened for its headers: the
//! explorer needs a model's layout to have layers.)

use std::{path::PathBuf, sync::Arc, time::Duration};

use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    export::ExportSummary,
    plan::Mark,
    spectrum::{
        scan::{MatrixResult, Progress, ScanEvent},
        snr::{Method, stats_from_singular_values},
    },
};
use tempfile::TempDir;

use super::scans_started;
use crate::ui::{
    action::Action,
    app::{App, AppOptions},
    effect::Effect,
    msg::{ExportMsg, Msg},
    state::{
        document::ScanState,
        overlay::{DialogKind, Overlay, Question},
    },
    write_job::{Content, Outcome, WriteJob},
};

/// An 8-layer model whose v_proj layers 2 and 5 have infinite SNR, its first scan asked for.
fn app() -> (TempDir, App, u64) {
    super::tiny_app(3, "org/tiny")
}

fn result(scan_id: u64, job: usize, infinite: bool) -> Msg {
    let s = if infinite {
        // A clustered spectrum: the IQR noise estimate puts every value above the threshold.
        vec![1.5, 1.4, 1.3, 1.2]
    } else {
        vec![10.0, 4.0, 3.0, 2.0, 1.0]
    };
    let n = s.len();
    Msg::Scan {
        scan_id,
        event: ScanEvent::Result {
            result: Box::new(MatrixResult {
                job,
                outcome: Ok(stats_from_singular_values(s, n, 8)),
                elapsed: Duration::from_millis(1),
                cached: false,
                method: Method::Svd,
            }),
            progress: Progress::default(),
        },
    }
}

fn finished(scan_id: u64, cancelled: bool) -> Msg {
    Msg::Scan {
        scan_id,
        event: ScanEvent::Finished {
            progress: Progress::default(),
            cancelled,
        },
    }
}

/// Every layer's result (2 and 5 infinite), then the end.
fn scan_all(app: &mut App, scan_id: u64) -> Vec<Effect> {
    let mut effects = Vec::new();
    for job in 0..8 {
        effects.extend(app.handle(result(scan_id, job, job == 2 || job == 5)));
    }
    effects.extend(app.handle(finished(scan_id, false)));
    effects
}

fn status(app: &App) -> String {
    app.status().map(|s| s.text.clone()).unwrap_or_default()
}

fn write_job(effects: Vec<Effect>) -> Box<WriteJob> {
    match effects.as_slice() {
        [Effect::Write(job)] => job.clone(),
        other => panic!("expected one write, got {other:?}"),
    }
}

#[test]
fn the_first_scan_is_asked_for_with_every_layers_value_projection() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(8, &[])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let mut app = App::for_model(
        model,
        AppOptions {
            autoscan: true,
            threads: 3,
            method: Method::Gram,
            ..AppOptions::default()
        },
    )
    .unwrap();
    match app.take_effects().as_slice() {
        [Effect::StartScan { jobs, options, .. }] => {
            let tensors: Vec<&str> = jobs.iter().map(|j| j.tensor.as_str()).collect();
            let expected: Vec<String> = (0..8)
                .map(|l| format!("model.layers.{l}.self_attn.v_proj.weight"))
                .collect();
            assert_eq!(tensors, expected);
            assert_eq!((options.threads, options.method), (3, Method::Gram));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.busy(), "the state knows a scan runs");
    assert!(app.take_effects().is_empty(), "asked once");
}

#[test]
fn results_of_the_asked_scan_fill_the_bars_and_the_rule_follows() {
    let (_t, mut app, id) = app();
    assert!(app.handle(result(id, 2, true)).is_empty());
    assert_eq!(app.choice().selection().dropped(), vec![2]);
    // A late result of another scan changes nothing.
    app.handle(result(id + 1, 5, true));
    assert_eq!(app.choice().selection().dropped(), vec![2]);
    let effects = scan_all(&mut app, id);
    assert!(effects.is_empty(), "nothing else to scan: {effects:?}");
    assert_eq!(app.choice().selection().dropped(), vec![2, 5]);
    assert_eq!(app.module().state, ScanState::Done);
    assert!(!app.busy());
}

#[test]
fn esc_asks_to_cancel_the_scan_and_its_end_says_so() {
    let (_t, mut app, id) = app();
    app.handle(result(id, 0, false));
    let effects = app.update(Action::Cancel);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelScan { id: c }] if *c == id),
        "{effects:?}"
    );
    assert_eq!(status(&app), "cancelling the scan…");
    app.handle(finished(id, true));
    assert_eq!(app.module().state, ScanState::Cancelled);
    assert!(!app.busy());
    // Shown again, it resumes with only what is missing: 7 of 8.
    match app.update(Action::NextModule).as_slice() {
        [Effect::StartScan { .. }] => {}
        other => panic!("the next module is scanned: {other:?}"),
    }
}

#[test]
fn a_second_module_waits_and_starts_when_the_first_ends() {
    let (_t, mut app, id) = app();
    let effects = app.update(Action::NextModule);
    assert!(
        effects.is_empty(),
        "queued behind the running scan: {effects:?}"
    );
    assert_eq!(app.module().state, ScanState::Queued);
    let effects = scan_all(&mut app, id);
    let next = scans_started(&effects);
    assert_eq!(next.len(), 1, "{effects:?}");
    assert_ne!(next[0], id, "a new scan, with its own id");
    assert_eq!(app.module().state, ScanState::Running);
}

#[test]
fn p_asks_for_the_original_then_the_choice_and_only_once() {
    let (_t, mut app, id) = app();
    scan_all(&mut app, id);
    let effects = app.update(Action::Evaluate);
    match effects.as_slice() {
        [Effect::StartEval { choices, text, .. }] => {
            assert_eq!(choices, &vec![vec![], vec![2, 5]]);
            assert!(text.is_none(), "the runtime reads the text the first time");
        }
        other => panic!("{other:?}"),
    }
    assert!(app.busy());
    assert!(app.update(Action::Evaluate).is_empty(), "one at a time");
    assert!(status(&app).contains("being computed"), "{}", status(&app));
    // Quitting stops it (and nothing else runs).
    let effects = app.update(Action::ForceQuit);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelEval { .. }]),
        "{effects:?}"
    );
    assert!(app.quit());
}

#[test]
fn the_yaml_is_asked_for_and_the_outcome_closes_or_reopens_the_dialog() {
    let (_t, mut app, id) = app();
    scan_all(&mut app, id);
    app.update(Action::Toggle); // layer 0 dropped by hand
    assert!(app.unsaved());
    assert!(
        app.update(Action::WriteYaml).is_empty(),
        "a dialog, no write yet"
    );
    let job = write_job(app.update(Action::Submit));
    assert_eq!(job.dialog.kind, DialogKind::Yaml);
    assert_eq!(job.dialog.path(), "tiny-model-pruned.yml");
    assert!(!job.replace);
    match &job.content {
        Content::MergekitYaml(plan) => {
            assert_eq!(plan.dropped, vec![0, 2, 5]);
            assert_eq!(plan.model_ref, "org/tiny");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*app.overlay(), Overlay::None, "closed while it is written");

    // The file exists: the dialog comes back asking to replace it.
    let there = PathBuf::from("/somewhere/tiny-model-pruned.yml");
    app.handle(Msg::Written {
        job: job.clone(),
        outcome: Outcome::Exists(there.clone()),
    });
    match app.overlay() {
        Overlay::Dialog(d) => assert_eq!(d.replace, Some(there.clone())),
        o => panic!("{o:?}"),
    }
    // Yes: the same write again, replacing.
    let again = write_job(app.update(Action::Answer(true)));
    assert!(again.replace);
    // It failed: the dialog comes back with the reason, the choice is still unwritten.
    app.handle(Msg::Written {
        job: again.clone(),
        outcome: Outcome::Failed("disk full".into()),
    });
    match app.overlay() {
        Overlay::Dialog(d) => assert_eq!(d.error.as_deref(), Some("path: disk full")),
        o => panic!("{o:?}"),
    }
    assert!(app.unsaved());
    // Written: closed, said, and the choice counts as saved.
    app.update(Action::Cancel);
    app.handle(Msg::Written {
        job: again,
        outcome: Outcome::Written(there),
    });
    assert_eq!(*app.overlay(), Overlay::None);
    assert!(
        status(&app).starts_with("wrote /somewhere/tiny-model-pruned.yml (keep [1,2) [3,5) [6,8)"),
        "{}",
        status(&app)
    );
    assert!(!app.unsaved());
}

#[test]
fn the_export_is_asked_for_and_esc_asks_it_to_stop() {
    let (_t, mut app, id) = app();
    // Before the scan ends, `e` asks first: unscanned layers would be kept.
    app.update(Action::ExportModel);
    assert!(matches!(
        app.overlay(),
        Overlay::Question(Question::ExportAnyway(_))
    ));
    app.update(Action::Answer(false));
    scan_all(&mut app, id);
    app.update(Action::ExportModel);
    let job = write_job(app.update(Action::Submit));
    match &job.content {
        Content::Model { plan, .. } => assert_eq!(plan.dropped, vec![2, 5]),
        other => panic!("{other:?}"),
    }
    let out = PathBuf::from("/out/tiny-model-pruned");
    app.handle(Msg::Written {
        job,
        outcome: Outcome::Started(out.clone()),
    });
    assert!(app.export().is_some());
    assert!(app.busy());
    let effects = app.update(Action::Cancel);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelExport]),
        "{effects:?}"
    );
    app.handle(Msg::Export(ExportMsg::Done(Err("cancelled".into()))));
    assert!(app.export().is_none());
    assert_eq!(
        status(&app),
        "export cancelled, nothing written under /out/tiny-model-pruned"
    );
    // A finished export marks the choice saved and says what it wrote.
    app.update(Action::Toggle);
    app.update(Action::ExportModel);
    let job = write_job(app.update(Action::Submit));
    app.handle(Msg::Written {
        job,
        outcome: Outcome::Started(out.clone()),
    });
    app.handle(Msg::Export(ExportMsg::Done(Ok(ExportSummary {
        out: out.clone(),
        tensors: 42,
        shards: 1,
        bytes: 1_500_000,
        copied: Vec::new(),
        skipped: Vec::new(),
        notes: Vec::new(),
    }))));
    assert_eq!(
        status(&app),
        "exported 42 tensors (1 shard, 1.5 MB) to /out/tiny-model-pruned"
    );
    assert!(!app.unsaved());
    assert_eq!(app.choice().mark(0), Mark::DropManual);
}
