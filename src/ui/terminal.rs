//! The terminal is always restored: on return, on `?`, on panic (before the report is
//! printed), and after a signal (the runtime turns signals into an orderly quit).

use std::io::{Write as _, stdout};

use color_eyre::eyre::WrapErr;
use crossterm::{
    cursor::Show,
    event::{DisableMouseCapture, EnableMouseCapture},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};

/// Puts the terminal back however the explorer ends (return, `?`, panic unwinding).
pub struct TerminalGuard;

/// Whether the terminal is in our mode. Restoring twice would be harmful, not just useless:
/// leaving the alternate screen again jumps the cursor back over whatever the first restore
/// let through (a panic report, say).
static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl TerminalGuard {
    pub fn enter() -> color_eyre::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, std::sync::atomic::Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(stdout(), EnterAlternateScreen, EnableMouseCapture)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    if !ACTIVE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let _ = execute!(stdout(), DisableMouseCapture, LeaveAlternateScreen, Show);
    let _ = disable_raw_mode();
    let _ = stdout().flush();
}

/// The panic message must land on the normal screen, not in the alternate one that is about
/// to vanish: restore first, then let color-eyre report.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
