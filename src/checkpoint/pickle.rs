//! A restricted reader of the pickle inside a PyTorch checkpoint (`data.pkl`): it walks the
//! opcodes and builds plain data, and never runs anything. Only the globals a state dict of
//! tensors needs are accepted ([`ALLOWED_GLOBALS`]); any other global — `os.system`,
//! `builtins.eval`, a class to instantiate — is refused the moment it is named, with the
//! global in the message, before anything else of the file is used. The result must be a dict
//! (or `collections.OrderedDict`) mapping names to tensors.
//!
//! Memory is bounded by the pickle's size: values live in one arena and are referred to by
//! index, so the memo (`BINGET`) shares values instead of copying them (no exponential
//! growth), nothing is dropped recursively (no stack overflow on deep nesting), cycles are
//! harmless, and every length is checked against the bytes that remain before it is used.

use std::collections::HashMap;

use safetensors::Dtype;

/// A tensor as the pickle describes it: a view of a storage (a zip entry `data/<key>`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PickledTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// In elements, as torch gives them.
    pub stride: Vec<usize>,
    /// In elements, from the storage's start.
    pub storage_offset: u64,
    /// The storage's name in the archive (`data/<key>`).
    pub storage_key: String,
    /// Elements the storage holds, as the pickle declares.
    pub storage_numel: u64,
}

/// The globals a checkpoint may name, and what they are allowed to do: the tensor rebuild
/// functions may be called (`REDUCE`), `OrderedDict` may be called with no arguments (an empty
/// dict), the storage classes may appear only inside a storage's persistent id, and the two
/// types only as `_rebuild_from_type_v2`'s type argument.
pub(crate) const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Tensor",
    "torch.nn.parameter.Parameter",
    "torch.{Double,Float,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage",
];

/// The storage classes torch writes into persistent ids, and their dtypes.
const STORAGES: &[(&str, Dtype)] = &[
    ("DoubleStorage", Dtype::F64),
    ("FloatStorage", Dtype::F32),
    ("HalfStorage", Dtype::F16),
    ("BFloat16Storage", Dtype::BF16),
    ("LongStorage", Dtype::I64),
    ("IntStorage", Dtype::I32),
    ("ShortStorage", Dtype::I16),
    ("CharStorage", Dtype::I8),
    ("ByteStorage", Dtype::U8),
    ("BoolStorage", Dtype::BOOL),
];

/// Why a pickle was refused. The caller adds the file's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PickleError {
    /// A global outside [`ALLOWED_GLOBALS`], or an allowed one used for something else.
    #[error(
        "{what}; snrscope never runs pickled code and reads only tensors and plain containers \
         (allowed globals: {})",
        ALLOWED_GLOBALS.join(", ")
    )]
    Refused { global: String, what: String },
    #[error("{0}")]
    Malformed(String),
    #[error("too large: {0}")]
    TooLarge(String),
}

/// At most this many values, stack entries, marks or memo entries: a state dict takes about 20
/// per tensor, so this allows 200,000 tensors.
const MAX_ITEMS: usize = 4 << 20;

type Id = u32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    ParameterType,
    Storage(Dtype, &'static str),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Result<Global, PickleError> {
        let g = match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
            ("torch", "Tensor") => Global::TensorType,
            ("torch.nn.parameter", "Parameter") => Global::ParameterType,
            ("torch", s) if s.ends_with("Storage") => {
                match STORAGES.iter().find(|(n, _)| *n == s) {
                    Some(&(n, d)) => Global::Storage(d, n),
                    None => {
                        return Err(PickleError::Refused {
                            global: format!("torch.{s}"),
                            what: format!(
                                "stores a tensor as torch.{}, a storage type snrscope does not read",
                                printable(s)
                            ),
                        });
                    }
                }
            }
            _ => {
                let global = format!("{}.{}", printable(module), printable(name));
                return Err(PickleError::Refused {
                    what: format!("imports {global}, which is not a tensor or a plain container"),
                    global,
                });
            }
        };
        Ok(g)
    }

    fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildParameterWithState => {
                "torch._utils._rebuild_parameter_with_state".into()
            }
            Global::RebuildFromTypeV2 => "torch._tensor._rebuild_from_type_v2".into(),
            Global::TensorType => "torch.Tensor".into(),
            Global::ParameterType => "torch.nn.parameter.Parameter".into(),
            Global::Storage(_, n) => format!("torch.{n}"),
        }
    }
}

