//! A probe's metrics in the explorer (`snrscope P.json`, `snrscope MODEL --probe P.json`): tabs
//! beside the SNR, the rules on them worked out by hand from the file's numbers, `d` letting
//! one drive the choice (one undoable step), `p` computing what it proposes, and the refusals.

use std::path::Path;

use serde_json::json;

use super::tiny_app;
use crate::ui::{action::Action, app::App, effect::Effect, state::document::Kind};
use snrscope::plan::Rule;

/// Six layers; the numbers are chosen so every rule's answer can be read off by eye.
/// BI lowest first: 1 (0.05), 3 (0.08), 5 (0.10), 2, 0, 4.
/// Blocks of 2 (entry l = layers l, l+1): lowest at 2 (0.12), then 4 (0.20), then 1 (0.30).
fn probe_json(fingerprint: &str, prefix: &str) -> serde_json::Value {
    json!({
        "snrscope_probe": {"format": 1, "written_by": "hand"},
        "model": "hand-made",
        "model_type": "llama",
        "model_fingerprint": fingerprint,
        "stack_prefix": prefix,
        "layers": 6,
        "hidden": 8,
        "text": "a hand-made probe",
        "samples": 2,
        "tokens": 40,
        "block_influence": [0.30, 0.05, 0.20, 0.08, 0.50, 0.10],
        "angular_distance": {
            "1": [0.31, 0.11, 0.21, 0.13, 0.41, 0.16],
            "2": [0.40, 0.30, 0.12, 0.35, 0.20]
        },
        "perplexity": {"original": 10.0, "without_layer": [90.0, 11.0, 13.0, 12.0, 50.0, 10.5]}
    })
}

fn write(dir: &Path, v: &serde_json::Value) -> std::path::PathBuf {
    let p = dir.join("p.json");
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn label_index(app: &App, label: &str) -> usize {
    app.doc()
        .modules
        .iter()
        .position(|m| m.label == label)
        .unwrap_or_else(|| panic!("no tab {label}"))
}

fn show(app: &mut App, label: &str) {
    let target = label_index(app, label);
    while app.view().current != target {
        app.update(Action::NextModule);
    }
}

#[test]
fn a_probe_file_opens_alone_and_its_rules_choose_as_worked_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), &probe_json("f", "model.layers"));
    let probe = snrscope::probe::read(&path).unwrap();
    let mut app = App::for_probe_file(&path, &probe);
    let labels: Vec<&str> = app.doc().modules.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["BI", "angle·1", "angle·2", "ppl−1"]);
    // Block Influence drives `lowest K` (K = 6/8, at least 1): the lowest, layer 1.
    assert_eq!(app.drive_module().label, "BI");
    assert_eq!(app.choice().rule, Rule::Lowest(1));
    assert_eq!(app.choice().selection().dropped(), vec![1]);
    assert!(!app.unsaved(), "the starting choice is not a change");
    app.update(Action::RuleUp);
    assert_eq!(app.choice().selection().dropped(), vec![1, 3]);
    app.update(Action::RuleUp);
    assert_eq!(app.choice().selection().dropped(), vec![1, 3, 5]);
    assert_eq!(
        app.rule_text(),
        "drop the 3 layers with the lowest Block Influence"
    );
    // A hand choice on top: keep 3.
    app.update(Action::Right);
    app.update(Action::Right);
    app.update(Action::Right);
    app.update(Action::Toggle);
    assert_eq!(app.choice().selection().dropped(), vec![1, 5]);

    // The blocks of 2 drive: the best block, 2–3, and the hand choice still keeps 3.
    show(&mut app, "angle·2");
    app.update(Action::DriveHere);
    assert_eq!(app.drive_module().label, "angle·2");
    assert_eq!(app.choice().rule, Rule::Lowest(3), "the rule is kept");
    // Three disjoint blocks, lowest first: 2–3 (0.12), 4–5 (0.20), 0–1 (0.40; 1–2 overlaps).
    assert_eq!(app.choice().selection().dropped(), vec![0, 1, 2, 4, 5]);
    app.update(Action::RuleDown);
    app.update(Action::RuleDown);
    assert_eq!(app.choice().rule, Rule::Lowest(1));
    assert_eq!(app.choice().selection().dropped(), vec![2]);
    assert_eq!(
        app.rule_text(),
        "drop the block of 2 layers with the lowest angular distance (n=2), 1 changed by hand"
    );
    let plan = app.plan();
    assert_eq!(plan.dropped, vec![2]);
    assert_eq!(
        plan.reason,
        "the block of 2 layers with the lowest angular distance (n=2); kept by hand: 3"
    );
    assert!(
        plan.metric.as_deref().unwrap().contains("arccos"),
        "{:?}",
        plan.metric
    );
    // Forget the hand choice: the whole block goes.
    app.update(Action::Forget);
    assert_eq!(app.choice().selection().dropped(), vec![2, 3]);

    // Undo walks back over the forget and the drive switch, one step each.
    app.update(Action::Undo);
    app.update(Action::Undo);
    app.update(Action::Undo);
    app.update(Action::Undo);
    assert_eq!(app.drive_module().label, "BI");
    assert_eq!(app.choice().selection().dropped(), vec![1, 5]);

    // The perplexity without each layer: lowest first 5 (10.5), 1 (11.0), 3 (12.0).
    show(&mut app, "ppl−1");
    app.update(Action::DriveHere);
    assert_eq!(
        app.choice().selection().dropped(),
        vec![1, 5],
        "3 kept by hand"
    );

    // The sorted view lists a metric lowest first.
    assert_eq!(app.sorted_layers(), vec![5, 1, 3, 2, 4, 0]);
    // Blocks past the end have no bar; nothing is infinite.
    show(&mut app, "angle·2");
    let m = app.module();
    assert_eq!(m.cells[5].kind(), Kind::Missing);
    assert_eq!(m.cells[2].kind(), Kind::Finite(0.12));
}

