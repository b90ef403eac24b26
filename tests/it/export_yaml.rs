//! The mergekit YAML (golden text, parse-back), the Spectrum unfrozen YAML, and planning rules.

use snrscope_testkit::models as support;

use snrscope::{
    export::{self, ExportError, UnfrozenGroup},
    plan::{Plan, PlanError, Request, Rule, SnrTable, make_plan},
};

fn yi_plan() -> Plan {
    let mut snr = vec![Some(0.5); 60];
    for l in [12, 20, 21] {
        snr[l] = Some(f64::INFINITY);
    }
    Plan {
        model_ref: "01-ai/Yi-34B".into(),
        stack_prefix: "model.layers".into(),
        num_layers: 60,
        dropped: vec![12, 20, 21],
        module_type: "self_attn.v_proj".into(),
        reason: "self_attn.v_proj SNR infinite".into(),
        snr,
        dtype: "bfloat16".into(),
        mergekit_modules: None,
        metric: None,
    }
}

/// The issue's example, typed by hand.
const GOLDEN: &str = "\
# written by snrscope: dropped layers 12, 20, 21 (self_attn.v_proj SNR infinite) of 60
slices:
  - sources:
      - model: 01-ai/Yi-34B
        layer_range: [0, 12]
  - sources:
      - model: 01-ai/Yi-34B
        layer_range: [13, 20]
  - sources:
      - model: 01-ai/Yi-34B
        layer_range: [22, 60]
merge_method: passthrough
dtype: bfloat16
";

#[test]
fn golden_yaml_for_the_issue_example() {
    assert_eq!(export::mergekit_yaml(&yi_plan()).unwrap(), GOLDEN);
}

fn ranges_of(yaml: &str) -> (Vec<String>, Vec<[u64; 2]>, String, String) {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let mut models = Vec::new();
    let mut ranges = Vec::new();
    for s in v["slices"].as_sequence().unwrap() {
        let src = &s["sources"].as_sequence().unwrap();
        assert_eq!(src.len(), 1);
        models.push(src[0]["model"].as_str().unwrap().to_string());
        let r = src[0]["layer_range"].as_sequence().unwrap();
        ranges.push([r[0].as_u64().unwrap(), r[1].as_u64().unwrap()]);
    }
    (
        models,
        ranges,
        v["merge_method"].as_str().unwrap().to_string(),
        v["dtype"].as_str().unwrap().to_string(),
    )
}

#[test]
fn yaml_parses_back_to_the_kept_runs() {
    type Case<'a> = (usize, &'a [usize], &'a [[u64; 2]]);
    let cases: &[Case] = &[
        (60, &[12, 20, 21], &[[0, 12], [13, 20], [22, 60]]),
        (8, &[0], &[[1, 8]]),
        (8, &[7], &[[0, 7]]),
        (8, &[], &[[0, 8]]),
        (8, &[0, 1, 3, 6, 7], &[[2, 3], [4, 6]]),
    ];
    for (n, dropped, want) in cases {
        let mut p = yi_plan();
        p.num_layers = *n;
        p.dropped = dropped.to_vec();
        p.snr = vec![None; *n];
        let (models, ranges, method, dtype) = ranges_of(&export::mergekit_yaml(&p).unwrap());
        assert_eq!(&ranges, want, "{dropped:?}");
        assert!(models.iter().all(|m| m == "01-ai/Yi-34B"));
        assert_eq!(
            (method.as_str(), dtype.as_str()),
            ("passthrough", "bfloat16")
        );
    }
}

#[test]
fn awkward_model_names_are_quoted() {
    for name in [
        "yes",
        "a: b",
        "#x",
        "./models/my model",
        "123",
        "[x]",
        "it's",
    ] {
        let mut p = yi_plan();
        p.model_ref = name.into();
        let (models, _, _, _) = ranges_of(&export::mergekit_yaml(&p).unwrap());
        assert!(models.iter().all(|m| m == name), "{name}: {models:?}");
    }
}

#[test]
fn empty_plan_is_refused() {
    let mut p = yi_plan();
    p.num_layers = 3;
    p.dropped = vec![0, 1, 2];
    assert!(matches!(
        export::mergekit_yaml(&p),
        Err(ExportError::Plan(PlanError::EmptyPlan { num_layers: 3 }))
    ));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p.yml");
    assert!(export::write_mergekit_yaml(&p, &path, &Default::default(), false).is_err());
    assert!(!path.exists());
    // Out of range and unsorted plans too.
    p.dropped = vec![5];
    assert!(export::mergekit_yaml(&p).is_err());
    p.dropped = vec![1, 0];
    assert!(export::mergekit_yaml(&p).is_err());
}

