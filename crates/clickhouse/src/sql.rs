//! Segment filters compiled to one ClickHouse query that sizes many segments as of
//! many instants in a single scan of a workspace's facts.
//!
//! Every instant-dependent bound (the instant `T`, the starts of `within_days`
//! windows, of `within_last_days` and `more_than_days_ago`) is computed here, in the
//! workspace's time zone, and written into the SQL as integer microseconds: the SQL
//! never converts a time zone, so daylight-saving days and midnights are exactly the
//! memory engine's.
//!
//! The query groups each shard's facts by user (users never span shards), then works
//! per user and instant, then sums per instant:
//! 1. per user, one aggregate per distinct count (events or purchases of one kind in
//!    one window) and, per attribute read (not per test of it), its latest write:
//!    `kind` and the value columns its tests read (kind 0 when never written, as an
//!    unset). For one instant (the daily computation) these are `countIf`s and one
//!    `argMaxIf` per column of an attribute, ordered by the scalar `o`
//!    ([`LATEST_ORDER`]: `(time, seq)` in one `Decimal128`); for several
//!    (a backfill), each user's writes of an attribute are gathered, sorted, into an
//!    array and each counted kind of row's times into another, and every instant
//!    the user exists at (`arrayJoin`) reads its latest value (the last write before
//!    it) and its counts from them: a row per user and instant, not per fact and
//!    instant. Facts at or before a deletion of the user are left out by a local join
//!    with the `deletions` table. Bounds that depend on the instant are constant
//!    arrays indexed by its position `k`;
//! 2. per user and instant, the tests of the latest values and the segments as
//!    booleans of those leaves, each referenced segment (`in_segment`) once as a
//!    named column;
//! 3. per instant, the sums.
//!
//! A query may size only the users of a range of random buckets ([`Buckets`]): a
//! workspace too big for one query's memory is sized in passes, their counts added.
//!
//! ClickHouse 18.16 shaped it: no window functions (the latest value is `argMaxIf`);
//! aggregates of tuples that keep and compare generic values (hence one aggregate
//! per column, ordered by a number); no short-circuit evaluation (a test of each row
//! would run over every row of every kind, so the tests run once per user); no
//! `DateTime64` (microseconds as `Int64`, datetimes as `(µs, ns)` tuples); an
//! analyzer that is slow on wide queries (hence one set of leaves for all instants
//! rather than one per instant); and a regex engine (RE2) whose syntax only partly
//! agrees with headcount's: a `matches` pattern that RE2 is sure to read alike
//! ([`re2_pattern`]) becomes `match(s, …)`; any other is decided in Rust over the
//! attribute's distinct strings and compiled to `s IN (…)`.

use crate::rows;
use headcount_model::filter::{AttrOp, Cmp, CountTest, Ordered};
use headcount_model::{Day, Filter, SegmentId, Timestamp, Value};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Gives the filter of a segment named by `in_segment`, or `None` if unknown.
pub type Resolve<'a> = dyn Fn(SegmentId) -> Option<Arc<Filter>> + 'a;

/// For `matches` tests, by (attribute, pattern): the attribute's string values the
/// pattern matches, worked out with headcount's own regex engine (so the SQL needs no
/// regex dialect of ClickHouse's). A pair missing here is left to ClickHouse's
/// `match()` (RE2), which agrees on common patterns only.
pub type RegexValues = HashMap<(String, String), Vec<String>>;

/// Why a filter cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// An `in_segment` names a segment the resolver does not know.
    #[error("unknown segment {0}")]
    UnknownSegment(SegmentId),
    /// An `in_segment` chain leads back to a segment it started from.
    #[error("segment {0} refers to itself through in_segment")]
    Cycle(SegmentId),
}

/// Where the facts are: the table read (a `Distributed` table on a cluster) and the
/// table of deletions joined on each shard (the local one).
#[derive(Debug, Clone)]
pub struct Tables {
    /// `db.facts`.
    pub facts: String,
    /// `db.deletions_local` on a cluster, `db.deletions` otherwise.
    pub local_deletions: String,
    /// Whether the workspace may have deletions; `false` leaves the join with them out.
    pub any_deletions: bool,
}

/// An instant with what its bounds derive from.
struct Moment {
    /// `T` as (floor µs, ns below).
    at: (i64, u16),
    /// Stored fact times `f` (whole µs) are before `T` when `f < at_micros`.
    at_micros: i64,
    /// `R`: the day containing the instant just before `T`.
    reference: Day,
}

impl Moment {
    fn new(at: Timestamp, tz: &TimeZone) -> Moment {
        Moment {
            at: rows::micros_and_nanos(at),
            at_micros: rows::ceil_micros(at),
            reference: Day::just_before(at, tz),
        }
    }

    /// `start(R − days + 1)`.
    fn window_start(&self, days: u32, tz: &TimeZone) -> Timestamp {
        self.reference.add_days(1 - i64::from(days)).start(tz)
    }
}

