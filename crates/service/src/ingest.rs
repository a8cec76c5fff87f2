//! Reading `/users/track` bodies (and bulk-import lines, which share the format) into
//! user facts, object by object: an invalid object is reported by its index, the
//! valid ones are kept.

use crate::json::{self, JsonError};
use headcount_model::datetime;
use headcount_model::{Fact, FactKind, Timestamp, UserKey, Value};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json, json};
use std::borrow::Cow;

/// How a body is read.
#[derive(Debug, Clone, Copy)]
pub struct TrackOptions {
    /// Most objects per array; `None`: no limit (bulk import).
    pub max_objects: Option<usize>,
    /// Whether attribute objects may carry `"_time"` (bulk import only).
    pub allow_attribute_time: bool,
    /// The moment of receipt: the time of attribute updates, and the clamp of future times.
    pub now: Timestamp,
}

/// One rejected object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectError {
    /// `attributes`, `events` or `purchases`.
    pub array: &'static str,
    /// Its index in that array.
    pub index: usize,
    /// Why it was rejected.
    pub reason: String,
}

impl ObjectError {
    /// Braze's JSON form of a rejected object.
    pub fn to_json(&self) -> Json {
        json!({ "type": self.reason, "input_array": self.array, "index": self.index })
    }
}

/// A body read into facts.
#[derive(Debug, Default)]
pub struct Track {
    /// The facts of every valid object, in body order.
    pub facts: Vec<(UserKey, Fact)>,
    /// Valid objects per array, `None` for arrays not sent.
    pub processed: [Option<usize>; 3],
    /// The rejected objects.
    pub errors: Vec<ObjectError>,
}

/// The arrays of a body, in response order.
pub const ARRAYS: [&str; 3] = ["attributes", "events", "purchases"];

impl Track {
    /// The 201 body: counts for the arrays that were sent, and errors if any.
    pub fn response(&self) -> Json {
        let mut body = Map::new();
        body.insert("message".into(), "success".into());
        for (name, count) in ARRAYS.iter().zip(self.processed) {
            if let Some(count) = count {
                body.insert(format!("{name}_processed"), count.into());
            }
        }
        if !self.errors.is_empty() {
            body.insert(
                "errors".into(),
                self.errors.iter().map(ObjectError::to_json).collect(),
            );
        }
        Json::Object(body)
    }

    /// Valid objects in all arrays.
    pub fn valid_objects(&self) -> usize {
        self.processed.iter().flatten().sum()
    }
}

/// Reads a whole body. `Err` is a problem with the body itself (not an object, an
/// array over the limit, nothing to do); object problems go to [`Track::errors`].
pub fn read_track(body: &Map<String, Json>, options: &TrackOptions) -> Result<Track, String> {
    if let Some(unknown) = body
        .keys()
        .find(|k| !ARRAYS.contains(&k.as_str()) && k.as_str() != "partner")
    {
        return Err(format!(
            "unknown field \"{unknown}\"; expected attributes, events and/or purchases"
        ));
    }
    if !ARRAYS.iter().any(|a| body.contains_key(*a)) {
        return Err("the body must contain at least one of attributes, events, purchases".into());
    }
    let mut track = Track::default();
    for (slot, name) in ARRAYS.iter().enumerate() {
        let items = match body.get(*name) {
            None | Some(Json::Null) => continue,
            Some(Json::Array(items)) => items,
            Some(_) => return Err(format!("{name} must be an array of objects")),
        };
        if let Some(max) = options.max_objects
            && items.len() > max
        {
            return Err(format!(
                "Max Input Length Exceeded: {name} has {} objects, at most {max} are allowed per request",
                items.len()
            ));
        }
        let read = items.iter().map(|item| match slot {
            0 => attribute_object(item, options),
            1 => event_object(item, options),
            _ => purchase_object(item, options),
        });
        track.collect(slot, read);
    }
    Ok(track)
}

