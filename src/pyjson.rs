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

impl PyJson {
    pub fn parse(text: &str) -> Result<PyJson, json5::Error> {
        json5::from_str(text)
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
}
