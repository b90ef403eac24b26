//! The persistent scan cache: each matrix's singular values, stored under the user's cache
//! folder and found again by what identifies the bytes they came from.
//!
//! A key is the shard file's identity (device and inode, or its canonical path where those do
//! not exist; size; modification time), the tensor's name, byte offset, dtype and shape, and the
//! method. Only the singular values are stored: every statistic is a pure function of them and
//! the shape, so a cached result is exactly the computed one.
//!
//! Safety: entries are written to a temporary file and renamed into place, so concurrent
//! snrscope processes never see half an entry; each entry carries its own key and a SHA-256 of
//! its contents, and anything that does not check out (corrupt, truncated, foreign, another
//! key) is ignored with a warning and recomputed. The cache never lives inside a model folder.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use sha2::{Digest as _, Sha256};

use crate::{
    checkpoint::{Model, TensorEntry, dtype_name},
    spectrum::snr::Method,
};

/// The entry layout; a change makes old entries foreign (ignored), never misread.
const MAGIC: &[u8; 16] = b"snrscope-cache\n\x01";
const VERSION_DIR: &str = "v1";
/// The Gram route's acceptance check, part of a Gram result's key (see [`Key::of_part`]).
const GRAM_CHECK_VERSION: u32 = 3;
const EXT: &str = "snr";
const TMP_PREFIX: &str = ".tmp-";

/// Size the CLI trims the cache to after a scan (the oldest entries go first). An entry is
/// 8 bytes per singular value plus ~300: a 32-layer 7-module 8B model is ~2 MB of them.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Where the cache lives when nothing else is said: `$SNRSCOPE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/snrscope`, else the platform's user cache folder (`~/.cache/snrscope`,
/// `~/Library/Caches/snrscope`, `%LOCALAPPDATA%\snrscope\cache`).
pub(crate) fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(p) = env("SNRSCOPE_CACHE_DIR") {
        return Some(p);
    }
    if let Some(p) = env("XDG_CACHE_HOME") {
        return Some(p.join("snrscope"));
    }
    if cfg!(windows) {
        return env("LOCALAPPDATA").map(|p| p.join("snrscope").join("cache"));
    }
    let home = env("HOME")?;
    if cfg!(target_os = "macos") {
        Some(home.join("Library").join("Caches").join("snrscope"))
    } else {
        Some(home.join(".cache").join("snrscope"))
    }
}

/// What identifies a shard file's bytes without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity(String);

impl FileIdentity {
    pub fn of(path: &Path) -> io::Result<FileIdentity> {
        let meta = fs::metadata(path)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or_else(
                || "?".to_string(),
                |d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
            );
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt as _;
            format!("dev={} ino={}", meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let id = format!("path={}", fs::canonicalize(path)?.display());
        Ok(FileIdentity(format!(
            "{id} size={} mtime={mtime}",
            meta.len()
        )))
    }
}

/// A cache key: the text that identifies a matrix and method, and its hash (the file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    text: String,
    hash: String,
}

impl Key {
    pub fn new(file: &FileIdentity, tensor: &TensorEntry, method: Method) -> Key {
        Key::of_part(file, tensor, method, None)
    }

    /// The key of a part of a tensor (the V rows or columns of a fused projection), described
    /// by `part`: a part's values must never be taken for the whole tensor's, or the reverse.
    pub(crate) fn of_part(
        file: &FileIdentity,
        tensor: &TensorEntry,
        method: Method,
        part: Option<&str>,
    ) -> Key {
        let shape: Vec<String> = tensor.shape.iter().map(usize::to_string).collect();
        let mut text = format!(
            "file {}\ntensor {}\noffset {}\ndtype {}\nshape {}\nmethod {}\n",
            file.0,
            tensor.name,
            tensor.range.start,
            dtype_name(tensor.dtype),
            shape.join("x"),
            method.name()
        );
        if method == Method::Gram {
            // A Gram result is stored only when its check passed; the check became stricter
            // (tolerance 1e-8 and a new error estimate), so results accepted by the old one are
            // not taken on trust: they are recomputed under the new key.
            text.push_str(&format!("gram-check {GRAM_CHECK_VERSION}\n"));
        }
        if let Some(p) = part {
            text.push_str(&format!("part {p}\n"));
        }
        let hash = hex(&Sha256::digest(text.as_bytes()));
        Key { text, hash }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Entries and bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
}

/// A cache folder. Shared by the scan's workers (`&self` everywhere).
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    warnings: Mutex<Vec<String>>,
    hits: AtomicUsize,
    writes: AtomicUsize,
    tmp_counter: AtomicU64,
}

