//! Running the `snrscope` binary the way a user does, with the cache kept apart from the
//! user's own.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::Command,
};

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// `(code, stdout, stderr)`, the shape most assertions take apart.
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// One invocation of the binary: arguments, working folder, cache folder, environment.
#[derive(Debug, Clone)]
pub struct Snrscope {
    bin: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    cache: Cache,
    env: Vec<(OsString, OsString)>,
}

/// Where a run's scan cache lives.
#[derive(Debug, Clone)]
enum Cache {
    /// A fresh folder for this run alone, removed after it.
    Fresh,
    /// `SNRSCOPE_CACHE_DIR`, kept (tests that look at what was cached).
    Dir(PathBuf),
    /// No `SNRSCOPE_CACHE_DIR`: the default location under a fresh `XDG_CACHE_HOME`.
    Xdg,
}

impl Snrscope {
    /// `bin` is the binary under test: `env!("CARGO_BIN_EXE_snrscope")` in an integration test.
    pub fn new(bin: impl Into<PathBuf>) -> Snrscope {
        Snrscope {
            bin: bin.into(),
            args: Vec::new(),
            cwd: None,
            cache: Cache::Fresh,
            env: Vec::new(),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Snrscope
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Snrscope {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The scan cache's folder (`SNRSCOPE_CACHE_DIR`). Without it (or [`Snrscope::xdg_cache`]),
    /// every run gets a fresh folder of its own: no test reads or fills the user's cache or
    /// another test's.
    pub fn cache(mut self, dir: impl AsRef<Path>) -> Snrscope {
        self.cache = Cache::Dir(dir.as_ref().to_path_buf());
        self
    }

    /// Leaves `SNRSCOPE_CACHE_DIR` unset and points `XDG_CACHE_HOME` at a fresh folder: the
    /// cache where a user's would be, found the way snrscope finds it.
    pub fn xdg_cache(mut self) -> Snrscope {
        self.cache = Cache::Xdg;
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Snrscope {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: &[(K, V)]) -> Snrscope {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// The command, ready to spawn (for tests that signal or time the process themselves),
    /// and the fresh cache folder it uses, which must outlive the process.
    pub fn command(&self) -> (Command, Option<tempfile::TempDir>) {
        let mut c = Command::new(&self.bin);
        c.args(&self.args);
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        let fresh = || tempfile::tempdir().expect("a temporary cache folder");
        let keep = match &self.cache {
            Cache::Fresh => {
                let t = fresh();
                c.env("SNRSCOPE_CACHE_DIR", t.path());
                Some(t)
            }
            Cache::Dir(d) => {
                c.env("SNRSCOPE_CACHE_DIR", d);
                None
            }
            Cache::Xdg => {
                let t = fresh();
                c.env("XDG_CACHE_HOME", t.path())
                    .env_remove("SNRSCOPE_CACHE_DIR");
                Some(t)
            }
        };
        for (k, v) in &self.env {
            c.env(k, v);
        }
        (c, keep)
    }

    /// Runs to the end; panics only when the binary cannot be started at all.
    pub fn run(&self) -> Output {
        let (mut c, _cache) = self.command();
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
