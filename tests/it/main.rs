//! The integration tests, in one binary (one link, one set of helpers: `snrscope-testkit`).
//! Each module is one area; `cargo test --release --test it AREA::` runs one.

/// One test per fixture of `eval_models::ArchSpec::fixtures()`, each calling the module's own
/// `check_fixture(name)`, and a test that no fixture is left without one. Defined before the
/// modules so that each of them can use it.
macro_rules! fixture_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { check_fixture($name) })*

        #[test]
        fn every_fixture_has_a_test() {
            let tested = [$($name),*];
            for spec in snrscope_testkit::eval_models::ArchSpec::fixtures() {
                assert!(tested.contains(&spec.name.as_str()), "{} untested", spec.name);
            }
        }
    };
}

mod cache;
mod discovery;
mod eval_cli;
mod eval_jobs;
mod eval_memory;
mod eval_reference;
mod export_cli;
mod export_memory;
mod export_model;
mod export_safety;
mod export_yaml;
mod fused;
mod fuzz_readers;
mod fuzz_torch_bin;
mod gguf_dequant;
mod gguf_eval;
mod gguf_export_cli;
mod gguf_fuzz;
mod gguf_open;
mod gguf_scan;
mod gguf_tokenizer;
mod gguf_write;
mod gram;
mod hostile_files;
mod house;
mod model_open;
mod oracle;
mod parts;
mod probe_cli;
mod probe_memory;
mod probe_reference;
mod refuse_early;
mod safety;
mod scan;
mod scanfiles;
mod small_edges;
mod snr_properties;
mod torch_bin;
mod tui_e2e;

/// The binary under test; every run gets a scan cache of its own unless the test says where.
fn snrscope() -> snrscope_testkit::cli::Snrscope {
    snrscope_testkit::cli::Snrscope::new(env!("CARGO_BIN_EXE_snrscope"))
}