impl Cache {
    /// The cache in `root` (created when first written).
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            warnings: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            tmp_counter: AtomicU64::new(0),
        }
    }

    /// The cache in [`default_dir`], if one can be determined.
    pub fn user() -> Option<Cache> {
        default_dir().map(Cache::at)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Is the cache folder inside `dir` (or `dir` itself)? A model folder must never receive
    /// cache files.
    pub(crate) fn is_inside(&self, dir: &Path) -> bool {
        let canon = |p: &Path| {
            // The cache folder may not exist yet: canonicalize its nearest existing ancestor.
            let mut base = p.to_path_buf();
            let mut rest = Vec::new();
            while !base.exists() {
                match (base.parent(), base.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_os_string());
                        base = parent.to_path_buf();
                    }
                    _ => break,
                }
            }
            let mut c = fs::canonicalize(&base).unwrap_or(base);
            c.extend(rest.iter().rev());
            c
        };
        canon(&self.root).starts_with(canon(dir))
    }

    /// Singular values stored under `key` (largest first), checked for `count` values. A bad
    /// entry is reported in [`Cache::take_warnings`] and treated as absent.
    pub fn get(&self, key: &Key, count: usize) -> Option<Vec<f64>> {
        let path = self.path_of(key);
        let bytes = match read_entry(&path, entry_len(key, count)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warn(format!(
                    "{}: {}; ignored (the matrix is recomputed)",
                    path.display(),
                    crate::util::text::io_reason(&e)
                ));
                return None;
            }
        };
        match decode(&bytes, key, count) {
            Ok(values) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(values)
            }
            Err(problem) => {
                self.warn(format!(
                    "{}: {problem}; ignored (the matrix is recomputed)",
                    path.display()
                ));
                None
            }
        }
    }

    /// Stores `values` under `key`, atomically (a temporary file renamed into place). A
    /// failure is a warning: the scan result stands without its cache entry.
    pub fn put(&self, key: &Key, values: &[f64]) {
        if let Err(e) = self.try_put(key, values) {
            self.warn(format!(
                "{}: cannot write a cache entry: {e}",
                self.root.display()
            ));
        }
    }

    fn try_put(&self, key: &Key, values: &[f64]) -> io::Result<()> {
        let path = self.path_of(key);
        let dir = path.parent().expect("entries live in a subfolder");
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}-{}-{}",
            std::process::id(),
            self.tmp_counter.fetch_add(1, Ordering::Relaxed),
            key.hash
        ));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&encode(key, values))?;
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Warnings since the last call (bad entries, failed writes), oldest first.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Entries found intact since this `Cache` was made.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Entries written since this `Cache` was made.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    /// Adds a warning for [`Cache::take_warnings`] (e.g. why the scan did not use the cache).
    pub fn note(&self, w: String) {
        self.warn(w);
    }

    fn warn(&self, w: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(w);
    }

    /// Where the entry of `key` lives (whether or not it exists).
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.path_of(key)
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        self.root
            .join(VERSION_DIR)
            .join(&key.hash[..2])
            .join(format!("{}.{EXT}", &key.hash[2..]))
    }

    /// Our files: entries, and temporary files of writes in progress or of dead processes.
    /// Nothing else in the folder is ever touched.
    fn files(&self) -> Vec<(PathBuf, fs::Metadata)> {
        let mut out = Vec::new();
        let Ok(subs) = fs::read_dir(self.root.join(VERSION_DIR)) else {
            return out;
        };
        for sub in subs.flatten() {
            let name = sub.file_name();
            let ok_sub = name.len() == 2
                && name
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit());
            if !ok_sub {
                continue;
            }
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                let ours = n.ends_with(&format!(".{EXT}")) || n.starts_with(TMP_PREFIX);
                if let (true, Ok(meta)) = (ours, f.metadata())
                    && meta.is_file()
                {
                    out.push((f.path(), meta));
                }
            }
        }
        out
    }

    pub fn usage(&self) -> Usage {
        self.files()
            .iter()
            .fold(Usage::default(), |u, (_, m)| Usage {
                entries: u.entries + 1,
                bytes: u.bytes + m.len(),
            })
    }

    /// Removes every entry (and stale temporary file); returns what was removed.
    pub fn clear(&self) -> io::Result<Usage> {
        self.prune(0)
    }

    /// Removes the oldest entries until at most `max_bytes` remain; returns what was removed.
    pub fn prune(&self, max_bytes: u64) -> io::Result<Usage> {
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|(_, m)| m.len()).sum();
        files.sort_by_key(|(_, m)| m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let mut removed = Usage::default();
        for (path, meta) in files {
            if total <= max_bytes {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Another snrscope got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
            total -= meta.len();
            removed.entries += 1;
            removed.bytes += meta.len();
        }
        if max_bytes == 0 {
            // Empty subfolders of our own layout; a non-empty one holds someone else's files.
            if let Ok(subs) = fs::read_dir(self.root.join(VERSION_DIR)) {
                for sub in subs.flatten() {
                    let _ = fs::remove_dir(sub.path());
                }
            }
            let _ = fs::remove_dir(self.root.join(VERSION_DIR));
        }
        Ok(removed)
    }
}

