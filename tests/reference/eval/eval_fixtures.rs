//! Writes the perplexity-evaluation fixtures for `tests/reference/eval/make_reference.py`:
//! each tiny checkpoint of `snrscope::archgen`, its pruned export (snrscope's own export of
//! `FIXTURE_DROPPED`), and `manifest.json` (texts, windows, choice).
//!
//! `cargo run --release --example eval_fixtures -- DIR`

use std::{path::PathBuf, process::ExitCode};

use serde_json::json;
use snrscope::{
    checkpoint::Model,
    export::{self, DEFAULT_SHARD_SIZE, ExportOptions},
    forward::ArchConfig,
    plan::Plan,
    util::cancel::CancelToken,
};
use snrscope_testkit::eval_models::{ArchSpec, FIXTURE_DROPPED, fixture_text, write_model};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: eval_fixtures DIR");
        return ExitCode::from(2);
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut fixtures = Vec::new();
    for spec in ArchSpec::fixtures() {
        let original = dir.join(&spec.name);
        write_model(&original, &spec)?;
        let model = Model::open(&original)?;
        let plan = Plan {
            model_ref: spec.name.clone(),
            stack_prefix: "model.layers".into(),
            num_layers: spec.layers,
            dropped: FIXTURE_DROPPED.to_vec(),
            module_type: "self_attn.v_proj".into(),
            reason: "test fixture".into(),
            snr: vec![None; spec.layers],
            dtype: "float32".into(),
            mergekit_modules: None,
            metric: None,
        };
        let pruned = dir.join(format!("{}-pruned", spec.name));
        let options = ExportOptions {
            shard_size: DEFAULT_SHARD_SIZE,
            force: true,
            ..ExportOptions::new(pruned)
        };
        export::export_model(
            &model,
            &plan,
            &options,
            &mut |_| {},
            &CancelToken::default(),
        )?;
        let arch = ArchConfig::parse(&spec.config(), &original.join("config.json"))?;
        fixtures.push(json!({
            "name": spec.name,
            "model_type": spec.arch.model_type(),
            "text": fixture_text(&spec),
            "window": arch.context,
            "dropped": FIXTURE_DROPPED,
        }));
    }
    let manifest = json!({ "fixtures": fixtures });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    eprintln!("wrote {} fixtures to {}", fixtures.len(), dir.display());
    Ok(())
}
