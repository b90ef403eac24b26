//! The interactive explorer (ratatui + crossterm).
//!
//! Data flow: the input thread, the scan workers, the export thread and the signal thread all
//! send [`app::Msg`]s on one channel. The UI thread drains every pending message into
//! [`app::App`], then draws once, so a burst of results costs one frame. Nothing on the UI
//! thread reads tensor data or computes an SVD.
//!
//! Set `SNRSCOPE_FRAME_LOG=<path>` to append one line per frame (wall-clock stamp, time since
//! start, draw time, messages drained, whether a scan was running): that is how start-up and
//! frame times are measured.
//!
//! `SNRSCOPE_TEST_PANIC=1` makes the first key press panic. It exists so the end-to-end test
//! can prove that a panic leaves the terminal usable; it does nothing otherwise.

pub mod app;
pub mod chart;
pub mod details;
pub mod dialog;
pub mod help;
pub mod keys;
pub mod layout;
pub mod render;
pub mod spectrum;
pub mod summary;
pub mod theme;

use std::{
    io::{Write as _, stdout},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use color_eyre::eyre::WrapErr;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use crossterm::{
    cursor::Show,
    event::{self, DisableMouseCapture, EnableMouseCapture, Event},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

use crate::{demo, model::Model, scanfile};

pub use app::{Action, App, AppOptions, Msg};
pub use render::render;

/// At most this many frames per second, however fast results arrive.
const MIN_FRAME_GAP: Duration = Duration::from_millis(16);
/// Redraw cadence while work runs (spinner, rate, ETA).
const BUSY_TICK: Duration = Duration::from_millis(120);

/// Opens the explorer on a model folder, a .safetensors file, a scan JSON, or the demo model.
pub fn run(source: Option<PathBuf>) -> color_eyre::Result<ExitCode> {
    let started = Instant::now();
    // Installing twice (e.g. from a test harness) is harmless; keep the first.
    let _ = color_eyre::install();
    if !std::io::IsTerminal::is_terminal(&stdout()) {
        color_eyre::eyre::bail!(
            "the explorer draws on a terminal, and standard output is not one; \
             for scripts use `snrscope scan` or `snrscope export`"
        );
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    // Everything that can fail with a plain message fails here, before the screen changes.
    let app = match source {
        None => {
            eprintln!(
                "snrscope: opening the built-in demo model (generating it takes a few seconds the first time)…"
            );
            let dir = demo::demo_dir().wrap_err("cannot write the demo model")?;
            open_model(dir, tx.clone())?
        }
        Some(p) if scanfile::looks_like_scan_file(&p) => {
            let (_, entries) = scanfile::read(&p)?;
            App::for_scan_file(&p, entries, tx.clone())?
        }
        Some(p) => open_model(p, tx.clone())?,
    };
    install_panic_hook();
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
    spawn_input(tx.clone());
    spawn_signals(tx);
    event_loop(&mut terminal, app, &rx, started)?;
    Ok(ExitCode::SUCCESS)
}

fn open_model(path: PathBuf, tx: Sender<Msg>) -> color_eyre::Result<App> {
    let model = Arc::new(Model::open(&path)?);
    App::for_model(model, tx, AppOptions::default())
}

/// Puts the terminal back however the explorer ends (return, `?`, panic unwinding).
struct TerminalGuard;

/// Whether the terminal is in our mode. Restoring twice would be harmful, not just useless:
/// leaving the alternate screen again jumps the cursor back over whatever the first restore
/// let through (a panic report, say).
static ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl TerminalGuard {
    fn enter() -> color_eyre::Result<TerminalGuard> {
        enable_raw_mode().wrap_err("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, std::sync::atomic::Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(stdout(), EnterAlternateScreen, EnableMouseCapture)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
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
        restore_terminal();
        previous(info);
    }));
}

fn spawn_input(tx: Sender<Msg>) {
    let _ = std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let msg = match event::read() {
                    Ok(Event::Key(k)) => Msg::Key(k),
                    Ok(Event::Mouse(m)) => Msg::Mouse(m),
                    Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
}

fn spawn_signals(tx: Sender<Msg>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(Msg::Terminate);
            }
        });
}

struct FrameLog {
    file: Option<std::fs::File>,
    frames: u64,
}

impl FrameLog {
    fn from_env() -> FrameLog {
        let file = std::env::var_os("SNRSCOPE_FRAME_LOG").and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        FrameLog { file, frames: 0 }
    }

    fn log(&mut self, started: Instant, draw: Duration, msgs: usize, busy: bool) {
        self.frames += 1;
        if let Some(f) = &mut self.file {
            let _ = writeln!(
                f,
                "frame={} unix_ms={} since_start_ms={:.3} draw_ms={:.3} msgs={msgs} scanning={busy}",
                self.frames,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis()),
                started.elapsed().as_secs_f64() * 1e3,
                draw.as_secs_f64() * 1e3,
            );
        }
    }
}

fn event_loop<B: ratatui::backend::Backend>(
    terminal: &mut Terminal<B>,
    mut app: App,
    rx: &Receiver<Msg>,
    started: Instant,
) -> color_eyre::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut log = FrameLog::from_env();
    let size = terminal.size()?;
    app.handle(Msg::Resize(size.width, size.height));
    let mut draw =
        |terminal: &mut Terminal<B>, app: &App, msgs: usize| -> color_eyre::Result<Instant> {
            let t0 = Instant::now();
            terminal.draw(|f| render(f, app))?;
            log.log(started, t0.elapsed(), msgs, app.scanning());
            Ok(Instant::now())
        };
    let mut last_draw = draw(terminal, &app, 0)?;
    let panic_on_key = std::env::var_os("SNRSCOPE_TEST_PANIC").is_some();
    let handle = |app: &mut App, m: Msg| {
        if panic_on_key && matches!(m, Msg::Key(_)) {
            panic!("SNRSCOPE_TEST_PANIC: deliberate panic to test terminal restoration");
        }
        app.handle(m);
    };
    loop {
        let busy = app.scanning() || app.export.is_some();
        let first = match rx.recv_timeout(if busy {
            BUSY_TICK
        } else {
            Duration::from_secs(1)
        }) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) if busy => Msg::Tick,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        handle(&mut app, first);
        let mut msgs = 1;
        // Coalesce: take whatever else is waiting, and keep collecting until a frame is due.
        loop {
            while let Ok(m) = rx.try_recv() {
                handle(&mut app, m);
                msgs += 1;
            }
            let due = last_draw + MIN_FRAME_GAP;
            let now = Instant::now();
            if now >= due || app.quit {
                break;
            }
            match rx.recv_timeout(due - now) {
                Ok(m) => {
                    handle(&mut app, m);
                    msgs += 1;
                }
                Err(_) => break,
            }
        }
        if app.quit {
            break;
        }
        last_draw = draw(terminal, &app, msgs)?;
    }
    // An export was cancelled by quitting: give it a moment to remove its temporary folder,
    // rather than leave a half-written model behind.
    if app.export.is_some() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(m) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Msg::Export(app::ExportMsg::Done(_)) = m {
                break;
            }
        }
    }
    Ok(())
}