/// The size of the entry of `key` holding `count` values: its layout fixes it exactly.
fn entry_len(key: &Key, count: usize) -> u64 {
    (MAGIC.len() + 4 + key.text.len() + 8 + 32) as u64 + 8 * count as u64
}

/// An entry's bytes: only a regular file (a FIFO, a device or a link to one is refused without
/// blocking), and none larger than its key and count imply, checked before reading (a shorter
/// one is read, and [`decode`] says what is wrong with it).
fn read_entry(path: &Path, expected: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let (file, meta) = crate::util::files::open_regular(path)?;
    if meta.len() > expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "is {} bytes, more than the {expected} bytes an entry for this matrix has",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // No more than the bound even if the file grows meanwhile (the checksum then decides).
    file.take(expected).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `MAGIC | key length (u32) | key | count (u64) | values (f64 LE) | SHA-256 of all before`.
fn encode(key: &Key, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + key.text.len() + 8 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(key.text.len() as u32).to_le_bytes());
    out.extend_from_slice(key.text.as_bytes());
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn decode(bytes: &[u8], key: &Key, count: usize) -> Result<Vec<f64>, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a snrscope cache entry of this version".into());
    }
    let body_len = bytes.len().checked_sub(32).ok_or("truncated")?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err("corrupt (its checksum does not match)".into());
    }
    let mut at = MAGIC.len();
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body.get(at..at + n).ok_or("truncated")?;
        at += n;
        Ok(s)
    };
    let key_len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    if take(key_len)? != key.text.as_bytes() {
        return Err("holds another matrix's result (a different key)".into());
    }
    let n = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
    if n != count {
        return Err(format!("holds {n} singular values, the matrix has {count}"));
    }
    let raw = take(n.checked_mul(8).ok_or("truncated")?)?;
    let values: Vec<f64> = raw
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if at != body.len() {
        return Err("has trailing bytes".into());
    }
    if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err("holds values that are not singular values".into());
    }
    Ok(values)
}

