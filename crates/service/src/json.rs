//! Reading JSON that the API accepts: like `serde_json`, except that an object may not
//! name a key twice (`serde_json::Value` silently keeps the last).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a text is not JSON the API accepts.
#[derive(Debug)]
pub enum JsonError {
    /// An object names `key` twice; `path` locates the object (`events[0]`), empty at
    /// the top level.
    Duplicate {
        /// The repeated key.
        key: String,
        /// Where the object is, as `a.b[2]`; empty for the body itself.
        path: String,
    },
    /// Not JSON at all.
    Syntax(serde_json::Error),
}

impl JsonError {
    /// The same error for a value found at `prefix` (`events[3]`) of a larger body.
    pub fn within(self, prefix: &str) -> JsonError {
        match self {
            JsonError::Duplicate { key, path } => {
                let sep = if path.is_empty() || path.starts_with('[') {
                    ""
                } else {
                    "."
                };
                JsonError::Duplicate {
                    key,
                    path: format!("{prefix}{sep}{path}"),
                }
            }
            other => other,
        }
    }

    /// The API's message for a body refused for this reason.
    pub fn message(&self) -> String {
        match self {
            JsonError::Duplicate { key, path } if path.is_empty() => {
                format!("the request body has the key \"{key}\" twice")
            }
            JsonError::Duplicate { key, path } => {
                format!("the request body has the key \"{key}\" twice in {path}")
            }
            JsonError::Syntax(e) => format!("the request body is not valid JSON: {e}"),
        }
    }
}

/// Parses JSON text into a [`Value`], refusing an object that names a key twice.
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    let found = Found::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    let result = Unique { found: &found }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match (result, found.duplicate.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(key)) => {
            let trail = found.trail.into_inner();
            Err(JsonError::Duplicate {
                key,
                path: render_path(trail.into_iter().rev()),
            })
        }
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// Checks that JSON text names no key twice in any object (without keeping it).
pub fn check(text: &str) -> Result<(), JsonError> {
    parse(text.as_bytes()).map(drop)
}

/// One step of a path, recorded while an error unwinds (so free when there is none).
enum Step {
    Key(String),
    Index(usize),
}

fn render_path(steps: impl Iterator<Item = Step>) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(&k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(&k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// What the parse found: the repeated key, and the path to it (innermost first).
#[derive(Default)]
struct Found {
    duplicate: RefCell<Option<String>>,
    trail: RefCell<Vec<Step>>,
}

/// A [`Value`] whose objects name each key once.
#[derive(Clone, Copy)]
struct Unique<'f> {
    found: &'f Found,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    self.found.trail.borrow_mut().push(Step::Index(items.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("the key \"{key}\" appears twice");
                *self.found.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            match map.next_value_seed(self) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(e) => {
                    self.found.trail.borrow_mut().push(Step::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> Option<(String, String)> {
        match parse(text.as_bytes()) {
            Err(JsonError::Duplicate { key, path }) => Some((key, path)),
            _ => None,
        }
    }

    #[test]
    fn a_repeated_key_is_named_with_where_it_is() {
        assert_eq!(
            duplicate(r#"{"a":[1],"a":[2]}"#),
            Some(("a".into(), String::new()))
        );
        assert_eq!(
            duplicate(r#"{"events":[{},{"x":1,"p":{"k":1,"k":2}}]}"#),
            Some(("k".into(), "events[1].p".into()))
        );
        assert_eq!(
            duplicate(r#"[{"x":1,"x":1}]"#),
            Some(("x".into(), "[0]".into()))
        );
    }

    #[test]
    fn anything_else_reads_as_serde_json_reads_it() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"s\u00e9"],"c":{"a":{}}}"#,
            r#"[]"#,
            r#""x""#,
            r#"18446744073709551615"#,
        ] {
            let ours = parse(text.as_bytes()).expect(text);
            let theirs: Value = serde_json::from_str(text).expect(text);
            assert_eq!(ours, theirs, "{text}");
        }
        for text in [r#"{"a":1"#, r#"{"a":1} x"#, "", "[1,]"] {
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            match parse(text.as_bytes()) {
                Err(JsonError::Syntax(e)) => assert_eq!(e.to_string(), theirs, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
