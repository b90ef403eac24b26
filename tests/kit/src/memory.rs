//! Memory as the tests measure it. The resident-set peak and the address-space limit belong to
//! the whole process, so a test that measures or limits them runs alone in a child process of
//! its own test binary ([`in_own_process`]): other tests' allocations can neither inflate its
//! peak nor run into its limit.

use std::process::Command;

const CHILD: &str = "SNRSCOPE_KIT_CHILD";

/// Runs `body` in a fresh process of the current test binary, where only the test named
/// `test` (its full path, e.g. `fuzz_readers::fuzzed_headers_never_panic`) runs; the caller
/// fails when the child does. Inside the child, runs `body` directly.
pub fn in_own_process(test: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some_and(|v| v == test) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Echo what the child printed, so measurements show up under --nocapture.
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "{test} failed in its own process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "{test}: the child process ran no test; is the name right?\n{stdout}"
    );
}

/// Peak resident set of this process, in KiB.
pub fn peak_rss_kb() -> i64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    }
}

/// Limits this process's address space (`ulimit -v`); only call it inside
/// [`in_own_process`].
pub fn limit_address_space(bytes: u64) {
    assert!(
        std::env::var_os(CHILD).is_some(),
        "an address-space limit would reach every test of the binary: use in_own_process"
    );
    let l = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: plain setrlimit on our own process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &l) }, 0);
}

/// A line of `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}
