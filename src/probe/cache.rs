//! Probe results kept for reuse: a probe of the same weight files, config, samples and options
//! is read back instead of recomputed (`--no-cache` neither reads nor writes).
//!
//! Entries live beside the scan cache's, in its folder's `probe-v1/`, with the same safety:
//! written to a temporary file and renamed into place (concurrent processes never see half an
//! entry), each carrying its whole key and a SHA-256 of its contents; an entry that does not
//! check out is ignored with a warning and the probe recomputed. The key names every shard's
//! identity (device, inode, size, modification time), config.json's, the samples' digest, the
//! options that change the numbers, and the pass's version.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use super::{job::Collected, samples::Samples};
use crate::{
    checkpoint::Model,
    spectrum::cache::{self as scan_cache, FileIdentity},
};

const MAGIC: &[u8; 16] = b"snrscope-probe\n\x01";
const DIR: &str = "probe-v1";
const EXT: &str = "probe";
const TMP_PREFIX: &str = ".tmp-";
/// Bumped whenever the forward pass or the collector changes the numbers it gives, so entries
/// of an older pass are not taken for the new one's.
const PASS_VERSION: u32 = 1;

/// What identifies a probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    text: String,
    hash: String,
}

impl Key {
    /// The key of probing `samples` on `model` with these options (`None` when a weight file
    /// cannot be identified: then nothing is cached).
    pub fn new(model: &Model, samples: &Samples, max_block: usize, ppl: bool) -> Option<Key> {
        let mut text = format!("snrscope probe\npass {PASS_VERSION}\n");
        let config = model
            .config_path
            .as_ref()
            .map(|p| FileIdentity::of(p).map(|i| format!("{i:?}")))
            .transpose()
            .ok()?;
        text.push_str(&format!("config {}\n", config.as_deref().unwrap_or("none")));
        for shard in &model.shards {
            let id = FileIdentity::of(&shard.path).ok()?;
            text.push_str(&format!("shard {id:?}\n"));
        }
        text.push_str(&format!(
            "samples {} of {} tokens: {}\nmax_block {max_block}\nppl {ppl}\n",
            samples.len(),
            samples.tokens(),
            samples.digest()
        ));
        let hash = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(Key { text, hash })
    }
}

/// The probe cache in one folder.
#[derive(Debug)]
pub struct ProbeCache {
    root: PathBuf,
    warnings: Vec<String>,
}

impl ProbeCache {
    /// In `scan_root` (a scan cache's folder).
    pub fn at(scan_root: &Path) -> ProbeCache {
        ProbeCache {
            root: scan_root.join(DIR),
            warnings: Vec::new(),
        }
    }

    /// Beside the user's scan cache, if there is one.
    pub fn user() -> Option<ProbeCache> {
        scan_cache::default_dir().map(|d| ProbeCache::at(&d))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bad entries met and failed writes, oldest first.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        self.root
            .join(&key.hash[..2])
            .join(format!("{}.{EXT}", &key.hash[2..]))
    }

    pub fn get(&mut self, key: &Key) -> Option<Collected> {
        let path = self.path_of(key);
        // Bounded, and only a regular file: a FIFO or /dev/zero planted in the cache is a
        // warning, not a hang.
        let bytes = match crate::util::files::read_bounded(
            &path,
            crate::util::files::limit::SCAN,
            "a probe cache entry",
        ) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.warnings.push(format!(
                    "{}: cannot read: {}; ignored",
                    path.display(),
                    crate::util::text::io_reason(&e)
                ));
                return None;
            }
        };
        match decode(&bytes, key) {
            Ok(c) => Some(c),
            Err(problem) => {
                self.warnings.push(format!(
                    "{}: {problem}; ignored (the probe is recomputed)",
                    path.display()
                ));
                None
            }
        }
    }

    /// Stores atomically; a failure is a warning (the result stands without its entry).
    pub fn put(&mut self, key: &Key, value: &Collected) {
        if let Err(e) = self.try_put(key, value) {
            self.warnings.push(format!(
                "{}: cannot write a cache entry: {e}",
                self.root.display()
            ));
        }
    }

    fn try_put(&self, key: &Key, value: &Collected) -> io::Result<()> {
        let path = self.path_of(key);
        let dir = path.parent().expect("entries live in a subfolder");
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), key.hash));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&encode(key, value))?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Entries (and leftover temporary files) and their bytes.
    pub fn usage(&self) -> (u64, u64) {
        self.files()
            .iter()
            .fold((0, 0), |(n, b), (_, len)| (n + 1, b + len))
    }

    /// Removes every entry; returns how many and their bytes. Nothing but our own files (and
    /// then our emptied folders) is touched.
    pub fn clear(&self) -> io::Result<(u64, u64)> {
        let mut removed = (0, 0);
        for (path, len) in self.files() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            }
            removed.0 += 1;
            removed.1 += len;
        }
        if let Ok(subs) = fs::read_dir(&self.root) {
            for sub in subs.flatten() {
                let _ = fs::remove_dir(sub.path());
            }
        }
        let _ = fs::remove_dir(&self.root);
        Ok(removed)
    }

    fn files(&self) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let Ok(subs) = fs::read_dir(&self.root) else {
            return out;
        };
        for sub in subs.flatten() {
            let name = sub.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                let ours = n.ends_with(&format!(".{EXT}")) || n.starts_with(TMP_PREFIX);
                if let (true, Ok(meta)) = (ours, f.metadata())
                    && meta.is_file()
                {
                    out.push((f.path(), meta.len()));
                }
            }
        }
        out
    }
}