/// Reads a body given as JSON text (a line of a bulk import) into the same [`Track`]
/// as [`read_track`], faster: the common event shape `{external_id, name, time}` is
/// read straight from the text, without building a JSON tree; anything else takes the
/// general path, so answers and error messages are the same.
pub fn read_track_text(text: &str, options: &TrackOptions) -> Result<Track, String> {
    read_track_arrays(text, options).unwrap_or_else(|| match json::parse(text.as_bytes()) {
        Ok(Json::Object(map)) => read_track(&map, options),
        Ok(_) => Err("the body must be a JSON object (a /users/track body)".into()),
        Err(e) => Err(tree_error(e)),
    })
}

/// The reason a body that is not JSON the API accepts is refused.
fn tree_error(e: JsonError) -> String {
    match e {
        JsonError::Syntax(e) => format!("invalid JSON: {e}"),
        duplicate => duplicate.message(),
    }
}

/// [`read_track_text`] for a body that is an object of the three arrays (and
/// `partner`) only, each element left as text until it is read; `None` for anything
/// else, which [`read_track`] answers from a JSON tree.
pub fn read_track_arrays(text: &str, options: &TrackOptions) -> Option<Result<Track, String>> {
    let body = match serde_json::from_str::<RawBody<'_>>(text) {
        Ok(body)
            if body.attributes.is_some() || body.events.is_some() || body.purchases.is_some() =>
        {
            body
        }
        _ => return None,
    };
    Some(read_arrays(body, options))
}

fn read_arrays(body: RawBody<'_>, options: &TrackOptions) -> Result<Track, String> {
    let arrays = [body.attributes, body.events, body.purchases];
    let elements = elements(&arrays, body.partner, options)?;
    let mut track = Track::default();
    for (slot, (items, elements)) in arrays.into_iter().zip(elements).enumerate() {
        let Some(items) = items else { continue };
        if let Some(max) = options.max_objects
            && items.len() > max
        {
            return Err(format!(
                "Max Input Length Exceeded: {} has {} objects, at most {max} are allowed per request",
                ARRAYS[slot],
                items.len()
            ));
        }
        let read = elements.into_iter().map(|element| match element {
            Element::Read(plain) => Ok(plain.into_fact()),
            Element::Tree(item) => match slot {
                0 => attribute_object(&item, options),
                1 => event_object(&item, options),
                _ => purchase_object(&item, options),
            },
        });
        track.collect(slot, read);
    }
    Ok(track)
}

/// An element of an array, as the fast path leaves it.
enum Element<'a> {
    /// A valid event of the common shape, read straight from the text.
    Read(Plain<'a>),
    /// Anything else, as a JSON tree for the general reading.
    Tree(Json),
}

/// Every element of the arrays: the events of the common shape read, the rest parsed
/// into trees in the order of the text, so that a key named twice is refused as the
/// general path (which parses the whole body first) refuses it. `partner` is only
/// checked.
fn elements<'a>(
    arrays: &[Option<Vec<&'a RawValue>>; 3],
    partner: Option<&'a RawValue>,
    options: &TrackOptions,
) -> Result<[Vec<Element<'a>>; 3], String> {
    let mut out: [Vec<Element<'a>>; 3] = Default::default();
    // (offset in the text, slot, index) of each element left to parse.
    let mut order: Vec<(usize, usize, usize)> = Vec::new();
    for (slot, items) in arrays.iter().enumerate() {
        let Some(items) = items else { continue };
        out[slot].reserve_exact(items.len());
        for (index, raw) in items.iter().enumerate() {
            let fast = if slot == 1 {
                plain_event(raw.get(), options)
            } else {
                None
            };
            match fast {
                Some(fact) => out[slot].push(Element::Read(fact)),
                None => {
                    out[slot].push(Element::Tree(Json::Null));
                    order.push((raw.get().as_ptr() as usize, slot, index));
                }
            }
        }
    }
    if let Some(partner) = partner {
        order.push((partner.get().as_ptr() as usize, ARRAYS.len(), 0));
    }
    order.sort_unstable();
    for (_, slot, index) in order {
        let (raw, prefix) = match arrays.get(slot).and_then(Option::as_ref) {
            Some(items) => (items[index], format!("{}[{index}]", ARRAYS[slot])),
            None => match partner {
                Some(partner) => (partner, "partner".to_string()),
                None => continue,
            },
        };
        // A RawValue is valid JSON: the only possible refusal is a key named twice.
        let tree = json::parse(raw.get().as_bytes()).map_err(|e| e.within(&prefix).message())?;
        if let Some(element) = out.get_mut(slot).and_then(|v| v.get_mut(index)) {
            *element = Element::Tree(tree);
        }
    }
    Ok(out)
}

/// A body's arrays, each element left as unparsed text.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody<'a> {
    #[serde(borrow, default)]
    attributes: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    events: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    purchases: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    partner: Option<&'a RawValue>,
}

