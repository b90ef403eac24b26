//! Writes the golden cases' models (tests/kit/src/golden.rs) into a folder, one subfolder per
//! case, plus `manifest.json` (name, target path, oracle pattern) for
//! `tests/golden/regenerate.py`. Run: `cargo run --release --example golden_models -- DIR`.

use snrscope_testkit::golden as cases;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(std::path::PathBuf::from) else {
        eprintln!("usage: golden_models OUT_DIR");
        std::process::exit(2);
    };
    let mut manifest = Vec::new();
    for case in cases::CASES {
        let dir = out.join(case.name);
        case.build(&dir);
        let target = if case.target.is_empty() {
            dir.clone()
        } else {
            dir.join(case.target)
        };
        manifest.push(serde_json::json!({
            "name": case.name,
            "dir": dir,
            "target": target,
            "pattern": case.pattern,
            "extract": case.extract.as_ref().map(|e| serde_json::json!({
                "axis": e.axis,
                "ranges": e.ranges,
            })),
        }));
    }
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(out.join("manifest.json"), text + "\n").expect("writing the manifest");
}