/// The query sizing `ask.targets` as of each of `instants`. Its answer has one row
/// per instant at which some user exists: the instant's position (from 1), then one
/// count per target (read them with [`parse_counts`]), then, when
/// [`SizeQuery::overflow_column`], the users whose packed counts may have overflowed.
///
/// One scan serves every instant: the instant-dependent bounds are constant arrays
/// indexed by the position, so the query's size grows with the filters, not with the
/// number of instants (see the module's documentation for its levels). With
/// `ask.pack_bits`, a query of one instant counts rows of one name in fields of that
/// many bits, several to an aggregate ([`Packed`]).
///
/// # Errors
/// An `in_segment` that `ask.resolve` does not know, or a cycle of references.
pub fn size_query(ask: &Sizing<'_>, instants: &[Timestamp]) -> Result<SizeQuery, CompileError> {
    let Sizing {
        tables,
        workspace,
        targets,
        resolve,
        regex_values,
        tz,
        pack_bits,
        buckets,
    } = *ask;
    // With packed counts: the largest count a field holds.
    let mut overflow = None;
    let moments: Vec<Moment> = instants.iter().map(|t| Moment::new(*t, tz)).collect();
    let mut ctx = Ctx {
        moments: &moments,
        tz,
        leaves: Leaves::default(),
        attrs: Attrs::default(),
        names: Names::default(),
        resolve,
        regex_values,
        segments: HashMap::new(),
        open: Vec::new(),
        columns: String::new(),
    };
    let mut exprs = Vec::new();
    for target in targets {
        exprs.push(ctx.node(target)?);
    }
    // One instant: the per-user aggregates are the values themselves. Several: each
    // user's facts are gathered into arrays, then every instant reads its values
    // from them (a row per user and instant, not per fact and instant).
    let many = moments.len() > 1;
    // Per-user aggregates, for [`SizeQuery::state_bytes`].
    let mut aggregates = 0;
    let mut middle = String::new();
    // Several instants: each attribute's latest value as columns (`v0_kind`, `v0_s`,
    // …: the tuple of a write gathered into an array is `time, seq, sub, kind`, then
    // the value columns), read by the attribute tests below. One instant: the
    // aggregates are those columns.
    let gathered = if many { ctx.attrs.list.as_slice() } else { &[] };
    for (i, attr) in gathered.iter().enumerate() {
        let _ = write!(middle, ", tupleElement(v{i}, 4) AS v{i}_kind");
        for (j, col) in attr.columns.iter().enumerate() {
            let _ = write!(middle, ", tupleElement(v{i}, {}) AS v{i}_{col}", 5 + j);
        }
    }
    middle.push_str(&ctx.columns);
    let mut outer = String::from("k");
    for (j, expr) in exprs.iter().enumerate() {
        let _ = write!(middle, ", ({expr}) AS m{j}");
        let _ = write!(outer, ", sum(m{j})");
    }
    let max_at = moments
        .iter()
        .map(|m| m.at_micros)
        .max()
        .unwrap_or(i64::MIN);
    let ats = array(moments.iter().map(|m| m.at_micros));
    let positions = array(1..=moments.len() as i64);
    let (inner, per_instant) = if many {
        // Per user: the time of its first fact, its bucket, each attribute's writes
        // sorted by (time, seq, sub), each kind of counted row's times.
        let mut inner = "min(time) AS first, any(bucket) AS b".to_string();
        aggregates += 2 + ctx.attrs.list.len();
        for (i, attr) in ctx.attrs.list.iter().enumerate() {
            let columns: Vec<&str> = attr.columns.iter().copied().collect();
            let _ = write!(
                inner,
                ", arraySort(groupArrayIf(tuple(time, seq, sub, kind{}{}), {})) AS h{i}",
                if columns.is_empty() { "" } else { ", " },
                columns.join(", "),
                attr.rows
            );
        }
        let mut times: Vec<&str> = Vec::new();
        for (which, _, _) in &ctx.leaves.list {
            if !times.contains(&which.as_str()) {
                let _ = write!(inner, ", groupArrayIf(time, {which}) AS e{}", times.len());
                times.push(which);
                aggregates += 1;
            }
        }
        // Per user and instant `k` the user exists at: the latest write before the
        // instant (the last of the sorted writes before it; none: the tuple's
        // default, kind 0, as an unset) and the counts in the windows.
        // (`first` goes in as an array: 18.16 drops a subquery's column that the
        // query above reads only inside a lambda.)
        let mut per = format!(
            ", arrayJoin(arrayFilter((p, at, f) -> f < at, {positions}, {ats}, \
             replicate(first, {positions}))) AS k"
        );
        for (which, from, alias) in &ctx.leaves.list {
            let e = times.iter().position(|w| w == which).unwrap_or(0);
            let lo = match from {
                Some(from) => format!("t >= {from} AND "),
                None => String::new(),
            };
            let _ = write!(per, ", arrayCount(t -> {lo}t < {ats}[k], e{e}) AS {alias}");
        }
        for i in 0..ctx.attrs.list.len() {
            let _ = write!(
                per,
                ", arrayElement(h{i}, arrayCount(x -> tupleElement(x, 1) < {ats}[k], h{i})) AS v{i}"
            );
        }
        (inner, per)
    } else {
        // One instant: every row kept (`time < max_at`) is before it, and the bounds
        // indexed by a constant `k` are constants.
        let mut inner = "toInt64(1) AS k, any(bucket) AS b".to_string();
        let mut unpack = String::new();
        let packed = pack(&ctx.leaves.list, pack_bits);
        aggregates += 1 + packed.words.len() + packed.rest.len();
        for (w, word) in packed.words.iter().enumerate() {
            let codes: Vec<String> = word
                .fields
                .iter()
                .map(|(code, _)| format!("toUInt64({code})"))
                .collect();
            let ones: Vec<String> = (0..word.fields.len())
                .map(|f| format!("toUInt64({})", 1u64 << (packed.bits as usize * f)))
                .collect();
            let gate = match word.from {
                Some(from) => format!(" * (time >= {from})"),
                None => String::new(),
            };
            let _ = write!(
                inner,
                ", sum(transform(c, [{}], [{}], toUInt64(0)){gate}) AS w{w}",
                codes.join(", "),
                ones.join(", ")
            );
            for (f, (_, alias)) in word.fields.iter().enumerate() {
                let _ = write!(
                    unpack,
                    ", bitAnd(bitShiftRight(w{w}, {}), {}) AS {alias}",
                    packed.bits as usize * f,
                    packed.max()
                );
            }
        }
        for (which, from, alias) in packed.rest.iter().copied() {
            let lo = match from {
                Some(from) => format!(" AND time >= {from}"),
                None => String::new(),
            };
            let _ = write!(inner, ", countIf({which}{lo}) AS {alias}");
        }
        if !packed.words.is_empty() {
            inner.push_str(", count() AS rows");
            aggregates += 1;
            overflow = Some(packed.max());
        }
        // Per attribute, `kind` and each value column read, of its latest row: one
        // aggregate per column, ordered by the scalar `o` (a tuple of columns or an
        // ordering tuple makes 18.16 keep and compare generic values: 1.3× slower).
        for (i, attr) in ctx.attrs.list.iter().enumerate() {
            for col in std::iter::once("kind").chain(attr.columns.iter().copied()) {
                let _ = write!(inner, ", argMaxIf({col}, o, {}) AS v{i}_{col}", attr.rows);
                aggregates += 1;
            }
        }
        (inner, unpack)
    };
    let (join, after_deletion) = if tables.any_deletions {
        (
            format!(
                " ANY LEFT JOIN (SELECT user, max(seq) AS deleted FROM {} \
                 WHERE workspace = {workspace} GROUP BY user) AS deletions USING user",
                tables.local_deletions
            ),
            " AND seq > deleted",
        )
    } else {
        (String::new(), "")
    };
    // The levels per user and instant are expressions of the aggregates in the same
    // SELECT: each shard computes them for its users.
    let order = (!many && !ctx.attrs.list.is_empty()).then_some(LATEST_ORDER);
    let in_buckets = if buckets == Buckets::ALL {
        String::new()
    } else {
        format!(
            " AND bucket >= {} AND bucket < {}",
            buckets.from, buckets.to
        )
    };
    let scan = format!(
        "{with}SELECT {inner}{per_instant}{middle} FROM {facts}{join} \
         WHERE workspace = {workspace}{in_buckets} AND time < {max_at}{after_deletion} \
         GROUP BY user",
        facts = tables.facts,
        with = ctx.names.with(order),
    );
    if let Some(max) = overflow {
        let _ = write!(outer, ", sum(rows > {max})");
    }
    let sql = format!("SELECT {outer} FROM ({scan}) GROUP BY k ORDER BY k");
    Ok(SizeQuery {
        sql,
        overflow_column: overflow.is_some(),
        aggregates,
        gathers: many,
    })
}

