//! Every published scan in ../shared/data/snr-results opens and plans. Expected layer counts
//! and infinite layers were read off the files with Python's json module.

use std::path::PathBuf;

use snrscope::{
    export,
    plan::{Request, SnrTable, make_plan},
    scanfile,
};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/snr-results"
    ))
}

/// (file, layers, v_proj layers with SNR Infinity, module types in the layers, all types,
/// entries).
type Expected = (&'static str, usize, &'static [usize], usize, usize, usize);
#[rustfmt::skip]
const EXPECTED: &[Expected] = &[
    ("snr_results_HuggingFaceTB-SmolLM-135M.json", 30, &[], 9, 12, 273),
    ("snr_results_Qwen-Qwen1.5-32B.json", 64, &[25, 26, 27, 28, 29, 30, 59], 7, 7, 448),
    ("snr_results_Qwen-Qwen2.5-14B.json", 48, &[0], 7, 7, 336),
    ("snr_results_meta-llama-Meta-Llama-3.1-8B-Instruct.json", 32, &[], 9, 12, 291),
    ("snr_results_mistralai-Mistral-7B-v0.1.json", 32, &[], 7, 7, 224),
];

#[test]
fn every_published_scan_opens_and_plans() {
    let d = dir();
    assert!(
        d.is_dir(),
        "{} is missing: CI checks out ../shared",
        d.display()
    );
    let mut files: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let mut known: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    known.sort();
    assert_eq!(files, known, "a new scan file: add its expectations here");
    for &(file, layers, infinite, types, all_types, entries_n) in EXPECTED {
        let path = d.join(file);
        assert!(scanfile::looks_like_scan_file(&path));
        let (_, entries) = scanfile::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), entries_n, "{file}");
        let table = SnrTable::from_scan(&entries, file).unwrap();
        assert_eq!(table.stack_prefix, "model.layers", "{file}");
        assert_eq!(table.num_layers, layers, "{file}");
        assert_eq!(table.modules.len(), types, "{file}");
        assert_eq!(table.default_module.as_deref(), Some("self_attn.v_proj"));
        let v = &table.modules["self_attn.v_proj"];
        assert!(
            v.iter().all(Option::is_some),
            "{file}: every v_proj layer has an SNR"
        );
        let plan = make_plan(&table, &Request::default(), "org/model", "bfloat16").unwrap();
        assert_eq!(plan.dropped, infinite, "{file}");
        let yaml = export::mergekit_yaml(&plan).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let kept: u64 = v["slices"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| {
                let r = &s["sources"][0]["layer_range"];
                r[1].as_u64().unwrap() - r[0].as_u64().unwrap()
            })
            .sum();
        assert_eq!(kept as usize, layers - infinite.len(), "{file}");
        let groups = export::unfrozen_groups_from_scan(&entries);
        assert_eq!(groups.len(), all_types, "{file}");
        let unfrozen = export::unfrozen_yaml(&groups, 25.0).unwrap();
        let u: serde_yaml::Value = serde_yaml::from_str(&unfrozen).unwrap();
        // Per type: int(count * 25 / 100) modules, plus the two fixed patterns.
        let want: usize = groups
            .iter()
            .map(|g| g.modules.len() * 25 / 100)
            .sum::<usize>()
            + 2;
        assert_eq!(
            u["unfrozen_parameters"].as_sequence().unwrap().len(),
            want,
            "{file}"
        );
    }
}

#[test]
fn mistral_has_32_v_proj_layers() {
    let (_, entries) =
        scanfile::read(&dir().join("snr_results_mistralai-Mistral-7B-v0.1.json")).unwrap();
    let table = SnrTable::from_scan(&entries, "mistral").unwrap();
    assert_eq!(table.modules["self_attn.v_proj"].len(), 32);
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.module_type == "self_attn.v_proj")
            .count(),
        32
    );
}