/// `MAGIC | key length (u32) | key | payload length (u64) | payload (JSON) | SHA-256 of all
/// before`.
fn encode(key: &Key, value: &Collected) -> Vec<u8> {
    let payload = serde_json::to_vec(&Stored::from(value)).expect("probe results serialize");
    let mut out = Vec::with_capacity(64 + key.text.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(key.text.len() as u32).to_le_bytes());
    out.extend_from_slice(key.text.as_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn decode(bytes: &[u8], key: &Key) -> Result<Collected, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a snrscope probe cache entry of this version".into());
    }
    let body_len = bytes.len().checked_sub(32).ok_or("truncated")?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err("corrupt (its checksum does not match)".into());
    }
    let mut at = MAGIC.len();
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = body
            .get(at..at.checked_add(n).ok_or("truncated")?)
            .ok_or("truncated")?;
        at += n;
        Ok(s)
    };
    let key_len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    if take(key_len)? != key.text.as_bytes() {
        return Err("holds another probe's result (a different key)".into());
    }
    let n = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
    let payload = take(n)?;
    if at != body.len() {
        return Err("has trailing bytes".into());
    }
    let stored: Stored =
        serde_json::from_slice(payload).map_err(|e| format!("unreadable contents: {e}"))?;
    Ok(stored.into())
}

/// [`Collected`] as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    stats: Vec<super::collect::SampleStats>,
    ppl: Option<super::summary::PplSums>,
}

impl From<&Collected> for Stored {
    fn from(c: &Collected) -> Stored {
        Stored {
            stats: c.stats.clone(),
            ppl: c.ppl.clone(),
        }
    }
}

impl From<Stored> for Collected {
    fn from(s: Stored) -> Collected {
        Collected {
            stats: s.stats,
            ppl: s.ppl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::collect::SampleStats;

    fn key(s: &str) -> Key {
        Key {
            text: s.into(),
            hash: hex(s),
        }
    }

    fn hex(s: &str) -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn value() -> Collected {
        Collected {
            stats: vec![SampleStats {
                tokens: 3,
                cos_sum: vec![2.5, f64::NAN],
                angular: vec![vec![0.1, 0.2, 0.3]],
                pruneme_tail: vec![0.4],
            }],
            ppl: None,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ProbeCache::at(dir.path());
        let k = key("a");
        assert!(c.get(&k).is_none());
        c.put(&k, &value());
        let back = c.get(&k).unwrap();
        assert_eq!(back.stats[0].angular, value().stats[0].angular);
        assert!(back.stats[0].cos_sum[1].is_nan());
        assert!(c.take_warnings().is_empty());

        let path = c.path_of(&k);
        let mut bytes = fs::read(&path).unwrap();
        let i = bytes.len() - 40;
        bytes[i] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(c.get(&k).is_none());
        assert!(c.take_warnings()[0].contains("corrupt"));

        fs::write(&path, encode(&key("b"), &value())).unwrap();
        assert!(c.get(&k).is_none());
        assert!(c.take_warnings()[0].contains("another probe"));

        let mine = dir.path().join("probe-v1").join("notes.txt");
        fs::write(&mine, "keep").unwrap();
        assert_eq!(c.usage().0, 1);
        assert_eq!(c.clear().unwrap().0, 1);
        assert!(mine.exists());
    }
}
