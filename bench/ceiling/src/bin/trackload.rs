//! A closed-loop load generator for `POST /users/track`.
//!
//! C connections each send a batch of B events (default 75, Braze's per-array maximum),
//! wait for the answer, and send the next one. A batch counts only when its answer is
//! 201 (headcount answers 201 once the batch is committed to disk: durable acks); any
//! other answer is an error. Prints one JSON object on stdout.
//!
//! Usage: trackload --url URL --key KEY --users N [--connections C] [--seconds S]
//!                  [--batch B] [--time RFC3339] [--bodies K]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const EVENTS: [&str; 20] = [
    "session_start", "page_view", "search", "add_to_cart", "checkout_started",
    "feature_used", "push_opened", "email_opened", "email_clicked", "share",
    "invite_sent", "review_written", "video_played", "notification_settings",
    "profile_updated", "support_ticket", "wishlist_add", "coupon_applied",
    "onboarding_step", "logout",
];

struct Args {
    url: String,
    key: String,
    users: u64,
    connections: usize,
    seconds: f64,
    batch: usize,
    time: String,
    bodies: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        key: String::new(),
        users: 100_000,
        connections: 16,
        seconds: 10.0,
        batch: 75,
        time: "2026-11-01T00:00:00Z".into(),
        bodies: 512,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--url" => a.url = v,
            "--key" => a.key = v,
            "--users" => a.users = v.parse().expect("--users"),
            "--connections" => a.connections = v.parse().expect("--connections"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--batch" => a.batch = v.parse().expect("--batch"),
            "--time" => a.time = v,
            "--bodies" => a.bodies = v.parse().expect("--bodies"),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    if a.url.is_empty() || a.key.is_empty() {
        eprintln!("usage: trackload --url URL --key KEY --users N [--connections C] [--seconds S] [--batch B] [--time RFC3339]");
        std::process::exit(2);
    }
    a
}

/// SplitMix64, as in headcount's generator: reproducible bodies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// K distinct bodies of B events each, for random existing users.
fn bodies(a: &Args) -> Vec<bytes::Bytes> {
    let mut rng = Rng(7);
    (0..a.bodies)
        .map(|_| {
            let mut s = String::from("{\"events\":[");
            for j in 0..a.batch {
                if j > 0 {
                    s.push(',');
                }
                let user = rng.next() % a.users.max(1);
                let name = EVENTS[(rng.next() % 20) as usize];
                s.push_str(&format!(
                    "{{\"external_id\":\"user-{user}\",\"name\":\"{name}\",\"time\":\"{}\"}}",
                    a.time
                ));
            }
            s.push_str("]}");
            bytes::Bytes::from(s)
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let bodies = Arc::new(bodies(&a));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.connections)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = format!("{}/users/track", a.url.trim_end_matches('/'));
    let auth = format!("Bearer {}", a.key);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let (client, url, auth, bodies, stop) =
            (client.clone(), url.clone(), auth.clone(), bodies.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut errors = 0u64;
            let mut first_error = String::new();
            let mut latencies = Vec::new();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += 7;
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let text = r.bytes().await.unwrap_or_default();
                        if status == 201 {
                            ok += 1;
                            latencies.push(sent.elapsed().as_secs_f64());
                        } else {
                            errors += 1;
                            if first_error.is_empty() {
                                first_error = format!("{status} {}", String::from_utf8_lossy(&text));
                            }
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if first_error.is_empty() {
                            first_error = e.to_string();
                        }
                    }
                }
            }
            (ok, errors, first_error, latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut errors = 0;
    let mut first_error = String::new();
    let mut latencies = Vec::new();
    for t in tasks {
        let (o, e, f, l) = t.await.expect("task");
        ok += o;
        errors += e;
        if first_error.is_empty() {
            first_error = f;
        }
        latencies.extend(l);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() as f64 - 1.0) * p).round() as usize] * 1000.0
        }
    };
    let events = ok * a.batch as u64;
    println!(
        "{{\"connections\":{},\"batch\":{},\"seconds\":{seconds:.3},\"requests_ok\":{ok},\"errors\":{errors},\"events\":{events},\"events_per_second\":{:.1},\"requests_per_second\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"first_error\":{:?}}}",
        a.connections,
        a.batch,
        events as f64 / seconds,
        ok as f64 / seconds,
        pct(0.50),
        pct(0.99),
        first_error
    );
}
