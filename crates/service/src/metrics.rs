//! The server's metrics, in Prometheus' names and units, rendered for `GET /metrics`.
//!
//! Counters and histograms are counted where things happen (the request middleware,
//! the `/users/track` handler, the writer's commit hook, the key guard); gauges of the
//! indexes and of the daily job are read from the state when scraped. Only this
//! module knows the metric names (docs/operations.md lists them).

use headcount_model::{Fact, FactKind, Timestamp, UserKey, WorkspaceId};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A metric's labels: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// A histogram family of latencies.
type Latencies = Family<Labels, Histogram, fn() -> Histogram>;

/// A gauge of seconds or other fractional values.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Latency buckets from 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Why a request's API key was refused (the `reason` label of
/// `headcount_keys_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// No key, or no key with that secret.
    Unknown,
    /// A key that was revoked.
    Revoked,
    /// The key lacks the endpoint's permission.
    Permission,
    /// The caller's address is not on the key's allow-list.
    Ip,
}

impl KeyRejection {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRejection::Unknown => "unknown",
            KeyRejection::Revoked => "revoked",
            KeyRejection::Permission => "permission",
            KeyRejection::Ip => "ip",
        }
    }
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_latency: Latencies,
    facts_ingested: Family<Labels, Counter>,
    writer_groups: Counter,
    writer_requests: Counter,
    writer_commit: Histogram,
    rate_limited: Family<Labels, Counter>,
    keys_rejected: Family<Labels, Counter>,
    index_users: Family<Labels, Gauge>,
    index_facts: Family<Labels, Gauge>,
    index_bytes: Family<Labels, Gauge>,
    backfill_pending: Gauge,
    daily_pending: Gauge,
    last_day_age: Family<Labels, FloatGauge>,
    /// Per workspace, the end of the newest completed day the daily job has stored
    /// for every live segment.
    last_day_end: Mutex<HashMap<WorkspaceId, Timestamp>>,
    /// One scrape at a time sets the scrape-time gauges and encodes.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "headcount_http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_latency: Latencies = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "headcount_http_request_duration",
            "Time from a request's head to its answer, by route template and method",
            Unit::Seconds,
            http_latency.clone(),
        );
        let facts_ingested = Family::<Labels, Counter>::default();
        registry.register(
            "headcount_facts_ingested",
            "Facts made durable through /users/track, by kind (attributes, event, purchase)",
            facts_ingested.clone(),
        );
        let writer_groups = Counter::default();
        registry.register(
            "headcount_writer_groups",
            "Transactions committed by the ingestion writer (group commits)",
            writer_groups.clone(),
        );
        let writer_requests = Counter::default();
        registry.register(
            "headcount_writer_requests",
            "Requests (tracks and deletes) committed by the ingestion writer",
            writer_requests.clone(),
        );
        let writer_commit = latency_histogram();
        registry.register_with_unit(
            "headcount_writer_commit_duration",
            "Time to commit one group of the ingestion writer to disk",
            Unit::Seconds,
            writer_commit.clone(),
        );
        let rate_limited = Family::<Labels, Counter>::default();
        registry.register(
            "headcount_rate_limited",
            "Requests refused with 429, by rate-limit bucket (export, track)",
            rate_limited.clone(),
        );
        let keys_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "headcount_keys_rejected",
            "Requests refused for their API key, by reason (unknown, revoked, permission, ip)",
            keys_rejected.clone(),
        );
        let index_users = Family::<Labels, Gauge>::default();
        registry.register(
            "headcount_index_users",
            "Live users in a workspace's index",
            index_users.clone(),
        );
        let index_facts = Family::<Labels, Gauge>::default();
        registry.register(
            "headcount_index_facts",
            "Events and purchases of live users in a workspace's index",
            index_facts.clone(),
        );
        let index_bytes = Family::<Labels, Gauge>::default();
        registry.register_with_unit(
            "headcount_index_memory",
            "Estimated memory held by a workspace's index",
            Unit::Bytes,
            index_bytes.clone(),
        );
        let backfill_pending = Gauge::default();
        registry.register(
            "headcount_backfill_segments_pending",
            "Segments whose history is waiting to be (re)computed",
            backfill_pending.clone(),
        );
        let daily_pending = Gauge::default();
        registry.register(
            "headcount_daily_segments_pending",
            "Segments left in the daily job's current pass",
            daily_pending.clone(),
        );
        let last_day_age = Family::<Labels, FloatGauge>::default();
        registry.register_with_unit(
            "headcount_last_stored_day_age",
            "Time since the end of the newest completed day whose sizes are stored for every \
             live segment of the workspace",
            Unit::Seconds,
            last_day_age.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_latency,
            facts_ingested,
            writer_groups,
            writer_requests,
            writer_commit,
            rate_limited,
            keys_rejected,
            index_users,
            index_facts,
            index_bytes,
            backfill_pending,
            daily_pending,
            last_day_age,
            last_day_end: Mutex::new(HashMap::new()),
            scrape: Mutex::new(()),
        }
    }

    /// Counts one answered request: `route` is the matched route template
    /// (`unmatched` for none).
    pub fn http_request(&self, route: &str, method: &str, status: u16, latency: Duration) {
        let route = route.to_string();
        let method = method.to_string();
        self.http_requests
            .get_or_create(&vec![
                ("route", route.clone()),
                ("method", method.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_latency
            .get_or_create(&vec![("route", route), ("method", method)])
            .observe(latency.as_secs_f64());
    }

    /// Counts facts made durable, by kind.
    pub fn facts_ingested(&self, counts: FactCounts) {
        for (kind, n) in [
            ("attributes", counts.attributes),
            ("event", counts.events),
            ("purchase", counts.purchases),
        ] {
            if n > 0 {
                self.facts_ingested
                    .get_or_create(&vec![("kind", kind.to_string())])
                    .inc_by(n);
            }
        }
    }

    /// Counts one group committed by the writer: its requests and its commit time.
    pub fn writer_commit(&self, requests: usize, took: Duration) {
        self.writer_groups.inc();
        self.writer_requests.inc_by(requests as u64);
        self.writer_commit.observe(took.as_secs_f64());
    }

    /// Counts a 429 of `bucket` (`export`, `track`).
    pub fn rate_limited(&self, bucket: &str) {
        self.rate_limited
            .get_or_create(&vec![("bucket", bucket.to_string())])
            .inc();
    }

    /// Counts a request refused for its key.
    pub fn key_rejected(&self, reason: KeyRejection) {
        self.keys_rejected
            .get_or_create(&vec![("reason", reason.as_str().to_string())])
            .inc();
    }

    /// Segments queued for a backfill (`n` > 0) or done with one (`n` < 0).
    pub fn backfill_pending(&self, n: i64) {
        self.backfill_pending.inc_by(n);
    }

    /// Segments left in the daily job's pass.
    pub fn daily_pending(&self, n: i64) {
        self.daily_pending.set(n);
    }

    /// Records that every live segment of `workspace` has the sizes of the day that
    /// ended at `day_end`.
    pub fn day_stored(&self, workspace: WorkspaceId, day_end: Timestamp) {
        let mut ends = self.last_day_end.lock().unwrap_or_else(|p| p.into_inner());
        let end = ends.entry(workspace).or_insert(day_end);
        *end = (*end).max(day_end);
    }

    /// The exposition, after setting the scrape-time gauges from `indexes` (per
    /// workspace name: users, facts, bytes) as of `now`.
    pub fn render(
        &self,
        indexes: &[(WorkspaceId, String, IndexFigures)],
        now: Timestamp,
    ) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let names: HashMap<WorkspaceId, &str> = indexes
            .iter()
            .map(|(id, name, _)| (*id, name.as_str()))
            .collect();
        self.index_users.clear();
        self.index_facts.clear();
        self.index_bytes.clear();
        for (_, name, figures) in indexes {
            let labels = vec![("workspace", name.clone())];
            self.index_users
                .get_or_create(&labels)
                .set(figures.users as i64);
            self.index_facts
                .get_or_create(&labels)
                .set(figures.facts as i64);
            self.index_bytes
                .get_or_create(&labels)
                .set(figures.bytes as i64);
        }
        self.last_day_age.clear();
        let ends = self
            .last_day_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (ws, end) in ends {
            let Some(name) = names.get(&ws) else { continue };
            let age = now.duration_since(end).as_secs_f64().max(0.0);
            self.last_day_age
                .get_or_create(&vec![("workspace", name.to_string())])
                .set(age);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// What `/metrics` says of one workspace's index.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexFigures {
    /// Live users.
    pub users: usize,
    /// Events and purchases of live users.
    pub facts: usize,
    /// Estimated bytes held.
    pub bytes: usize,
}

/// Facts of one request, by kind (for `headcount_facts_ingested_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactCounts {
    /// Attribute objects.
    pub attributes: u64,
    /// Events.
    pub events: u64,
    /// Purchases.
    pub purchases: u64,
}

impl FactCounts {
    /// Counts `facts` by kind (deletions are not counted).
    pub fn of(facts: &[(UserKey, Fact)]) -> FactCounts {
        let mut counts = FactCounts::default();
        for (_, fact) in facts {
            match fact.kind {
                FactKind::Attributes(_) => counts.attributes += 1,
                FactKind::Event { .. } => counts.events += 1,
                FactKind::Purchase { .. } => counts.purchases += 1,
                _ => {}
            }
        }
        counts
    }
}
