//! Braze's rate limits: a fixed window per (workspace, bucket), counted exactly.

use headcount_model::WorkspaceId;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// The shared hourly limit of the export and management endpoints.
    Export,
    /// `/users/track`: its own short window.
    Track,
}

impl Bucket {
    /// Its name in the store (`rate_windows.bucket`).
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Export => "export",
            Bucket::Track => "track",
        }
    }

    /// The bucket named `name`, if any.
    pub fn from_name(name: &str) -> Option<Bucket> {
        match name {
            "export" => Some(Bucket::Export),
            "track" => Some(Bucket::Track),
            _ => None,
        }
    }
}

/// The state of a window after a request was counted, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Requests allowed in the window.
    pub limit: u64,
    /// Requests left after this one (0 when refused).
    pub remaining: u64,
    /// When the window resets, UTC epoch seconds.
    pub reset: u64,
    /// Whether this request is over the limit.
    pub exceeded: bool,
}

/// The current window of one (workspace, bucket).
#[derive(Debug, Clone, Copy)]
struct Counter {
    start: u64,
    count: u64,
    /// Changed since it was last handed to [`RateLimiter::unsaved`].
    unsaved: bool,
}

/// Counters of the current window of every (workspace, bucket).
#[derive(Debug, Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<(WorkspaceId, Bucket), Counter>>,
}

impl RateLimiter {
    /// Puts back a saved window (at start, before any request is counted); a window
    /// that has ended since is simply replaced by the next request's.
    pub fn restore(&self, key: (WorkspaceId, Bucket), window_start: u64, count: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.insert(
            key,
            Counter {
                start: window_start,
                count,
                unsaved: false,
            },
        );
    }

    /// The windows changed since the last call, as `(key, window start, count)`, now
    /// counted as saved.
    pub fn unsaved(&self) -> Vec<((WorkspaceId, Bucket), u64, u64)> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter_mut()
            .filter(|(_, c)| c.unsaved)
            .map(|(key, c)| {
                c.unsaved = false;
                (*key, c.start, c.count)
            })
            .collect()
    }

    /// Counts one request at `now` (epoch seconds) against `limit` per `window_secs`.
    pub fn hit(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
    ) -> Window {
        self.count(key, limit, window_secs, now, true)
    }

    /// The window as it stands, without counting a request.
    pub fn peek(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
    ) -> Window {
        self.count(key, limit, window_secs, now, false)
    }

    fn count(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
        hit: bool,
    ) -> Window {
        let window_secs = window_secs.max(1);
        let start = now - now % window_secs;
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counters.entry(key).or_insert(Counter {
            start,
            count: 0,
            unsaved: false,
        });
        if entry.start != start {
            *entry = Counter {
                start,
                count: 0,
                unsaved: false,
            };
        }
        let exceeded = hit && entry.count >= limit;
        if hit && !exceeded {
            entry.count += 1;
            entry.unsaved = true;
        }
        Window {
            limit,
            remaining: limit.saturating_sub(entry.count),
            reset: start + window_secs,
            exceeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_down_then_refuses_then_resets() {
        let limiter = RateLimiter::default();
        let key = (WorkspaceId(1), Bucket::Export);
        let now = 1_592_424_000 + 100; // 100 s into an hour
        let w = limiter.hit(key, 2, 3600, now);
        assert_eq!(
            (w.remaining, w.reset, w.exceeded),
            (1, 1_592_427_600, false)
        );
        assert_eq!(limiter.hit(key, 2, 3600, now + 1).remaining, 0);
        let w = limiter.hit(key, 2, 3600, now + 2);
        assert!(w.exceeded);
        assert_eq!(w.remaining, 0);
        let other = limiter.hit((WorkspaceId(2), Bucket::Export), 2, 3600, now);
        assert_eq!(other.remaining, 1, "workspaces do not share a window");
        let next_hour = limiter.hit(key, 2, 3600, 1_592_427_600);
        assert_eq!((next_hour.remaining, next_hour.exceeded), (1, false));
    }

    #[test]
    fn unsaved_windows_are_handed_out_once_and_restored_windows_go_on_counting() {
        let limiter = RateLimiter::default();
        let key = (WorkspaceId(1), Bucket::Export);
        let hour = 1_592_424_000;
        limiter.hit(key, 10, 3600, hour + 5);
        limiter.hit(key, 10, 3600, hour + 6);
        assert_eq!(limiter.unsaved(), vec![(key, hour, 2)]);
        assert_eq!(limiter.unsaved(), vec![], "nothing changed since");
        limiter.peek(key, 10, 3600, hour + 7);
        assert_eq!(limiter.unsaved(), vec![], "a peek counts nothing");

        let restarted = RateLimiter::default();
        restarted.restore(key, hour, 2);
        let w = restarted.hit(key, 10, 3600, hour + 100);
        assert_eq!(w.remaining, 7, "the restored count goes on");
        let stale = RateLimiter::default();
        stale.restore(key, hour - 3600, 9);
        assert_eq!(stale.hit(key, 10, 3600, hour + 1).remaining, 9);
        assert_eq!(
            Bucket::from_name(Bucket::Track.as_str()),
            Some(Bucket::Track)
        );
    }
}
