//! The real binary in a real pseudo-terminal, with no terminal program installed: the pty comes
//! from `portable-pty`, the screen is what `vt100` makes of the bytes the program writes. Keys go
//! in as the bytes a terminal sends for them.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// Bytes a terminal sends for keys that are not plain characters.
pub mod key {
    pub const LEFT: &str = "\x1b[D";
    pub const RIGHT: &str = "\x1b[C";
    pub const HOME: &str = "\x1b[H";
    pub const END: &str = "\x1b[F";
    pub const TAB: &str = "\t";
    pub const BACKTAB: &str = "\x1b[Z";
    pub const ESC: &str = "\x1b";
    pub const ENTER: &str = "\r";
    pub const SPACE: &str = " ";
    pub const BACKSPACE: &str = "\x7f";
    pub const CTRL_C: &str = "\x03";
    pub const CTRL_R: &str = "\x12";
    pub const CTRL_U: &str = "\x15";
}

/// How long a test waits for a screen before it fails: CI machines are slow and shared.
const PATIENCE: Duration = Duration::from_secs(30);

pub struct Pty {
    parser: Arc<Mutex<vt100::Parser>>,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    exit: Option<portable_pty::ExitStatus>,
    /// The program's scan cache: never the user's, never another test's.
    _cache: tempfile::TempDir,
}

impl Pty {
    /// Starts `program args` in a `cols`x`rows` terminal with `env` added to this process's
    /// environment (TERM is xterm-256color, as in most terminals).
    pub fn spawn<S: AsRef<OsStr>>(
        program: impl AsRef<OsStr>,
        args: &[S],
        env: &[(&str, &OsStr)],
        cols: u16,
        rows: u16,
    ) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("opening a pseudo-terminal");
        let mut cmd = CommandBuilder::new(program);
        for a in args {
            cmd.arg(a);
        }
        cmd.env("TERM", "xterm-256color");
        let cache = tempfile::tempdir().expect("a temporary cache folder");
        cmd.env("SNRSCOPE_CACHE_DIR", cache.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.cwd(std::env::temp_dir());
        let child = pair.slave.spawn_command(cmd).expect("starting the program");
        // Our copy of the slave side must go, or reading the master never sees the end.
        drop(pair.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(nz(rows), nz(cols), 0)));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let sink = parser.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut pending: Vec<u8> = Vec::new();
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        let done = whole_frames(&pending);
                        sink.lock().unwrap().process(&pending[..done]);
                        pending.drain(..done);
                    }
                }
            }
            sink.lock().unwrap().process(&pending);
        });
        let writer = pair.master.take_writer().expect("pty writer");
        Pty {
            parser,
            master: pair.master,
            writer,
            child,
            exit: None,
            _cache: cache,
        }
    }

    /// The screen as text, one line per row, trailing blanks trimmed.
    pub fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Whether the program is in the alternate screen.
    pub fn alternate(&self) -> bool {
        self.parser.lock().unwrap().screen().alternate_screen()
    }

    /// The cell at (row, col), for attribute checks.
    pub fn cell_inverse(&self, row: u16, col: u16) -> bool {
        self.parser
            .lock()
            .unwrap()
            .screen()
            .cell(row, col)
            .is_some_and(|c| c.inverse())
    }

    /// Types `keys`, one at a time with a short pause, as a person would: a lone Esc followed
    /// at once by another key would read as Alt+key.
    pub fn keys(&mut self, keys: &[&str]) {
        for k in keys {
            self.writer.write_all(k.as_bytes()).expect("typing");
            self.writer.flush().expect("typing");
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Whether any cell on screen has a colour (foreground or background).
    pub fn any_colour(&self) -> bool {
        let p = self.parser.lock().unwrap();
        let screen = p.screen();
        let (rows, cols) = screen.size();
        (0..rows.get()).any(|r| {
            (0..cols.get()).any(|c| {
                screen.cell(r, c).is_some_and(|cell| {
                    cell.fgcolor() != vt100::Color::Default
                        || cell.bgcolor() != vt100::Color::Default
                })
            })
        })
    }

    /// Whether `text` appears on screen in reverse video.
    pub fn find_reversed(&self, text: &str) -> bool {
        let p = self.parser.lock().unwrap();
        let screen = p.screen();
        let (rows, cols) = screen.size();
        (0..rows.get()).any(|r| {
            let row: Vec<(String, bool)> = (0..cols.get())
                .map(|c| {
                    screen.cell(r, c).map_or((String::new(), false), |cell| {
                        (cell.contents().to_string(), cell.inverse())
                    })
                })
                .collect();
            row.windows(text.chars().count()).any(|w| {
                w.iter().map(|(s, _)| s.as_str()).collect::<String>() == text
                    && w.iter().all(|(_, inv)| *inv)
            })
        })
    }

    /// Types each character of `text`.
    pub fn type_text(&mut self, text: &str) {
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let keys: Vec<&str> = chars.iter().map(String::as_str).collect();
        self.keys(&keys);
    }

    /// Resizes the terminal (the program gets SIGWINCH).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(nz(rows), nz(cols));
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resizing the pty");
    }

    pub fn pid(&self) -> i32 {
        self.child.process_id().expect("the child has a pid") as i32
    }

    /// Polls the screen until `pred` holds.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_text(&self, needle: &str) -> String {
        self.wait_for(needle, |s| s.contains(needle))
    }

    /// Waits for the program to end; its exit code (128 + n for signal n, as a shell says).
    pub fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                // Let the reader take in the last bytes (the restored screen).
                std::thread::sleep(Duration::from_millis(200));
                let code = status.exit_code();
                self.exit = Some(status);
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "still running; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.exit.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a terminal has at least one row and column")
}

/// Start and end of a synchronized update: the explorer wraps every frame in them.
const BEGIN_FRAME: &[u8] = b"\x1b[?2026h";
const END_FRAME: &[u8] = b"\x1b[?2026l";

/// How much of `pending` can reach the screen: everything but a frame still being written (or
/// the first bytes of its start marker). A terminal that supports synchronized updates shows a
/// frame whole, so the screen a test reads is always one the user could have seen; without
/// this, a test could see the top of a new frame over the bottom of the old one.
fn whole_frames(pending: &[u8]) -> usize {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).rposition(|w| w == needle);
    if let Some(b) = find(pending, BEGIN_FRAME)
        && find(&pending[b..], END_FRAME).is_none()
    {
        return b;
    }
    (1..BEGIN_FRAME.len())
        .rev()
        .find(|&k| pending.ends_with(&BEGIN_FRAME[..k]))
        .map_or(pending.len(), |k| pending.len() - k)
}