/// Each shard's identity, looked up once per scan (`None` where the file cannot be read).
pub(crate) fn shard_identities(model: &Model) -> Vec<Option<FileIdentity>> {
    model
        .shards
        .iter()
        .map(|s| FileIdentity::of(&s.path).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        let t = TensorEntry {
            name: name.into(),
            dtype: safetensors::Dtype::BF16.into(),
            shape: vec![2, 3],
            shard: 0,
            range: 100..112,
        };
        Key::new(
            &FileIdentity("dev=1 ino=2 size=3 mtime=4".into()),
            &t,
            Method::Svd,
        )
    }

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let k = key("a.weight");
        assert_eq!(cache.get(&k, 2), None);
        cache.put(&k, &[3.0, 1.5]);
        assert_eq!(cache.get(&k, 2), Some(vec![3.0, 1.5]));
        assert_eq!((cache.hits(), cache.writes()), (1, 1));
        // Wrong count for the shape: ignored with a warning.
        assert_eq!(cache.get(&k, 3), None);
        let w = cache.take_warnings();
        assert!(w[0].contains("holds 2 singular values"), "{w:?}");

        // One flipped byte: the checksum catches it.
        let path = cache.path_of(&k);
        let mut bytes = fs::read(&path).unwrap();
        let i = bytes.len() - 40;
        bytes[i] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get(&k, 2), None);
        assert!(cache.take_warnings()[0].contains("corrupt"));

        // A foreign file under the entry's name.
        fs::write(&path, b"hello").unwrap();
        assert_eq!(cache.get(&k, 2), None);
        assert!(cache.take_warnings()[0].contains("not a snrscope cache entry"));

        // Another key's valid entry under this key's name (e.g. a copied file).
        let other = key("b.weight");
        fs::write(&path, encode(&other, &[3.0, 1.5])).unwrap();
        assert_eq!(cache.get(&k, 2), None);
        assert!(cache.take_warnings()[0].contains("another matrix"));
    }

    #[test]
    fn keys_differ_by_every_component() {
        let base = key("a.weight");
        let t = TensorEntry {
            name: "a.weight".into(),
            dtype: safetensors::Dtype::BF16.into(),
            shape: vec![2, 3],
            shard: 0,
            range: 100..112,
        };
        let id = FileIdentity("dev=1 ino=2 size=3 mtime=4".into());
        assert_eq!(Key::new(&id, &t, Method::Svd), base);
        let other_file = FileIdentity("dev=1 ino=2 size=3 mtime=5".into());
        assert_ne!(Key::new(&other_file, &t, Method::Svd).hash, base.hash);
        assert_ne!(Key::new(&id, &t, Method::Gram).hash, base.hash);
        let mut t2 = t.clone();
        t2.range = 104..116;
        assert_ne!(Key::new(&id, &t2, Method::Svd).hash, base.hash);
        let mut t3 = t.clone();
        t3.dtype = safetensors::Dtype::F16.into();
        assert_ne!(Key::new(&id, &t3, Method::Svd).hash, base.hash);
        let mut t4 = t;
        t4.shape = vec![3, 2];
        assert_ne!(Key::new(&id, &t4, Method::Svd).hash, base.hash);
    }

    #[test]
    fn clear_and_prune_touch_only_our_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        for i in 0..5 {
            cache.put(&key(&format!("t{i}")), &[1.0; 100]);
        }
        let mine = dir.path().join("notes.txt");
        fs::write(&mine, "keep me").unwrap();
        let u = cache.usage();
        assert_eq!(u.entries, 5);
        let one = u.bytes / 5;
        let removed = cache.prune(2 * one).unwrap();
        assert_eq!(removed.entries, 3);
        assert_eq!(cache.usage().entries, 2);
        cache.clear().unwrap();
        assert_eq!(cache.usage(), Usage::default());
        assert!(mine.exists());
        assert!(!dir.path().join(VERSION_DIR).exists());
    }

    #[test]
    fn inside_checks_use_real_paths() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        fs::create_dir(&model).unwrap();
        assert!(Cache::at(model.join("sub/cache")).is_inside(&model));
        assert!(Cache::at(model.join("..").join("model")).is_inside(&model));
        assert!(!Cache::at(dir.path().join("cache")).is_inside(&model));
    }
}