#[test]
fn write_mergekit_yaml_writes_the_text() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("prune.yml");
    export::write_mergekit_yaml(&yi_plan(), &path, &Default::default(), false).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), GOLDEN);
    assert_eq!(support::names_in(tmp.path()), vec!["prune.yml"]);
}

fn table(snr: &[f64]) -> SnrTable {
    let mut t = SnrTable {
        stack_prefix: "model.layers".into(),
        num_layers: snr.len(),
        ..SnrTable::default()
    };
    for (l, &s) in snr.iter().enumerate() {
        t.set("self_attn.v_proj", l, s);
    }
    t.default_module = Some("self_attn.v_proj".into());
    t
}

#[test]
fn rules_and_overrides() {
    let inf = f64::INFINITY;
    let t = table(&[3.0, inf, 0.5, 2.0, inf, 0.1, f64::NAN]);
    let plan = |c: Request| make_plan(&t, &c, "m", "bfloat16");
    let p = plan(Request::default()).unwrap();
    assert_eq!(p.dropped, vec![1, 4]);
    assert_eq!(p.snr[6], None, "NaN counts as unknown");
    let p = plan(Request {
        rule: Rule::Lowest(2),
        ..Request::default()
    })
    .unwrap();
    assert_eq!(p.dropped, vec![2, 5]);
    let p = plan(Request {
        rule: Rule::Below(1.0),
        drop: vec![6],
        keep: vec![5],
        ..Request::default()
    })
    .unwrap();
    assert_eq!(p.dropped, vec![2, 6]);
    assert_eq!(
        p.reason,
        "self_attn.v_proj SNR below 1; dropped by hand: 6; kept by hand: 5"
    );
    // Refusals: out of range, both lists, nothing left, unknown module.
    assert!(
        plan(Request {
            drop: vec![7],
            ..Request::default()
        })
        .is_err()
    );
    assert!(
        plan(Request {
            drop: vec![2],
            keep: vec![2],
            ..Request::default()
        })
        .is_err()
    );
    let all = Request {
        drop: (0..7).collect(),
        ..Request::default()
    };
    assert!(matches!(plan(all), Err(PlanError::EmptyPlan { .. })));
    let err = plan(Request {
        module: Some("mlp.up_proj".into()),
        ..Request::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mlp.up_proj") && err.contains("self_attn.v_proj"),
        "{err}"
    );
}

#[test]
fn unfrozen_yaml_matches_spectrum() {
    let inf = f64::INFINITY;
    let groups = vec![
        UnfrozenGroup {
            module_type: "mlp.down_proj".into(),
            modules: (0..7)
                .map(|l| {
                    (
                        format!("model.layers.{l}.mlp.down_proj"),
                        [0.3, 0.9, 0.1, inf, 0.5, 0.7, 0.2][l],
                    )
                })
                .collect(),
        },
        UnfrozenGroup {
            module_type: "self_attn.v_proj".into(),
            modules: (0..4)
                .map(|l| {
                    (
                        format!("model.layers.{l}.self_attn.v_proj"),
                        [1.0, 4.0, 3.0, 2.0][l],
                    )
                })
                .collect(),
        },
    ];
    // 7 * 50 / 100 = 3.5 -> 3 (Python's int()); 4 * 50 / 100 = 2.
    let want = "\
# written by snrscope: top 50% of layers by SNR per module type (Spectrum)
unfrozen_parameters:
- ^lm_head.weight$
- ^model.embed_tokens.weight$
# mlp.down_proj layers
- model.layers.3.mlp.down_proj
- model.layers.1.mlp.down_proj
- model.layers.5.mlp.down_proj
# self_attn.v_proj layers
- model.layers.1.self_attn.v_proj
- model.layers.2.self_attn.v_proj
";
    assert_eq!(export::unfrozen_yaml(&groups, 50.0).unwrap(), want);
    let v: serde_yaml::Value = serde_yaml::from_str(want).unwrap();
    assert_eq!(v["unfrozen_parameters"].as_sequence().unwrap().len(), 7);
    assert!(export::unfrozen_yaml(&groups, 150.0).is_err());
}
