//! What a connection is doing, for its timeouts: when a byte last moved, when the
//! request head now being read began, and whether a request is being handled (and if
//! so, whether it waits for its body).

use axum::body::{Bytes, HttpBody};
use hyper::body::{Frame, Incoming, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How long a connection may wait for its client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request head to its end.
    pub header_read: Duration,
    /// With no byte read or written, and no request being handled.
    pub idle: Duration,
}

/// The activity of one connection, shared by its I/O, its requests and its watchdog.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When a byte was last read or written (or a request finished).
    last_io: Instant,
    /// When the first byte of the request head being read arrived.
    head_started: Option<Instant>,
    /// Requests being handled.
    requests: usize,
    /// Of those, the ones whose handler waits for more of the body.
    awaiting_body: usize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            state: Mutex::new(State {
                last_io: Instant::now(),
                head_started: None,
                requests: 0,
                awaiting_body: 0,
            }),
        }
    }
}

impl Activity {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn moved(&self, read: bool) {
        let now = Instant::now();
        let mut state = self.state();
        state.last_io = now;
        if read && state.requests == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
        }
    }

    /// Marks a request as handled until the guard is dropped (its head is complete).
    pub fn request(self: &Arc<Self>) -> Handling {
        let mut state = self.state();
        state.requests += 1;
        state.head_started = None;
        Handling(self.clone())
    }

    fn awaiting_body(&self, waiting: bool) {
        let mut state = self.state();
        if waiting {
            state.awaiting_body += 1;
        } else {
            state.awaiting_body = state.awaiting_body.saturating_sub(1);
        }
    }

    /// When the connection is to be closed if nothing happens before; `None` while a
    /// request is being handled (and not waiting for its body).
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let state = self.state();
        if state.requests > state.awaiting_body {
            return None;
        }
        let idle = state.last_io + timeouts.idle;
        match state.head_started {
            Some(start) if state.requests == 0 => Some(idle.min(start + timeouts.header_read)),
            _ => Some(idle),
        }
    }
}

/// A request being handled; see [`Activity::request`].
#[derive(Debug)]
pub struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.requests = state.requests.saturating_sub(1);
        state.last_io = Instant::now();
    }
}

/// A socket whose reads and writes are recorded in an [`Activity`].
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.moved(true);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.activity.moved(false);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that tells its connection's [`Activity`] when the handler waits
/// for more of it, so that a client that stops sending its body is timed out like an
/// idle one.
#[derive(Debug)]
pub struct TrackedBody {
    inner: Incoming,
    activity: Arc<Activity>,
    waiting: bool,
}

impl TrackedBody {
    /// Wraps a request's body.
    pub fn new(inner: Incoming, activity: Arc<Activity>) -> Self {
        TrackedBody {
            inner,
            activity,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            self.activity.awaiting_body(waiting);
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.set_waiting(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(2),
        idle: Duration::from_secs(10),
    };

    #[test]
    fn the_deadline_follows_what_the_connection_does() {
        let activity = Arc::new(Activity::default());
        let start = activity.state().last_io;
        assert_eq!(activity.deadline(&T), Some(start + T.idle));
        activity.moved(true);
        let head = activity.state().head_started.expect("a head began");
        assert_eq!(activity.deadline(&T), Some(head + T.header_read));
        let handling = activity.request();
        assert_eq!(activity.deadline(&T), None, "a request is being handled");
        activity.awaiting_body(true);
        let last = activity.state().last_io;
        assert_eq!(activity.deadline(&T), Some(last + T.idle));
        activity.awaiting_body(false);
        assert_eq!(activity.deadline(&T), None);
        drop(handling);
        let last = activity.state().last_io;
        assert_eq!(activity.deadline(&T), Some(last + T.idle), "idle again");
    }
}
