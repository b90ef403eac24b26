//! Generated hostile input for the two readers that take files from the internet: safetensors
//! headers (with the config and layer discovery behind them) and scan files (with the planning
//! and the explorer's layout behind them). 10,000 cases each; no panic, no abort, and memory
//! bounded: the process runs under a 4 GiB address-space limit (a runaway allocation aborts the
//! test instead of eating the machine) and its peak resident set must stay under 512 MiB.
//!
//! This binary holds only these tests, so the peak it measures is theirs.

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
};

use proptest::{prelude::*, test_runner::Config};
use snrscope::{
    checkpoint::Model,
    export,
    plan::{self, Request, Rule, SnrTable},
    scanfile,
    spectrum::snr::{self, SvdWorkspace},
};
use snrscope_testkit::memory;

const CASES: u32 = 10_000;
const ADDRESS_SPACE_LIMIT: u64 = 4 << 30;
const PEAK_RSS_LIMIT_KB: i64 = 512 * 1024;

// ---- safetensors headers ----

fn dtype() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["F32", "BF16", "F16", "F64"]).prop_map(String::from),
        1 => prop::sample::select(vec!["I8", "F8_E4M3", "U8"]).prop_map(String::from),
        1 => "[A-Z0-9_]{0,6}",
    ]
}

fn tensor_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0usize..6,
            prop::sample::select(vec!["self_attn.v_proj", "mlp.down_proj", "attn.c_attn"])
        )
            .prop_map(|(l, m)| format!("model.layers.{l}.{m}.weight")),
        (any::<u64>(), Just("self_attn.v_proj"))
            .prop_map(|(l, m)| format!("model.layers.{l}.{m}.weight")),
        "[a-z.0-9\\x00-\\x1f]{0,24}",
        Just("__metadata__".to_string()),
    ]
}

fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![16 => 1u64..12, 1 => Just(0u64), 1 => any::<u64>(), 1 => Just(1u64 << 40)]
}

/// A header as JSON text, mostly well-formed, with offsets that are right or wrong.
fn header() -> impl Strategy<Value = (String, usize)> {
    let honest = prop::bool::weighted(0.95);
    let tensor = (
        tensor_name(),
        dtype(),
        prop::collection::vec(dim(), 0..4),
        honest,
        0u64..64,
    );
    let data = prop_oneof![4 => Just(None), 1 => (0usize..300).prop_map(Some)];
    (prop::collection::vec(tensor, 0..6), data).prop_map(|(tensors, data_len)| {
        let mut obj = serde_json::Map::new();
        let mut off = 0u64;
        for (name, dtype, shape, honest, skew) in tensors {
            let bytes_per = match dtype.as_str() {
                "F64" => 8,
                "F32" => 4,
                "BF16" | "F16" => 2,
                _ => 1,
            };
            let n = shape
                .iter()
                .try_fold(bytes_per, |a: u64, &d| a.checked_mul(d))
                .unwrap_or(u64::MAX);
            let end = if honest {
                off.saturating_add(n)
            } else {
                off.saturating_add(skew)
            };
            obj.insert(
                name,
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [off, end]}),
            );
            off = end;
        }
        let exact = usize::try_from(off)
            .ok()
            .filter(|&n| n <= 1 << 20)
            .unwrap_or(0);
        (
            serde_json::Value::Object(obj).to_string(),
            data_len.unwrap_or(exact),
        )
    })
}

/// The file: length prefix (right or wrong), header text (maybe corrupted), data.
fn safetensors_file() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![8 => Just(None), 1 => any::<u64>().prop_map(Some)];
    let flips = prop_oneof![
        6 => Just(Vec::new()),
        1 => prop::collection::vec((any::<usize>(), any::<u8>()), 1..3),
    ];
    (header(), prefix, flips).prop_map(|((text, data_len), prefix, flips)| {
        let mut h = text.into_bytes();
        for (at, b) in flips {
            if !h.is_empty() {
                let i = at % h.len();
                h[i] = b;
            }
        }
        let mut out = prefix.unwrap_or(h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.resize(out.len() + data_len, 0x3f);
        out
    })
}

fn config() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u64..10).prop_map(|n| format!("{{\"num_hidden_layers\": {n}}}")),
        1 => any::<u64>().prop_map(|n| format!("{{\"num_hidden_layers\": {n}, \"torch_dtype\": \"bfloat16\"}}")),
        1 => Just("{\"text_config\": {\"num_hidden_layers\": 3}}".to_string()),
        1 => Just("[[[[[[".to_string()),
        1 => Just(format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
    ]
}

/// Cases that got past the reader (a fuzzer that never does tests nothing behind it).
static DEEP: AtomicU32 = AtomicU32::new(0);

/// Opens the model and does with it what a scan and an export plan do, on small matrices.
fn exercise_model(dir: &Path) {
    let Ok(model) = Model::open(dir) else {
        return;
    };
    DEEP.fetch_add(1, Ordering::Relaxed);
    let _ = model.dominant_dtype();
    let _ = plan::model_dtype(&model);
    let Ok(stack) = model.main_stack() else {
        return;
    };
    let mut buf = Vec::new();
    let mut ws = SvdWorkspace::default();
    for t in &model.tensors {
        if t.num_bytes() <= 4096
            && let Ok((r, c)) = model.read_matrix(t, &mut buf)
        {
            let _ = snr::matrix_snr(&buf, r, c, faer::Par::Seq, &mut ws);
        }
    }
    let sizes = snrscope::plan::sizes(&model, stack, &[0]);
    assert!(sizes.params_after <= sizes.params_before);
}