/// The common shape of an event, and nothing else (any other key: the general path).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainEvent<'a> {
    #[serde(borrow)]
    external_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// A valid event of the common shape, its strings borrowed from the text when they
/// hold no escape.
struct Plain<'a> {
    external_id: Cow<'a, str>,
    name: Cow<'a, str>,
    /// At the microsecond, and not after the moment of receipt.
    time: Timestamp,
}

impl Plain<'_> {
    fn into_fact(self) -> (UserKey, Fact) {
        let fact = Fact {
            time: self.time,
            kind: FactKind::Event {
                name: self.name.into_owned(),
                detail: None,
            },
        };
        (UserKey::External(self.external_id.into_owned()), fact)
    }
}

/// An event of the common shape that is valid, read without a JSON tree; `None`
/// leaves the object (valid or not) to the general path.
fn plain_event<'a>(text: &'a str, options: &TrackOptions) -> Option<Plain<'a>> {
    let event: PlainEvent<'a> = serde_json::from_str(text).ok()?;
    if event.external_id.is_empty() || event.name.is_empty() {
        return None;
    }
    let time =
        datetime::parse_instant_utc(&event.time).and_then(|t| datetime::check_supported(t).ok())?;
    Some(Plain {
        external_id: event.external_id,
        name: event.name,
        time: to_microsecond(time).min(options.now),
    })
}

/// An object of an import line, read for encoding (see [`read_line_objects`]).
pub enum LineObject<'a> {
    /// An event of the common shape, its strings borrowed from the line when they
    /// hold no escape.
    Event {
        /// The user's external id.
        external_id: Cow<'a, str>,
        /// The event's name.
        name: Cow<'a, str>,
        /// When it happened, at the microsecond.
        time: Timestamp,
    },
    /// Any other object's fact.
    Fact(UserKey, Fact),
}

impl LineObject<'_> {
    /// The object as a fact to encode, borrowed.
    pub fn as_ref(&self) -> headcount_store::FactRef<'_> {
        match self {
            LineObject::Event {
                external_id,
                name,
                time,
            } => headcount_store::FactRef::Event {
                external_id,
                name,
                time: *time,
            },
            LineObject::Fact(user, fact) => headcount_store::FactRef::Fact(user, fact),
        }
    }
}

