//! End to end: the real binary in a real pseudo-terminal (tests/pty: portable-pty + vt100, no
//! terminal program needed), on generated models. Keys go in as a terminal sends them; the
//! screen comes back as a terminal would show it.

use snrscope_testkit::pty;

use std::{ffi::OsStr, path::PathBuf};

use pty::{Pty, key};
use snrscope::demo::{ModelSpec, write_model};

/// A generated model in a fresh temporary folder (also the explorer's cache folder).
fn model(name: &str, spec: &ModelSpec) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::TempDir::new().unwrap();
    let model = tmp.path().join(name);
    write_model(&model, spec).unwrap();
    (tmp, model)
}

fn explorer(
    tmp: &tempfile::TempDir,
    args: &[&OsStr],
    extra_env: &[(&str, &OsStr)],
    cols: u16,
    rows: u16,
) -> Pty {
    let mut env = vec![("XDG_CACHE_HOME", tmp.path().as_os_str())];
    env.extend_from_slice(extra_env);
    Pty::spawn(env!("CARGO_BIN_EXE_snrscope"), args, &env, cols, rows)
}

#[test]
fn explore_toggle_switch_help_and_quit() {
    let (tmp, model) = model("e2e-model", &ModelSpec::tiny(8, &[2, 5]));
    let mut t = explorer(&tmp, &[model.as_os_str()], &[], 120, 40);

    // The scan of v_proj finishes and the seed rule drops layers 2 and 5.
    let s = t.wait_text("self_attn.v_proj scanned: 8 matrices");
    assert!(s.contains("SNR of self_attn.v_proj"), "{s}");
    assert!(s.contains("keep [0,2) [3,5) [6,8)  6/8 layers"), "{s}");
    assert!(
        s.contains("drop layers whose self_attn.v_proj SNR is infinite"),
        "{s}"
    );
    assert!(s.contains("Layer 0"), "{s}");
    assert!(t.alternate(), "the explorer runs in the alternate screen");

    // Move to layer 2 and keep it against the rule.
    t.keys(&[key::RIGHT, "l"]);
    t.wait_text("Layer 2");
    t.keys(&[key::SPACE]);
    let s = t.wait_text("keep [0,5) [6,8)  7/8 layers");
    assert!(s.contains("kept by hand"), "{s}");
    assert!(s.contains("1 changed by hand"), "{s}");

    // Another module type: scanned in the background, the choice still follows v_proj.
    t.keys(&[key::TAB]);
    let s = t.wait_text("mlp.down_proj scanned: 8 matrices");
    assert!(s.contains("SNR of mlp.down_proj"), "{s}");
    assert!(
        s.contains("mlp.down_proj on screen (d: let it drive)"),
        "{s}"
    );
    assert!(s.contains("keep [0,5) [6,8)  7/8 layers"), "{s}");

    // Help shows and goes away.
    t.keys(&["?"]);
    let s = t.wait_text("Esc closes");
    assert!(s.contains("back to the rule alone"), "{s}");
    t.keys(&[key::ESC]);
    t.wait_for("help to close", |s| !s.contains("Esc closes"));

    // The choice was changed by hand: q asks first; q again quits without writing.
    t.keys(&["q"]);
    t.wait_text("Quit?");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert!(!t.alternate(), "alternate screen left");
    let s = t.screen();
    assert!(!s.contains("SNR of"), "the explorer's screen is gone:\n{s}");
}

