//! JSON as Python's `json` module writes it: numbers may be the bare tokens `Infinity`,
//! `-Infinity` and `NaN`. `serde_json::Value` cannot hold those (it turns them into null), so
//! scan files are read into this value type instead.

use std::{collections::BTreeMap, fmt};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum PyJson {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<PyJson>),
    Object(BTreeMap<String, PyJson>),
}

/// Deeper nesting than any scan file needs. The parser recurses per level, so a hostile file
/// nested tens of thousands deep would otherwise overflow the stack and abort the process.
pub(crate) const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PyJsonError {
    #[error("nested more than {MAX_DEPTH} levels deep (at byte {at}); not a scan file")]
    TooDeep { at: usize },
    #[error("{0}")]
    Syntax(#[from] json5::Error),
}

impl PyJson {
    pub fn parse(text: &str) -> Result<PyJson, PyJsonError> {
        check_depth(text)?;
        Ok(json5::from_str(text)?)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PyJson::Number(x) => Some(*x),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyJson::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&BTreeMap<String, PyJson>> {
        match self {
            PyJson::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&PyJson> {
        self.as_object()?.get(key)
    }
}

/// Counts bracket nesting outside strings, without recursion.
fn check_depth(text: &str) -> Result<(), PyJsonError> {
    let (mut depth, mut in_str, mut escaped, mut quote) = (0usize, false, false, b'"');
    for (at, &b) in text.as_bytes().iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == quote {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => {
                in_str = true;
                quote = b;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(PyJsonError::TooDeep { at });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

impl<'de> Deserialize<'de> for PyJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PyJson, D::Error> {
        d.deserialize_any(PyJsonVisitor)
    }
}

struct PyJsonVisitor;

impl<'de> Visitor<'de> for PyJsonVisitor {
    type Value = PyJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<PyJson, E> {
        Ok(PyJson::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<PyJson, E> {
        Ok(PyJson::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<PyJson, E> {
        Ok(PyJson::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PyJson, E> {
        Ok(PyJson::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PyJson, E> {
        Ok(PyJson::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PyJson, E> {
        Ok(PyJson::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<PyJson, E> {
        Ok(PyJson::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<PyJson, E> {
        Ok(PyJson::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyJson, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(PyJson::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyJson, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, PyJson>()? {
            out.insert(k, v);
        }
        Ok(PyJson::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_python_special_floats() {
        let v =
            PyJson::parse(r#"{"a": {"snr": Infinity}, "b": [NaN, -Infinity, 1.5, 2]}"#).unwrap();
        assert_eq!(
            v.get("a").unwrap().get("snr").unwrap().as_f64(),
            Some(f64::INFINITY)
        );
        let PyJson::Array(b) = v.get("b").unwrap() else {
            panic!("array")
        };
        assert!(b[0].as_f64().unwrap().is_nan());
        assert_eq!(b[1].as_f64(), Some(f64::NEG_INFINITY));
        assert_eq!(b[2].as_f64(), Some(1.5));
        assert_eq!(b[3].as_f64(), Some(2.0));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert!(matches!(
            PyJson::parse(&deep),
            Err(PyJsonError::TooDeep { at: 64 })
        ));
        // Brackets inside strings do not count.
        let text = format!("{{\"a\": \"{}\"}}", "[".repeat(1000));
        assert!(PyJson::parse(&text).is_ok());
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(PyJson::parse(&ok).is_ok());
    }
}
