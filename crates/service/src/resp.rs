//! A small client of Redis's protocol (RESP2): enough to run a command and read its
//! reply, with short timeouts so that an unreachable Redis fails fast and never hangs
//! a request. Connections are kept in a small pool and dropped on any error.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time allowed for a command, from its first byte sent to its reply's last read.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 16;

/// A reply of Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo` (`None`: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*2…` (`None`: the null array).
    Array(Option<Vec<Reply>>),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The connection could not be opened, or broke.
    #[error("redis at {address}: {cause}")]
    Io {
        /// `host:port`.
        address: String,
        /// What happened.
        cause: String,
    },
    /// Redis answered with an error (`-ERR …`).
    #[error("redis answered: {0}")]
    Server(String),
    /// The reply was not what the protocol allows.
    #[error("redis sent a malformed reply: {0}")]
    Protocol(String),
}

/// A Redis server, reached at `redis://host:port[/db]`.
#[derive(Debug)]
pub struct Client {
    address: String,
    db: Option<u32>,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

impl Client {
    /// A client of the server `url` names (`redis://host:port[/db]`); connects lazily.
    ///
    /// # Errors
    /// A URL of another scheme, or with a user, password or anything after the db.
    pub fn new(url: &str) -> Result<Client, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("the Redis URL must start with redis://, not {url:?}"))?;
        let (host_port, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, None),
            Some((hp, db)) => (
                hp,
                Some(db.parse::<u32>().map_err(|_| {
                    format!("the Redis URL's database must be a number, not {db:?}")
                })?),
            ),
            None => (rest, None),
        };
        if host_port.is_empty() || host_port.contains('@') {
            return Err(format!(
                "the Redis URL must be redis://HOST:PORT[/DB] (no user or password), not {url:?}"
            ));
        }
        let address = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            host_port.to_string()
        } else {
            format!("{host_port}:6379")
        };
        Ok(Client {
            address,
            db,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs one command (`args[0]` is its name) and returns its reply; an error reply
    /// is [`RespError::Server`].
    pub async fn command(&self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let pooled = self.idle.lock().await.pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, exchange(&mut conn, args))
            .await
            .map_err(|_| self.io(format!("no reply within {COMMAND_TIMEOUT:?}")))?
            .map_err(|e| self.io(e.to_string()))?;
        // The connection is in a clean state again (a whole reply was read).
        let mut idle = self.idle.lock().await;
        if idle.len() < POOL_SIZE {
            idle.push(conn);
        }
        drop(idle);
        match reply {
            Ok(reply) => Ok(reply),
            Err(ReplyError::Server(m)) => Err(RespError::Server(m)),
            Err(ReplyError::Protocol(m)) => Err(RespError::Protocol(m)),
        }
    }

    async fn connect(&self) -> Result<BufReader<TcpStream>, RespError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| self.io(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| self.io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut conn = BufReader::new(stream);
        if let Some(db) = self.db {
            let db = db.to_string();
            let reply = tokio::time::timeout(
                COMMAND_TIMEOUT,
                exchange(&mut conn, &[b"SELECT", db.as_bytes()]),
            )
            .await
            .map_err(|_| self.io(format!("no reply within {COMMAND_TIMEOUT:?}")))?
            .map_err(|e| self.io(e.to_string()))?;
            match reply {
                Ok(_) => {}
                Err(ReplyError::Server(m)) => return Err(RespError::Server(m)),
                Err(ReplyError::Protocol(m)) => return Err(RespError::Protocol(m)),
            }
        }
        Ok(conn)
    }

    fn io(&self, cause: String) -> RespError {
        RespError::Io {
            address: self.address.clone(),
            cause,
        }
    }
}

/// An error reply, or a reply the protocol does not allow (the connection stays
/// usable after the first, not necessarily after the second).
enum ReplyError {
    Server(String),
    Protocol(String),
}

/// Writes a command and reads its reply. The outer error is a broken connection.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    args: &[&[u8]],
) -> std::io::Result<Result<Reply, ReplyError>> {
    conn.get_mut().write_all(&encode(args)).await?;
    read_reply(conn).await
}

/// A command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Longest bulk string or array accepted in a reply.
const MAX_LEN: i64 = 64 * 1024 * 1024;