/// Real resizes (SIGWINCH): the chart scrolls when narrow, says which layers show, shows a
/// clear message when too small, and comes back.
#[test]
fn resizing_scrolls_the_chart_and_warns_when_too_small() {
    let (tmp, model) = model("deep-model", &ModelSpec::tiny(80, &[3, 77]));
    let mut t = explorer(&tmp, &[model.as_os_str()], &[], 120, 40);
    let s = t.wait_text("self_attn.v_proj scanned: 80 matrices");
    assert!(
        s.contains("· 80 layers "),
        "all 80 fit at 120 columns:\n{s}"
    );
    // 60 columns: 47 for bars, two per layer.
    t.resize(60, 24);
    t.wait_text("layers 0–22 of 80");
    t.keys(&[key::END]);
    let s = t.wait_text("layers 57–79 of 80");
    assert!(s.contains("Layer 79"), "{s}");
    t.resize(40, 12);
    t.wait_text("terminal too small");
    t.resize(100, 30);
    let s = t.wait_text("· 80 layers ");
    assert!(
        s.contains("Layer 79"),
        "the cursor survived the resizes:\n{s}"
    );
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert!(!t.alternate());
}

/// SIGTERM while the explorer shows: it leaves the alternate screen and raw mode.
#[test]
fn sigterm_restores_the_terminal() {
    let (tmp, model) = model("term-model", &ModelSpec::tiny(6, &[1]));
    let mut t = explorer(&tmp, &[model.as_os_str()], &[], 100, 30);
    t.wait_text("self_attn.v_proj scanned: 6 matrices");
    assert!(t.alternate());
    // SAFETY: kill(2) with a pid we started and still own.
    assert_eq!(unsafe { libc::kill(t.pid(), libc::SIGTERM) }, 0);
    t.wait_exit();
    assert!(!t.alternate(), "alternate screen left on SIGTERM");
    let s = t.screen();
    assert!(!s.contains("SNR of"), "{s}");
}

/// A panic (forced by SNRSCOPE_TEST_PANIC on the first key) restores the terminal before the
/// report is printed, so the report is readable on the normal screen.
#[test]
fn a_panic_restores_the_terminal_and_reports() {
    let (tmp, model) = model("panic-model", &ModelSpec::tiny(4, &[1]));
    let mut t = explorer(
        &tmp,
        &[model.as_os_str()],
        &[
            ("SNRSCOPE_TEST_PANIC", OsStr::new("1")),
            ("RUST_BACKTRACE", OsStr::new("0")),
        ],
        100,
        30,
    );
    t.wait_text("self_attn.v_proj scanned: 4 matrices");
    t.keys(&[key::RIGHT]);
    assert_eq!(t.wait_exit(), 101);
    assert!(!t.alternate(), "alternate screen left on panic");
    let s = t.screen();
    assert!(s.contains("deliberate panic"), "{s}");
    assert!(!s.contains("SNR of"), "{s}");
}

