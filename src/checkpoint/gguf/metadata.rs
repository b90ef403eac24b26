//! Metadata values: GGUF's typed key/value pairs. Arrays keep their element type (a `u8` array
//! is stored as bytes, not as one enum per element), so a header's memory stays proportional to
//! its size in the file.

/// GGUF value type ids.
pub(crate) mod id {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// The fewest bytes one value of this type takes in a file (a string is at least its length
/// field, an array its type and length): what a count is checked against before it is trusted.
pub(crate) fn min_size(type_id: u32) -> Option<u64> {
    Some(match type_id {
        id::U8 | id::I8 | id::BOOL => 1,
        id::U16 | id::I16 => 2,
        id::U32 | id::I32 | id::F32 => 4,
        id::U64 | id::I64 | id::F64 | id::STRING => 8,
        id::ARRAY => 12,
        _ => return None,
    })
}

pub(crate) fn type_name(type_id: u32) -> &'static str {
    match type_id {
        id::U8 => "uint8",
        id::I8 => "int8",
        id::U16 => "uint16",
        id::I16 => "int16",
        id::U32 => "uint32",
        id::I32 => "int32",
        id::F32 => "float32",
        id::BOOL => "bool",
        id::STRING => "string",
        id::ARRAY => "array",
        id::U64 => "uint64",
        id::I64 => "int64",
        id::F64 => "float64",
        _ => "unknown",
    }
}

/// One metadata value. Strings that are not UTF-8 are read with U+FFFD in place of the bad
/// bytes (the writer copies unchanged entries byte for byte, so nothing is lost there).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array of one element type.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

macro_rules! each_array {
    ($a:expr, $v:ident => $e:expr) => {
        match $a {
            Array::U8($v) => $e,
            Array::I8($v) => $e,
            Array::U16($v) => $e,
            Array::I16($v) => $e,
            Array::U32($v) => $e,
            Array::I32($v) => $e,
            Array::F32($v) => $e,
            Array::Bool($v) => $e,
            Array::Str($v) => $e,
            Array::Array($v) => $e,
            Array::U64($v) => $e,
            Array::I64($v) => $e,
            Array::F64($v) => $e,
        }
    };
}

impl Array {
    pub fn len(&self) -> usize {
        each_array!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn elem_type(&self) -> u32 {
        match self {
            Array::U8(_) => id::U8,
            Array::I8(_) => id::I8,
            Array::U16(_) => id::U16,
            Array::I16(_) => id::I16,
            Array::U32(_) => id::U32,
            Array::I32(_) => id::I32,
            Array::F32(_) => id::F32,
            Array::Bool(_) => id::BOOL,
            Array::Str(_) => id::STRING,
            Array::Array(_) => id::ARRAY,
            Array::U64(_) => id::U64,
            Array::I64(_) => id::I64,
            Array::F64(_) => id::F64,
        }
    }

    /// The elements at `indices` (each < len), in that order.
    pub fn select(&self, indices: &[usize]) -> Array {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Array::U8(v) => Array::U8(pick(v, indices)),
            Array::I8(v) => Array::I8(pick(v, indices)),
            Array::U16(v) => Array::U16(pick(v, indices)),
            Array::I16(v) => Array::I16(pick(v, indices)),
            Array::U32(v) => Array::U32(pick(v, indices)),
            Array::I32(v) => Array::I32(pick(v, indices)),
            Array::F32(v) => Array::F32(pick(v, indices)),
            Array::Bool(v) => Array::Bool(pick(v, indices)),
            Array::Str(v) => Array::Str(pick(v, indices)),
            Array::Array(v) => Array::Array(pick(v, indices)),
            Array::U64(v) => Array::U64(pick(v, indices)),
            Array::I64(v) => Array::I64(pick(v, indices)),
            Array::F64(v) => Array::F64(pick(v, indices)),
        }
    }

    /// Element `i` as an integer, for arrays of integers (and bools).
    pub fn int(&self, i: usize) -> Option<i128> {
        Some(match self {
            Array::U8(v) => *v.get(i)? as i128,
            Array::I8(v) => *v.get(i)? as i128,
            Array::U16(v) => *v.get(i)? as i128,
            Array::I16(v) => *v.get(i)? as i128,
            Array::U32(v) => *v.get(i)? as i128,
            Array::I32(v) => *v.get(i)? as i128,
            Array::U64(v) => *v.get(i)? as i128,
            Array::I64(v) => *v.get(i)? as i128,
            Array::Bool(v) => *v.get(i)? as i128,
            _ => return None,
        })
    }

    /// Element `i` as a float, for arrays of numbers.
    pub fn float(&self, i: usize) -> Option<f64> {
        match self {
            Array::F32(v) => v.get(i).map(|&x| x as f64),
            Array::F64(v) => v.get(i).copied(),
            _ => self.int(i).map(|x| x as f64),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.elem_type().to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        match self {
            Array::U8(v) => out.extend_from_slice(v),
            Array::I8(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::U16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::I16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::U32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::Bool(v) => v.iter().for_each(|&x| out.push(x as u8)),
            Array::Str(v) => v.iter().for_each(|s| encode_str(s, out)),
            Array::Array(v) => v.iter().for_each(|a| a.encode(out)),
            Array::U64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Array::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

pub(crate) fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Value {
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => id::U8,
            Value::I8(_) => id::I8,
            Value::U16(_) => id::U16,
            Value::I16(_) => id::I16,
            Value::U32(_) => id::U32,
            Value::I32(_) => id::I32,
            Value::F32(_) => id::F32,
            Value::Bool(_) => id::BOOL,
            Value::Str(_) => id::STRING,
            Value::Array(_) => id::ARRAY,
            Value::U64(_) => id::U64,
            Value::I64(_) => id::I64,
            Value::F64(_) => id::F64,
        }
    }

    /// An integer value of any width (bools excluded).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }

    /// A non-negative integer that fits in usize.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_int().and_then(|v| usize::try_from(v).ok())
    }

    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_int().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The same integer type holding `n` (for `block_count`); `None` if `n` does not fit.
    pub(crate) fn with_int(&self, n: u64) -> Option<Value> {
        Some(match self {
            Value::U8(_) => Value::U8(n.try_into().ok()?),
            Value::I8(_) => Value::I8(n.try_into().ok()?),
            Value::U16(_) => Value::U16(n.try_into().ok()?),
            Value::I16(_) => Value::I16(n.try_into().ok()?),
            Value::U32(_) => Value::U32(n.try_into().ok()?),
            Value::I32(_) => Value::I32(n.try_into().ok()?),
            Value::U64(_) => Value::U64(n),
            Value::I64(_) => Value::I64(n.try_into().ok()?),
            _ => return None,
        })
    }

    /// The value's type id and bytes, as in a file.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.type_id().to_le_bytes());
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(*v as u8),
            Value::Str(s) => encode_str(s, out),
            Value::Array(a) => a.encode(out),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

/// One key/value pair and where its bytes lie in the file (the writer copies unchanged pairs
/// from there).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaEntry {
    pub key: String,
    pub value: Value,
    /// Absolute byte range of the whole pair (key, type, value) in its file.
    pub raw: std::ops::Range<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_spec_says() {
        let mut out = Vec::new();
        Value::Array(Array::U16(vec![1, 2])).encode(&mut out);
        assert_eq!(
            out,
            [9, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0]
        );
        let a = Array::Str(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(a.select(&[2, 0]), Array::Str(vec!["c".into(), "a".into()]));
        assert_eq!(Value::U32(7).with_int(300), Some(Value::U32(300)));
        assert_eq!(Value::U8(7).with_int(300), None);
    }
}
