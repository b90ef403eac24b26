//! End to end: the real binary in a real pseudo-terminal (tmux), on a generated 8-layer model
//! whose v_proj SNR is infinite in layers 2 and 5. Keys go in with `send-keys`, the screen
//! comes back with `capture-pane`.
//!
//! Needs tmux (CI installs it); without it these tests fail rather than pass unrun.

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use snrscope::demo::{ModelSpec, write_model};

/// A tmux server of our own (unique socket), killed however the test ends.
struct Tmux {
    socket: String,
    /// The socket file, to remove afterwards (tmux can leave it behind).
    socket_path: String,
}

impl Tmux {
    /// A detached `w`x`h` session named `e2e` running `sh -c script` on a fresh server.
    fn start(tag: &str, w: &str, h: &str, script: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: unique_socket(tag),
            socket_path: String::new(),
        };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            w,
            "-y",
            h,
            "sh",
            "-c",
            script,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let path = tmux.cmd(&["display-message", "-p", "#{socket_path}"]);
        tmux.socket_path = String::from_utf8_lossy(&path.stdout).trim().to_string();
        tmux
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // No user configuration: the test must see tmux's defaults everywhere.
            .args(["-f", "/dev/null", "-L"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    /// Polls the screen until `pred` holds; generous because CI machines are slow and shared.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_text(&self, needle: &str) -> String {
        self.wait_for(needle, |s| s.contains(needle))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
        // tmux may leave the socket file behind; do not litter /tmp on every test run.
        if self.socket_path.contains("snrscope-") {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

fn unique_socket(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("snrscope-{tag}-{}-{nanos}", std::process::id())
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Checks that tmux is there and writes a generated model into a fresh temporary folder.
fn tmux_and_model(name: &str, spec: &ModelSpec) -> (tempfile::TempDir, std::path::PathBuf) {
    assert!(
        tmux_available(),
        "tmux is required for the end-to-end tests"
    );
    let tmp = tempfile::TempDir::new().unwrap();
    let model = tmp.path().join(name);
    write_model(&model, spec).unwrap();
    (tmp, model)
}

#[test]
fn explore_toggle_switch_help_and_quit() {
    let (tmp, model) = tmux_and_model("e2e-model", &ModelSpec::tiny(8, &[2, 5]));
    let exit_file = tmp.path().join("exit-code");
    let bin = env!("CARGO_BIN_EXE_snrscope");
    // The pane outlives the program so the restored screen can be inspected.
    let script = format!(
        "XDG_CACHE_HOME={cache} {bin} {model}; echo $? > {exit}; echo SNRSCOPE-EXITED; sleep 120",
        cache = sh_quote(tmp.path()),
        bin = sh_quote(Path::new(bin)),
        model = sh_quote(&model),
        exit = sh_quote(&exit_file),
    );
    let tmux = Tmux::start("e2e", "120", "40", &script);

    // The scan of v_proj finishes and the seed rule drops layers 2 and 5.
    let s = tmux.wait_text("self_attn.v_proj scanned: 8 matrices");
    assert!(s.contains("SNR of self_attn.v_proj"), "{s}");
    assert!(s.contains("keep [0,2) [3,5) [6,8)  6/8 layers"), "{s}");
    assert!(
        s.contains("drop layers whose self_attn.v_proj SNR is infinite"),
        "{s}"
    );
    assert!(s.contains("Layer 0"), "{s}");
    assert_eq!(
        alternate_on(&tmux),
        "1",
        "the explorer runs in the alternate screen"
    );

    // Move to layer 2 and keep it against the rule.
    tmux.keys(&["Right", "l"]);
    tmux.wait_text("Layer 2");
    tmux.keys(&["Space"]);
    let s = tmux.wait_text("keep [0,5) [6,8)  7/8 layers");
    assert!(s.contains("kept by hand"), "{s}");
    assert!(s.contains("1 changed by hand"), "{s}");

    // Another module type: scanned in the background, the choice still follows v_proj.
    tmux.keys(&["Tab"]);
    let s = tmux.wait_text("mlp.down_proj scanned: 8 matrices");
    assert!(s.contains("SNR of mlp.down_proj"), "{s}");
    assert!(s.contains("choice follows self_attn.v_proj"), "{s}");
    assert!(s.contains("keep [0,5) [6,8)  7/8 layers"), "{s}");

    // Help shows and goes away.
    tmux.keys(&["?"]);
    let s = tmux.wait_text("Keys · any key closes");
    assert!(s.contains("re-apply the rule"), "{s}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("help to close", |s| !s.contains("Keys · any key closes"));

    // The choice was changed by hand: q asks first.
    tmux.keys(&["q"]);
    tmux.wait_text("Quit?");
    tmux.keys(&["y"]);
    let s = tmux.wait_text("SNRSCOPE-EXITED");
    assert!(!s.contains("SNR of"), "the explorer's screen is gone:\n{s}");
    let code = std::fs::read_to_string(&exit_file).unwrap();
    assert_eq!(code.trim(), "0");
    assert_eq!(alternate_on(&tmux), "0", "alternate screen left");
}

/// Real resizes (SIGWINCH through tmux): the chart scrolls when narrow, says which layers
/// show, shows a clear message when too small, and comes back.
#[test]
fn resizing_scrolls_the_chart_and_warns_when_too_small() {
    let (_tmp, model) = tmux_and_model("deep-model", &ModelSpec::tiny(80, &[3, 77]));
    let script = format!(
        "exec {bin} {model}",
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_snrscope"))),
        model = sh_quote(&model),
    );
    let tmux = Tmux::start("resize", "120", "40", &script);
    let s = tmux.wait_text("self_attn.v_proj scanned: 80 matrices");
    assert!(
        s.contains("· 80 layers "),
        "all 80 fit at 120 columns:\n{s}"
    );
    let resize = |w: &str, h: &str| {
        let out = tmux.cmd(&["resize-window", "-t", "e2e", "-x", w, "-y", h]);
        assert!(out.status.success(), "resize-window: {out:?}");
    };
    // 60 columns: 49 for bars, two per layer.
    resize("60", "24");
    tmux.wait_text("layers 0–23 of 80");
    tmux.keys(&["End"]);
    let s = tmux.wait_text("layers 56–79 of 80");
    assert!(s.contains("Layer 79"), "{s}");
    resize("40", "12");
    tmux.wait_text("terminal too small");
    resize("100", "30");
    let s = tmux.wait_text("· 80 layers ");
    assert!(
        s.contains("Layer 79"),
        "the cursor survived the resizes:\n{s}"
    );
    tmux.keys(&["q"]);
    tmux.wait_for("exit", |s| !s.contains("SNR of"));
}

/// SIGTERM while a scan shows: the explorer leaves the alternate screen and raw mode.
#[test]
fn sigterm_restores_the_terminal() {
    let (tmp, model) = tmux_and_model("term-model", &ModelSpec::tiny(6, &[1]));
    let pid_file = tmp.path().join("pid");
    let script = format!(
        "echo $$ > {pid}; exec {bin} {model}",
        pid = sh_quote(&pid_file),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_snrscope"))),
        model = sh_quote(&model),
    );
    let tmux = Tmux::start("term", "100", "30", &script);
    // Keep the dead pane, to read its exit status and final terminal modes.
    tmux.cmd(&["set-option", "-t", "e2e", "remain-on-exit", "on"]);
    tmux.wait_text("self_attn.v_proj scanned: 6 matrices");
    assert_eq!(alternate_on(&tmux), "1");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let kill = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dead = tmux.cmd(&["display-message", "-p", "-t", "e2e", "#{pane_dead}"]);
        if String::from_utf8_lossy(&dead.stdout).trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(alternate_on(&tmux), "0", "alternate screen left on SIGTERM");
    let screen = tmux.screen();
    assert!(!screen.contains("SNR of"), "{screen}");
}

/// A panic (forced by SNRSCOPE_TEST_PANIC on the first key) restores the terminal before the
/// report is printed, so the report is readable on the normal screen.
#[test]
fn a_panic_restores_the_terminal_and_reports() {
    let (tmp, model) = tmux_and_model("panic-model", &ModelSpec::tiny(4, &[1]));
    let exit_file = tmp.path().join("exit-code");
    // The shell waits for the exit status itself: tmux does not always reap a pane's process
    // promptly, so its #{pane_dead_status} cannot be relied on.
    let script = format!(
        "SNRSCOPE_TEST_PANIC=1 RUST_BACKTRACE=0 {bin} {model}; echo $? > {exit}; sleep 120",
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_snrscope"))),
        model = sh_quote(&model),
        exit = sh_quote(&exit_file),
    );
    let tmux = Tmux::start("panic", "100", "30", &script);
    tmux.wait_text("self_attn.v_proj scanned: 4 matrices");
    tmux.keys(&["Right"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Ok(code) = std::fs::read_to_string(&exit_file)
            && !code.trim().is_empty()
        {
            break code;
        }
        assert!(Instant::now() < deadline, "still running after the panic");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code.trim(), "101");
    assert_eq!(alternate_on(&tmux), "0", "alternate screen left on panic");
    let screen = tmux.screen();
    assert!(screen.contains("deliberate panic"), "{screen}");
    assert!(!screen.contains("SNR of"), "{screen}");
}

fn alternate_on(tmux: &Tmux) -> String {
    let out = tmux.cmd(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
