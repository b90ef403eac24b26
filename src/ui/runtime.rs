//! The event loop: input and signal threads feed the one channel; the loop drains every
//! pending message into the app, then draws once (a burst of results costs one frame).
//!
//! `SNRSCOPE_FRAME_LOG=<path>` appends one line per frame (wall-clock stamp, time since start,
//! draw time, messages drained, whether a scan was running): that is how start-up and frame
//! times are measured. `SNRSCOPE_TEST_PANIC=1` makes the first key press panic, so the
//! end-to-end test can prove that a panic leaves the terminal usable.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use crossterm::{
    event::{self, Event},
    terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate},
};
use ratatui::{Terminal, backend::Backend};

use super::{
    app::App,
    jobs::Executor,
    msg::{ExportMsg, Msg},
    view::render,
};

/// At most this many frames per second, however fast results arrive.
const MIN_FRAME_GAP: Duration = Duration::from_millis(16);
/// Redraw cadence while work runs (spinner, rate, ETA).
const BUSY_TICK: Duration = Duration::from_millis(120);

pub fn spawn_input(tx: Sender<Msg>) {
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

/// SIGTERM, SIGINT and SIGHUP quit in order (the export removes its temporary folder).
pub fn spawn_signals(tx: Sender<Msg>) {
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

/// Every cell in the terminal's default colours; modifiers (reverse, bold, dim) stay.
fn without_colour(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        cell.fg = ratatui::style::Color::Reset;
        cell.bg = ratatui::style::Color::Reset;
    }
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

pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    mut app: App,
    mut executor: Executor,
    rx: &Receiver<Msg>,
    started: Instant,
) -> color_eyre::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut log = FrameLog::from_env();
    // NO_COLOR (https://no-color.org): crossterm would honour it by writing an empty colour
    // sequence, `ESC[m`, which resets every attribute too — the reversed cursor and bold marks
    // would vanish with the colours. So colours are removed from the frame here instead, and
    // crossterm is told to write what it is given.
    let mono = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if mono {
        crossterm::style::Colored::set_ansi_color_disabled(false);
    }
    let size = terminal.size()?;
    let effects = app.take_effects();
    executor.run(&mut app, effects);
    let effects = app.handle(Msg::Resize(size.width, size.height));
    executor.run(&mut app, effects);
    let mut draw =
        |terminal: &mut Terminal<B>, app: &App, msgs: usize| -> color_eyre::Result<Instant> {
            let t0 = Instant::now();
            // A synchronized update: terminals that know it show the frame whole, never the top
            // of a new frame over the bottom of the old (others ignore the mode).
            let _ = crossterm::execute!(std::io::stdout(), BeginSynchronizedUpdate);
            let drawn = terminal.draw(|f| {
                render(f, app);
                if mono {
                    without_colour(f.buffer_mut());
                }
            });
            let _ = crossterm::execute!(std::io::stdout(), EndSynchronizedUpdate);
            drawn?;
            log.log(started, t0.elapsed(), msgs, app.scanning());
            Ok(Instant::now())
        };
    let mut last_draw = draw(terminal, &app, 0)?;
    let panic_on_key = std::env::var_os("SNRSCOPE_TEST_PANIC").is_some();
    let mut handle = |app: &mut App, m: Msg| {
        if panic_on_key && matches!(m, Msg::Key(_)) {
            panic!("SNRSCOPE_TEST_PANIC: deliberate panic to test terminal restoration");
        }
        let effects = app.handle(m);
        executor.run(app, effects);
    };
    loop {
        let busy = app.busy();
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
            if now >= due || app.quit() {
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
        if app.quit() {
            break;
        }
        last_draw = draw(terminal, &app, msgs)?;
    }
    // An export was cancelled by quitting: give it a moment to remove its temporary folder,
    // rather than leave a half-written model behind.
    if app.export().is_some() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(m) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if let Msg::Export(ExportMsg::Done(_)) = m {
                break;
            }
        }
    }
    Ok(())
}