/// Control characters and other oddities escaped, length capped: names come from the file.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[derive(Debug)]
struct TensorNode {
    dtype: Dtype,
    shape: Vec<usize>,
    stride: Vec<usize>,
    storage_offset: u64,
    storage_key: String,
    storage_numel: u64,
}

#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 (never a valid size, offset or count here).
    BigInt,
    Float,
    Str(String),
    Bytes,
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    Storage(Box<(Dtype, String, u64)>),
    Tensor(Box<TensorNode>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "a bool",
            Node::Int(_) | Node::BigInt => "an int",
            Node::Float => "a float",
            Node::Str(_) => "a string",
            Node::Bytes => "bytes",
            Node::Tuple(_) => "a tuple",
            Node::List(_) => "a list",
            Node::Dict(_) => "a dict",
            Node::Set(_) => "a set",
            Node::Global(_) => "a class or function",
            Node::Storage(_) => "a storage",
            Node::Tensor(_) => "a tensor",
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

fn malformed(s: impl Into<String>) -> PickleError {
    PickleError::Malformed(s.into())
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                malformed(format!(
                    "ends inside an opcode at byte {} (truncated?)",
                    self.pos
                ))
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    }

    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            malformed(format!(
                "ends inside a text argument at byte {} (truncated?)",
                self.pos
            ))
        })?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn len_arg(&mut self, n: usize) -> Result<usize, PickleError> {
        let len = self.le(n)?;
        if len > (self.data.len() - self.pos) as u64 {
            return Err(malformed(format!(
                "a length of {len} bytes at byte {} runs past its end",
                self.pos
            )));
        }
        Ok(len as usize)
    }

    fn alloc(&mut self, node: Node) -> Result<Id, PickleError> {
        if self.nodes.len() >= MAX_ITEMS {
            return Err(PickleError::TooLarge(format!(
                "more than {MAX_ITEMS} values, far more than a state dict holds"
            )));
        }
        self.nodes.push(node);
        Ok((self.nodes.len() - 1) as Id)
    }

    fn push(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_ITEMS {
            return Err(PickleError::TooLarge(format!(
                "its stack exceeds {MAX_ITEMS} entries"
            )));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, node: Node) -> Result<(), PickleError> {
        let id = self.alloc(node)?;
        self.push(id)
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(malformed(format!(
                "pops an empty stack at byte {}",
                self.pos
            )));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(malformed(format!(
                "reads an empty stack at byte {}",
                self.pos
            )));
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| malformed(format!("no MARK before byte {}", self.pos)))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= MAX_ITEMS && !self.memo.contains_key(&key) {
            return Err(PickleError::TooLarge(format!(
                "its memo exceeds {MAX_ITEMS} entries"
            )));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| malformed(format!("memo entry {key} is read before it is written")))?;
        self.push(id)
    }

    fn int_of(&self, id: Id) -> Option<i64> {
        match self.nodes[id as usize] {
            Node::Int(i) => Some(i),
            Node::Bool(b) => Some(b as i64),
            _ => None,
        }
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.nodes[id as usize] {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn tuple_of(&self, id: Id) -> Option<&[Id]> {
        match &self.nodes[id as usize] {
            Node::Tuple(t) => Some(t),
            _ => None,
        }
    }

    fn kind(&self, id: Id) -> &'static str {
        self.nodes[id as usize].kind()
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let g = Global::resolve(module, name)?;
        self.push_new(Node::Global(g))
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let at = self.pos;
            let op = self
                .u8()
                .map_err(|_| malformed(format!("ends at byte {at} without STOP (truncated?)")))?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(malformed(format!("pickle protocol {v} is unknown")));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                b'(' => {
                    if self.marks.len() >= MAX_ITEMS {
                        return Err(PickleError::TooLarge("too many MARKs".into()));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.push(id)?;
                }
                b'N' => self.push_new(Node::None)?,
                0x88 => self.push_new(Node::Bool(true))?,
                0x89 => self.push_new(Node::Bool(false))?,
                b'I' => {
                    let l = self.line()?;
                    let node = match l {
                        b"01" => Node::Bool(true),
                        b"00" => Node::Bool(false),
                        _ => Node::Int(parse_int(l).ok_or_else(|| {
                            malformed(format!("INT at byte {at} is not a number"))
                        })?),
                    };
                    self.push_new(node)?;
                }
                b'L' => {
                    let l = self.line()?;
                    let l = l.strip_suffix(b"L").unwrap_or(l);
                    let node = match parse_int(l) {
                        Some(i) => Node::Int(i),
                        None if !l.is_empty()
                            && l.iter().enumerate().all(|(i, c)| {
                                c.is_ascii_digit() || (i == 0 && (*c == b'-' || *c == b'+'))
                            }) =>
                        {
                            Node::BigInt
                        }
                        None => {
                            return Err(malformed(format!("LONG at byte {at} is not a number")));
                        }
                    };
                    self.push_new(node)?;
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push_new(Node::Int(v as i64))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_new(Node::Int(v as i64))?;
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push_new(Node::Int(v as i64))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = self.le(4)? as u32 as i32;
                        if n < 0 {
                            return Err(malformed(format!("LONG4 at byte {at} has length {n}")));
                        }
                        let n = n as usize;
                        if n > self.data.len() - self.pos {
                            return Err(malformed(format!("LONG4 at byte {at} runs past the end")));
                        }
                        n
                    };
                    let b = self.take(n)?;
                    self.push_new(long_le(b))?;
                }
                b'G' => {
                    self.take(8)?;
                    self.push_new(Node::Float)?;
                }
                b'F' => {
                    self.line()?;
                    self.push_new(Node::Float)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len_arg(4)?,
                        0x8c => self.len_arg(1)?,
                        _ => self.len_arg(8)?,
                    };
                    let b = self.take(n)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| malformed(format!("string at byte {at} is not UTF-8")))?;
                    self.push_new(Node::Str(s.to_string()))?;
                }
                b'V' => {
                    let l = self.line()?;
                    if !l.is_ascii() || l.contains(&b'\\') {
                        return Err(malformed(format!(
                            "UNICODE at byte {at} uses escapes snrscope does not decode"
                        )));
                    }
                    let s = String::from_utf8_lossy(l).into_owned();
                    self.push_new(Node::Str(s))?;
                }
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.len_arg(4)?
                    } else {
                        self.len_arg(1)?
                    };
                    // Python 3 decodes these (protocol 0-2 `str` of Python 2) as ASCII/latin-1.
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.push_new(Node::Str(s))?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len_arg(4)?,
                        b'C' => self.len_arg(1)?,
                        _ => self.len_arg(8)?,
                    };
                    self.take(n)?;
                    self.push_new(Node::Bytes)?;
                }
                b')' => self.push_new(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_new(Node::Tuple(items))?;
                }
                b']' => self.push_new(Node::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::List(items))?;
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    let list = self.top()?;
                    match &mut self.nodes[list as usize] {
                        Node::List(l) => l.extend(items),
                        other => {
                            return Err(malformed(format!(
                                "APPEND at byte {at} to {}, not a list",
                                other.kind()
                            )));
                        }
                    }
                }
                b'}' => self.push_new(Node::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items, at)?;
                    self.push_new(Node::Dict(pairs))?;
                }
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    let pairs = pairs(items, at)?;
                    let dict = self.top()?;
                    match &mut self.nodes[dict as usize] {
                        Node::Dict(d) => d.extend(pairs),
                        other => {
                            return Err(malformed(format!(
                                "SETITEM at byte {at} on {}, not a dict",
                                other.kind()
                            )));
                        }
                    }
                }
                0x8f => self.push_new(Node::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    match &mut self.nodes[set as usize] {
                        Node::Set(s) => s.extend(items),
                        other => {
                            return Err(malformed(format!(
                                "ADDITEMS at byte {at} on {}, not a set",
                                other.kind()
                            )));
                        }
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::Set(items))?;
                }
                b'g' => {
                    let l = self.line()?;
                    let k = parse_int(l)
                        .filter(|&k| k >= 0)
                        .ok_or_else(|| malformed(format!("GET at byte {at} is not a number")))?;
                    self.memo_get(k as u64)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.le(4)?;
                    self.memo_get(k)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let k = parse_int(l)
                        .filter(|&k| k >= 0)
                        .ok_or_else(|| malformed(format!("PUT at byte {at} is not a number")))?;
                    self.memo_put(k as u64)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.le(4)?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'c' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.str_of(module), self.str_of(name)) {
                        (Some(m), Some(n)) => {
                            let (m, n) = (m.to_string(), n.to_string());
                            self.global(&m, &n)?;
                        }
                        _ => {
                            return Err(malformed(format!(
                                "STACK_GLOBAL at byte {at} names a module by {}, not a string",
                                self.kind(module)
                            )));
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let id = self.reduce(callable, args, at)?;
                    self.push(id)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    // `OrderedDict` state (a `state_dict()`'s `_metadata`): an attribute, plain
                    // data, ignored. Nothing else is built.
                    let ok = matches!(self.nodes[obj as usize], Node::Dict(_))
                        && matches!(self.nodes[state as usize], Node::Dict(_) | Node::None);
                    if !ok {
                        return Err(refused_use(
                            &self.nodes[obj as usize],
                            format!(
                                "sets the state of {} (BUILD at byte {at}), which only an \
                                 object's own code could do",
                                self.kind(obj)
                            ),
                        ));
                    }
                }
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?;
                    }
                    self.pop()?;
                    let cls = self.pop()?;
                    return Err(refused_use(
                        &self.nodes[cls as usize],
                        format!(
                            "creates an instance of {} (NEWOBJ at byte {at}), not a tensor or \
                             a plain container",
                            self.describe(cls)
                        ),
                    ));
                }
                b'o' => {
                    let items = self.pop_mark()?;
                    let cls = items.first().copied();
                    let what = cls.map_or_else(|| "nothing".to_string(), |c| self.describe(c));
                    let node = cls.map(|c| &self.nodes[c as usize]).unwrap_or(&Node::None);
                    return Err(refused_use(
                        node,
                        format!(
                            "creates an instance of {what} (OBJ at byte {at}), not a tensor \
                             or a plain container"
                        ),
                    ));
                }
                b'i' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    let g = Global::resolve(&module, &name)?;
                    return Err(PickleError::Refused {
                        global: g.name(),
                        what: format!(
                            "creates an instance of {} (INST at byte {at}), not a tensor or a \
                             plain container",
                            g.name()
                        ),
                    });
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let node = self.storage(pid, at)?;
                    self.push_new(node)?;
                }
                b'P' => {
                    return Err(malformed(format!(
                        "a text persistent id (PERSID at byte {at}); torch writes BINPERSID"
                    )));
                }
                0x82..=0x84 => {
                    return Err(malformed(format!(
                        "an extension-registry code (EXT at byte {at}), which names an object \
                         by number"
                    )));
                }
                0x97 | 0x98 => {
                    return Err(malformed(format!(
                        "an out-of-band buffer (at byte {at}), which torch.save never writes"
                    )));
                }
                b'S' => {
                    return Err(malformed(format!(
                        "a quoted protocol-0 string (STRING at byte {at}), which torch.save \
                         never writes"
                    )));
                }
                other => {
                    return Err(malformed(format!(
                        "unknown opcode 0x{other:02x} at byte {at} (not a pickle?)"
                    )));
                }
            }
        }
    }

    /// "collections.OrderedDict", "a string", …
    fn describe(&self, id: Id) -> String {
        match &self.nodes[id as usize] {
            Node::Global(g) => g.name(),
            other => other.kind().to_string(),
        }
    }

    /// `BINPERSID`: torch's `('storage', torch.XStorage, key, location, numel)`.
    fn storage(&self, pid: Id, at: usize) -> Result<Node, PickleError> {
        let bad = || {
            malformed(format!(
                "a persistent id at byte {at} that is not a torch storage \
                 ('storage', type, key, location, size)"
            ))
        };
        let t = self.tuple_of(pid).ok_or_else(bad)?;
        let [tag, ty, key, _location, numel] = t else {
            return Err(bad());
        };
        if self.str_of(*tag) != Some("storage") {
            return Err(bad());
        }
        let dtype = match &self.nodes[*ty as usize] {
            Node::Global(Global::Storage(d, _)) => *d,
            Node::Global(g) => {
                return Err(PickleError::Refused {
                    global: g.name(),
                    what: format!(
                        "gives a storage at byte {at} the type {}, not a torch storage class",
                        g.name()
                    ),
                });
            }
            _ => return Err(bad()),
        };
        let key = self.str_of(*key).ok_or_else(bad)?.to_string();
        let numel = self.int_of(*numel).filter(|&n| n >= 0).ok_or_else(bad)? as u64;
        Ok(Node::Storage(Box::new((dtype, key, numel))))
    }

    /// `REDUCE`: only the tensor rebuild functions and an empty `OrderedDict()` are called.
    fn reduce(&mut self, callable: Id, args: Id, at: usize) -> Result<Id, PickleError> {
        let g = match &self.nodes[callable as usize] {
            Node::Global(g) => *g,
            other => {
                return Err(malformed(format!(
                    "REDUCE at byte {at} calls {}, not a function",
                    other.kind()
                )));
            }
        };
        let arity = |m: &Self, lo: usize, hi: usize| -> Result<Vec<Id>, PickleError> {
            match m.tuple_of(args) {
                Some(a) if (lo..=hi).contains(&a.len()) => Ok(a.to_vec()),
                Some(a) => Err(malformed(format!(
                    "{} at byte {at} is called with {} arguments",
                    g.name(),
                    a.len()
                ))),
                None => Err(malformed(format!(
                    "{} at byte {at} is called with {} instead of an argument tuple",
                    g.name(),
                    m.kind(args)
                ))),
            }
        };
        match g {
            Global::OrderedDict => {
                arity(self, 0, 0)?;
                self.alloc(Node::Dict(Vec::new()))
            }
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                let a = if g == Global::RebuildTensorV2 {
                    arity(self, 6, 7)?
                } else {
                    arity(self, 4, 4)?
                };
                let t = self.tensor(g, &a, at)?;
                self.alloc(Node::Tensor(Box::new(t)))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let a = if g == Global::RebuildParameter {
                    arity(self, 3, 3)?
                } else {
                    arity(self, 4, 4)?
                };
                if !matches!(self.nodes[a[0] as usize], Node::Tensor(_)) {
                    return Err(malformed(format!(
                        "{} at byte {at} wraps {}, not a tensor",
                        g.name(),
                        self.kind(a[0])
                    )));
                }
                self.check_no_hooks(g, a[2], at)?;
                if let Some(&state) = a.get(3) {
                    self.check_plain_state(g, state, at)?;
                }
                Ok(a[0])
            }
            Global::RebuildFromTypeV2 => {
                let a = arity(self, 4, 4)?;
                let (func, ty, inner, state) = (a[0], a[1], a[2], a[3]);
                match self.nodes[ty as usize] {
                    Node::Global(Global::TensorType | Global::ParameterType) => {}
                    _ => {
                        return Err(refused_use(
                            &self.nodes[ty as usize],
                            format!(
                                "calls {} at byte {at} to rebuild a tensor as {}, not torch.Tensor \
                                 or torch.nn.parameter.Parameter",
                                g.name(),
                                self.describe(ty)
                            ),
                        ));
                    }
                }
                self.check_plain_state(g, state, at)?;
                match self.nodes[func as usize] {
                    Node::Global(
                        Global::RebuildTensorV2
                        | Global::RebuildTensor
                        | Global::RebuildParameter
                        | Global::RebuildParameterWithState,
                    ) => self.reduce(func, inner, at),
                    _ => Err(refused_use(
                        &self.nodes[func as usize],
                        format!(
                            "calls {} at byte {at} with {}, not a tensor rebuild",
                            g.name(),
                            self.describe(func)
                        ),
                    )),
                }
            }
            Global::TensorType | Global::ParameterType | Global::Storage(..) => {
                Err(PickleError::Refused {
                    global: g.name(),
                    what: format!(
                        "calls {} (REDUCE at byte {at}), which is not a tensor rebuild",
                        g.name()
                    ),
                })
            }
        }
    }

    fn check_no_hooks(&self, g: Global, hooks: Id, at: usize) -> Result<(), PickleError> {
        match &self.nodes[hooks as usize] {
            Node::Dict(d) if d.is_empty() => Ok(()),
            Node::None => Ok(()),
            other => Err(malformed(format!(
                "{} at byte {at} carries backward hooks ({}), which a checkpoint never needs",
                g.name(),
                other.kind()
            ))),
        }
    }

    fn check_plain_state(&self, g: Global, state: Id, at: usize) -> Result<(), PickleError> {
        match &self.nodes[state as usize] {
            Node::Dict(_) | Node::None => Ok(()),
            other => Err(malformed(format!(
                "{} at byte {at} has a state of {}, not a dict",
                g.name(),
                other.kind()
            ))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    /// or `_rebuild_tensor(storage, offset, size, stride)`.
    fn tensor(&self, g: Global, a: &[Id], at: usize) -> Result<TensorNode, PickleError> {
        let bad = |what: &str| malformed(format!("{} at byte {at}: {what}", g.name()));
        let Node::Storage(s) = &self.nodes[a[0] as usize] else {
            return Err(bad(&format!(
                "its storage is {}, not a persistent storage",
                self.kind(a[0])
            )));
        };
        let (dtype, key, numel) = (s.0, s.1.clone(), s.2);
        let storage_offset = self
            .int_of(a[1])
            .filter(|&o| o >= 0)
            .ok_or_else(|| bad("its storage offset is not a non-negative int"))?
            as u64;
        let dims = |id: Id, what: &str| -> Result<Vec<usize>, PickleError> {
            let t = self
                .tuple_of(id)
                .ok_or_else(|| bad(&format!("its {what} is not a tuple")))?;
            if t.len() > 64 {
                return Err(bad(&format!("its {what} has {} dimensions", t.len())));
            }
            t.iter()
                .map(|&d| {
                    self.int_of(d)
                        .filter(|&d| d >= 0)
                        .and_then(|d| usize::try_from(d).ok())
                        .ok_or_else(|| {
                            bad(&format!("its {what} holds a negative or non-int value"))
                        })
                })
                .collect()
        };
        let shape = dims(a[2], "size")?;
        let stride = dims(a[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(bad("its size and stride differ in length"));
        }
        if a.len() > 4 {
            if !matches!(self.nodes[a[4] as usize], Node::Bool(_) | Node::Int(_)) {
                return Err(bad("requires_grad is not a bool"));
            }
            self.check_no_hooks(g, a[5], at)?;
        }
        if let Some(&meta) = a.get(6) {
            match &self.nodes[meta as usize] {
                Node::None => {}
                Node::Dict(d) if d.is_empty() => {}
                _ => {
                    return Err(bad(
                        "it carries tensor metadata (conjugate/negative bits?), which snrscope \
                         does not apply",
                    ));
                }
            }
        }
        Ok(TensorNode {
            dtype,
            shape,
            stride,
            storage_offset,
            storage_key: key,
            storage_numel: numel,
        })
    }
}

/// Refusal of an allowed global used for something it is not allowed to do, naming it; a
/// malformed-pickle error when the object is not a global at all.
fn refused_use(node: &Node, what: String) -> PickleError {
    match node {
        Node::Global(g) => PickleError::Refused {
            global: g.name(),
            what,
        },
        _ => PickleError::Malformed(what),
    }
}

fn pairs(items: Vec<Id>, at: usize) -> Result<Vec<(Id, Id)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed(format!(
            "a dict at byte {at} has an odd number of keys and values"
        )));
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Little-endian two's complement (LONG1 / LONG4).
fn long_le(b: &[u8]) -> Node {
    if b.is_empty() {
        return Node::Int(0);
    }
    if b.len() > 8 {
        // Fits in i64 only if the extra bytes are sign extension.
        let neg = b[7] & 0x80 != 0;
        let fill = if neg { 0xff } else { 0 };
        if b[8..].iter().any(|&x| x != fill) {
            return Node::BigInt;
        }
        return long_le(&b[..8]);
    }
    let mut v: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        v |= (x as u64) << (8 * i);
    }
    let bits = 8 * b.len();
    let v = if bits < 64 && b[b.len() - 1] & 0x80 != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    };
    Node::Int(v)
}

