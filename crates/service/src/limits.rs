//! Where rate-limit windows are counted: a small trait with two implementations, the
//! process's own [`RateLimiter`] (saved to the store by `upkeep.rs`; exact for one
//! node) and [`RedisCounter`] (one counter per window in Redis, exact across every
//! node sharing it).

use crate::batched_counter::{BatchedCounter, SharedWindows, WindowKey};
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

/// Adds ARGV[2] hits to a window's counter and sets its expiry on its first hits,
/// atomically (one script runs at a time in Redis). KEYS[1]: the window; ARGV[1]: its
/// time to live in milliseconds.
const HIT_SCRIPT: &str = "local n = tonumber(ARGV[2]) \
local c = redis.call('INCRBY', KEYS[1], n) \
if c == n then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
return c";

/// Windows counted in Redis: key `headcount:ratelimit:<workspace>:<bucket>:<window
/// start>`, incremented by every hit (refused ones too, so a count over the limit
/// means refused) and expiring a minute after its window ends. Concurrent requests of
/// one window share a round trip ([`crate::batched_counter`]).
pub type RedisCounter = BatchedCounter<RedisWindows>;

/// Windows kept in one Redis server.
#[derive(Debug)]
pub struct RedisWindows {
    client: Client,
}

impl RedisCounter {
    /// A counter on the Redis server at `url` (`redis://HOST:PORT[/DB]`); connects on
    /// first use.
    ///
    /// # Errors
    /// A malformed URL, with what is wrong.
    pub fn new(url: &str) -> Result<RedisCounter, String> {
        Ok(BatchedCounter::batching(RedisWindows {
            client: Client::new(url)?,
        }))
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        self.windows().client.address()
    }

    /// The key of a window.
    pub fn key(key: (WorkspaceId, Bucket), window_start: u64) -> String {
        format!(
            "headcount:ratelimit:{}:{}:{window_start}",
            key.0.0,
            key.1.as_str()
        )
    }
}

impl RedisWindows {
    async fn counted(
        &self,
        window: WindowKey,
        window_secs: u64,
        hits: u64,
    ) -> Result<u64, RespError> {
        let (workspace, bucket, start) = window;
        let name = RedisCounter::key((workspace, bucket), start);
        let reply = if hits > 0 {
            let ttl_ms = ((window_secs + 60) * 1000).to_string();
            let hits = hits.to_string();
            self.client
                .command(&[
                    b"EVAL",
                    HIT_SCRIPT.as_bytes(),
                    b"1",
                    name.as_bytes(),
                    ttl_ms.as_bytes(),
                    hits.as_bytes(),
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

impl SharedWindows for RedisWindows {
    async fn add(
        &self,
        window: WindowKey,
        window_secs: u64,
        hits: u64,
    ) -> Result<u64, CounterUnavailable> {
        self.counted(window, window_secs, hits)
            .await
            .map_err(|e| CounterUnavailable(e.to_string()))
    }
}