/// What a [`size_query`] sizes, but its instants: `targets` of workspace `workspace`
/// (days in `tz`), their `in_segment` references resolved by `resolve`.
#[derive(Clone, Copy)]
pub struct Sizing<'a> {
    /// Where the facts are.
    pub tables: &'a Tables,
    /// The workspace's number in the tables.
    pub workspace: i64,
    /// The filters sized.
    pub targets: &'a [&'a Filter],
    /// The filters of referenced segments.
    pub resolve: &'a Resolve<'a>,
    /// The values `matches` patterns that RE2 reads otherwise select.
    pub regex_values: &'a RegexValues,
    /// The workspace's time zone.
    pub tz: &'a TimeZone,
    /// For one instant, counts packed in fields of that many bits ([`COUNT_BITS`]);
    /// `None`: one aggregate per count.
    pub pack_bits: Option<u32>,
    /// The users sized: those of these random buckets ([`Buckets::ALL`]: everyone).
    pub buckets: Buckets,
}

/// The users of the random buckets `from..to`: a part of a workspace sized by one
/// query, when sizing every user at once would hold too many per-user states in a
/// server's memory. Users never span buckets, and the tables are ordered by bucket
/// after workspace, so a query of a part reads only that part's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// The first bucket.
    pub from: u16,
    /// One past the last bucket.
    pub to: u16,
}

impl Buckets {
    /// Every bucket: 0 to 9,999.
    pub const ALL: Buckets = Buckets {
        from: 0,
        to: BUCKETS,
    };

    /// Part `p` (from 0) of `n` parts of about as many buckets each (`n` at most
    /// 10,000, `p` below `n`).
    pub fn part(p: u16, n: u16) -> Buckets {
        let n = u32::from(n.clamp(1, BUCKETS));
        let bound = |p: u32| (u32::from(BUCKETS) * p / n) as u16;
        let p = u32::from(p).min(n - 1);
        Buckets {
            from: bound(p),
            to: bound(p + 1),
        }
    }
}

/// The number of random buckets ([`headcount_model::bucket::BUCKETS`]).
pub const BUCKETS: u16 = headcount_model::bucket::BUCKETS as u16;

/// A [`size_query`]: its SQL, and whether its answer rows end with one more count.
#[derive(Debug, Clone)]
pub struct SizeQuery {
    /// The query.
    pub sql: String,
    /// Whether each answer row ends with the number of users with more rows than a
    /// packed count can hold: when it is not 0, the counts may be wrong and the query
    /// must be asked again without packing.
    pub overflow_column: bool,
    /// Aggregates kept per user.
    aggregates: usize,
    /// Whether each user's rows are gathered into arrays (several instants).
    gathers: bool,
}

impl SizeQuery {
    /// An estimate of the memory the query's per-user states take on a server
    /// holding `users` users of the workspace in `rows` rows: about 64 bytes per
    /// aggregate and user and, when rows are gathered into arrays, 16 bytes per row.
    /// Measured at 500,000 users and 20M rows on a server (18.16): one day of 100
    /// segments (48 aggregates) 1.6 GiB, estimated 1.5 GiB; 100 days of 20 (18
    /// aggregates, rows gathered) 0.8 GiB, estimated 0.9 GiB.
    pub fn state_bytes(&self, users: u64, rows: u64) -> u64 {
        let per_user = 128 + 64 * self.aggregates as u64;
        let gathered = if self.gathers { 16 * rows } else { 0 };
        users.saturating_mul(per_user).saturating_add(gathered)
    }
}

/// Bits of one packed count by default: 3 to a `UInt64`, each up to 2,097,151.
pub const COUNT_BITS: u32 = 21;

/// The counts of rows of one name (`c = code`) read as fields of words: per row, each
/// word adds 1 to the field of the row's name (a `transform` of `c`), when the row
/// is in the word's window; the sum per user is then every field's count, exact
/// while the user has no more rows than a field holds. One aggregate for three
/// counts, and one lookup per row instead of three comparisons.
struct Packed<'a> {
    /// Bits of a field.
    bits: u32,
    words: Vec<Word<'a>>,
    /// The counts left as one `countIf` each.
    rest: Vec<&'a (String, Option<String>, String)>,
}

impl Packed<'_> {
    /// The largest count a field holds.
    fn max(&self) -> u64 {
        (1 << self.bits) - 1
    }
}

/// Counts with the same window start, as many as fit in 64 bits.
struct Word<'a> {
    from: Option<&'a str>,
    /// Per field, the name's code and the count's alias.
    fields: Vec<(u64, &'a str)>,
}

