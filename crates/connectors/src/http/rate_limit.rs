//! What to do after a response: the pure decision part of the poller (no I/O, no clock reads:
//! `now` is passed in), so every rule is unit-tested.
//!
//! * 2xx → go on, but slow down when the window is nearly spent: with `remaining` below
//!   `slow_below`, the rest of the window is spread evenly until `reset`; with none left, wait
//!   for the reset.
//! * 429 → wait for `Retry-After` (seconds or an HTTP date) or the reset header, plus a second
//!   of margin for clock skew.
//! * 5xx, 408 and network errors → exponential backoff with full jitter (AWS's "full jitter":
//!   uniform in `[0, min(cap, base·2^attempt)]`, never below 10% of it), up to `max_attempts`.
//! * 401 → refresh OAuth2 credentials once, otherwise stop; any other 4xx → stop: retrying a
//!   request the API calls wrong cannot help.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::config::{RateLimitConfig, RetryConfig};

/// The verdict on one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Use the response; wait `pace` before the next request.
    Proceed {
        /// Proactive slowdown before the next request.
        pace: Option<Duration>,
    },
    /// Rate limited: wait this long, then retry the same request.
    RateLimited {
        /// How long.
        wait: Duration,
    },
    /// A transient failure: back off and retry.
    Transient,
    /// 401: credentials refused.
    Unauthorized,
    /// A client error retrying cannot fix.
    Fatal {
        /// What to do.
        hint: &'static str,
    },
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The instant `secs` after the epoch; `None` past what `SystemTime` can hold (a hostile or
/// garbled header must not panic the poller).
fn epoch_secs(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

/// The wait a 429 asks for: `Retry-After`, else the reset header, else a minute.
pub fn rate_limit_wait(headers: &HeaderMap, now: SystemTime, cfg: &RateLimitConfig) -> Duration {
    let margin = Duration::from_secs(1);
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| match v.trim().parse::<u64>() {
            Ok(secs) => Some(Duration::from_secs(secs)),
            Err(_) => httpdate::parse_http_date(v.trim())
                .ok()
                .map(|at| until(at, now)),
        });
    let reset = header_u64(headers, &cfg.reset_header)
        .and_then(epoch_secs)
        .map(|at| until(at, now).saturating_add(margin));
    retry_after
        .or(reset)
        .unwrap_or(Duration::from_secs(60))
        .min(Duration::from_secs(cfg.max_wait_secs))
}

/// The slowdown after a successful response, from the remaining / reset headers.
pub fn pace(headers: &HeaderMap, now: SystemTime, cfg: &RateLimitConfig) -> Option<Duration> {
    let remaining = header_u64(headers, &cfg.remaining_header)?;
    if remaining >= cfg.slow_below {
        return None;
    }
    let reset = epoch_secs(header_u64(headers, &cfg.reset_header)?)?;
    let window = until(reset, now);
    let wait = if remaining == 0 {
        window.saturating_add(Duration::from_secs(1))
    } else {
        window
            / u32::try_from(remaining)
                .unwrap_or(u32::MAX)
                .saturating_add(1)
    };
    Some(wait.min(Duration::from_secs(cfg.max_wait_secs))).filter(|w| !w.is_zero())
}

/// Classifies a response.
pub fn classify(
    status: u16,
    headers: &HeaderMap,
    now: SystemTime,
    cfg: &RateLimitConfig,
) -> Verdict {
    match status {
        200..=299 => Verdict::Proceed {
            pace: pace(headers, now, cfg),
        },
        429 => Verdict::RateLimited {
            wait: rate_limit_wait(headers, now, cfg),
        },
        408 | 500..=599 => Verdict::Transient,
        401 => Verdict::Unauthorized,
        403 => Verdict::Fatal {
            hint: "the credentials lack access to this endpoint (plan / scopes / app permissions)",
        },
        404 => Verdict::Fatal {
            hint: "check request.url",
        },
        _ => Verdict::Fatal {
            hint: "the API refused the request: check the query parameters and body",
        },
    }
}

/// Backoff before retry `attempt` (1 = the first retry), with full jitter.
pub fn backoff(attempt: u32, cfg: &RetryConfig, rng: &mut impl Rng) -> Duration {
    let exp = cfg
        .base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let ceiling = exp.min(cfg.max_ms).max(1);
    let ms = rng.random_range(ceiling / 10..=ceiling);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn a_429_waits_for_the_reset_or_retry_after() {
        let cfg = RateLimitConfig::default();
        let h = headers(&[("x-rate-limit-reset", (NOW + 30).to_string())]);
        assert_eq!(
            classify(429, &h, now(), &cfg),
            Verdict::RateLimited {
                wait: Duration::from_secs(31)
            }
        );
        let h = headers(&[("retry-after", "7".into())]);
        assert_eq!(rate_limit_wait(&h, now(), &cfg), Duration::from_secs(7));
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(12));
        let h = headers(&[("retry-after", date)]);
        assert_eq!(rate_limit_wait(&h, now(), &cfg), Duration::from_secs(12));
        let h = headers(&[("x-rate-limit-reset", (NOW + 99_999).to_string())]);
        assert_eq!(
            rate_limit_wait(&h, now(), &cfg),
            Duration::from_secs(900),
            "capped"
        );
    }

    #[test]
    fn a_nearly_spent_window_is_spread_until_the_reset() {
        let cfg = RateLimitConfig::default();
        let reset = (NOW + 40).to_string();
        let plenty = headers(&[
            ("x-rate-limit-remaining", "100".into()),
            ("x-rate-limit-reset", reset.clone()),
        ]);
        assert_eq!(pace(&plenty, now(), &cfg), None);
        let few = headers(&[
            ("x-rate-limit-remaining", "3".into()),
            ("x-rate-limit-reset", reset.clone()),
        ]);
        assert_eq!(pace(&few, now(), &cfg), Some(Duration::from_secs(10)));
        let none = headers(&[
            ("x-rate-limit-remaining", "0".into()),
            ("x-rate-limit-reset", reset),
        ]);
        assert_eq!(pace(&none, now(), &cfg), Some(Duration::from_secs(41)));
    }

    #[test]
    fn a_reset_header_past_the_end_of_time_does_not_panic() {
        let cfg = RateLimitConfig::default();
        let huge = u64::MAX.to_string();
        let h = headers(&[("x-rate-limit-reset", huge.clone())]);
        assert_eq!(
            rate_limit_wait(&h, now(), &cfg),
            Duration::from_secs(60),
            "an unusable reset is ignored"
        );
        let h = headers(&[
            ("x-rate-limit-remaining", "0".into()),
            ("x-rate-limit-reset", huge),
        ]);
        assert_eq!(pace(&h, now(), &cfg), None);
    }

    #[test]
    fn statuses_map_to_verdicts() {
        let cfg = RateLimitConfig::default();
        let h = HeaderMap::new();
        assert_eq!(classify(503, &h, now(), &cfg), Verdict::Transient);
        assert_eq!(classify(401, &h, now(), &cfg), Verdict::Unauthorized);
        assert!(matches!(
            classify(400, &h, now(), &cfg),
            Verdict::Fatal { .. }
        ));
        assert_eq!(
            classify(200, &h, now(), &cfg),
            Verdict::Proceed { pace: None }
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let cfg = RetryConfig {
            max_attempts: 10,
            base_ms: 100,
            max_ms: 1_000,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..=10 {
            let ceiling = (100u64 << (attempt - 1)).min(1_000);
            let d = backoff(attempt, &cfg, &mut rng).as_millis() as u64;
            assert!(d >= ceiling / 10 && d <= ceiling, "attempt {attempt}: {d}");
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| backoff(5, &cfg, &mut rng)).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
    }
}
