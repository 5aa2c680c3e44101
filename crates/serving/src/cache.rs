//! The response cache. A key is a digest of what was asked (the normalised statement or the
//! metric request), the response format, and the snapshot id of every table read, so a commit
//! makes a new key: an answer never outlives its data, with no invalidation messages to lose.
//!
//! In-process by default (bounded by entries and bytes, least recently used out first). With
//! `cache.redis`, Redis holds the entries, shared by every API process. When Redis fails the
//! answer is served uncached and says so ([`CacheStatus::Unavailable`]); after a failure Redis
//! is left alone for a second, so a dead server costs one timeout per second, not per request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use crate::redis::RedisClient;

/// How a response met the cache (the `X-Strata-Cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache: no query ran.
    Hit,
    /// Not cached yet: the query ran and its answer was stored.
    Miss,
    /// Redis is configured but did not answer: served uncached.
    Unavailable,
    /// The request asked not to use the cache (`Cache-Control: no-cache`).
    Bypass,
}

impl CacheStatus {
    /// The header value.
    pub fn header(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Unavailable => "unavailable; redis did not answer, served uncached",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// Cache counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Answers served from the cache.
    pub hits: AtomicU64,
    /// Lookups that found nothing.
    pub misses: AtomicU64,
    /// Redis operations that failed.
    pub redis_errors: AtomicU64,
}

/// Builds a cache key from its parts.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("strata:api:{}", hex::encode(h.finalize()))
}

struct Local {
    entries: IndexMap<String, (Instant, Vec<u8>)>,
    bytes: usize,
}

/// The cache: in-process, or Redis.
pub struct ResponseCache {
    local: Mutex<Local>,
    max_entries: usize,
    max_bytes: usize,
    ttl: Duration,
    redis: Option<RedisClient>,
    redis_down_until: Mutex<Option<Instant>>,
    /// Counters.
    pub counters: CacheCounters,
}

impl ResponseCache {
    /// A cache of at most `max_entries` answers and `max_bytes` bytes in process, or in
    /// `redis` when given; entries live `ttl` at most.
    pub fn new(
        max_entries: usize,
        max_bytes: usize,
        ttl: Duration,
        redis: Option<RedisClient>,
    ) -> Self {
        ResponseCache {
            local: Mutex::new(Local {
                entries: IndexMap::new(),
                bytes: 0,
            }),
            max_entries,
            max_bytes,
            ttl,
            redis,
            redis_down_until: Mutex::new(None),
            counters: CacheCounters::default(),
        }
    }

    /// Where entries live: `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    fn redis_resting(&self) -> bool {
        let mut until = self
            .redis_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn redis_failed(&self, e: &crate::redis::RedisFailure) {
        self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e.0, "redis cache unavailable: serving uncached");
        *self
            .redis_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + Duration::from_secs(1));
    }

    /// Looks `key` up.
    pub async fn get(&self, key: &str) -> (Option<Vec<u8>>, CacheStatus) {
        let found = match &self.redis {
            Some(redis) => {
                if self.redis_resting() {
                    return (None, CacheStatus::Unavailable);
                }
                match redis.get(key.as_bytes()).await {
                    Ok(v) => v,
                    Err(e) => {
                        self.redis_failed(&e);
                        return (None, CacheStatus::Unavailable);
                    }
                }
            }
            None => self.local_get(key),
        };
        match found {
            Some(v) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                (Some(v), CacheStatus::Hit)
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                (None, CacheStatus::Miss)
            }
        }
    }

    /// Stores `value` under `key` (after a miss).
    pub async fn put(&self, key: &str, value: Vec<u8>) {
        match &self.redis {
            Some(redis) => {
                if self.redis_resting() {
                    return;
                }
                if let Err(e) = redis
                    .set_ex(key.as_bytes(), &value, self.ttl.as_secs())
                    .await
                {
                    self.redis_failed(&e);
                }
            }
            None => self.local_put(key, value),
        }
    }

    fn local_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let index = local.entries.get_index_of(key)?;
        let fresh = local
            .entries
            .get_index(index)
            .is_some_and(|(_, (at, _))| at.elapsed() < self.ttl);
        if !fresh {
            if let Some((_, (_, v))) = local.entries.shift_remove_index(index) {
                local.bytes -= v.len();
            }
            return None;
        }
        let last = local.entries.len() - 1;
        local.entries.move_index(index, last);
        local.entries.get_index(last).map(|(_, (_, v))| v.clone())
    }

    fn local_put(&self, key: &str, value: Vec<u8>) {
        if value.len() > self.max_bytes {
            return;
        }
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = local.entries.shift_remove(key) {
            local.bytes -= old.len();
        }
        local.bytes += value.len();
        local
            .entries
            .insert(key.to_string(), (Instant::now(), value));
        while local.entries.len() > self.max_entries || local.bytes > self.max_bytes {
            match local.entries.shift_remove_index(0) {
                Some((_, (_, v))) => local.bytes -= v.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_cache_is_bounded_and_least_recently_used_goes_first() {
        let cache = ResponseCache::new(2, 1 << 20, Duration::from_secs(60), None);
        cache.put("a", b"1".to_vec()).await;
        cache.put("b", b"2".to_vec()).await;
        assert_eq!(cache.get("a").await.1, CacheStatus::Hit);
        cache.put("c", b"3".to_vec()).await;
        assert_eq!(cache.get("b").await.1, CacheStatus::Miss);
        assert_eq!(cache.get("a").await.1, CacheStatus::Hit);
        assert_eq!(cache.get("c").await.1, CacheStatus::Hit);
        let small = ResponseCache::new(10, 4, Duration::from_secs(60), None);
        small.put("big", b"12345".to_vec()).await;
        assert_eq!(small.get("big").await.1, CacheStatus::Miss);
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = ResponseCache::new(2, 1 << 20, Duration::from_millis(1), None);
        cache.put("a", b"1".to_vec()).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.get("a").await.1, CacheStatus::Miss);
    }

    #[test]
    fn keys_differ_by_every_part() {
        assert_ne!(key(&["q", "s1"]), key(&["q", "s2"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
    }
}