/// The counts of `leaves` that can be packed (rows of one name) in words of fields
/// of `bits` bits, the others apart (all of them without `bits`).
fn pack(leaves: &[(String, Option<String>, String)], bits: Option<u32>) -> Packed<'_> {
    let mut packed = Packed {
        bits: bits.unwrap_or(64).clamp(1, 63),
        words: Vec::new(),
        rest: Vec::new(),
    };
    for leaf in leaves {
        let (which, from, alias) = leaf;
        let code = which
            .strip_prefix("c = ")
            .and_then(|c| c.parse::<u64>().ok());
        let Some(code) = code.filter(|_| bits.is_some()) else {
            packed.rest.push(leaf);
            continue;
        };
        let from = from.as_deref();
        let fields_per_word = 64 / packed.bits as usize;
        match packed
            .words
            .iter_mut()
            .find(|w| w.from == from && w.fields.len() < fields_per_word)
        {
            Some(word) => word.fields.push((code, alias)),
            None => packed.words.push(Word {
                from,
                fields: vec![(code, alias)],
            }),
        }
    }
    packed
}

/// The order of an attribute's rows, latest last, as one scalar: `(time, seq)` as
/// `time × 2^64 + seq` in a `Decimal128` (exact: a fact time's microseconds are below
/// 2^59 in magnitude, `seq` below 2^64, and the product stays under 10^38). A
/// fact writes an attribute at most once ([`rows`] keeps the last of repeated
/// names), so `(time, seq)` orders every write of one attribute of one user, as
/// `(time, seq, sub)` does, with `argMax` on a number instead of a tuple.
const LATEST_ORDER: &str =
    "toDecimal128(time, 0) * toDecimal128('18446744073709551616', 0) + toDecimal128(seq, 0)";

/// The settings a [`size_query`] of `instants` instants is sent with (beside the
/// size limits of a large query).
///
/// One instant: a one-level `GROUP BY` up to 100,000 users per server and a two-level
/// one beyond, whatever the states' bytes (not ClickHouse's default of 100 MB). With
/// few users the per-user expressions then run over a few large blocks rather than the
/// two-level aggregation's 256 (18.16 pays per block for each of the query's hundreds
/// of expressions: 4 of a day's 10 s at 100,000 users on one server); with many, the
/// two-level merge runs in parallel (one day at 1M users on one server: 17.2 s, against
/// 27.0 s one-level). Several instants: always two-level, because each user is then
/// repeated once per instant (`arrayJoin`) in the block of its bucket; in one block of
/// every user that was 6 GB at 100,000 users and 100 instants, 0.2 GB in 256.
pub fn settings(instants: usize) -> [(&'static str, &'static str); 2] {
    let threshold = if instants > 1 { "1" } else { "100000" };
    [
        ("group_by_two_level_threshold", threshold),
        ("group_by_two_level_threshold_bytes", "0"),
    ]
}

/// A constant array of integers, `[toInt64(a), …]`.
fn array(values: impl Iterator<Item = i64>) -> String {
    let items: Vec<String> = values.map(|v| format!("toInt64({v})")).collect();
    format!("[{}]", items.join(", "))
}

/// Reads the answer of a [`size_query`]: `counts[i][j]` for instant `i`, target `j`
/// (0 for an instant at which nobody exists).
///
/// # Errors
/// A message when a row is not a position in range and `targets` counts.
pub fn parse_counts(
    answer: &str,
    instants: usize,
    targets: usize,
) -> Result<Vec<Vec<u64>>, String> {
    let mut counts = vec![vec![0; targets]; instants];
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let numbers = line
            .split('\t')
            .map(|n| n.parse::<u64>().map_err(|_| format!("not a count: {n:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (position, row) = numbers.split_first().ok_or("an empty row")?;
        let slot = usize::try_from(*position)
            .ok()
            .and_then(|p| p.checked_sub(1))
            .and_then(|p| counts.get_mut(p))
            .ok_or_else(|| format!("instant position {position} out of range"))?;
        if row.len() != targets {
            return Err(format!(
                "expected {targets} counts, ClickHouse gave {}",
                row.len()
            ));
        }
        slot.copy_from_slice(row);
    }
    Ok(counts)
}

/// The counts of events or purchases, each once: which rows (`which`), and from
/// when (the window's start, an expression of `k`; `None`: all time before `T`).
#[derive(Default)]
struct Leaves {
    list: Vec<(String, Option<String>, String)>,
    aliases: HashMap<(String, Option<String>), String>,
}

impl Leaves {
    fn alias(&mut self, which: String, from: Option<String>) -> String {
        let key = (which, from);
        if let Some(alias) = self.aliases.get(&key) {
            return alias.clone();
        }
        let alias = format!("l{}", self.list.len());
        self.list
            .push((key.0.clone(), key.1.clone(), alias.clone()));
        self.aliases.insert(key, alias.clone());
        alias
    }
}

/// The names of the rows the query reads (events, products, attributes), each given a
/// number: the scan computes once per row `c`, its type and name as one integer
/// (`transform` of the name), so that each aggregate's condition compares integers
/// instead of strings.
#[derive(Default)]
struct Names {
    list: Vec<String>,
}

impl Names {
    /// The condition "a row of type `ty` named `name`", as a test of `c`.
    fn rows(&mut self, ty: u8, name: &str) -> String {
        let id = match self.list.iter().position(|n| n == name) {
            Some(i) => i + 1,
            None => {
                self.list.push(name.to_string());
                self.list.len()
            }
        };
        format!("c = {}", (u64::from(ty) << 32) + id as u64)
    }

    /// `WITH … AS c ` for the scan (empty when no name is read), and `order AS o`.
    fn with(&self, order: Option<&str>) -> String {
        if self.list.is_empty() {
            return String::new();
        }
        let order = order.map(|o| format!(", {o} AS o")).unwrap_or_default();
        let names: Vec<String> = self.list.iter().map(|n| quote(n)).collect();
        let ids: Vec<String> = (1..=self.list.len())
            .map(|i| format!("toUInt64({i})"))
            .collect();
        format!(
            "WITH bitShiftLeft(toUInt64(type), 32) + transform(name, [{}], [{}], toUInt64(0)) AS c{order} ",
            names.join(", "),
            ids.join(", ")
        )
    }
}

/// The attributes read, each aggregated once per user (and instant) into its latest
/// value: `argMaxIf` of `kind` and the value columns its tests read.
#[derive(Default)]
struct Attrs {
    list: Vec<Attr>,
}

struct Attr {
    name: String,
    /// The condition on `c` of its rows.
    rows: String,
    /// Value columns read besides `kind` (`s`, `n`, `d`, `dn`, `a`), in tuple order.
    columns: std::collections::BTreeSet<&'static str>,
}

impl Attrs {
    /// The position of attribute `name` (added when new).
    fn index(&mut self, name: &str, names: &mut Names) -> usize {
        if let Some(i) = self.list.iter().position(|a| a.name == name) {
            return i;
        }
        self.list.push(Attr {
            name: name.to_string(),
            rows: names.rows(rows::ATTRIBUTE, name),
            columns: Default::default(),
        });
        self.list.len() - 1
    }
}

/// The columns of one attribute's latest value: `v{i}_kind`, `v{i}_s`, …; records the
/// value columns used.
struct Cols<'a> {
    i: usize,
    attr: &'a mut Attr,
}

impl Cols<'_> {
    fn kind(&self) -> String {
        format!("v{}_kind", self.i)
    }

    fn col(&mut self, col: &'static str) -> String {
        self.attr.columns.insert(col);
        format!("v{}_{col}", self.i)
    }
}

