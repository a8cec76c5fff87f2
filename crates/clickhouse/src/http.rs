//! A small synchronous client of ClickHouse's HTTP interface (HTTP/1.1 over a plain
//! TCP connection, one request per connection): the query in the body, settings in
//! the URL, user and password from the URL as basic authentication.
//!
//! Written on `std::net` rather than an HTTP library so that the engine, which is
//! synchronous, can call it from any thread (the server runs it on blocking threads),
//! with explicit timeouts on connecting and on every read.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for any read or write once connected (a long query streams nothing
/// until it is done, so this bounds a query's duration).
const IO_TIMEOUT: Duration = Duration::from_secs(600);

/// One ClickHouse server, by the address of its HTTP interface.
#[derive(Clone)]
pub struct Http {
    host: String,
    port: u16,
    /// `Basic …`, when the URL names a user.
    authorization: Option<String>,
    /// The URL without credentials, for messages.
    shown: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Http {
    /// Reads `http://[user[:password]@]host[:port][/]` (port 8123 by default).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming what is wrong with the URL.
    pub fn parse(url: &str) -> Result<Http> {
        let bad = |why: &str| Error::Invalid(format!("ClickHouse URL {url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') {
            return Err(bad(
                "must have no path or query (the database is a separate setting)",
            ));
        }
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| bad("the port must be a number"))?,
            ),
            _ => (address.to_string(), 8123),
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let authorization = credentials.map(|c| {
            let (user, password) = c.split_once(':').unwrap_or((c, ""));
            let text = format!("{}:{}", percent_decode(user), percent_decode(password));
            format!("Basic {}", base64(text.as_bytes()))
        });
        Ok(Http {
            shown: format!("http://{host}:{port}"),
            host,
            port,
            authorization,
        })
    }

    /// The server's address without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `sql` (the query text, then `body`, form the request body) with `params`
    /// as URL settings, and returns the answer's body.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when connecting, writing or reading fails;
    /// [`Error::Server`] with ClickHouse's message for any other status than 200.
    pub fn post(&self, params: &[(&str, &str)], sql: &str, body: &[u8]) -> Result<Vec<u8>> {
        let unreachable = |e: std::io::Error| Error::Unreachable {
            url: self.shown.clone(),
            reason: e.to_string(),
        };
        let mut path = String::from("/?");
        for (i, (key, value)) in params.iter().enumerate() {
            if i > 0 {
                path.push('&');
            }
            path.push_str(&percent_encode(key));
            path.push('=');
            path.push_str(&percent_encode(value));
        }
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(unreachable)?
            .next()
            .ok_or_else(|| Error::Unreachable {
                url: self.shown.clone(),
                reason: "the host name resolves to no address".into(),
            })?;
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host,
            self.port,
            sql.len() + body.len()
        );
        if let Some(auth) = &self.authorization {
            head.push_str("Authorization: ");
            head.push_str(auth);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut writer = std::io::BufWriter::with_capacity(1 << 16, &stream);
        writer.write_all(head.as_bytes()).map_err(unreachable)?;
        writer.write_all(sql.as_bytes()).map_err(unreachable)?;
        writer.write_all(body).map_err(unreachable)?;
        writer.flush().map_err(unreachable)?;
        drop(writer);
        let mut reader = BufReader::new(&stream);
        let (status, chunked, length) = read_head(&mut reader).map_err(unreachable)?;
        let content = if chunked {
            read_chunked(&mut reader).map_err(unreachable)?
        } else {
            let mut content = Vec::new();
            match length {
                Some(n) => {
                    content.resize(n, 0);
                    reader.read_exact(&mut content).map_err(unreachable)?;
                }
                None => {
                    reader.read_to_end(&mut content).map_err(unreachable)?;
                }
            }
            content
        };
        if status != 200 {
            return Err(Error::Server {
                status,
                message: String::from_utf8_lossy(&content).trim().to_string(),
            });
        }
        Ok(content)
    }
}

fn invalid(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

/// The status, whether the body is chunked, and its length if given.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, bool, Option<usize>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("not an HTTP answer"))?;
    let (mut chunked, mut length) = (false, None);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the answer ended in its headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok((status, chunked, length));
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            }
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut content = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            return Ok(content);
        }
        let start = content.len();
        content.resize(start + size, 0);
        reader.read_exact(&mut content[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_basic_credentials() {
        let http = Http::parse("http://ann:p%40ss@db.example:9123/").unwrap();
        assert_eq!(http.shown(), "http://db.example:9123");
        assert_eq!(http.authorization.as_deref(), Some("Basic YW5uOnBAc3M="));
        let plain = Http::parse("http://localhost").unwrap();
        assert_eq!(plain.shown(), "http://localhost:8123");
        assert!(plain.authorization.is_none());
        assert!(Http::parse("https://x").is_err());
        assert!(Http::parse("http://x:port").is_err());
        assert!(Http::parse("http://x/db").is_err());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
