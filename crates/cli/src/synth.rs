//! A seeded synthetic dataset that looks like a real product: skewed activity (a few
//! heavy users, many light ones), signups spread over time, plan upgrades, churn, 20
//! event names and a few products. One NDJSON `/users/track` body per user.
//!
//! Used by `headcount demo` and `headcount gen`; the same seed gives the same data.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// A small, fast, seeded PRNG (SplitMix64): reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// One of `items`, by `weights`.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, f64)]) -> &'a T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.unit() * total;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[items.len() - 1].0
    }
}

/// The generator's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Users to generate.
    pub users: u64,
    /// Seed.
    pub seed: u64,
    /// Days of activity before `end`.
    pub days: u32,
    /// The instant the data ends at (events are before it).
    pub end: Timestamp,
    /// Average events per user.
    pub events_per_user: f64,
}

/// The 20 event names, with relative frequencies.
pub const EVENTS: [(&str, f64); 20] = [
    ("session_start", 20.0),
    ("page_view", 30.0),
    ("search", 8.0),
    ("add_to_cart", 5.0),
    ("checkout_started", 2.5),
    ("feature_used", 8.0),
    ("push_opened", 4.0),
    ("email_opened", 5.0),
    ("email_clicked", 1.5),
    ("share", 1.0),
    ("invite_sent", 0.6),
    ("review_written", 0.4),
    ("video_played", 4.0),
    ("notification_settings", 0.3),
    ("profile_updated", 0.8),
    ("support_ticket", 0.3),
    ("wishlist_add", 2.0),
    ("coupon_applied", 0.7),
    ("onboarding_step", 3.0),
    ("logout", 2.0),
];

const PRODUCTS: [(&str, f64); 5] = [
    ("sku-basic", 5.0),
    ("sku-pro", 2.0),
    ("gift-card", 1.0),
    ("sticker-pack", 3.0),
    ("annual-plan", 0.6),
];
const COUNTRIES: [(&str, f64); 10] = [
    ("US", 30.0),
    ("FR", 12.0),
    ("DE", 10.0),
    ("GB", 10.0),
    ("BR", 8.0),
    ("IN", 8.0),
    ("JP", 6.0),
    ("ES", 6.0),
    ("IT", 5.0),
    ("CA", 5.0),
];
const PLANS: [(&str, f64); 3] = [("free", 70.0), ("pro", 22.0), ("enterprise", 8.0)];
const LANGUAGES: [&str; 6] = ["en", "fr", "de", "es", "pt", "ja"];
const DOMAINS: [(&str, f64); 4] = [
    ("gmail.com", 45.0),
    ("yahoo.com", 10.0),
    ("outlook.com", 15.0),
    ("corp.example", 30.0),
];

fn at(end: Timestamp, seconds_before: f64) -> Timestamp {
    end.checked_sub(SignedDuration::from_secs_f64(seconds_before.max(0.0)))
        .unwrap_or(end)
}

fn iso(t: Timestamp) -> String {
    t.to_string()
}

