//! A bounded memory of requests recently stored, so an exact replay inside the window is
//! answered 200 but not stored twice.
//!
//! A captured, validly signed request stays valid for the whole timestamp tolerance (or
//! forever, for a sender that signs no timestamp, such as Pipefy); replaying it would store the
//! event again. Each stored request leaves its digest (SHA-256 of the source, the timestamp
//! header and the body) here for [`ReplayCache::window`]. The memory is bounded by entry count:
//! past [`ReplayCache::capacity`] the oldest digests are forgotten first, and downstream
//! `dedup` on the idempotency key (the body hash) still catches what falls out of it.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Digests of stored requests, oldest first.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<[u8; 32]>,
    order: VecDeque<(Instant, [u8; 32])>,
}

impl ReplayCache {
    /// A cache remembering each request for `window`, at most `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Seen::default()),
        }
    }

    /// How long a stored request is remembered.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The most requests remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The digest of one request.
    pub fn digest(source: &str, timestamp: Option<&str>, body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(source.as_bytes());
        h.update([0]);
        h.update(timestamp.unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(body);
        h.finalize().into()
    }

    /// Whether `digest` was stored within the window.
    pub fn seen(&self, digest: &[u8; 32], now: Instant) -> bool {
        let Ok(mut s) = self.inner.lock() else {
            return false;
        };
        s.expire(now, self.window);
        s.set.contains(digest)
    }

    /// Remembers a request that was just stored.
    pub fn remember(&self, digest: [u8; 32], now: Instant) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        s.expire(now, self.window);
        if s.set.insert(digest) {
            s.order.push_back((now, digest));
        }
        while s.set.len() > self.capacity {
            let Some((_, old)) = s.order.pop_front() else {
                break;
            };
            s.set.remove(&old);
        }
    }
}

impl Seen {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, d)) = self.order.front().copied() {
            if now.saturating_duration_since(at) < window {
                break;
            }
            self.order.pop_front();
            self.set.remove(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_seen_within_the_window_and_forgotten_after() {
        let cache = ReplayCache::new(Duration::from_secs(300), 3);
        let t0 = Instant::now();
        let a = ReplayCache::digest("s", Some("100"), b"{}");
        assert!(!cache.seen(&a, t0));
        cache.remember(a, t0);
        assert!(cache.seen(&a, t0 + Duration::from_secs(299)));
        assert!(!cache.seen(&a, t0 + Duration::from_secs(300)));
        // Another timestamp or source is another request.
        assert_ne!(a, ReplayCache::digest("s", Some("101"), b"{}"));
        assert_ne!(a, ReplayCache::digest("t", Some("100"), b"{}"));
    }

    #[test]
    fn the_cache_is_bounded_by_count_oldest_first() {
        let cache = ReplayCache::new(Duration::from_secs(300), 2);
        let t0 = Instant::now();
        let d: Vec<_> = (0..3u8)
            .map(|i| ReplayCache::digest("s", None, &[i]))
            .collect();
        for x in &d {
            cache.remember(*x, t0);
        }
        assert!(!cache.seen(&d[0], t0), "evicted");
        assert!(cache.seen(&d[1], t0) && cache.seen(&d[2], t0));
    }
}
