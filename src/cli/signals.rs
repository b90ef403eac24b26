//! SIGINT, SIGTERM and SIGHUP (an SSH disconnect) all cancel a headless run the same way, so
//! an export removes its temporary folder whichever way it is stopped. signal-hook, the crate
//! the explorer uses too.
//!
//! A signal always ends the run: the first cancels it cleanly; a second one, or the run still
//! going [`GRACE`] after the first (a matrix whose SVD takes minutes, a read that does not
//! return), ends the process at once with the same exit code. Whatever that leaves behind
//! (`.NAME.snrscope-tmp-PID`) is removed by the next run for the same target.

use std::{
    io::Write as _,
    sync::atomic::{AtomicI32, Ordering},
    time::Duration,
};

use snrscope::util::cancel::CancelToken;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// How long a cancelled run may take to finish cleanly before the process ends anyway.
const GRACE: Duration = Duration::from_secs(30);

/// Cancels `cancel` on the first of those signals (and says so on stderr, if it still can);
/// ends the process on a second one, or when the run outlives [`GRACE`].
pub fn cancel_on_signals(cancel: &CancelToken) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let token = cancel.clone();
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if token.is_cancelled() {
                    // After SIGHUP the terminal may be gone: a failed write must not panic.
                    let _ = writeln!(std::io::stderr(), "\nstopped at once");
                    std::process::exit(i32::from(exit_code()));
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "\ncancelling: removing what was written… (again to stop at once)"
                );
                let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                token.cancel();
                let _ = std::thread::Builder::new().name("grace".into()).spawn(|| {
                    std::thread::sleep(GRACE);
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nstill not stopped {} s after the signal: stopped at once",
                        GRACE.as_secs()
                    );
                    std::process::exit(i32::from(exit_code()));
                });
            }
        });
}

/// The exit code for a run stopped by a signal: 128 + its number, as shells report it (130
/// for Ctrl-C).
pub fn exit_code() -> u8 {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => 130,
        s => (128 + s).clamp(0, 255) as u8,
    }
}