/// One whole working session, as a user would have it (issue 8): browse, jump, override,
/// change the rule, undo, write the YAML with a model name over an existing file (asked,
/// confirmed), export the model over an existing folder (asked, confirmed), quit.
#[test]
fn a_whole_session() {
    let (tmp, model) = model("session-model", &ModelSpec::tiny(8, &[2, 5]));
    let yaml = tmp.path().join("prune.yml");
    std::fs::write(&yaml, "# hand-edited\n").unwrap();
    let out = tmp.path().join("pruned");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("old.txt"), "old").unwrap();
    let mut t = explorer(&tmp, &[model.as_os_str()], &[], 120, 40);
    t.wait_text("self_attn.v_proj scanned: 8 matrices");
    // Browse and jump.
    t.keys(&[key::RIGHT, key::RIGHT, key::RIGHT]);
    t.wait_text("Layer 3");
    t.keys(&[":", "7", key::ENTER]);
    t.wait_text("Layer 7");
    t.keys(&["N"]);
    t.wait_text("Layer 5");
    // Override: keep the infinite layer 5 by hand.
    t.keys(&[key::SPACE]);
    t.wait_text("keep [0,2) [3,8)  7/8 layers");
    // Change the rule three times: the hand choice holds.
    t.keys(&["r"]);
    t.wait_text("rule drop the layer with the lowest");
    t.keys(&["r", "r"]);
    let s = t.wait_text("rule drop layers whose self_attn.v_proj SNR is infinite");
    assert!(s.contains("keep [0,2) [3,8)  7/8 layers"), "{s}");
    // Undo the three rule changes and the override; redo the override; undo it again.
    t.keys(&["u", "u", "u", "u"]);
    t.wait_text("keep [0,2) [3,5) [6,8)  6/8 layers");
    t.keys(&[key::CTRL_R]);
    t.wait_text("keep [0,2) [3,8)  7/8 layers");
    t.keys(&["u"]);
    t.wait_text("keep [0,2) [3,5) [6,8)  6/8 layers");
    // Write the YAML with a model name over the hand-edited file: asked, then confirmed.
    t.keys(&["y"]);
    t.wait_text("Write mergekit YAML");
    t.keys(&[key::CTRL_U]);
    t.type_text(yaml.to_str().unwrap());
    t.keys(&[key::TAB, key::CTRL_U]);
    t.type_text("org/session-model");
    t.keys(&[key::ENTER]);
    t.wait_text("Replace this file?");
    assert_eq!(std::fs::read_to_string(&yaml).unwrap(), "# hand-edited\n");
    t.keys(&["y"]);
    t.wait_text("wrote");
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains("model: org/session-model"), "{text}");
    assert!(text.contains("layer_range: [6, 8]"), "{text}");
    // Export over the existing folder: asked, then confirmed.
    t.keys(&["e"]);
    t.wait_text("Export pruned model");
    t.keys(&[key::CTRL_U]);
    t.type_text(out.to_str().unwrap());
    t.keys(&[key::ENTER]);
    t.wait_text("Replace this folder?");
    t.keys(&["y"]);
    t.wait_text("exported");
    assert!(out.join("config.json").is_file() && !out.join("old.txt").exists());
    // Everything written: q quits at once.
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert!(!t.alternate());
}

/// With NO_COLOR=1 no colour reaches the terminal, and the marks, the cursor and the module on
/// screen still read apart.
#[test]
fn without_colour_the_marks_still_differ() {
    let (tmp, model) = model("mono-model", &ModelSpec::tiny(8, &[2, 5]));
    let mut t = explorer(
        &tmp,
        &[model.as_os_str()],
        &[("NO_COLOR", OsStr::new("1"))],
        120,
        40,
    );
    t.wait_text("self_attn.v_proj scanned: 8 matrices");
    t.keys(&[key::SPACE]); // 0: dropped by hand
    t.keys(&[key::RIGHT, key::RIGHT, key::SPACE]); // 2: kept by hand
    t.keys(&[key::RIGHT]);
    let s = t.wait_text("keep [1,5) [6,8)");
    assert!(!t.any_colour(), "NO_COLOR: no colour on screen");
    let marks = s
        .lines()
        .find(|l| l.contains('✖') && l.contains('✓'))
        .unwrap_or_else(|| panic!("a marks row: {s}"));
    assert!(marks.contains('✗'), "the rule's drop of layer 5: {marks}");
    assert!(marks.contains('^'), "the cursor on layer 3: {marks}");
    assert!(s.contains("[self_attn.v_proj]"), "{s}");
    assert!(t.find_reversed("3"), "the cursor's label is reversed");
    // Hand choices are unwritten: Ctrl-C asks, a second one leaves.
    t.keys(&[key::CTRL_C]);
    t.wait_text("Quit?");
    t.keys(&[key::CTRL_C]);
    t.wait_exit();
}

