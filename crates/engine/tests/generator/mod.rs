//! The random workspaces and filters of the differential tests, in one place: the
//! engine's (`crates/engine/tests/differential.rs`, against its oracle) and the
//! ClickHouse engine's (`crates/clickhouse/tests/differential.rs`, which includes this
//! file with `#[path]`): every operator and node, datetimes and facts on local
//! midnights and a microsecond either side, three time zones across the 2024
//! daylight-saving changes, unsets, kind changes, deletions.
#![allow(dead_code)]

use headcount_model::filter::Filter;
use headcount_model::{Day, Fact, FactKind, SegmentId, Timestamp, UserKey, Value};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeSet, HashMap, HashSet};

pub const ZONES: [&str; 3] = ["UTC", "Europe/Paris", "America/New_York"];
/// Segments per case: the first `LEAF_SEGMENTS` are single tests (no masking by other
/// nodes), the rest nested filters.
pub const SEGMENTS_PER_CASE: usize = 14;
pub const LEAF_SEGMENTS: usize = 6;

pub struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0xE703_7ED1_A0B4_28DB)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cases.

#[derive(Debug, Clone)]
pub enum Op {
    Apply(UserKey, Fact),
    Delete(UserKey),
    /// `Index::compact`: answers must not change.
    Compact,
}

impl Op {
    pub fn user(&self) -> Option<&UserKey> {
        match self {
            Op::Apply(user, _) | Op::Delete(user) => Some(user),
            Op::Compact => None,
        }
    }
}

pub type Segments = HashMap<SegmentId, Filter>;

pub struct Case {
    pub seed: u64,
    pub tz: TimeZone,
    pub days: Vec<Day>,
    pub ops: Vec<Op>,
    /// In order of creation; each may reference only earlier ones.
    pub segments: Vec<(SegmentId, Filter)>,
    pub instants: Vec<Timestamp>,
    pub member_instants: Vec<Timestamp>,
    /// Days, not necessarily in order, for one extra `sizes` call per segment.
    pub scattered_days: Vec<Day>,
}