/// Reads a checkpoint's pickle: a dict (or `OrderedDict`) of name → tensor, in file order.
pub(crate) fn read_state_dict(data: &[u8]) -> Result<Vec<PickledTensor>, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    let Node::Dict(items) = &m.nodes[root as usize] else {
        return Err(malformed(format!(
            "it holds {}, not a dict of tensors (a state dict)",
            m.kind(root)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for &(k, v) in items {
        let name = m.str_of(k).ok_or_else(|| {
            malformed(format!(
                "its dict has a key that is {}, not a tensor name",
                m.kind(k)
            ))
        })?;
        let Node::Tensor(t) = &m.nodes[v as usize] else {
            return Err(malformed(format!(
                "its entry {} is {}, not a tensor (snrscope reads a model's state dict: names \
                 to tensors; a training checkpoint holds the state dict under a key)",
                printable(name),
                m.kind(v)
            )));
        };
        if !seen.insert(name) {
            return Err(malformed(format!(
                "tensor {} is stored twice",
                printable(name)
            )));
        }
        out.push(PickledTensor {
            name: name.to_string(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            stride: t.stride.clone(),
            storage_offset: t.storage_offset,
            storage_key: t.storage_key.clone(),
            storage_numel: t.storage_numel,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol-2 pickle of `{name: _rebuild_tensor_v2(storage, 0, shape, stride, False,
    /// OrderedDict())}`, as torch.save writes it.
    fn state_dict(tensors: &[(&str, &str, &str, &[u64], u64)]) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        for (i, (name, storage, key, shape, numel)) in tensors.iter().enumerate() {
            p.push(b'X');
            p.extend((name.len() as u32).to_le_bytes());
            p.extend(name.as_bytes());
            p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            p.extend(b"(X\x07\x00\x00\x00storage");
            p.extend(format!("ctorch\n{storage}\n").as_bytes());
            p.push(b'X');
            p.extend((key.len() as u32).to_le_bytes());
            p.extend(key.as_bytes());
            p.extend(b"X\x03\x00\x00\x00cpu");
            p.push(b'J');
            p.extend((*numel as u32).to_le_bytes());
            p.extend(b"tQ");
            p.extend(b"K\x00");
            p.push(b'(');
            for &d in *shape {
                p.push(b'J');
                p.extend((d as u32).to_le_bytes());
            }
            p.push(b't');
            p.push(b'(');
            let mut stride = vec![1u64; shape.len()];
            for j in (0..shape.len().saturating_sub(1)).rev() {
                stride[j] = stride[j + 1] * shape[j + 1];
            }
            for d in stride {
                p.push(b'J');
                p.extend((d as u32).to_le_bytes());
            }
            p.push(b't');
            p.push(0x89);
            p.extend(b"ccollections\nOrderedDict\n)R");
            p.extend(b"tR");
            p.push(b'q');
            p.push(i as u8 + 1);
        }
        p.extend(b"u.");
        p
    }

    #[test]
    fn reads_a_state_dict() {
        let p = state_dict(&[
            ("a.weight", "FloatStorage", "0", &[2, 3], 6),
            ("b", "BFloat16Storage", "1", &[4], 4),
        ]);
        let t = read_state_dict(&p).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "a.weight");
        assert_eq!(t[0].dtype, Dtype::F32);
        assert_eq!(t[0].shape, vec![2, 3]);
        assert_eq!(t[0].stride, vec![3, 1]);
        assert_eq!(t[1].dtype, Dtype::BF16);
        assert_eq!(t[1].storage_key, "1");
    }

    #[test]
    fn refuses_foreign_globals_by_name() {
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.";
        let e = read_state_dict(p).unwrap_err();
        assert!(matches!(&e, PickleError::Refused { global, .. } if global == "os.system"));
        assert!(e.to_string().contains("os.system"), "{e}");
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        let e = read_state_dict(p).unwrap_err();
        assert!(matches!(&e, PickleError::Refused { global, .. } if global == "builtins.eval"));
    }

    #[test]
    fn refuses_calling_a_storage_class() {
        let p = b"\x80\x02ctorch\nFloatStorage\n)R.";
        let e = read_state_dict(p).unwrap_err();
        assert!(
            matches!(&e, PickleError::Refused { global, .. } if global == "torch.FloatStorage"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not a tensor rebuild"), "{e}");
    }

    #[test]
    fn memo_shares_instead_of_copying() {
        // A list appended to itself through the memo, 60 times doubled: a copying reader
        // would need 2^60 entries.
        let mut p = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..60 {
            p.extend(b"h\x00h\x00\x86q\x00");
        }
        p.extend(b"0}.");
        assert_eq!(read_state_dict(&p).unwrap(), vec![]);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.extend(b"0}.");
        assert_eq!(read_state_dict(&p).unwrap(), vec![]);
    }

    #[test]
    fn long_decoding() {
        assert!(matches!(long_le(&[0xff]), Node::Int(-1)));
        assert!(matches!(long_le(&[0x00, 0x01]), Node::Int(256)));
        assert!(matches!(long_le(&[0xff; 12]), Node::Int(-1)));
        assert!(matches!(long_le(&[0x01; 12]), Node::BigInt));
    }
}