/// The first run writes the demo model and says what it is doing, and where.
#[test]
fn the_demo_first_run_shows_its_progress() {
    let tmp = tempfile::TempDir::new().unwrap();
    let cache = tmp.path().join("cache");
    let mut t = explorer(
        &tmp,
        &[] as &[&OsStr],
        &[("SNRSCOPE_CACHE_DIR", cache.as_os_str())],
        120,
        40,
    );
    t.wait_text("scanned: 24 matrices");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    let s = t.screen();
    assert!(s.contains("writing the demo model once into"), "{s}");
    assert!(s.contains("computing 24 layers of weights"), "{s}");
    // Beside the scan cache (SNRSCOPE_CACHE_DIR), not in XDG_CACHE_HOME.
    assert!(
        s.contains(&cache.join("demo-model-v3").display().to_string()),
        "{s}"
    );
}

/// `p` on the demo model: both perplexities on the summary line, computed in the background
/// while the keys keep working, then marked stale when the choice moves.
#[test]
fn perplexity_of_the_demo_choice_in_the_explorer() {
    let (tmp, model) = model("demo-model", &ModelSpec::demo());
    let mut t = explorer(&tmp, &[model.as_os_str()], &[], 140, 40);
    t.wait_text("scanned: 24 matrices");
    let started = std::time::Instant::now();
    t.keys(&["p"]);
    t.wait_text("computing the perplexity of the original, then the choice");
    // The UI stays live while the job runs.
    t.keys(&[key::RIGHT]);
    t.wait_text("Layer 1");
    let s = t.wait_for("both perplexities", |s| {
        s.lines()
            .any(|l| l.contains("ppl ") && l.contains(" → ") && l.contains("%)"))
    });
    eprintln!(
        "demo perplexity on screen after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(s.contains("dropping 5,11-12,19"), "{s}");
    assert!(!s.contains("stale"), "{s}");
    // Keep layer 5 by hand: the value belongs to the old choice now.
    t.keys(&["n", key::SPACE]);
    let s = t.wait_text("stale, p");
    assert!(s.contains("for 5,11-12,19"), "{s}");
    // Evaluate the new choice: only it is computed.
    t.keys(&["p"]);
    t.wait_text("computing the perplexity of the choice in the background");
    t.wait_for("the new choice's perplexity", |s| {
        s.contains("dropping 11-12,19") && !s.contains("stale")
    });
    // Ctrl-C with an unwritten choice asks, as q does; a second one leaves at once.
    t.keys(&["\x03"]);
    t.wait_text("Quit?");
    t.keys(&["\x03"]);
    assert_eq!(t.wait_exit(), 0);
    assert!(!t.alternate());
}

/// `snrscope MODEL --yaml FILE` carries a saved pruning on: its layers are the choice (by hand,
/// counted as written: q quits without asking); a YAML of a bigger model is refused before the
/// screen opens, naming the file.
#[test]
fn a_saved_yaml_carries_the_session_on() {
    let (tmp, model) = model("e2e-yaml", &ModelSpec::tiny(8, &[2, 5]));
    let yaml = |ranges: &[[usize; 2]]| {
        let mut s = String::from("slices:\n");
        for [a, b] in ranges {
            s.push_str(&format!(
                "  - sources:\n      - model: org/e2e\n        layer_range: [{a}, {b}]\n"
            ));
        }
        s + "merge_method: passthrough\ndtype: bfloat16\n"
    };
    let saved = tmp.path().join("prune.yml");
    std::fs::write(&saved, yaml(&[[0, 3], [4, 8]])).unwrap();
    let args = [model.as_os_str(), OsStr::new("--yaml"), saved.as_os_str()];
    let mut t = explorer(&tmp, &args, &[], 120, 40);
    t.wait_text("self_attn.v_proj scanned: 8 matrices");
    let s = t.wait_text("keep [0,3) [4,8)  7/8 layers");
    assert!(!s.contains("modified"), "{s}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0, "{}", t.screen());

    std::fs::write(&saved, yaml(&[[0, 9]])).unwrap();
    let mut t = explorer(&tmp, &args, &[], 120, 40);
    let s = t.wait_text("goes beyond the model's 8 layers");
    assert!(s.contains("prune.yml"), "{s}");
    assert_ne!(t.wait_exit(), 0);
}
