//! Parsing one GGUF file's header — metadata and tensor infos — with every count, length and
//! offset checked against the file's size before it is trusted or allocated. The header is read
//! through bounded `pread`s (never the whole file, never a map of it); tensor data stays on disk.

use std::{
    collections::HashSet,
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::{
    GgufError,
    error::shown,
    metadata::{Array, MetaEntry, Value, id, min_size, type_name},
    types::GgmlType,
};

/// ggml's limits: `GGML_MAX_DIMS`, and names shorter than `GGML_MAX_NAME` (64) bytes.
pub(crate) const MAX_DIMS: u32 = 4;
pub(crate) const MAX_NAME: u64 = 63;
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays inside arrays are legal but nobody nests deeply; the limit keeps recursion bounded.
const MAX_NESTING: u32 = 8;
const READ_CHUNK: usize = 1 << 16;

/// One tensor's description. `dims` are ggml's, innermost (contiguous) first.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Relative to the start of the data section, as in the file.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape as PyTorch / Hugging Face write it: outermost first.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// Elements per row (the innermost dimension).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Rows: every dimension but the innermost, multiplied.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// One parsed GGUF file, kept open for reading tensor data.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<MetaEntry>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section (the end of the header, aligned).
    pub data_start: u64,
    pub file_len: u64,
    pub(crate) file: File,
}

impl GgufFile {
    /// Opens and parses `path`; reads only the header.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        if path.is_dir() {
            return Err(GgufError::layout(path, "is a folder, not a GGUF file"));
        }
        // Only a regular file: a FIFO would block, a device would read without end.
        let (file, meta) = crate::util::files::open_regular(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                GgufError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                GgufError::io(path, e)
            }
        })?;
        parse(path, file, meta.len())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute byte range of a tensor's data in this file.
    pub fn data_range(&self, t: &TensorInfo) -> std::ops::Range<u64> {
        let start = self.data_start + t.offset;
        start..start + t.n_bytes
    }

    /// Reads `len` bytes at absolute `offset` (bounds already checked by the parser for whole
    /// tensors; checked again here for any range).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.file_len) {
            return Err(GgufError::malformed(
                &self.path,
                format!(
                    "bytes {offset}..+{} lie past the end of the file ({} bytes); was it truncated?",
                    buf.len(),
                    self.file_len
                ),
            ));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| GgufError::io(&self.path, e))
    }
}