struct Ctx<'a, 'r> {
    moments: &'a [Moment],
    tz: &'a TimeZone,
    leaves: Leaves,
    attrs: Attrs,
    names: Names,
    resolve: &'a Resolve<'r>,
    regex_values: &'a RegexValues,
    /// Referenced segments already written as columns.
    segments: HashMap<SegmentId, String>,
    /// References being expanded (cycle detection).
    open: Vec<SegmentId>,
    /// `, expr AS alias` of the middle level, dependencies first.
    columns: String,
}

impl Ctx<'_, '_> {
    fn node(&mut self, filter: &Filter) -> Result<String, CompileError> {
        Ok(match filter {
            Filter::All(children) if children.is_empty() => "1".into(),
            Filter::Any(children) if children.is_empty() => "0".into(),
            Filter::All(children) | Filter::Any(children) => {
                let join = if matches!(filter, Filter::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = children
                    .iter()
                    .map(|c| self.node(c).map(|e| format!("({e})")))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.join(join)
            }
            Filter::Not(child) => format!("NOT ({})", self.node(child)?),
            Filter::InSegment(id) => self.segment(*id)?,
            Filter::RandomBucket { cmp, value } => format!("toInt64(b) {} {value}", op(*cmp)),
            Filter::Event { name, count } => {
                let which = self.names.rows(rows::EVENT, name);
                self.count(&which, count)
            }
            Filter::Purchase { product, count } => {
                let which = match product {
                    Some(p) => self.names.rows(rows::PURCHASE, p),
                    None => format!("type = {}", rows::PURCHASE),
                };
                self.count(&which, count)
            }
            Filter::Attribute { name, op } => self.attribute(name, op),
        })
    }

    fn segment(&mut self, id: SegmentId) -> Result<String, CompileError> {
        if let Some(alias) = self.segments.get(&id) {
            return Ok(alias.clone());
        }
        if self.open.contains(&id) {
            return Err(CompileError::Cycle(id));
        }
        let filter = (self.resolve)(id).ok_or(CompileError::UnknownSegment(id))?;
        self.open.push(id);
        let expr = self.node(&filter)?;
        self.open.pop();
        let alias = format!("g{}", self.segments.len());
        let _ = write!(self.columns, ", ({expr}) AS {alias}");
        self.segments.insert(id, alias.clone());
        Ok(alias)
    }

    fn count(&mut self, which: &str, test: &CountTest) -> String {
        let from = test
            .within_days
            .map(|days| window_starts(self.moments, self.tz, days));
        let alias = self.leaves.alias(which.to_string(), from);
        format!("toInt64({alias}) {} {}", op(test.cmp), test.value)
    }

    fn attribute(&mut self, name: &str, attr: &AttrOp) -> String {
        let missing = matches!(attr, AttrOp::NotExists | AttrOp::Ne(_) | AttrOp::NotIn(_));
        let i = self.attrs.index(name, &mut self.names);
        let mut cols = Cols {
            i,
            attr: &mut self.attrs.list[i],
        };
        let test = value_test(
            &mut cols,
            name,
            attr,
            self.moments,
            self.tz,
            self.regex_values,
        );
        // Never written: the aggregate's default, kind 0, as an unset.
        format!(
            "if({} = {unset}, {missing}, {test})",
            cols.kind(),
            unset = rows::UNSET,
            missing = u8::from(missing),
        )
    }
}

/// `[start(R − days + 1) of each instant][k]` in whole microseconds (ceil).
fn window_starts(moments: &[Moment], tz: &TimeZone, days: u32) -> String {
    let starts = moments
        .iter()
        .map(|m| rows::ceil_micros(m.window_start(days, tz)));
    format!("{}[k]", array(starts))
}

/// The (µs, ns) pair of `start(R − days + 1)` of the instant `k`.
fn window_start_pair(moments: &[Moment], tz: &TimeZone, days: u32) -> String {
    let (us, ns): (Vec<i64>, Vec<i64>) = moments
        .iter()
        .map(|m| {
            let (us, ns) = rows::micros_and_nanos(m.window_start(days, tz));
            (us, i64::from(ns))
        })
        .unzip();
    format!(
        "({}[k], {}[k])",
        array(us.into_iter()),
        array(ns.into_iter())
    )
}

/// The (µs, ns) pair of the instant `k`.
fn at_pair(moments: &[Moment]) -> String {
    let (us, ns): (Vec<i64>, Vec<i64>) =
        moments.iter().map(|m| (m.at.0, i64::from(m.at.1))).unzip();
    format!(
        "({}[k], {}[k])",
        array(us.into_iter()),
        array(ns.into_iter())
    )
}

/// The test of one written (non-null) value, as a condition on a user's latest value
/// of the attribute (`cols`).
fn value_test(
    c: &mut Cols<'_>,
    name: &str,
    attr: &AttrOp,
    moments: &[Moment],
    tz: &TimeZone,
    regex_values: &RegexValues,
) -> String {
    let kind = c.kind();
    match attr {
        AttrOp::Exists => "1".into(),
        AttrOp::NotExists => "0".into(),
        AttrOp::Eq(v) => equals(c, v),
        AttrOp::Ne(v) => format!("NOT ({})", equals(c, v)),
        AttrOp::In(vs) => any_equal(c, vs),
        AttrOp::NotIn(vs) => format!("NOT ({})", any_equal(c, vs)),
        AttrOp::Order(cmp, Ordered::Number(k)) => {
            format!(
                "{kind} = {} AND {} {} {}",
                rows::NUMBER,
                c.col("n"),
                op(*cmp),
                float(*k)
            )
        }
        AttrOp::Order(cmp, Ordered::DateTime(k)) => {
            format!(
                "{kind} = {} AND ({}, {}) {} {}",
                rows::DATETIME,
                c.col("d"),
                c.col("dn"),
                op(*cmp),
                instant(*k)
            )
        }
        AttrOp::Contains(x) => format!(
            "({kind} = {} AND position({}, {q}) > 0) OR ({kind} = {} AND has({}, {q}))",
            rows::STRING,
            c.col("s"),
            rows::ARRAY,
            c.col("a"),
            q = quote(x)
        ),
        AttrOp::StartsWith(p) => {
            format!(
                "{kind} = {} AND startsWith({}, {})",
                rows::STRING,
                c.col("s"),
                quote(p)
            )
        }
        AttrOp::Matches(re) => {
            if let Some(re2) = re2_pattern(re.as_str()) {
                return format!(
                    "{kind} = {} AND match({}, {})",
                    rows::STRING,
                    c.col("s"),
                    quote(&re2)
                );
            }
            match regex_values.get(&(name.to_string(), re.as_str().to_string())) {
                Some(values) if values.is_empty() => "0".into(),
                Some(values) => {
                    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
                    format!(
                        "{kind} = {} AND {} IN ({})",
                        rows::STRING,
                        c.col("s"),
                        quoted.join(", ")
                    )
                }
                None => format!(
                    "{kind} = {} AND match({}, {})",
                    rows::STRING,
                    c.col("s"),
                    quote(re.as_str())
                ),
            }
        }
        AttrOp::WithinLastDays(days) => {
            let value = format!("({}, {})", c.col("d"), c.col("dn"));
            format!(
                "{kind} = {} AND {value} >= {} AND {value} < {}",
                rows::DATETIME,
                window_start_pair(moments, tz, *days),
                at_pair(moments)
            )
        }
        AttrOp::MoreThanDaysAgo(days) => format!(
            "{kind} = {} AND ({}, {}) < {}",
            rows::DATETIME,
            c.col("d"),
            c.col("dn"),
            window_start_pair(moments, tz, *days)
        ),
    }
}

/// `eq` of segments.md on a latest value: same kind, same value.
fn equals(c: &mut Cols<'_>, value: &Value) -> String {
    let kind = c.kind();
    match value {
        Value::String(s) => format!(
            "{kind} = {} AND {} = {}",
            rows::STRING,
            c.col("s"),
            quote(s)
        ),
        Value::Number(n) => format!(
            "{kind} = {} AND {} = {}",
            rows::NUMBER,
            c.col("n"),
            float(*n)
        ),
        Value::Bool(b) => format!(
            "{kind} = {} AND {} = {}",
            rows::BOOL,
            c.col("n"),
            u8::from(*b)
        ),
        Value::DateTime(t) => format!(
            "{kind} = {} AND ({}, {}) = {}",
            rows::DATETIME,
            c.col("d"),
            c.col("dn"),
            instant(*t)
        ),
        Value::Array(items) => {
            let array = if items.is_empty() {
                "emptyArrayString()".to_string()
            } else {
                let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
                format!("[{}]", quoted.join(", "))
            };
            format!("{kind} = {} AND {} = {array}", rows::ARRAY, c.col("a"))
        }
    }
}

fn any_equal(c: &mut Cols<'_>, values: &[Value]) -> String {
    match values {
        [] => return "0".into(),
        [one] => return equals(c, one),
        _ => {}
    }
    let parts: Vec<String> = values
        .iter()
        .map(|v| format!("({})", equals(c, v)))
        .collect();
    parts.join(" OR ")
}

fn op(cmp: Cmp) -> &'static str {
    match cmp {
        Cmp::Eq => "=",
        Cmp::Ne => "!=",
        Cmp::Gt => ">",
        Cmp::Gte => ">=",
        Cmp::Lt => "<",
        Cmp::Lte => "<=",
    }
}

