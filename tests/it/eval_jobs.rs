//! The background evaluation API the explorer uses: events in order, the state they fold into,
//! cancellation.

use std::sync::Arc;

use snrscope::{
    checkpoint::Model,
    forward::{self, EvalEvent, EvalOptions, EvalState, Stage, tokens},
    util::cancel::CancelToken,
};
use snrscope_testkit::eval_models::{self, ArchSpec, FIXTURE_DROPPED};

fn fixture(name: &str) -> (tempfile::TempDir, Arc<Model>, Arc<[u32]>) {
    let spec = ArchSpec::fixtures()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    eval_models::write_model(dir.path(), &spec).unwrap();
    let ids = tokens::tokenize(
        &dir.path().join("tokenizer.json"),
        &eval_models::fixture_text(&spec),
    )
    .unwrap();
    let model = Arc::new(Model::open(dir.path()).unwrap());
    (dir, model, ids.into())
}

#[test]
fn a_job_reports_progress_then_results_then_finishes() {
    let (_dir, model, ids) = fixture("phi3");
    let mut state = EvalState::default();
    let choices = state.choices_for(FIXTURE_DROPPED);
    assert_eq!(choices, vec![vec![], FIXTURE_DROPPED.to_vec()]);
    state.started();
    let (handle, rx) = forward::start_channel(model, ids, choices, EvalOptions::default());
    let events: Vec<EvalEvent> = rx.iter().collect();
    handle.join();
    let mut results = 0;
    let mut saw_loading = false;
    for e in &events {
        state.apply(e);
        match e {
            EvalEvent::Progress {
                stage: Stage::Loading { .. },
                ..
            } => saw_loading = true,
            EvalEvent::Result { result, .. } => {
                assert!(result.is_ok(), "{result:?}");
                results += 1;
            }
            _ => {}
        }
    }
    assert!(saw_loading);
    assert_eq!(results, 2);
    assert_eq!(
        events.last(),
        Some(&EvalEvent::Finished { cancelled: false })
    );
    assert!(!state.running && state.error.is_none());
    // The numbers are transformers' (the reference test checks them to 1e-4).
    let summary = state.summary().expect("both known");
    assert_eq!(summary.dropped, FIXTURE_DROPPED);
    assert!(!summary.is_stale(FIXTURE_DROPPED) && summary.is_stale(&[1]));
    assert!(
        summary.text().starts_with("ppl 797.1 → 774.9 (-2.8 %)"),
        "{}",
        summary.text()
    );
    // Nothing left to compute for the same choice; only the new one for another.
    assert!(state.choices_for(FIXTURE_DROPPED).is_empty());
    assert_eq!(state.choices_for(&[3]), vec![vec![3]]);
}

#[test]
fn cancelling_stops_the_job() {
    let (_dir, model, ids) = fixture("gemma2");
    let (handle, rx) =
        forward::start_channel(model, ids, vec![vec![], vec![1]], EvalOptions::default());
    handle.cancel();
    let events: Vec<EvalEvent> = rx.iter().collect();
    handle.join();
    assert_eq!(
        events.last(),
        Some(&EvalEvent::Finished { cancelled: true })
    );
    let results = events
        .iter()
        .filter(|e| matches!(e, EvalEvent::Result { .. }))
        .count();
    assert!(results < 2, "a cancelled job still scored everything");
    let mut state = EvalState::default();
    events.iter().for_each(|e| state.apply(e));
    assert!(!state.running);
}

#[test]
fn a_bad_choice_is_an_error_event_not_a_panic() {
    let (_dir, model, ids) = fixture("llama");
    let (handle, rx) =
        forward::start_channel(model, ids, vec![vec![0, 1, 2, 3]], EvalOptions::default());
    let events: Vec<EvalEvent> = rx.iter().collect();
    handle.join();
    let err = events
        .iter()
        .find_map(|e| match e {
            EvalEvent::Result { result: Err(e), .. } => Some(e.to_string()),
            _ => None,
        })
        .expect("an error result");
    assert!(err.contains("keep at least one"), "{err}");
}

/// Records what the hidden-state hook sees.
#[derive(Default)]
struct Seen {
    /// (choices, layer, source layer, first input value, first output value)
    layers: Vec<(Vec<usize>, usize, usize, f32, f32)>,
    finals: Vec<Vec<usize>>,
}

impl forward::HiddenObserver for Seen {
    fn layer(&mut self, site: &forward::Site, input: &[f32], output: &[f32]) {
        assert_eq!(input.len(), output.len());
        assert_eq!(input.len() % site.hidden, 0);
        self.layers.push((
            site.choices.to_vec(),
            site.layer,
            site.source_layer,
            input[0],
            output[0],
        ));
    }

    fn final_norm(&mut self, choices: &[usize], _: &[std::ops::Range<usize>], _: &[f32]) {
        self.finals.push(choices.to_vec());
    }
}

#[test]
fn the_hidden_state_hook_sees_each_layer_once_per_lane_and_the_shared_prefix_once() {
    let (_dir, model, ids) = fixture("llama");
    let mut seen = Seen::default();
    let results = forward::evaluate_hooked(
        &model,
        &ids,
        &[vec![], vec![2]],
        &EvalOptions::default(),
        &snrscope::util::cancel::CancelToken::default(),
        |_| {},
        forward::Hooks {
            logits: None,
            hidden: Some(&mut seen),
        },
    );
    assert!(results.iter().all(|r| matches!(r, Some(Ok(_)))));
    // Layers 0 and 1 run once for both choices; then the lanes part: the original runs 2 and
    // 3, the pruned model runs source layer 3 as its layer 2.
    let shape: Vec<(Vec<usize>, usize, usize)> = seen
        .layers
        .iter()
        .map(|l| (l.0.clone(), l.1, l.2))
        .collect();
    assert_eq!(
        shape,
        vec![
            (vec![0, 1], 0, 0),
            (vec![0, 1], 1, 1),
            (vec![0], 2, 2),
            (vec![0], 3, 3),
            (vec![1], 2, 3),
        ]
    );
    // Each layer's input is the previous one's output, within a lane.
    assert_eq!(seen.layers[1].3, seen.layers[0].4);
    assert_eq!(seen.layers[4].3, seen.layers[1].4);
    assert_eq!(seen.finals.len(), 2);
}

/// The numbers do not depend on the thread count, nor on what shares the pass (a choice alone,
/// or in lanes beside another): every kernel splits work by rows, never inside a sum.
#[test]
fn the_same_bits_on_any_thread_count_and_alone_or_together() {
    for name in ["gemma2", "llama", "qwen3-moe"] {
        let (_dir, model, ids) = fixture(name);
        let run = |threads: usize, choices: &[Vec<usize>]| -> Vec<u64> {
            let options = EvalOptions {
                threads,
                window: Some(24),
                ..Default::default()
            };
            let out = forward::evaluate(
                &model,
                &ids,
                choices,
                &options,
                &CancelToken::default(),
                |_| {},
                None,
            );
            out.into_iter()
                .map(|r| r.expect("ran").expect("evaluates").mean_nll.to_bits())
                .collect()
        };
        let both = [vec![], FIXTURE_DROPPED.to_vec()];
        let one = run(1, &both);
        assert_eq!(one, run(2, &both), "{name}: 1 vs 2 threads");
        assert_eq!(one[1..], run(2, &both[1..])[..], "{name}: pruned alone");
        assert_eq!(one[..1], run(1, &both[..1])[..], "{name}: original alone");
    }
}