#[test]
fn fuzzed_safetensors_headers_never_panic() {
    // The limit and the peak belong to the whole process: measured alone.
    memory::in_own_process(
        "fuzz_readers::fuzzed_safetensors_headers_never_panic",
        || {
            memory::limit_address_space(ADDRESS_SPACE_LIMIT);
            let dir = tempfile::tempdir().unwrap();
            let mut runner = proptest::test_runner::TestRunner::new(Config {
                cases: CASES,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&(safetensors_file(), config()), |(file, config)| {
                    std::fs::write(dir.path().join("model.safetensors"), &file).unwrap();
                    std::fs::write(dir.path().join("config.json"), &config).unwrap();
                    exercise_model(dir.path());
                    Ok(())
                })
                .unwrap();
            let deep = DEEP.swap(0, Ordering::Relaxed);
            let peak = memory::peak_rss_kb();
            println!(
                "{deep} of {CASES} headers opened; peak RSS {} MiB",
                peak / 1024
            );
            assert!(
                deep > CASES / 20,
                "only {deep} cases opened: the generator is off"
            );
            assert!(peak < PEAK_RSS_LIMIT_KB, "peak RSS {peak} kB");
        },
    );
}

// ---- scan files ----

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|x| if x.is_finite() {
            format!("{x:?}")
        } else {
            "NaN".into()
        }),
        Just("Infinity".to_string()),
        Just("-Infinity".to_string()),
        Just("NaN".to_string()),
        Just("1e999".to_string()),
        (0u64..100).prop_map(|x| x.to_string()),
    ]
}

fn module_key() -> impl Strategy<Value = String> {
    let layer = prop_oneof![4 => 0u64..40, 1 => any::<u64>(), 1 => Just(1_000_000_000_000u64)];
    let stack = prop::sample::select(vec!["model.layers", "vision.blocks", "h", "a.b.c"]);
    let ty = prop::sample::select(vec!["self_attn.v_proj", "mlp.down_proj", "x", "\u{1b}[2J"]);
    prop_oneof![
        4 => (stack, layer, ty).prop_map(|(s, l, t)| format!("{s}.{l}.{t}")),
        1 => "[a-z.0-9]{0,12}",
    ]
}

/// JSON text in the three scan layouts and near them; nesting up to ~40 levels (and once in a
/// while far deeper).
fn scan_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number(),
        Just("null".to_string()),
        Just("true".to_string()),
        "\"[a-z]{0,6}\"".prop_map(|s| s),
    ];
    let value = leaf.prop_recursive(40, 200, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..4).prop_map(|kv| {
                let body: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    });
    let by_module = prop::collection::vec(
        (module_key(), number(), prop::option::of(value.clone())),
        0..12,
    )
    .prop_map(|es| {
        let body: Vec<String> = es
            .into_iter()
            .map(|(k, snr, extra)| {
                let extra = extra
                    .map(|v| format!(", \"extra\": {v}"))
                    .unwrap_or_default();
                format!("{k:?}: {{\"snr\": {snr}, \"type\": \"self_attn.v_proj\"{extra}}}")
            })
            .collect();
        format!("{{{}}}", body.join(",\n"))
    });
    let by_type = prop::collection::vec(
        (
            "[a-z_.]{1,10}",
            prop::collection::vec((module_key(), number()), 0..8),
        ),
        0..4,
    )
    .prop_map(|ts| {
        let body: Vec<String> = ts
            .into_iter()
            .map(|(t, es)| {
                let inner: Vec<String> =
                    es.into_iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
                format!("{t:?}: {{{}}}", inner.join(","))
            })
            .collect();
        format!("{{{}}}", body.join(","))
    });
    prop_oneof![
        4 => by_module,
        2 => by_type,
        2 => value,
        1 => (1usize..30_000).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
        1 => "[\\x00-\\x7f]{0,64}",
    ]
}

static SCAN_DEEP: AtomicU32 = AtomicU32::new(0);

fn exercise_scan(text: &str) {
    let Ok((_, entries)) = scanfile::parse(text, "fuzz.json") else {
        return;
    };
    SCAN_DEEP.fetch_add(1, Ordering::Relaxed);
    let _ = export::unfrozen_groups_from_scan(&entries);
    if let Ok(table) = SnrTable::from_scan(&entries, "fuzz.json") {
        for rule in [Rule::Infinite, Rule::Lowest(3), Rule::Below(1.0)] {
            let choice = Request {
                module: None,
                rule,
                drop: vec![0],
                keep: vec![1],
            };
            let _ = plan::make_plan(&table, &choice, "m", "bfloat16");
        }
        let _ = export::groups_from_table(&table);
    }
}

#[test]
fn fuzzed_scan_files_never_panic() {
    // The limit and the peak belong to the whole process: measured alone.
    memory::in_own_process("fuzz_readers::fuzzed_scan_files_never_panic", || {
        memory::limit_address_space(ADDRESS_SPACE_LIMIT);
        let mut runner = proptest::test_runner::TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&scan_text(), |text| {
                exercise_scan(&text);
                Ok(())
            })
            .unwrap();
        let deep = SCAN_DEEP.load(Ordering::Relaxed);
        let peak = memory::peak_rss_kb();
        println!(
            "{deep} of {CASES} scan files parsed; peak RSS {} MiB",
            peak / 1024
        );
        assert!(
            deep > CASES / 20,
            "only {deep} cases parsed: the generator is off"
        );
        assert!(peak < PEAK_RSS_LIMIT_KB, "peak RSS {peak} kB");
    });
}