/// Buffered reads at a moving position, never past `len`.
struct Cursor<'a> {
    path: &'a Path,
    file: &'a File,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Cursor<'a> {
    fn bad(&self, problem: String) -> GgufError {
        GgufError::malformed(self.path, problem)
    }

    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], GgufError> {
        if n as u64 > self.remaining() {
            return Err(self.bad(format!(
                "the file ends at byte {} inside {what} (at byte {}, {n} bytes needed)",
                self.len, self.pos
            )));
        }
        let in_buf = self.pos >= self.buf_start
            && self.pos + n as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let want = (n.max(READ_CHUNK) as u64).min(self.remaining()) as usize;
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, self.pos)
                .map_err(|e| GgufError::io(self.path, e))?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        self.pos += n as u64;
        Ok(&self.buf[at..at + n])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        Ok(self.take(N, what)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed string whose length is checked against the rest of the file first.
    fn string(&mut self, what: &str, max: Option<u64>) -> Result<String, GgufError> {
        let at = self.pos;
        let n = self.u64(what)?;
        if let Some(max) = max
            && n > max
        {
            return Err(self.bad(format!(
                "{what} at byte {at} is {n} bytes long; at most {max} are allowed"
            )));
        }
        if n > self.remaining() {
            return Err(self.bad(format!(
                "{what} at byte {at} claims {n} bytes, but only {} remain in the file",
                self.remaining()
            )));
        }
        // Large strings (a chat template) are read in one piece, not through the buffer.
        if n as usize > READ_CHUNK {
            let mut v = vec![0u8; n as usize];
            self.file
                .read_exact_at(&mut v, self.pos)
                .map_err(|e| GgufError::io(self.path, e))?;
            self.pos += n;
            return Ok(String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
        }
        let bytes = self.take(n as usize, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A name (key or tensor name): must be UTF-8.
    fn name(&mut self, what: &str, max: Option<u64>) -> Result<String, GgufError> {
        let at = self.pos;
        let s = self.string(what, max)?;
        if s.contains('\u{FFFD}') {
            return Err(self.bad(format!("{what} at byte {at} is not valid UTF-8")));
        }
        Ok(s)
    }

    /// Checks that `count` values of at least `unit` bytes each can fit in the rest of the file.
    fn check_count(&self, count: u64, unit: u64, what: &str) -> Result<(), GgufError> {
        match count.checked_mul(unit) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(self.bad(format!(
                "{what} claims {count} entries of at least {unit} bytes each, more than the {} \
                 bytes left in the file",
                self.remaining()
            ))),
        }
    }

    fn value(&mut self, type_id: u32, key: &str, depth: u32) -> Result<Value, GgufError> {
        let what = "a metadata value";
        Ok(match type_id {
            id::U8 => Value::U8(self.array::<1>(what)?[0]),
            id::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            id::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            id::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            id::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            id::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            id::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            id::BOOL => Value::Bool(self.bool(key)?),
            id::STRING => Value::Str(self.string("a string value", None)?),
            id::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            id::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            id::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            id::ARRAY => Value::Array(self.array_value(key, depth)?),
            other => {
                return Err(self.bad(format!("key {} has unknown value type {other}", shown(key))));
            }
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool, GgufError> {
        match self.array::<1>("a bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.bad(format!(
                "key {} holds the bool byte {b} (only 0 and 1 are booleans)",
                shown(key)
            ))),
        }
    }

    fn array_value(&mut self, key: &str, depth: u32) -> Result<Array, GgufError> {
        if depth >= MAX_NESTING {
            return Err(self.bad(format!(
                "key {} nests arrays more than {MAX_NESTING} deep",
                shown(key)
            )));
        }
        let elem = self.u32("an array's element type")?;
        let n = self.u64("an array's length")?;
        let unit = min_size(elem).ok_or_else(|| {
            self.bad(format!(
                "key {} is an array of unknown value type {elem}",
                shown(key)
            ))
        })?;
        self.check_count(n, unit, &format!("the array {}", shown(key)))?;
        let n = n as usize;
        macro_rules! nums {
            ($variant:ident, $t:ty) => {{
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(<$t>::from_le_bytes(self.array("an array element")?));
                }
                Array::$variant(v)
            }};
        }
        Ok(match elem {
            id::U8 => Array::U8(self.take(n, "an array")?.to_vec()),
            id::I8 => Array::I8(self.take(n, "an array")?.iter().map(|&b| b as i8).collect()),
            id::U16 => nums!(U16, u16),
            id::I16 => nums!(I16, i16),
            id::U32 => nums!(U32, u32),
            id::I32 => nums!(I32, i32),
            id::F32 => nums!(F32, f32),
            id::U64 => nums!(U64, u64),
            id::I64 => nums!(I64, i64),
            id::F64 => nums!(F64, f64),
            id::BOOL => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                Array::Bool(v)
            }
            id::STRING => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string("a string in an array", None)?);
                }
                Array::Str(v)
            }
            _ => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.value(id::ARRAY, key, depth + 1)? {
                        Value::Array(a) => v.push(a),
                        _ => unreachable!("an ARRAY value is an array"),
                    }
                }
                Array::Array(v)
            }
        })
    }
}