impl Case {
    pub fn segment_map(&self) -> Segments {
        self.segments.iter().cloned().collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "seed {} (time zone {}, days {}..={}, {} ops)",
            self.seed,
            self.tz.iana_name().unwrap_or("?"),
            self.days[0],
            self.days[self.days.len() - 1],
            self.ops.len()
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    String,
    Number,
    Bool,
    DateTime,
    Array,
    Any,
}

const ATTRIBUTES: [(&str, Kind); 6] = [
    ("country", Kind::String),
    ("score", Kind::Number),
    ("vip", Kind::Bool),
    ("seen_at", Kind::DateTime),
    ("tags", Kind::Array),
    ("mixed", Kind::Any),
];
const STRINGS: [&str; 12] = [
    "FR",
    "US",
    "DE",
    "gold",
    "Gold",
    "golden",
    "silver",
    "",
    "fr-FR",
    "2024-05-01",
    "a.b",
    "red",
];
const NUMBERS: [f64; 11] = [0.0, -0.0, 1.0, 2.0, 3.0, 2.5, -1.0, 10.0, 0.1, 100.0, 1e-9];
const TAGS: [&str; 4] = ["red", "green", "blue", "gold"];
const EVENTS: [&str; 5] = ["login", "login", "view", "click", "signup"];
const EVENT_FILTER_NAMES: [&str; 7] = [
    "login", "view", "click", "signup", "share", "never", "login",
];
const PRODUCTS: [&str; 4] = ["p1", "p2", "p3", "p4"];
const PRODUCT_FILTER_NAMES: [&str; 7] = ["p1", "p2", "p3", "p4", "*", "*", "p9"];
const CMPS: [&str; 6] = ["eq", "ne", "gt", "gte", "lt", "lte"];
const ATTR_OPS: [&str; 15] = [
    "exists",
    "not_exists",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "matches",
    "within_last_days",
    "more_than_days_ago",
];
const CONTAINS: [&str; 11] = [
    "o", "ol", "R", "-", "ilv", "red", "green", "gold", "blue", "", "gree",
];
const PREFIXES: [&str; 7] = ["g", "G", "", "FR", "20", "si", "red"];
const REGEXES: [&str; 10] = [
    "^g",
    "ld$",
    "^[A-Z]{2}$",
    "(?i)gold",
    "",
    "^$",
    "e",
    r"\d{4}-\d{2}",
    "red|blue",
    r"\.",
];
const DAY_COUNTS: [i64; 10] = [1, 1, 2, 3, 7, 14, 30, 90, 3650, 0];
const COUNTS: [i64; 10] = [0, 0, 1, 1, 2, 3, 5, -1, 50, 0];
/// Daylight-saving changes of 2024 and instants next to them.
const SPECIAL: [&str; 9] = [
    "2024-03-10T07:00:00Z",
    "2024-03-10T06:59:59.999999Z",
    "2024-11-03T06:00:00Z",
    "2024-11-03T05:00:00Z",
    "2024-03-31T01:00:00Z",
    "2024-03-30T23:00:00Z",
    "2024-10-27T01:00:00Z",
    "2024-10-27T00:30:00Z",
    "1969-12-31T23:59:59.999999Z",
];

pub fn micros(n: i64) -> SignedDuration {
    SignedDuration::from_micros(n)
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

/// One of [`SPECIAL`], or a microsecond either side.
fn special(rng: &mut Rng) -> Timestamp {
    let text: &&str = rng.pick(&SPECIAL);
    ts(text) + micros(rng.range(-1, 1))
}

struct Gen {
    rng: Rng,
    tz: TimeZone,
    first_fact_day: Day,
    fact_span: u64,
    first_day: Day,
    span: u64,
    datetimes: Vec<Timestamp>,
    buckets: Vec<u16>,
}

impl Gen {
    /// A random instant within `day`, to the microsecond.
    fn within(&mut self, day: Day) -> Timestamp {
        let start = day.start(&self.tz);
        let length = day.end(&self.tz).duration_since(start).as_micros() as u64;
        start + micros(self.rng.below(length) as i64)
    }

    fn fact_day(&mut self) -> Day {
        self.first_fact_day
            .add_days(self.rng.below(self.fact_span) as i64)
    }

    fn range_day(&mut self) -> Day {
        self.first_day.add_days(self.rng.below(self.span) as i64)
    }

    /// A fact time: often exactly on a local midnight or one microsecond from it.
    fn fact_time(&mut self) -> Timestamp {
        let day = self.fact_day();
        let start = day.start(&self.tz);
        match self.rng.below(100) {
            0..=44 => self.within(day),
            45..=59 => start,
            60..=71 => start - micros(1),
            72..=83 => start + micros(1),
            84..=91 => day.end(&self.tz) - micros(1),
            _ => special(&mut self.rng),
        }
    }

    fn unique_time(&mut self, used: &mut HashSet<Timestamp>) -> Timestamp {
        let mut time = self.fact_time();
        while !used.insert(time) {
            time += micros(1 + self.rng.below(1000) as i64);
        }
        time
    }

    fn datetime_pool(&mut self) -> Vec<Timestamp> {
        let mut pool = vec![
            ts("2019-06-01T12:00:00Z"),
            ts("2030-01-01T00:00:00Z"),
            ts("2024-01-01T00:00:00+01:00"),
            ts("1965-04-12T00:00:00Z"),
            ts("1969-12-31T23:59:59.999999999Z"),
        ];
        // Datetime values are compared exactly, so they may be finer than a microsecond.
        let nano = SignedDuration::from_nanos(1);
        for _ in 0..20 {
            let day = self.fact_day();
            let start = day.start(&self.tz);
            let t = match self.rng.below(7) {
                0 | 1 => start,
                2 => start - micros(1),
                3 => start + micros(1),
                4 => start - nano,
                5 => start + nano,
                _ => self.within(day),
            };
            pool.push(t);
        }
        pool
    }

    fn kind_for(&mut self, preferred: Kind) -> Kind {
        const KINDS: [Kind; 5] = [
            Kind::String,
            Kind::Number,
            Kind::Bool,
            Kind::DateTime,
            Kind::Array,
        ];
        if preferred == Kind::Any || self.rng.chance(15) {
            *self.rng.pick(&KINDS)
        } else {
            preferred
        }
    }

    fn tags(&mut self) -> Vec<String> {
        let n = self.rng.below(4);
        (0..n).map(|_| self.rng.pick(&TAGS).to_string()).collect()
    }

    fn value(&mut self, preferred: Kind) -> Value {
        match self.kind_for(preferred) {
            Kind::String => Value::String(self.rng.pick(&STRINGS).to_string()),
            Kind::Number => Value::Number(*self.rng.pick(&NUMBERS)),
            Kind::Bool => Value::Bool(self.rng.chance(50)),
            Kind::DateTime => {
                let pool = std::mem::take(&mut self.datetimes);
                let t = *self.rng.pick(&pool);
                self.datetimes = pool;
                Value::DateTime(t)
            }
            Kind::Array | Kind::Any => Value::Array(self.tags()),
        }
    }

    fn user_keys(&mut self, count: usize) -> Vec<UserKey> {
        let mut keys = BTreeSet::new();
        for i in 0..count {
            let key = match self.rng.below(100) {
                0..=64 => UserKey::External(format!("u{i}")),
                65..=84 => UserKey::Alias {
                    name: format!("a{}", i % 40),
                    label: self.rng.pick(&["email", "phone"]).to_string(),
                },
                // The bucket identity of the alias user {a<n>, email}, yet a distinct user.
                85..=92 => UserKey::External(format!("email:a{}", i % 40)),
                93..=96 => UserKey::External(format!("a{}", i % 40)),
                _ => UserKey::Braze(format!("b{i}")),
            };
            keys.insert(key);
        }
        keys.into_iter().collect()
    }

    fn user_facts(&mut self) -> Vec<Fact> {
        let count = match self.rng.below(10) {
            0 => 1,
            1..=6 => self.rng.range(2, 14),
            _ => self.rng.range(15, 40),
        };
        let mut used = HashSet::new();
        let mut facts: Vec<Fact> = Vec::new();
        for _ in 0..count {
            let roll = self.rng.below(100);
            let fact = if roll < 5 && !facts.is_empty() {
                // The same event or purchase twice: two facts, both counted.
                let last = facts.last().unwrap().clone();
                if matches!(last.kind, FactKind::Attributes(_)) {
                    continue;
                }
                last
            } else if roll < 42 {
                let time = self.unique_time(&mut used);
                let n = match self.rng.below(100) {
                    0..=9 => 0,
                    10..=59 => 1,
                    60..=84 => 2,
                    _ => 3,
                };
                let mut names: Vec<(&str, Kind)> = ATTRIBUTES.to_vec();
                self.rng.shuffle(&mut names);
                let list = names[..n]
                    .iter()
                    .map(|(name, kind)| {
                        let value = if self.rng.chance(12) {
                            None
                        } else {
                            Some(self.value(*kind))
                        };
                        (name.to_string(), value)
                    })
                    .collect();
                Fact {
                    time,
                    kind: FactKind::Attributes(list),
                }
            } else if roll < 80 {
                let detail = self
                    .rng
                    .chance(30)
                    .then(|| "{\"app_id\":\"x\"}".to_string());
                Fact {
                    time: self.fact_time(),
                    kind: FactKind::Event {
                        name: self.rng.pick(&EVENTS).to_string(),
                        detail,
                    },
                }
            } else {
                Fact {
                    time: self.fact_time(),
                    kind: FactKind::Purchase {
                        product: self.rng.pick(&PRODUCTS).to_string(),
                        detail: None,
                    },
                }
            };
            facts.push(fact);
        }
        facts
    }

    fn datetime_text(&mut self, t: Timestamp) -> String {
        if self.rng.chance(50) {
            t.to_string()
        } else {
            let zoned = t.to_zoned(self.tz.clone());
            format!("{}{}", zoned.datetime(), zoned.offset())
        }
    }

    fn operand(&mut self, preferred: Kind) -> Json {
        match self.value(preferred) {
            Value::DateTime(t) => Json::String(self.datetime_text(t)),
            Value::Number(f) if f.fract() == 0.0 && self.rng.chance(50) => json!(f as i64),
            other => other.to_json(),
        }
    }

    fn order_operand(&mut self, kind: Kind) -> Json {
        let number = match kind {
            Kind::Number => 85,
            Kind::DateTime => 15,
            _ => 50,
        };
        if self.rng.chance(number) {
            json!(*self.rng.pick(&NUMBERS))
        } else {
            let pool = std::mem::take(&mut self.datetimes);
            let t = *self.rng.pick(&pool);
            self.datetimes = pool;
            match self.rng.below(6) {
                // Forms without an offset name an instant in UTC.
                0 => Json::String(t.to_zoned(TimeZone::UTC).datetime().to_string()),
                1 => Json::String(t.to_zoned(TimeZone::UTC).date().to_string()),
                _ => Json::String(self.datetime_text(t)),
            }
        }
    }

    fn days_operand(&mut self) -> i64 {
        match *self.rng.pick(&DAY_COUNTS) {
            0 => self.rng.range(1, 150),
            n => n,
        }
    }

    /// An attribute test; `forced` picks the operator (then usually an attribute
    /// whose usual kind suits it).
    fn attribute_leaf(&mut self, forced: Option<&'static str>) -> Json {
        let suited: Vec<(&str, Kind)> = ATTRIBUTES
            .iter()
            .copied()
            .filter(|(_, kind)| forced.is_none_or(|op| natural_ops(*kind).contains(&op)))
            .collect();
        let (name, kind) = if self.rng.chance(8) {
            ("ghost", Kind::Any)
        } else if forced.is_some() && self.rng.chance(75) {
            *self.rng.pick(&suited)
        } else {
            *self.rng.pick(&ATTRIBUTES)
        };
        // Else half the time an operator that suits the attribute's usual kind, so that
        // every operator meets values it can hold for.
        let op = match forced {
            Some(op) => op,
            None if self.rng.chance(50) => *self.rng.pick(natural_ops(kind)),
            None => *self.rng.pick(&ATTR_OPS),
        };
        let mut node = Map::new();
        node.insert("attribute".into(), json!(name));
        node.insert("op".into(), json!(op));
        let value = match op {
            "exists" | "not_exists" => None,
            "eq" | "ne" => Some(self.operand(kind)),
            "gt" | "gte" | "lt" | "lte" => Some(self.order_operand(kind)),
            "in" | "not_in" => {
                let n = self.rng.below(5);
                Some(Json::Array((0..n).map(|_| self.operand(kind)).collect()))
            }
            "contains" => Some(json!(self.rng.pick(&CONTAINS))),
            "starts_with" => Some(json!(self.rng.pick(&PREFIXES))),
            "matches" => Some(json!(self.rng.pick(&REGEXES))),
            _ => Some(json!(self.days_operand())),
        };
        if let Some(value) = value {
            node.insert("value".into(), value);
        }
        Json::Object(node)
    }

    fn count_leaf(&mut self, key: &str, names: &[&str]) -> Json {
        let mut node = Map::new();
        node.insert(key.into(), json!(self.rng.pick(names)));
        node.insert("op".into(), json!(self.rng.pick(&CMPS)));
        node.insert("value".into(), json!(self.rng.pick(&COUNTS)));
        if !self.rng.chance(35) {
            node.insert("within_days".into(), json!(self.days_operand()));
        }
        Json::Object(node)
    }

    fn bucket_leaf(&mut self) -> Json {
        let value: i64 = match self.rng.below(6) {
            0 => *self.rng.pick(&[0, 9999, 10000, -1, 5000]),
            1 | 2 => self.rng.range(0, 9999),
            _ => {
                let buckets = std::mem::take(&mut self.buckets);
                let b = *self.rng.pick(&buckets);
                self.buckets = buckets;
                b as i64
            }
        };
        json!({"random_bucket": {"op": self.rng.pick(&CMPS), "value": value}})
    }

    /// A random filter; `depth` 0 is the root, and a `depth` of 3 or more gives a leaf.
    fn filter(&mut self, depth: u32, earlier: &[SegmentId]) -> Json {
        if depth < 3 && self.rng.chance(if depth == 0 { 85 } else { 30 }) {
            let key = *self.rng.pick(&["all", "any", "not"]);
            if key == "not" {
                return json!({"not": self.filter(depth + 1, earlier)});
            }
            let n = match self.rng.below(100) {
                0..=11 => 0,
                12..=30 => 1,
                31..=70 => 2,
                _ => 3,
            };
            let children: Vec<Json> = (0..n).map(|_| self.filter(depth + 1, earlier)).collect();
            let mut node = Map::new();
            node.insert(key.to_string(), Json::Array(children));
            return Json::Object(node);
        }
        let leaf = match self.rng.below(100) {
            0..=46 => 0,
            47..=64 => ATTR_OPS.len(),
            65..=79 => ATTR_OPS.len() + 1,
            80..=87 => ATTR_OPS.len() + 2,
            _ => ATTR_OPS.len() + 3,
        };
        self.leaf(leaf, leaf == 0, earlier)
    }

    /// Leaf number `which` of [`LEAF_KINDS`]: an attribute test with operator
    /// `ATTR_OPS[which]` (any operator if `any_op`), an event count, a purchase count,
    /// a random bucket test or an `in_segment` reference.
    fn leaf(&mut self, which: usize, any_op: bool, earlier: &[SegmentId]) -> Json {
        match which.checked_sub(ATTR_OPS.len()) {
            None if any_op => self.attribute_leaf(None),
            None => self.attribute_leaf(Some(ATTR_OPS[which])),
            Some(0) => self.count_leaf("event", &EVENT_FILTER_NAMES),
            Some(1) => self.count_leaf("purchase", &PRODUCT_FILTER_NAMES),
            Some(2) => self.bucket_leaf(),
            _ if !earlier.is_empty() => {
                json!({"in_segment": self.rng.pick(earlier).to_string()})
            }
            _ => self.attribute_leaf(None),
        }
    }
}

/// Attribute operators, event, purchase, random bucket, segment reference.
const LEAF_KINDS: usize = ATTR_OPS.len() + 4;

/// The operators that suit values of `kind`.
fn natural_ops(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::String => &[
            "eq",
            "ne",
            "in",
            "not_in",
            "contains",
            "starts_with",
            "matches",
        ],
        Kind::Number => &["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"],
        Kind::Bool => &["eq", "ne", "exists", "not_exists", "in"],
        Kind::DateTime => &[
            "within_last_days",
            "more_than_days_ago",
            "gt",
            "gte",
            "lt",
            "lte",
            "eq",
        ],
        Kind::Array => &["contains", "eq", "ne", "in", "not_in"],
        Kind::Any => &ATTR_OPS,
    }
}

pub fn segment_id(i: usize) -> SegmentId {
    format!("00000000-0000-4000-8000-{i:012x}")
        .parse()
        .expect("valid uuid")
}

pub fn generate(seed: u64) -> Case {
    let mut rng = Rng::new(seed);
    let tz = TimeZone::get(ZONES[(seed % 3) as usize]).expect("known time zone");
    let (first, span, max_users) = match rng.below(10) {
        // Across 2024-03-10 (New York) and 2024-03-31 (Paris).
        0..=3 => (Day::ymd(2024, 2, 1), 120, 300),
        // Across 2024-10-27 (Paris) and 2024-11-03 (New York).
        4..=7 => (Day::ymd(2024, 8, 31), 120, 300),
        // Across all four.
        _ => (Day::ymd(2024, 1, 20), 300, 90),
    };
    let days: Vec<Day> = (0..span).map(|i| first.add_days(i)).collect();
    let mut g = Gen {
        rng,
        tz: tz.clone(),
        first_fact_day: first.add_days(-10),
        fact_span: span as u64 + 15,
        first_day: first,
        span: span as u64,
        datetimes: Vec::new(),
        buckets: Vec::new(),
    };
    g.datetimes = g.datetime_pool();

    let user_count = g.rng.range(50, max_users) as usize;
    let keys = g.user_keys(user_count);
    g.buckets = keys.iter().map(UserKey::random_bucket).collect();
    let mut ops: Vec<Op> = Vec::new();
    for key in &keys {
        for fact in g.user_facts() {
            ops.push(Op::Apply(key.clone(), fact));
        }
    }
    g.rng.shuffle(&mut ops);
    // Deletions: most after all of the user's facts, some midway (later facts recreate
    // the user), a few twice, a few of users never seen.
    for key in &keys {
        if g.rng.chance(8) {
            let at = if g.rng.chance(50) {
                ops.len()
            } else {
                g.rng.below(ops.len() as u64 + 1) as usize
            };
            ops.insert(at, Op::Delete(key.clone()));
            if g.rng.chance(20) {
                ops.push(Op::Delete(key.clone()));
            }
        }
    }
    ops.push(Op::Delete(UserKey::External("never-seen".into())));
    // Compactions midway (deleted users' entries dropped, later facts still to come)
    // and at the end.
    for _ in 0..g.rng.below(3) {
        let at = g.rng.below(ops.len() as u64) as usize;
        ops.insert(at, Op::Compact);
    }
    if g.rng.chance(30) {
        ops.push(Op::Compact);
    }
    let at = g.rng.below(ops.len() as u64) as usize;
    ops.insert(
        at,
        Op::Delete(UserKey::Alias {
            name: "nobody".into(),
            label: "email".into(),
        }),
    );

    let mut segments: Vec<(SegmentId, Filter)> = Vec::new();
    for i in 0..SEGMENTS_PER_CASE {
        let earlier: Vec<SegmentId> = segments.iter().map(|(id, _)| *id).collect();
        let json = if i < LEAF_SEGMENTS {
            // Leaf kinds in turn across seeds, so that every operator is covered often.
            let which = (seed as usize * LEAF_SEGMENTS + i) % LEAF_KINDS;
            g.leaf(which, false, &earlier)
        } else {
            g.filter(0, &earlier)
        };
        let filter = match Filter::parse(&json, "filter") {
            Ok(f) => f,
            Err(e) => panic!("seed {seed}: generated an invalid filter {json}: {e}"),
        };
        segments.push((segment_id(i), filter));
    }

    let fact_times: Vec<Timestamp> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Apply(_, fact) => Some(fact.time),
            Op::Delete(_) | Op::Compact => None,
        })
        .collect();
    // Probes finer than a microsecond too (fact times are whole microseconds).
    let nano = SignedDuration::from_nanos(1);
    let mut instants = Vec::new();
    for i in 0..52 {
        let t = match i % 13 {
            0..=2 => {
                let day = g.range_day();
                g.within(day)
            }
            3 | 4 => g.range_day().start(&tz),
            5 => g.range_day().start(&tz) - micros(1),
            6 => g.range_day().start(&tz) + micros(1),
            7 | 8 => *g.rng.pick(&fact_times),
            9 => *g.rng.pick(&fact_times) + micros(1),
            10 => *g.rng.pick(&fact_times) + nano * g.rng.range(-1, 1) as i32,
            11 => g.range_day().start(&tz) + nano * g.rng.range(-1, 1) as i32,
            _ => special(&mut g.rng),
        };
        instants.push(t);
    }
    let member_instants = vec![
        g.range_day().end(&tz),
        g.range_day().end(&tz),
        instants[0],
        instants[7],
    ];
    let mut scattered_days: Vec<Day> = (0..12).map(|_| g.range_day()).collect();
    scattered_days.push(first.add_days(-30));
    g.rng.shuffle(&mut scattered_days);
    Case {
        seed,
        tz,
        days,
        ops,
        segments,
        instants,
        member_instants,
        scattered_days,
    }
}
