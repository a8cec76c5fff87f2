//! Where rate-limit windows are counted: a small trait with two implementations, the
//! process's own [`RateLimiter`] (saved to the store by `upkeep.rs`; exact for one
//! node) and [`RedisCounter`] (one counter per window in Redis, exact across every
//! node sharing it).

use crate::ratelimit::{Bucket, RateLimiter, Window};
use crate::resp::{Client, Reply, RespError};
use headcount_model::WorkspaceId;
use std::future::Future;
use std::pin::Pin;

/// Seconds a client is asked to wait (`Retry-After`) when the counters are unreachable.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 1;

/// The counters cannot be reached: the request is refused with a 503, never counted
/// against a guess.
#[derive(Debug, thiserror::Error)]
#[error("the rate-limit counters are unreachable: {0}")]
pub struct CounterUnavailable(pub String);

/// What counting returns.
pub type CountFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Window, CounterUnavailable>> + Send + 'a>>;

/// Counts requests in fixed windows of `window_secs` per (workspace, bucket): a hit
/// is allowed while the window's count is under `limit`, and allowed hits are never
/// more than `limit` per window, however many callers share the counter.
pub trait WindowCounter: std::fmt::Debug + Send + Sync {
    /// Counts one request at `now` (epoch seconds) when `hit`; otherwise reads the
    /// window as it stands.
    fn count(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
        hit: bool,
    ) -> CountFuture<'_>;
}

impl WindowCounter for RateLimiter {
    fn count(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
        hit: bool,
    ) -> CountFuture<'_> {
        let window = if hit {
            self.hit(key, limit, window_secs, now)
        } else {
            self.peek(key, limit, window_secs, now)
        };
        Box::pin(std::future::ready(Ok(window)))
    }
}

/// Increments a window's counter and sets its expiry on the first hit, atomically
/// (one script runs at a time in Redis). KEYS[1]: the window; ARGV[1]: its time to
/// live in milliseconds.
const HIT_SCRIPT: &str = "local c = redis.call('INCR', KEYS[1]) \
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
return c";

/// Windows counted in Redis: key `headcount:ratelimit:<workspace>:<bucket>:<window
/// start>`, incremented by every hit (refused ones too, so a count over the limit
/// means refused) and expiring a minute after its window ends.
#[derive(Debug)]
pub struct RedisCounter {
    client: Client,
}

impl RedisCounter {
    /// A counter on the Redis server at `url` (`redis://HOST:PORT[/DB]`); connects on
    /// first use.
    ///
    /// # Errors
    /// A malformed URL, with what is wrong.
    pub fn new(url: &str) -> Result<RedisCounter, String> {
        Ok(RedisCounter {
            client: Client::new(url)?,
        })
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        self.client.address()
    }

    /// The key of a window.
    pub fn key(key: (WorkspaceId, Bucket), window_start: u64) -> String {
        format!(
            "headcount:ratelimit:{}:{}:{window_start}",
            key.0.0,
            key.1.as_str()
        )
    }

    async fn counted(
        &self,
        key: (WorkspaceId, Bucket),
        window_secs: u64,
        start: u64,
        hit: bool,
    ) -> Result<u64, RespError> {
        let name = RedisCounter::key(key, start);
        let reply = if hit {
            let ttl_ms = ((window_secs + 60) * 1000).to_string();
            self.client
                .command(&[
                    b"EVAL",
                    HIT_SCRIPT.as_bytes(),
                    b"1",
                    name.as_bytes(),
                    ttl_ms.as_bytes(),
                ])
                .await?
        } else {
            self.client.command(&[b"GET", name.as_bytes()]).await?
        };
        match reply {
            Reply::Integer(n) => Ok(n.max(0) as u64),
            Reply::Bulk(None) => Ok(0),
            Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text)
                .parse()
                .map_err(|_| RespError::Protocol(format!("the count of {name} is not a number"))),
            other => Err(RespError::Protocol(format!(
                "unexpected reply for {name}: {other:?}"
            ))),
        }
    }
}

impl WindowCounter for RedisCounter {
    fn count(
        &self,
        key: (WorkspaceId, Bucket),
        limit: u64,
        window_secs: u64,
        now: u64,
        hit: bool,
    ) -> CountFuture<'_> {
        Box::pin(async move {
            let window_secs = window_secs.max(1);
            let start = now - now % window_secs;
            let count = self
                .counted(key, window_secs, start, hit)
                .await
                .map_err(|e| CounterUnavailable(e.to_string()))?;
            let exceeded = hit && count > limit;
            Ok(Window {
                limit,
                remaining: limit.saturating_sub(count),
                reset: start + window_secs,
                exceeded,
            })
        })
    }
}
