//! JSON bodies for the answers hyper writes itself.
//!
//! A request that hyper cannot parse (a control character in a header, conflicting
//! `Content-Length`s, a URI or a head over its limits) never reaches the router: hyper
//! answers 400, 414 or 431 with an empty body and closes the connection. This socket
//! wrapper recognises such an answer on its way out (a 4xx or 5xx head with
//! `content-length: 0` and no `content-type`, which the API itself never sends: every
//! one of its errors has a JSON body) and writes it with a JSON `message` instead.

use serde_json::json;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request URI hyper reads (414 beyond).
pub const MAX_URI_BYTES: usize = 65_534;

/// Most headers hyper reads (431 beyond).
pub const MAX_HEADERS: usize = 100;

/// Largest request head hyper reads, in bytes (431 beyond).
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// The `message` of an answer hyper wrote for a request it could not parse.
pub fn message(status: u16) -> String {
    match status {
        400 => "Bad Request: the request is not valid HTTP/1.1 (a malformed request line or \
header, a control character in a header, or a repeated or invalid Content-Length)"
            .to_string(),
        414 => format!("URI Too Long: the request URI is over {MAX_URI_BYTES} bytes"),
        431 => format!(
            "Request Header Fields Too Large: at most {MAX_HEADERS} headers and {} KB of \
request head are read",
            MAX_HEAD_BYTES / 1024
        ),
        other => format!("the request could not be read (status {other})"),
    }
}

/// A socket that gives hyper's bodiless error answers a JSON body.
#[derive(Debug)]
pub struct JsonErrors<T> {
    inner: T,
    /// The rewritten answer still to write, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
    /// The length of the caller's buffer that `pending` replaces, reported as written
    /// once `pending` is.
    replaces: Option<usize>,
}

impl<T> JsonErrors<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        JsonErrors {
            inner,
            pending: Vec::new(),
            written: 0,
            replaces: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

/// `buf` with a bodiless error answer at its end given a JSON body; `None` when it
/// ends with no such answer.
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let start = buf.windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    if !(400..600).contains(&status) {
        return None;
    }
    let lines: Vec<&str> = head[..head.len() - 4].split("\r\n").collect();
    let is = |line: &str, name: &str| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    };
    let empty = lines.iter().any(|l| {
        is(l, "content-length") && l.split_once(':').is_some_and(|(_, v)| v.trim() == "0")
    });
    if !empty || lines.iter().any(|l| is(l, "content-type")) {
        return None;
    }
    let body = json!({ "message": message(status) }).to_string();
    let mut out = buf[..start].to_vec();
    for line in lines
        .iter()
        .filter(|l| !is(l, "content-length") && !is(l, "connection"))
    {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replaces.is_none()
            && this.written == this.pending.len()
            && let Some(replacement) = rewrite(buf)
        {
            this.pending = replacement;
            this.written = 0;
            this.replaces = Some(buf.len());
        }
        ready!(this.drain(cx))?;
        if let Some(n) = this.replaces.take() {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// One buffer per write: hyper then writes each answer whole, head and body
    /// together, which is what [`rewrite`] looks at.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bodiless_error_gets_a_json_message() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 19:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(hyper).expect("rewritten")).expect("text");
        let (head, body) = out.split_once("\r\n\r\n").expect("a head");
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ndate: Fri, 04 Dec 2026 19:00:00 GMT\r\n\
content-type: application/json\r\ncontent-length: {}\r\nconnection: close",
                body.len()
            )
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["message"], message(431));
    }

    #[test]
    fn answers_of_the_api_pass_unchanged() {
        for text in [
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"message\":\"x\"}",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n",
        ] {
            assert_eq!(rewrite(text.as_bytes()), None, "{text}");
        }
    }
}