/// Reads an import line (a `/users/track` body) as [`read_track_text`] does, into
/// `out`, the events of the common shape without a string allocated; a line is valid
/// whole or rejected whole: `Err` is the reason of its first invalid object as
/// `array[index]: reason` (or the body's problem), and `out` is left as it was.
pub fn read_line_objects<'a>(
    text: &'a str,
    options: &TrackOptions,
    out: &mut Vec<LineObject<'a>>,
) -> Result<(), String> {
    let body = match serde_json::from_str::<RawBody<'a>>(text) {
        Ok(body)
            if body.attributes.is_some() || body.events.is_some() || body.purchases.is_some() =>
        {
            body
        }
        _ => {
            let track = read_track_text(text, options)?;
            if let Some(first) = track.errors.first() {
                return Err(first_error(first));
            }
            out.extend(track.facts.into_iter().map(|(u, f)| LineObject::Fact(u, f)));
            return Ok(());
        }
    };
    let arrays = [body.attributes, body.events, body.purchases];
    let elements = elements(&arrays, body.partner, options)?;
    for (slot, items) in arrays.iter().enumerate() {
        if let (Some(items), Some(max)) = (items, options.max_objects)
            && items.len() > max
        {
            return Err(format!(
                "Max Input Length Exceeded: {} has {} objects, at most {max} are allowed per request",
                ARRAYS[slot],
                items.len()
            ));
        }
    }
    let start = out.len();
    for (slot, (items, elements)) in arrays.iter().zip(elements).enumerate() {
        if items.is_none() {
            continue;
        }
        for (index, element) in elements.into_iter().enumerate() {
            let read = match element {
                Element::Read(plain) => Ok(LineObject::Event {
                    external_id: plain.external_id,
                    name: plain.name,
                    time: plain.time,
                }),
                Element::Tree(item) => match slot {
                    0 => attribute_object(&item, options),
                    1 => event_object(&item, options),
                    _ => purchase_object(&item, options),
                }
                .map(|(u, f)| LineObject::Fact(u, f)),
            };
            match read {
                Ok(object) => out.push(object),
                Err(reason) => {
                    out.truncate(start);
                    return Err(first_error(&ObjectError {
                        array: ARRAYS[slot],
                        index,
                        reason,
                    }));
                }
            }
        }
    }
    Ok(())
}

/// How an import reports the first invalid object of a line.
fn first_error(e: &ObjectError) -> String {
    format!("{}[{}]: {}", e.array, e.index, e.reason)
}

impl Track {
    /// Adds the objects of one array, read in order.
    fn collect(
        &mut self,
        slot: usize,
        read: impl Iterator<Item = Result<(UserKey, Fact), String>>,
    ) {
        let mut valid = 0;
        for (index, result) in read.enumerate() {
            match result {
                Ok(fact) => {
                    self.facts.push(fact);
                    valid += 1;
                }
                Err(reason) => self.errors.push(ObjectError {
                    array: ARRAYS[slot],
                    index,
                    reason,
                }),
            }
        }
        self.processed[slot] = Some(valid);
    }
}

const IDENTIFIERS: [&str; 3] = ["external_id", "user_alias", "braze_id"];

fn non_empty<'a>(obj: &'a Map<String, Json>, key: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!("'{key}' must be a non-empty string")),
        None => Err(format!("'{key}' is required")),
    }
}

fn user_of(obj: &Map<String, Json>) -> Result<UserKey, String> {
    let named: Vec<&str> = IDENTIFIERS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    match named.as_slice() {
        ["external_id"] => Ok(UserKey::External(
            non_empty(obj, "external_id")?.to_string(),
        )),
        ["braze_id"] => Ok(UserKey::Braze(non_empty(obj, "braze_id")?.to_string())),
        ["user_alias"] => match obj.get("user_alias") {
            Some(Json::Object(alias)) => Ok(UserKey::Alias {
                name: non_empty(alias, "alias_name")
                    .map_err(|e| format!("user_alias: {e}"))?
                    .to_string(),
                label: non_empty(alias, "alias_label")
                    .map_err(|e| format!("user_alias: {e}"))?
                    .to_string(),
            }),
            _ => Err("'user_alias' must be an object {\"alias_name\", \"alias_label\"}".into()),
        },
        [] => Err("'external_id' or 'braze_id' or 'user_alias' is required".into()),
        _ => Err("only one of 'external_id', 'braze_id', 'user_alias' may name the user".into()),
    }
}

fn object(item: &Json) -> Result<&Map<String, Json>, String> {
    item.as_object()
        .ok_or_else(|| "each element must be a JSON object".to_string())
}