/// Reads one whole reply.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Result<Reply, ReplyError>> {
    // Arrays nest: an explicit stack instead of recursion in an async fn.
    let mut stack: Vec<(usize, Vec<Reply>)> = Vec::new();
    let mut first_error: Option<ReplyError> = None;
    loop {
        let line = read_line(r).await?;
        let (kind, text) = match line.split_first() {
            Some((k, t)) => (*k, String::from_utf8_lossy(t).into_owned()),
            None => return Ok(Err(ReplyError::Protocol("an empty line".into()))),
        };
        let number = || text.parse::<i64>();
        let value = match kind {
            b'+' => Reply::Simple(text),
            b'-' => {
                first_error.get_or_insert(ReplyError::Server(text));
                Reply::Bulk(None)
            }
            b':' => match number() {
                Ok(n) => Reply::Integer(n),
                Err(_) => return Ok(Err(ReplyError::Protocol(format!("integer {text:?}")))),
            },
            b'$' => match number() {
                Ok(-1) => Reply::Bulk(None),
                Ok(n) if (0..=MAX_LEN).contains(&n) => {
                    let mut buf = vec![0; n as usize + 2];
                    r.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
                _ => return Ok(Err(ReplyError::Protocol(format!("bulk length {text:?}")))),
            },
            b'*' => match number() {
                Ok(-1) => Reply::Array(None),
                Ok(0) => Reply::Array(Some(Vec::new())),
                Ok(n) if (1..=MAX_LEN).contains(&n) => {
                    stack.push((n as usize, Vec::new()));
                    continue;
                }
                _ => return Ok(Err(ReplyError::Protocol(format!("array length {text:?}")))),
            },
            other => {
                return Ok(Err(ReplyError::Protocol(format!(
                    "unknown reply type {:?}",
                    other as char
                ))));
            }
        };
        let mut value = value;
        loop {
            match stack.last_mut() {
                None => {
                    return Ok(match first_error {
                        Some(e) => Err(e),
                        None => Ok(value),
                    });
                }
                Some((want, items)) => {
                    items.push(value);
                    if items.len() < *want {
                        break;
                    }
                    let (_, items) = stack.pop().unwrap_or_default();
                    value = Reply::Array(Some(items));
                }
            }
        }
    }
}

/// One line without its `\r\n`.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let read = r.read_until(b'\n', &mut line).await?;
    if read == 0 || !line.ends_with(b"\r\n") {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut r = bytes;
            match read_reply(&mut r).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(ReplyError::Server(m))) => Err(format!("server: {m}")),
                Ok(Err(ReplyError::Protocol(m))) => Err(format!("protocol: {m}")),
                Err(e) => Err(format!("io: {e}")),
            }
        })
    }

    #[test]
    fn encodes_a_command_as_an_array_of_bulk_strings() {
        assert_eq!(
            encode(&[b"GET", b"a b"]),
            b"*2\r\n$3\r\nGET\r\n$3\r\na b\r\n".to_vec()
        );
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+OK\r\n"), Ok(Reply::Simple("OK".into())));
        assert_eq!(parse(b":-7\r\n"), Ok(Reply::Integer(-7)));
        assert_eq!(parse(b"$-1\r\n"), Ok(Reply::Bulk(None)));
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n"),
            Ok(Reply::Bulk(Some(b"a\r\nb".to_vec())))
        );
        assert_eq!(
            parse(b"*3\r\n:1\r\n*2\r\n$1\r\nx\r\n:2\r\n*0\r\n"),
            Ok(Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"x".to_vec())),
                    Reply::Integer(2)
                ])),
                Reply::Array(Some(vec![])),
            ])))
        );
        assert_eq!(parse(b"-ERR wrong\r\n"), Err("server: ERR wrong".into()));
    }

    #[test]
    fn refuses_malformed_and_truncated_replies() {
        assert!(parse(b"?x\r\n").unwrap_err().starts_with("protocol"));
        assert!(parse(b":abc\r\n").unwrap_err().starts_with("protocol"));
        assert!(parse(b"$-5\r\n").unwrap_err().starts_with("protocol"));
        assert!(parse(b"$10\r\nab").unwrap_err().starts_with("io"));
        assert!(parse(b"*2\r\n:1\r\n").unwrap_err().starts_with("io"));
        assert!(parse(b"+OK").unwrap_err().starts_with("io"));
    }

    #[test]
    fn reads_redis_urls() {
        let c = Client::new("redis://127.0.0.1:6400/2").expect("url");
        assert_eq!((c.address(), c.db), ("127.0.0.1:6400", Some(2)));
        assert_eq!(
            Client::new("redis://cache").expect("url").address(),
            "cache:6379"
        );
        assert!(Client::new("http://x:1").is_err());
        assert!(Client::new("redis://u:p@x:1").is_err());
        assert!(Client::new("redis://x:1/a").is_err());
    }
}
