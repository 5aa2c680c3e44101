//! A small Redis client for the response cache: `GET`, `SET … EX`, `AUTH`, `SELECT` over RESP2,
//! on a few pooled connections, each operation under a short timeout. A connection that fails
//! is dropped and reopened on the next use, so a Redis restart heals by itself; the cache
//! treats every error as "serve uncached".

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::error::{Result, ServingError};

/// Where Redis is: `redis://[:password@]host:port[/db]`.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `host:port`.
    pub addr: String,
    password: Option<String>,
    db: u32,
}

impl RedisTarget {
    /// Parses a `redis://` URL.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |problem: &str| ServingError::config("cache.redis", problem.to_string());
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("must start with redis://"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth.map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_string());
        let (addr, db) = match rest.split_once('/') {
            Some((a, d)) if !d.is_empty() => (
                a,
                d.parse()
                    .map_err(|_| bad("the database after `/` must be a number"))?,
            ),
            Some((a, _)) => (a, 0),
            None => (rest, 0),
        };
        if addr.is_empty() {
            return Err(bad("no host:port"));
        }
        let addr = if addr.contains(':') {
            addr.to_string()
        } else {
            format!("{addr}:6379")
        };
        Ok(RedisTarget { addr, password, db })
    }
}

type Conn = BufReader<TcpStream>;

/// Pooled connections to one Redis.
pub struct RedisClient {
    target: RedisTarget,
    slots: Vec<Mutex<Option<Conn>>>,
    next: std::sync::atomic::AtomicUsize,
    timeout: Duration,
}

/// Why a Redis operation failed (never shown to clients; logged and counted).
#[derive(Debug)]
pub struct RedisFailure(pub String);

impl RedisClient {
    /// A client of `target` with `connections` pooled connections, opened lazily.
    pub fn new(target: RedisTarget, connections: usize, timeout: Duration) -> Self {
        RedisClient {
            target,
            slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
            timeout,
        }
    }

    /// `GET key`.
    pub async fn get(&self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, RedisFailure> {
        self.call(&[b"GET", key]).await
    }

    /// `SET key value EX ttl`.
    pub async fn set_ex(
        &self,
        key: &[u8],
        value: &[u8],
        ttl_s: u64,
    ) -> std::result::Result<(), RedisFailure> {
        let ttl = ttl_s.max(1).to_string();
        self.call(&[b"SET", key, value, b"EX", ttl.as_bytes()])
            .await
            .map(|_| ())
    }

    async fn call(&self, args: &[&[u8]]) -> std::result::Result<Option<Vec<u8>>, RedisFailure> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        let work = async {
            if slot.is_none() {
                *slot = Some(self.connect().await?);
            }
            let Some(conn) = slot.as_mut() else {
                return Err(RedisFailure("no connection".into()));
            };
            command(conn, args).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                *slot = None;
                Err(e)
            }
            Err(_) => {
                *slot = None;
                Err(RedisFailure(format!(
                    "no answer from {} within {:?}",
                    self.target.addr, self.timeout
                )))
            }
        }
    }

    async fn connect(&self) -> std::result::Result<Conn, RedisFailure> {
        let stream = TcpStream::connect(&self.target.addr)
            .await
            .map_err(|e| RedisFailure(format!("connecting to {}: {e}", self.target.addr)))?;
        let _ = stream.set_nodelay(true);
        let mut conn = BufReader::new(stream);
        if let Some(p) = &self.target.password {
            command(&mut conn, &[b"AUTH", p.as_bytes()]).await?;
        }
        if self.target.db != 0 {
            let db = self.target.db.to_string();
            command(&mut conn, &[b"SELECT", db.as_bytes()]).await?;
        }
        Ok(conn)
    }
}

async fn command(
    conn: &mut Conn,
    args: &[&[u8]],
) -> std::result::Result<Option<Vec<u8>>, RedisFailure> {
    let mut out = Vec::with_capacity(64 + args.iter().map(|a| a.len()).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let io = |e: std::io::Error| RedisFailure(format!("redis i/o: {e}"));
    conn.get_mut().write_all(&out).await.map_err(io)?;
    let mut line = String::new();
    if conn.read_line(&mut line).await.map_err(io)? == 0 {
        return Err(RedisFailure("redis closed the connection".into()));
    }
    let line = line.trim_end();
    match line.as_bytes().first() {
        Some(b'+') | Some(b':') => Ok(None),
        Some(b'-') => Err(RedisFailure(format!("redis error: {}", &line[1..]))),
        Some(b'$') => {
            let n: i64 = line[1..]
                .parse()
                .map_err(|_| RedisFailure(format!("bad bulk length `{line}`")))?;
            if n < 0 {
                return Ok(None);
            }
            let n = usize::try_from(n).map_err(|_| RedisFailure("bulk too large".into()))?;
            let mut value = vec![0u8; n + 2];
            conn.read_exact(&mut value).await.map_err(io)?;
            value.truncate(n);
            Ok(Some(value))
        }
        _ => Err(RedisFailure(format!("unexpected reply `{line}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = RedisTarget::parse("redis://:pw@127.0.0.1:6390/2").unwrap();
        assert_eq!(t.addr, "127.0.0.1:6390");
        assert_eq!(t.password.as_deref(), Some("pw"));
        assert_eq!(t.db, 2);
        assert_eq!(
            RedisTarget::parse("redis://cache").unwrap().addr,
            "cache:6379"
        );
        assert!(RedisTarget::parse("http://x").is_err());
    }
}