/// A metric that drives from the seed's infinite rule starts from its own rule (`lowest K`,
/// the best block): no metric is ever infinite, so the infinite rule would drop nothing.
#[test]
fn with_a_model_the_metrics_sit_beside_the_snr_and_p_evaluates_their_choice() {
    let (tmp, mut app, _) = tiny_app(1, "org/tiny-model");
    let model = app.model().unwrap().clone();
    let fp = snrscope::spectrum::parts::fingerprint(&model);
    let mut v = probe_json(&fp, "model.layers");
    // The tiny model has 8 layers.
    v["layers"] = json!(8);
    v["block_influence"] = json!([0.30, 0.05, 0.20, 0.08, 0.50, 0.10, 0.60, 0.70]);
    v["angular_distance"] = json!({"1": [0.31, 0.11, 0.21, 0.13, 0.41, 0.16, 0.5, 0.6],
                                   "2": [0.40, 0.30, 0.12, 0.35, 0.20, 0.9, 0.9]});
    v["perplexity"]["without_layer"] = json!([90.0, 11.0, 13.0, 12.0, 50.0, 10.5, 60.0, 70.0]);
    let path = write(tmp.path(), &v);
    crate::ui::add_probe_file(&mut app, &path).unwrap();
    let snr_tabs = app
        .doc()
        .modules
        .iter()
        .filter(|m| m.metric.is_none())
        .count();
    assert_eq!(app.doc().modules.len(), snr_tabs + 4);
    assert_eq!(app.choice().rule, Rule::Infinite, "the SNR still drives");
    show(&mut app, "angle·2");
    let effects = app.update(Action::DriveHere);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::StartScan { .. })),
        "a metric is never scanned: {effects:?}"
    );
    assert_eq!(app.choice().rule, Rule::Lowest(1));
    assert_eq!(app.choice().selection().dropped(), vec![2, 3]);
    // `p`: the original and the choice the metric proposes.
    let effects = app.update(Action::Evaluate);
    let choices = effects
        .iter()
        .find_map(|e| match e {
            Effect::StartEval { choices, .. } => Some(choices.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no perplexity started: {effects:?}"));
    assert_eq!(choices, vec![vec![], vec![2, 3]]);
    // `s` on a metric: no spectrum, said so.
    app.update(Action::ToggleSpectrum);
    assert!(!app.view().spectrum_zoom);
    assert!(
        app.status().unwrap().text.contains("probe's metric"),
        "{:?}",
        app.status()
    );
    // Back to the SNR with d twice: `d` on the driving tab returns to the default module.
    app.update(Action::DriveHere);
    assert_eq!(app.drive_module().name, "self_attn.v_proj");
}

#[test]
fn a_probe_of_other_weights_or_another_stack_is_refused_naming_the_file() {
    let (tmp, mut app, _) = tiny_app(1, "org/tiny-model");
    let mut v = probe_json("not-this-model", "model.layers");
    v["layers"] = json!(8);
    v["block_influence"] = json!(vec![0.1; 8]);
    v["angular_distance"] = json!({"1": vec![0.1; 8]});
    v.as_object_mut().unwrap().remove("perplexity");
    let path = write(tmp.path(), &v);
    let e = crate::ui::add_probe_file(&mut app, &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("p.json: is a probe of other weights (hand-made)"),
        "{e}"
    );
    // Right weights, wrong stack length.
    let fp = snrscope::spectrum::parts::fingerprint(app.model().unwrap());
    let path = write(tmp.path(), &probe_json(&fp, "model.layers"));
    let e = crate::ui::add_probe_file(&mut app, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("probes `model.layers` with 6 layers"), "{e}");
    // Not a probe file at all.
    let scan = tmp.path().join("scan.json");
    std::fs::write(&scan, "{\"results\": {}}").unwrap();
    let e = crate::ui::add_probe_file(&mut app, &scan)
        .unwrap_err()
        .to_string();
    assert!(e.contains("scan.json: is not a probe file"), "{e}");
    assert!(app.doc().modules.iter().all(|m| m.metric.is_none()));
}

/// A probe file alone on an 80×24 terminal: the metric's name and which way is "drop" in the
/// title, its own axis (from 0, in its units), the choice's marks under the lowest bar.
#[test]
fn a_metric_tab_draws_with_its_own_axis() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), &probe_json("f", "model.layers"));
    let probe = snrscope::probe::read(&path).unwrap();
    let mut app = App::for_probe_file(&path, &probe);
    app.update(Action::Right);
    let buf = super::render::draw(&mut app, 80, 24);
    let screen = super::render::text(&buf);
    insta::assert_snapshot!("probe_bi_80x24", screen);
    assert!(
        screen.contains("Block Influence · low = drop first"),
        "{screen}"
    );
    assert!(screen.contains("(probe file)"), "{screen}");
    // The top of the axis is the largest value, 0.5, on a linear scale from 0.
    assert!(screen.contains("0.5"), "{screen}");
    assert!(screen.contains("Block Influence 5.000000e-2"), "{screen}");
    assert!(screen.contains("rank 1 of 6"), "{screen}");
}

