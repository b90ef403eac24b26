//! Writes the safetensors twins of the `.bin` fixtures (tests/torch_bin/cases.rs) into a
//! folder, one subfolder per case, plus `manifest.json` (name, style, folder) for
//! `tests/torch_bin/make_fixtures.py`. Run: `cargo run --release --example torch_bin_twins -- DIR`.

use snrscope_testkit::torch_bin::cases;

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: torch_bin_twins OUT_DIR");
        std::process::exit(2);
    };
    let mut manifest = Vec::new();
    for case in cases::BIN_CASES {
        let dir = out.join(case.name);
        case.build(&dir);
        manifest.push(serde_json::json!({
            "name": case.name,
            "style": case.style,
            "dir": dir,
            "inputs": cases::safetensors_hashes(&dir),
        }));
    }
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(out.join("manifest.json"), text + "\n").expect("writing the manifest");
}
