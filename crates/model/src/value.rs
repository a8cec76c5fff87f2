//! Attribute values: what a custom attribute can hold, and how values compare.

use crate::datetime;
use jiff::Timestamp;
use serde_json::Value as Json;

/// One attribute value. A string that parses as an ISO-8601 datetime with an offset
/// when written is stored as a [`Value::DateTime`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    String(String),
    /// Integers and floats alike, compared as f64.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
    /// An instant.
    DateTime(Timestamp),
    /// An ordered list of strings.
    Array(Vec<String>),
}

impl Value {
    /// Reads a JSON value as an attribute value: `Ok(None)` for null (an unset), and an
    /// error saying why for objects, non-finite numbers and arrays of non-strings.
    pub fn from_json(json: &Json) -> Result<Option<Value>, String> {
        Ok(Some(match json {
            Json::Null => return Ok(None),
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Value::Number(f),
                _ => return Err("numbers must be finite".into()),
            },
            Json::String(s) => match datetime::as_attribute_datetime(s) {
                Some(t) => Value::DateTime(t),
                None => Value::String(s.clone()),
            },
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| match item {
                        Json::String(s) => Ok(s.clone()),
                        _ => Err("arrays may hold only strings".to_string()),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(_) => return Err("nested objects are not supported".into()),
        }))
    }

    /// The JSON form of this value, datetimes as RFC 3339 strings in UTC.
    pub fn to_json(&self) -> Json {
        match self {
            Value::String(s) => Json::String(s.clone()),
            Value::Number(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Bool(b) => Json::Bool(*b),
            Value::DateTime(t) => Json::String(t.to_string()),
            Value::Array(a) => Json::Array(a.iter().cloned().map(Json::String).collect()),
        }
    }

    /// `eq` of segments.md: same kind, numbers numerically, datetimes as instants,
    /// arrays element by element in order.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Number(a), Value::Number(b)) => a == b,
            _ => self == other,
        }
    }

    /// A short name of the kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "boolean",
            Value::DateTime(_) => "datetime",
            Value::Array(_) => "array",
        }
    }
}