fn time_field(
    obj: &Map<String, Json>,
    key: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Json::String(s)) => match datetime::parse_instant_utc(s) {
            Some(t) => match datetime::check_supported(t) {
                Ok(t) => Ok(Some(to_microsecond(t).min(now))),
                Err(e) => Err(format!("'{key}' \"{s}\" {e}")),
            },
            None => Err(format!(
                "'{key}' must be an ISO-8601 datetime ({})",
                datetime::ACCEPTED_FORMS
            )),
        },
        Some(_) => Err(format!("'{key}' must be an ISO-8601 datetime string")),
    }
}

/// Facts are recorded to the microsecond (the precision of the store): finer digits
/// are dropped here, so that "before T" means the same in memory, on
/// disk and after a restart.
fn to_microsecond(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// The most attributes one attributes object may set (a ClickHouse workspace numbers
/// them in a `UInt16`).
pub const MAX_ATTRIBUTES_PER_OBJECT: usize = 65_535;

/// Whether a key of an attributes object sets an attribute (not the user, nor an option).
fn is_attribute(key: &str) -> bool {
    !IDENTIFIERS.contains(&key) && key != "_time" && key != "_update_existing_only"
}

fn attribute_object(item: &Json, options: &TrackOptions) -> Result<(UserKey, Fact), String> {
    let obj = object(item)?;
    if obj.len() > MAX_ATTRIBUTES_PER_OBJECT {
        let set = obj.keys().filter(|k| is_attribute(k)).count();
        if set > MAX_ATTRIBUTES_PER_OBJECT {
            return Err(format!(
                "an attributes object may set at most {MAX_ATTRIBUTES_PER_OBJECT} attributes; this one sets {set}"
            ));
        }
    }
    let user = user_of(obj)?;
    let time = match obj.get("_time") {
        None => options.now,
        Some(_) if !options.allow_attribute_time => {
            return Err("'_time' is accepted only in bulk import; /users/track records the moment of receipt".into());
        }
        Some(_) => time_field(obj, "_time", options.now)?.unwrap_or(options.now),
    };
    let mut values = Vec::new();
    for (key, json) in obj {
        if !is_attribute(key) {
            continue;
        }
        let value = Value::from_json(json).map_err(|e| format!("attribute '{key}': {e}"))?;
        values.push((key.clone(), value));
    }
    Ok((
        user,
        Fact {
            time,
            kind: FactKind::Attributes(values),
        },
    ))
}

/// The fields kept as an event's or purchase's detail, as JSON text (`None` if none).
fn detail(obj: &Map<String, Json>, keys: &[&str]) -> Result<Option<String>, String> {
    if let Some(p) = obj.get("properties")
        && !p.is_object()
    {
        return Err("'properties' must be an object".into());
    }
    let kept: Map<String, Json> = keys
        .iter()
        .filter_map(|k| obj.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Ok((!kept.is_empty()).then(|| Json::Object(kept).to_string()))
}

fn event_object(item: &Json, options: &TrackOptions) -> Result<(UserKey, Fact), String> {
    let obj = object(item)?;
    let user = user_of(obj)?;
    let name = non_empty(obj, "name")?.to_string();
    let time = time_field(obj, "time", options.now)?.ok_or("'time' is required")?;
    if let Some(app_id) = obj.get("app_id")
        && !app_id.is_string()
    {
        return Err("'app_id' must be a string".into());
    }
    let detail = detail(obj, &["app_id", "properties"])?;
    Ok((
        user,
        Fact {
            time,
            kind: FactKind::Event { name, detail },
        },
    ))
}

fn purchase_object(item: &Json, options: &TrackOptions) -> Result<(UserKey, Fact), String> {
    let obj = object(item)?;
    let user = user_of(obj)?;
    let product = non_empty(obj, "product_id")?.to_string();
    non_empty(obj, "currency")?;
    match obj.get("price") {
        Some(Json::Number(_)) => {}
        Some(_) => return Err("'price' must be a number".into()),
        None => return Err("'price' is required".into()),
    }
    if let Some(q) = obj.get("quantity")
        && !q.as_u64().is_some_and(|q| (1..=100).contains(&q))
    {
        return Err("'quantity' must be an integer from 1 to 100".into());
    }
    let time = time_field(obj, "time", options.now)?.unwrap_or(options.now);
    let detail = detail(
        obj,
        &["currency", "price", "quantity", "app_id", "properties"],
    )?;
    Ok((
        user,
        Fact {
            time,
            kind: FactKind::Purchase { product, detail },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of an import (`_time` allowed) or of the API (refused).
    fn options(import: bool) -> TrackOptions {
        TrackOptions {
            max_objects: Some(3),
            allow_attribute_time: import,
            now: "2026-01-01T00:00:00Z".parse().unwrap_or(Timestamp::MIN),
        }
    }

    fn general(text: &str, import: bool) -> Result<Track, String> {
        match json::parse(text.as_bytes()) {
            Ok(Json::Object(map)) => read_track(&map, &options(import)),
            Ok(_) => Err("the body must be a JSON object (a /users/track body)".into()),
            Err(e) => Err(tree_error(e)),
        }
    }

    #[test]
    fn an_attributes_object_may_set_at_most_65535_attributes() {
        let object = |n: usize| {
            let mut fields: Vec<String> = (0..n).map(|i| format!("\"a{i}\":{i}")).collect();
            fields.push("\"external_id\":\"u\"".into());
            format!("{{\"attributes\":[{{{}}}]}}", fields.join(","))
        };
        let options = TrackOptions {
            max_objects: None,
            allow_attribute_time: false,
            now: Timestamp::UNIX_EPOCH,
        };
        let at_limit = read_track_text(&object(MAX_ATTRIBUTES_PER_OBJECT), &options).unwrap();
        assert_eq!(at_limit.valid_objects(), 1);
        let over = read_track_text(&object(MAX_ATTRIBUTES_PER_OBJECT + 1), &options).unwrap();
        assert_eq!(over.valid_objects(), 0);
        let said = over.response().to_string();
        assert!(
            said.contains("may set at most 65535 attributes; this one sets 65536"),
            "{said}"
        );
    }

    #[test]
    fn a_key_named_twice_refuses_the_whole_body_and_says_where() {
        let cases = [
            (
                r#"{"attributes":[],"attributes":[]}"#,
                r#"the request body has the key "attributes" twice"#,
            ),
            (
                r#"{"events":[{"external_id":"a","external_id":"b","name":"x","time":"2025-05-01T10:00:00Z"}]}"#,
                r#"the request body has the key "external_id" twice in events[0]"#,
            ),
            (
                r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01T10:00:00Z"},{"external_id":"a","name":"x","time":"2025-05-01","properties":{"k":1,"k":2}}]}"#,
                r#"the request body has the key "k" twice in events[1].properties"#,
            ),
        ];
        for (text, message) in cases {
            assert_eq!(
                read_track_text(text, &options(true)).err().as_deref(),
                Some(message),
                "{text}"
            );
        }
    }

    /// Bodies of every shape, valid and not, that the paths must read alike.
    const BODIES: &[&str] = &[
        r#"{"events":[{"external_id":"a","name":"login","time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"a\u00e9","name":"lo\"gin","time":"2025-05-01T10:00:00.1234567Z"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"2030-01-01T00:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"","name":"x","time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"a","name":"","time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"yesterday"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01T10:00:00-5:00","app_id":"z"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01","properties":{"b":1,"a":[2]}}]}"#,
        r#"{"events":[{"external_id":"a","external_id":"b","name":"x","time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[{"user_alias":{"alias_name":"n","alias_label":"l"},"name":"x","time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[7, null, {"external_id":"a","name":1,"time":"2025-05-01T10:00:00Z"}]}"#,
        r#"{"events":[{},{},{},{}]}"#,
        r#"{"attributes":[{"external_id":"a","_time":"2025-01-01T00:00:00Z"}]}"#,
        r#"{"attributes":[{"external_id":"a","_time":"2025-01-01T00:00:00Z","c":"FR","n":null}],"purchases":[{"external_id":"a","product_id":"p","currency":"USD","price":1}]}"#,
        r#"{"attributes":null}"#,
        r#"{"events":[],"partner":"x"}"#,
        r#"{"event":[]}"#,
        r#"{}"#,
        r#"[1]"#,
        r#"{"events":"#,
        r#"{"events":[],"events":[]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"1899-12-31T23:59:59Z"}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"9999-12-31T23:59:59Z"}]}"#,
        r#"{"attributes":[{"external_id":"a","_time":"0000-01-01"}]}"#,
        r#"{"attributes":[{"external_id":"a","c":1,"c":2}]}"#,
        r#"{"purchases":[{"external_id":"a"}],"events":[{"external_id":"a","name":"x","time":"2025-05-01","properties":{"k":1,"k":2}}],"attributes":[{"external_id":"a","a":1,"a":1}]}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01T10:00:00Z"}],"partner":{"p":1,"p":2}}"#,
        r#"{"events":[{"external_id":"a","name":"x","time":"2025-05-01T10:00:00Z"},{}],"partner":{"p":{}}}"#,
    ];

    #[test]
    fn the_text_path_reads_every_body_as_the_general_path_does() {
        let bodies = BODIES.iter().copied();
        for (text, import) in bodies.flat_map(|t| [(t, true), (t, false)]) {
            let fast = read_track_text(text, &options(import));
            let slow = general(text, import);
            match (fast, slow) {
                (Ok(f), Ok(s)) => {
                    assert_eq!(f.facts, s.facts, "{text}");
                    assert_eq!(f.errors, s.errors, "{text}");
                    assert_eq!(f.processed, s.processed, "{text}");
                }
                (Err(f), Err(s)) => assert_eq!(f, s, "{text}"),
                (f, s) => panic!(
                    "{text}: {:?} vs {:?}",
                    f.map(|t| t.facts),
                    s.map(|t| t.facts)
                ),
            }
        }
    }

    #[test]
    fn an_import_line_reads_into_the_same_facts_or_the_same_reason_as_the_text_path() {
        let many = format!(
            "{{\"events\":[{}]}}",
            [r#"{"external_id":"a","name":"x","time":"2025-05-01T10:00:00Z"}"#; 5].join(",")
        );
        let lines = BODIES.iter().copied().chain([many.as_str()]);
        for (text, import) in lines.flat_map(|t| [(t, true), (t, false)]) {
            let options = options(import);
            let expected = read_track_text(text, &options).and_then(|t| match t.errors.first() {
                Some(e) => Err(first_error(e)),
                None => Ok(t.facts),
            });
            // Objects already read stay; a rejected line adds none.
            let mut out = vec![LineObject::Fact(
                UserKey::External("before".into()),
                Fact {
                    time: options.now,
                    kind: FactKind::Deletion,
                },
            )];
            let read = read_line_objects(text, &options, &mut out);
            let facts: Vec<(UserKey, Fact)> = out[1..]
                .iter()
                .map(|o| match o {
                    LineObject::Event {
                        external_id,
                        name,
                        time,
                    } => Plain {
                        external_id: external_id.clone(),
                        name: name.clone(),
                        time: *time,
                    }
                    .into_fact(),
                    LineObject::Fact(u, f) => (u.clone(), f.clone()),
                })
                .collect();
            match expected {
                Ok(expected) => {
                    assert_eq!(read, Ok(()), "{text}");
                    assert_eq!(facts, expected, "{text}");
                }
                Err(reason) => {
                    assert_eq!(read, Err(reason), "{text}");
                    assert!(facts.is_empty(), "{text}");
                }
            }
        }
    }
}