/// `P` in a whole session: the probe runs in the background (the progress line says so), its
/// tabs appear beside the SNR with the numbers a direct `snrscope::probe` run on the same 8
/// samples gives (the explorer's samples are the CLI's defaults: 8 × max-tokens/8 of the text),
/// a second `P` does not probe twice, and Esc stops a running probe.
#[test]
fn p_probes_the_model_in_the_background_and_adds_its_tabs() {
    use super::Session;
    use crate::ui::{app::AppOptions, eval_text::EvalSetup};
    use snrscope::{
        checkpoint::Model,
        demo::{ModelSpec, write_model},
        probe::{ProbeOptions, Samples},
        util::cancel::CancelToken,
    };
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-model");
    write_model(&dir, &ModelSpec::tiny(8, &[2, 5])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let setup = EvalSetup {
        max_tokens: 256,
        threads: 2,
        ..EvalSetup::default()
    };
    let options = AppOptions {
        autoscan: true,
        threads: 2,
        eval: setup,
        ..AppOptions::default()
    };
    let mut s = Session::new(App::for_model(model.clone(), options.clone()).unwrap());
    s.drain();
    let before = s.doc().modules.len();
    s.update(Action::Probe);
    assert!(s.probes().running().is_some());
    s.drain();
    assert!(s.probes().running().is_none());
    let status = s.status().unwrap().text.clone();
    assert!(
        status.starts_with("probed 8 samples, 256 tokens"),
        "{status}"
    );
    let labels: Vec<String> = s.doc().modules[before..]
        .iter()
        .map(|m| m.label.clone())
        .collect();
    let mut want = vec!["BI".to_string()];
    want.extend((1..=8).map(|n| format!("angle·{n}")));
    assert_eq!(labels, want);

    // The same samples straight through the library.
    let (ids, _, _) = snrscope::forward::tokens::model_text_tokens(&model, None).unwrap();
    let samples = Samples::from_stream(&ids, 8, 32);
    let (collected, _) = snrscope::probe::probe(
        &model,
        8,
        &samples,
        &ProbeOptions {
            max_block: 8,
            ppl: false,
            threads: 1,
            check_memory: false,
        },
        None,
        &CancelToken::default(),
        |_| {},
    )
    .unwrap()
    .unwrap();
    let stats: Vec<_> = collected.stats.iter().collect();
    let m = snrscope::probe::metrics(8, &stats, None, 1);
    let shown: Vec<f64> = s.doc().modules[before]
        .cells
        .iter()
        .map(|c| c.snr().unwrap())
        .collect();
    assert_eq!(shown, m.block_influence);
    let angle3: Vec<Option<f64>> = s.doc().modules[before + 3].snr();
    assert_eq!(
        angle3[..6],
        m.angular[2].iter().map(|&v| Some(v)).collect::<Vec<_>>()[..]
    );
    assert_eq!(angle3[6..], [None, None]);

    // Shown already: a second P does nothing but say so.
    s.update(Action::Probe);
    assert!(s.probes().running().is_none());
    assert!(s.status().unwrap().text.contains("shown already"));

    // Esc stops a running probe (effects only: nothing runs).
    let mut app = App::for_model(
        model,
        AppOptions {
            autoscan: false,
            ..options
        },
    )
    .unwrap();
    let effects = app.update(Action::Probe);
    let id = effects
        .iter()
        .find_map(|e| match e {
            Effect::StartProbe { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a probe started");
    let effects = app.update(Action::Cancel);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CancelProbe { id: i } if *i == id)),
        "{effects:?}"
    );
}