fn parse(path: &Path, file: File, len: u64) -> Result<GgufFile, GgufError> {
    let mut c = Cursor {
        path,
        file: &file,
        len,
        pos: 0,
        buf: Vec::new(),
        buf_start: 0,
    };
    let not_gguf = |problem: String| GgufError::NotGguf {
        path: path.to_path_buf(),
        problem,
    };
    if len < 4 {
        return Err(not_gguf(format!(
            "not a GGUF file: {len} bytes, too short for the magic `GGUF`"
        )));
    }
    let magic = c.array::<4>("the magic")?;
    if &magic != b"GGUF" {
        return Err(not_gguf(format!(
            "not a GGUF file: it starts with {:02x?}, not `GGUF`",
            magic
        )));
    }
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(not_gguf(
                "GGUF version 1 (2023, 32-bit counts) is not supported; convert it again with \
                 a current llama.cpp"
                    .into(),
            ));
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(not_gguf(format!(
                "a big-endian GGUF (version {} byte-swapped); only little-endian GGUF files \
                 are supported",
                v.swap_bytes()
            )));
        }
        v => {
            return Err(not_gguf(format!(
                "unknown GGUF version {v} (2 and 3 are read)"
            )));
        }
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    // Each pair is at least a key length (8) and a type (4); each tensor info at least a name
    // length (8), n_dims (4), a type (4) and an offset (8).
    c.check_count(kv_count, 12, "the metadata count")?;
    c.check_count(tensor_count, 24, "the tensor count")?;

    let mut metadata = Vec::with_capacity(kv_count as usize);
    let mut keys = HashSet::new();
    for _ in 0..kv_count {
        let start = c.pos;
        let key = c.name("a metadata key", None)?;
        let type_id = c.u32("a metadata value type")?;
        let value = c.value(type_id, &key, 0)?;
        if !keys.insert(key.clone()) {
            return Err(c.bad(format!("the key {} appears twice", shown(&key))));
        }
        metadata.push(MetaEntry {
            key,
            value,
            raw: start..c.pos,
        });
    }

    let alignment = match metadata.iter().find(|e| e.key == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(e) => match e.value {
            Value::U32(a) if a != 0 && a.is_multiple_of(8) => a as u64,
            ref v => {
                return Err(c.bad(format!(
                    "general.alignment is {} {v:?}; it must be a uint32, nonzero and a multiple \
                     of 8",
                    type_name(v.type_id())
                )));
            }
        },
    };

    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::new();
    for _ in 0..tensor_count {
        let name = c.name("a tensor name", Some(MAX_NAME))?;
        let n_dims = c.u32("a tensor's n_dims")?;
        if n_dims > MAX_DIMS {
            return Err(c.bad(format!(
                "tensor {} has {n_dims} dimensions; ggml allows at most {MAX_DIMS}",
                shown(&name)
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64("a tensor dimension")?);
        }
        let ggml_type = GgmlType(c.u32("a tensor type")?);
        let offset = c.u64("a tensor offset")?;
        let bad_tensor = |problem: String| {
            GgufError::malformed(path, format!("tensor {}: {problem}", shown(&name)))
        };
        if !ggml_type.is_known() {
            return Err(bad_tensor(format!("unknown ggml type id {}", ggml_type.0)));
        }
        // ggml's dimensions are int64: anything above i64::MAX is negative there.
        if let Some(d) = dims.iter().find(|&&d| d > i64::MAX as u64) {
            return Err(bad_tensor(format!("dimension {d} is out of range")));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| bad_tensor(format!("dimensions {dims:?} overflow")))?;
        let bs = ggml_type.block_size().unwrap_or(1);
        if !dims.first().copied().unwrap_or(1).is_multiple_of(bs) {
            return Err(bad_tensor(format!(
                "its rows hold {} values, not a multiple of {}'s block of {bs}",
                dims.first().copied().unwrap_or(1),
                ggml_type
            )));
        }
        let n_bytes = ggml_type
            .bytes_for(n_elements)
            .ok_or_else(|| bad_tensor(format!("dimensions {dims:?} overflow")))?;
        if !offset.is_multiple_of(alignment) {
            return Err(bad_tensor(format!(
                "its data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(c.bad(format!("the tensor {} appears twice", shown(&name))));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        });
    }

    let data_start = c
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| c.bad("the header does not fit".into()))?;
    if data_start > len && !tensors.is_empty() {
        return Err(c.bad(format!(
            "the data section would start at byte {data_start}, past the end of the file ({len} \
             bytes)"
        )));
    }
    let data_len = len.saturating_sub(data_start);
    for t in &tensors {
        if t.offset
            .checked_add(t.n_bytes)
            .is_none_or(|end| end > data_len)
        {
            return Err(GgufError::malformed(
                path,
                format!(
                    "tensor {} ({}, {} bytes at data offset {}) lies past the end of the file \
                     ({len} bytes, data from byte {data_start}); was the file truncated?",
                    shown(&t.name),
                    t.ggml_type,
                    t.n_bytes,
                    t.offset
                ),
            ));
        }
    }
    drop(c);
    Ok(GgufFile {
        path: path.to_path_buf(),
        version,
        alignment,
        metadata,
        tensors,
        data_start,
        file_len: len,
        file,
    })
}