/// A float literal that reads back as the same f64 (Rust prints the shortest text
/// that round-trips).
fn float(f: f64) -> String {
    format!("toFloat64({f:?})")
}

fn instant(t: Timestamp) -> String {
    let (us, ns) = rows::micros_and_nanos(t);
    format!("(toInt64({us}), toUInt16({ns}))")
}

/// A ClickHouse string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Characters that stand for themselves both in headcount's regex syntax and in RE2.
const PLAIN: &[u8] = b" _-@:/,;'\"!#%=";

/// Punctuation that may be escaped, meaning the character itself in both syntaxes.
const ESCAPABLE: &[u8] = b".+*?()[]{}|^$\\/-";

/// `pattern` as an RE2 pattern (ClickHouse's `match()`) that matches exactly the
/// strings headcount's regex engine matches somewhere, or `None` when that cannot be
/// told from the text alone (then the SQL lists the matching values instead).
///
/// Accepted, conservatively: ASCII literals and escaped punctuation, `^`, `$`, `|`,
/// groups (`(…)`, `(?:…)`), the quantifiers `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`
/// (lazy too), classes of ASCII letters, digits and plain punctuation that are not
/// negated, and `.` only as a run (`.*`, `.+`), written `[^\n]`: a run of non-newline
/// bytes is a run of non-newline characters in UTF-8, whether ClickHouse reads bytes or
/// characters, and whatever its `.` does with newlines. Refused: flags (`(?i)` folds
/// case differently), `\d`, `\w`, `\s`, `\b` and other classes (Unicode in headcount,
/// ASCII in RE2), negated classes and a lone `.` (a byte or a character?), non-ASCII
/// text, the empty pattern.
pub fn re2_pattern(pattern: &str) -> Option<String> {
    if pattern.is_empty() || !pattern.is_ascii() {
        return None;
    }
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 8);
    let (mut i, mut depth, mut atom) = (0usize, 0i32, false);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                let next = *b.get(i + 1)?;
                if !ESCAPABLE.contains(&next) {
                    return None;
                }
                out.push('\\');
                out.push(char::from(next));
                i += 2;
                atom = true;
                continue;
            }
            b'.' => {
                if !matches!(b.get(i + 1), Some(b'*' | b'+')) {
                    return None;
                }
                out.push_str("[^\\n]");
                atom = true;
            }
            b'[' => {
                let mut j = i + 1;
                out.push('[');
                loop {
                    let d = *b.get(j)?;
                    match d {
                        b']' if j > i + 1 => break,
                        b'\\' => {
                            let e = *b.get(j + 1)?;
                            if !ESCAPABLE.contains(&e) {
                                return None;
                            }
                            out.push('\\');
                            out.push(char::from(e));
                            j += 2;
                            continue;
                        }
                        // `--` is a class difference in headcount's syntax.
                        b'-' if b.get(j + 1) == Some(&b'-') => return None,
                        d if d.is_ascii_alphanumeric() || b"_-@:/,;'\". ".contains(&d) => {
                            out.push(char::from(d));
                        }
                        _ => return None,
                    }
                    j += 1;
                }
                out.push(']');
                i = j + 1;
                atom = true;
                continue;
            }
            b'(' => {
                if b.get(i + 1) == Some(&b'?') {
                    if b.get(i + 2) != Some(&b':') {
                        return None;
                    }
                    out.push_str("(?:");
                    i += 3;
                } else {
                    out.push('(');
                    i += 1;
                }
                depth += 1;
                atom = false;
                continue;
            }
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                out.push(')');
                atom = true;
            }
            b'*' | b'+' | b'?' => {
                if !atom {
                    return None;
                }
                out.push(char::from(c));
                if b.get(i + 1) == Some(&b'?') {
                    out.push('?');
                    i += 1;
                }
                atom = false;
            }
            b'{' => {
                if !atom {
                    return None;
                }
                let close = i + b[i..].iter().position(|&x| x == b'}')?;
                let body = &pattern[i + 1..close];
                let mut bounds = body.splitn(3, ',');
                let low = bounds.next()?;
                let high = bounds.next();
                if bounds.next().is_some()
                    || low.parse::<u16>().ok()? > 100
                    || high.is_some_and(|h| {
                        !h.is_empty() && h.parse::<u16>().map_or(true, |h| h > 100)
                    })
                    || !body.bytes().all(|x| x.is_ascii_digit() || x == b',')
                {
                    return None;
                }
                out.push_str(&pattern[i..=close]);
                i = close + 1;
                if b.get(i) == Some(&b'?') {
                    out.push('?');
                    i += 1;
                }
                atom = false;
                continue;
            }
            b'^' | b'$' | b'|' => {
                out.push(char::from(c));
                atom = false;
            }
            c if c.is_ascii_alphanumeric() || PLAIN.contains(&c) => {
                out.push(char::from(c));
                atom = true;
            }
            _ => return None,
        }
        i += 1;
    }
    (depth == 0).then_some(out)
}

