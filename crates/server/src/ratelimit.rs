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

/// Counters of the current window of every (workspace, bucket).
#[derive(Debug, Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<(WorkspaceId, Bucket), (u64, u64)>>,
}

impl RateLimiter {
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
        let entry = counters.entry(key).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        let exceeded = hit && entry.1 >= limit;
        if hit && !exceeded {
            entry.1 += 1;
        }
        Window {
            limit,
            remaining: limit.saturating_sub(entry.1),
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
}