/// The `/users/track` body of user number `n` (`_time` on attribute objects, as the
/// bulk import accepts).
pub fn user_body(p: &Params, n: u64) -> Value {
    let mut rng = Rng::new(p.seed.wrapping_mul(0x100_0000_01B3) ^ n);
    let span = p.days as f64 * 86_400.0;
    let id = format!("user-{n}");
    // A quarter of users signed up before the window, the rest within it.
    let signup_ago = if rng.unit() < 0.25 {
        span + rng.unit() * span * 3.0
    } else {
        rng.unit() * span
    };
    let signup = at(p.end, signup_ago);
    // Activity is heavy-tailed (Pareto, alpha 1.5), scaled to the requested mean.
    let activity = (1.0 - rng.unit()).powf(-1.0 / 1.5) / 3.0;
    let active_span = signup_ago.min(span);
    let churned_after = if rng.unit() < 0.3 {
        rng.unit() * active_span
    } else {
        active_span
    };
    let n_events = (activity * p.events_per_user).round().min(20_000.0) as u64;
    let country = *rng.weighted(&COUNTRIES);
    let plan = *rng.weighted(&PLANS);
    let domain = *rng.weighted(&DOMAINS);
    let mut devices = Vec::new();
    for device in ["ios", "android", "web"] {
        if rng.unit() < 0.45 {
            devices.push(device);
        }
    }
    let mut profile = Map::new();
    profile.insert("external_id".into(), id.clone().into());
    profile.insert("_time".into(), iso(signup).into());
    profile.insert("country".into(), country.into());
    profile.insert("plan".into(), "free".into());
    profile.insert("email".into(), format!("{id}@{domain}").into());
    profile.insert(
        "language".into(),
        LANGUAGES[rng.below(LANGUAGES.len() as u64) as usize].into(),
    );
    profile.insert("age".into(), (18 + rng.below(55)).into());
    profile.insert("email_opt_out".into(), (rng.unit() < 0.1).into());
    profile.insert("signup_date".into(), iso(signup).into());
    profile.insert("devices".into(), json!(devices));
    profile.insert(
        "ltv".into(),
        json!(((rng.unit() * activity * 2000.0) * 100.0).round() / 100.0),
    );
    profile.insert("beta_tester".into(), (rng.unit() < 0.05).into());
    let mut attributes = vec![Value::Object(profile)];
    if plan != "free" {
        let upgrade = at(p.end, signup_ago - rng.unit() * active_span);
        attributes.push(json!({ "external_id": id, "_time": iso(upgrade), "plan": plan }));
    }
    let mut events = Vec::new();
    let mut purchases = Vec::new();
    for _ in 0..n_events {
        // Recent activity is denser: sample the age of the event with a skew.
        let offset = rng.unit().powf(0.8) * churned_after;
        let time = iso(at(p.end, signup_ago.min(span) - offset));
        if rng.unit() < 0.04 {
            let product = *rng.weighted(&PRODUCTS);
            purchases.push(json!({
                "external_id": id, "product_id": product, "currency": "USD",
                "price": 5 + rng.below(95), "time": time,
            }));
        } else {
            events.push(json!({ "external_id": id, "name": *rng.weighted(&EVENTS), "time": time }));
        }
    }
    json!({ "attributes": attributes, "events": events, "purchases": purchases })
}

/// The demo's segments: (name, description, filter).
pub fn demo_segments() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "French users",
            "Users whose country is France",
            json!({"attribute": "country", "op": "eq", "value": "FR"}),
        ),
        (
            "Active this week",
            "Started a session in the last 7 days",
            json!({"event": "session_start", "op": "gte", "value": 1, "within_days": 7}),
        ),
        (
            "Power users",
            "20+ sessions in the last 30 days",
            json!({"event": "session_start", "op": "gte", "value": 20, "within_days": 30}),
        ),
        (
            "Recent buyers",
            "Bought anything in the last 30 days",
            json!({"purchase": "*", "op": "gte", "value": 1, "within_days": 30}),
        ),
        (
            "Paying plans",
            "On the pro or enterprise plan",
            json!({"attribute": "plan", "op": "in", "value": ["pro", "enterprise"]}),
        ),
        (
            "New signups",
            "Signed up in the last 14 days",
            json!({"attribute": "signup_date", "op": "within_last_days", "value": 14}),
        ),
        (
            "Dormant",
            "No session for 30 days, signed up more than 30 days ago",
            json!({"all": [
            {"event": "session_start", "op": "eq", "value": 0, "within_days": 30},
            {"attribute": "signup_date", "op": "more_than_days_ago", "value": 30}]}),
        ),
        (
            "Cart abandoners",
            "Added to cart this week without buying",
            json!({"all": [
            {"event": "add_to_cart", "op": "gte", "value": 1, "within_days": 7},
            {"purchase": "*", "op": "eq", "value": 0, "within_days": 7}]}),
        ),
        (
            "Reachable EU",
            "EU users who did not opt out of email",
            json!({"all": [
            {"attribute": "country", "op": "in", "value": ["FR", "DE", "ES", "IT"]},
            {"not": {"attribute": "email_opt_out", "op": "eq", "value": true}}]}),
        ),
        (
            "Mobile users",
            "Use the iOS or Android app",
            json!({"any": [
            {"attribute": "devices", "op": "contains", "value": "ios"},
            {"attribute": "devices", "op": "contains", "value": "android"}]}),
        ),
        (
            "Gmail users",
            "Email address at gmail.com",
            json!({"attribute": "email", "op": "matches", "value": "@gmail\\.com$"}),
        ),
        (
            "Holdout 10%",
            "A stable 10% random sample",
            json!({"random_bucket": {"op": "lt", "value": 1000}}),
        ),
    ]
}