/// Every `matches` test of `targets` and of the segments they reference, as
/// (attribute, pattern).
pub fn regex_tests(
    targets: &[&Filter],
    resolve: &Resolve<'_>,
) -> Vec<(String, headcount_model::filter::Pattern)> {
    let mut out: Vec<(String, headcount_model::filter::Pattern)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<Arc<Filter>> = targets.iter().map(|f| Arc::new((*f).clone())).collect();
    while let Some(filter) = stack.pop() {
        let mut nodes = vec![filter.as_ref()];
        while let Some(node) = nodes.pop() {
            match node {
                Filter::All(c) | Filter::Any(c) => nodes.extend(c.iter()),
                Filter::Not(c) => nodes.push(c),
                Filter::InSegment(id) => {
                    if seen.insert(*id)
                        && let Some(f) = resolve(*id)
                    {
                        stack.push(f);
                    }
                }
                Filter::Attribute {
                    name,
                    op: AttrOp::Matches(p),
                } if !out.iter().any(|(n, q)| n == name && q == p) => {
                    out.push((name.clone(), p.clone()));
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_re2_reads_alike_go_to_match_and_the_others_do_not() {
        for (pattern, re2) in [
            (r"@gmail\.com$", r"@gmail\.com$"),
            (r"@(yahoo|outlook)\.com$", r"@(yahoo|outlook)\.com$"),
            ("^user-7[0-9]*@", "^user-7[0-9]*@"),
            ("^[A-Z]{2}$", "^[A-Z]{2}$"),
            ("a.*b", r"a[^\n]*b"),
            ("(?:ab)+?c", "(?:ab)+?c"),
            ("^$", "^$"),
        ] {
            assert_eq!(re2_pattern(pattern).as_deref(), Some(re2), "{pattern}");
        }
        for pattern in [
            "",
            "(?i)gold",
            r"\d{4}",
            r"\w",
            "a.b",
            "[^a]",
            "é",
            "[a--b]",
            r"\<",
            "(a",
            "a)",
            "*a",
            "a{1,2,3}",
            "a{200}",
            "[[:alpha:]]",
            "a{,2}",
        ] {
            assert_eq!(re2_pattern(pattern), None, "{pattern}");
        }
    }

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn floats_are_written_to_read_back_exactly() {
        assert_eq!(float(0.1), "toFloat64(0.1)");
        assert_eq!(float(1e-9), "toFloat64(1e-9)");
        assert_eq!(float(-0.0), "toFloat64(-0.0)");
    }

    fn attribute(name: &str, value: &str) -> Filter {
        Filter::Attribute {
            name: name.into(),
            op: AttrOp::Eq(Value::String(value.into())),
        }
    }

    fn query_of(filters: &[Filter], instants: usize) -> String {
        query_packed(filters, instants, Some(COUNT_BITS)).sql
    }

    fn query_packed(filters: &[Filter], instants: usize, pack_bits: Option<u32>) -> SizeQuery {
        query_with(filters, instants, pack_bits, Buckets::ALL)
    }

    fn query_in(filters: &[Filter], buckets: Buckets) -> SizeQuery {
        query_with(filters, 1, Some(COUNT_BITS), buckets)
    }

    fn query_with(
        filters: &[Filter],
        instants: usize,
        pack_bits: Option<u32>,
        buckets: Buckets,
    ) -> SizeQuery {
        let tables = Tables {
            facts: "db.facts".into(),
            local_deletions: "db.deletions_local".into(),
            any_deletions: false,
        };
        let targets: Vec<&Filter> = filters.iter().collect();
        let at: Vec<Timestamp> = (0..instants as i64)
            .map(|d| Timestamp::from_second(1_700_000_000 + d * 86_400).unwrap())
            .collect();
        let regex_values = RegexValues::new();
        let ask = Sizing {
            tables: &tables,
            workspace: 1,
            targets: &targets,
            resolve: &|_| None,
            regex_values: &regex_values,
            tz: &TimeZone::UTC,
            pack_bits,
            buckets,
        };
        size_query(&ask, &at).unwrap()
    }

    #[test]
    fn parts_of_the_buckets_cover_each_once_in_order() {
        for n in [1, 2, 3, 7, 16, 9_999, 10_000] {
            let mut next = 0;
            for p in 0..n {
                let part = Buckets::part(p, n);
                assert_eq!(part.from, next, "part {p} of {n}");
                assert!(part.to > part.from, "part {p} of {n} is empty");
                next = part.to;
            }
            assert_eq!(next, BUCKETS, "{n} parts");
        }
        assert_eq!(Buckets::part(0, 1), Buckets::ALL);
    }

    #[test]
    fn a_part_of_the_buckets_is_read_by_the_table_order() {
        let filters = [attribute("plan", "pro")];
        let mut ask = query_packed(&filters, 1, Some(COUNT_BITS));
        assert!(!ask.sql.contains("bucket >="), "{}", ask.sql);
        ask = query_in(&filters, Buckets::part(1, 4));
        assert!(
            ask.sql
                .contains("WHERE workspace = 1 AND bucket >= 2500 AND bucket < 5000 AND time <"),
            "{}",
            ask.sql
        );
        // One attribute (kind, s), the bucket, the row count: about 64 bytes each.
        assert_eq!(ask.state_bytes(1_000, 0), 1_000 * (128 + 64 * 3));
    }

    #[test]
    fn an_attribute_read_by_several_tests_is_aggregated_once_per_user() {
        let filters = [
            attribute("plan", "pro"),
            attribute("plan", "free"),
            Filter::Not(Box::new(attribute("plan", "team"))),
            attribute("country", "FR"),
        ];
        let one = query_of(&filters, 1);
        // Per attribute, its kind and its string, ordered by the scalar `o`.
        assert_eq!(one.matches("argMaxIf(kind, o, ").count(), 2, "{one}");
        assert_eq!(one.matches("argMaxIf(s, o, ").count(), 2, "{one}");
        assert_eq!(one.matches("argMaxIf(").count(), 4, "{one}");
        assert!(one.contains(&format!("{LATEST_ORDER} AS o")), "{one}");
        assert_eq!(one.matches("arrayJoin(").count(), 0, "{one}");
        let many = query_of(&filters, 3);
        assert_eq!(many.matches("argMaxIf(").count(), 0, "{many}");
        assert_eq!(many.matches("groupArrayIf(").count(), 2, "{many}");
        assert_eq!(many.matches("arrayJoin(").count(), 1, "{many}");
    }

    #[test]
    fn counts_of_one_name_are_packed_three_to_a_word_by_window() {
        let event = |name: &str, within_days: Option<u32>| Filter::Event {
            name: name.into(),
            count: CountTest {
                cmp: Cmp::Gte,
                value: 1,
                within_days,
            },
        };
        let any_purchase = Filter::Purchase {
            product: None,
            count: CountTest {
                cmp: Cmp::Gte,
                value: 1,
                within_days: None,
            },
        };
        let filters = [
            event("a", None),
            event("b", None),
            event("c", None),
            event("d", None),
            event("a", Some(7)),
            any_purchase,
        ];
        let one = query_of(&filters, 1);
        // Four all-time counts: a word of three and a word of one; the windowed one in
        // a word of its own; any purchase (not one name) stays a `countIf`.
        assert_eq!(one.matches("sum(transform(c, ").count(), 3, "{one}");
        assert_eq!(one.matches(" * (time >= ").count(), 1, "{one}");
        assert_eq!(one.matches("countIf(").count(), 1, "{one}");
        assert!(one.contains("count() AS rows"), "{one}");
        assert!(one.starts_with("SELECT k, "), "{one}");
        assert!(one.contains(", sum(rows > 2097151) FROM ("), "{one}");
        // Several instants read arrays: nothing packed, no extra column.
        let many = query_of(&filters, 3);
        assert!(
            !many.contains("transform(c, ") && !many.contains("rows > "),
            "{many}"
        );
        let unpacked = query_packed(&filters, 1, None);
        assert!(!unpacked.overflow_column);
        assert_eq!(unpacked.sql.matches("countIf(").count(), 6);
        // Narrow fields: more to a word.
        let narrow = query_packed(&filters, 1, Some(2));
        assert!(narrow.overflow_column);
        assert_eq!(
            narrow.sql.matches("sum(transform(c, ").count(),
            2,
            "{}",
            narrow.sql
        );
        assert!(
            narrow.sql.contains(", sum(rows > 3) FROM ("),
            "{}",
            narrow.sql
        );
    }

    #[test]
    fn one_instant_groups_one_level_for_few_users_and_several_always_two_level() {
        assert_eq!(settings(1)[0], ("group_by_two_level_threshold", "100000"));
        assert_eq!(settings(2)[0], ("group_by_two_level_threshold", "1"));
        assert_eq!(settings(7)[1], ("group_by_two_level_threshold_bytes", "0"));
    }

    #[test]
    fn counts_are_read_instant_by_instant() {
        assert_eq!(
            parse_counts("1\t2\t3\n3\t4\t5\n", 3, 2).unwrap(),
            vec![vec![2, 3], vec![0, 0], vec![4, 5]]
        );
        assert!(parse_counts("1\t2\n", 2, 2).is_err());
        assert!(parse_counts("4\t2\t3\n", 3, 2).is_err());
        assert_eq!(parse_counts("", 3, 0).unwrap(), vec![Vec::<u64>::new(); 3]);
    }
}
