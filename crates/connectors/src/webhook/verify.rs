//! Authenticity checks of a webhook request, before anything is stored: the shared-secret
//! header, the HMAC-SHA256 signature and the timestamp tolerance. Pure functions of the
//! headers, the body and the clock. Comparisons are constant-time: the signature through
//! `hmac`'s `verify_slice`, the shared secret by comparing SHA-256 digests with `subtle` (so
//! neither the content nor the length of the expected value leaks through timing).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{SignatureEncoding, Source};

/// Why a request is not authentic (all answered 401; the reason is logged and counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A header the source requires is missing.
    MissingHeader(String),
    /// The shared secret does not match.
    BadSecret,
    /// The signature is not well formed (wrong encoding or prefix).
    MalformedSignature,
    /// The signature does not match the body.
    BadSignature,
    /// The timestamp header is not epoch seconds.
    MalformedTimestamp,
    /// The timestamp is further from now than the tolerance.
    StaleTimestamp {
        /// Distance from the receiver's clock, seconds.
        skew_secs: u64,
    },
}

impl Rejection {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::BadSecret => "bad_secret",
            Rejection::MalformedSignature => "malformed_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::MalformedTimestamp => "malformed_timestamp",
            Rejection::StaleTimestamp { .. } => "stale_timestamp",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::MissingHeader(h) => write!(f, "missing header {h}"),
            Rejection::BadSecret => f.write_str("the shared secret does not match"),
            Rejection::MalformedSignature => f.write_str("the signature is not well formed"),
            Rejection::BadSignature => f.write_str("the signature does not match the body"),
            Rejection::MalformedTimestamp => f.write_str("the timestamp is not epoch seconds"),
            Rejection::StaleTimestamp { skew_secs } => {
                write!(
                    f,
                    "the timestamp is {skew_secs} s from now, beyond the tolerance"
                )
            }
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejection> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Rejection::MissingHeader(name.to_string()))
}

/// Runs every check the source configures.
pub fn check(
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), Rejection> {
    if let Some((name, expected)) = &source.secret_header {
        let given = header(headers, name)?;
        let a = Sha256::digest(given.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        if !bool::from(a.ct_eq(&b)) {
            return Err(Rejection::BadSecret);
        }
    }
    let mut timestamp = None;
    if let Some((name, tolerance)) = &source.timestamp {
        let raw = header(headers, name)?;
        let secs: u64 = raw
            .trim()
            .parse()
            .map_err(|_| Rejection::MalformedTimestamp)?;
        // Checked: this runs before the signature is verified, so any sender reaches it, and
        // `UNIX_EPOCH + secs` panics past what `SystemTime` holds (secs ≥ 2^63).
        let sent = UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or(Rejection::MalformedTimestamp)?;
        let skew = now
            .duration_since(sent)
            .or_else(|_| sent.duration_since(now))
            .unwrap_or_default();
        if skew > *tolerance {
            return Err(Rejection::StaleTimestamp {
                skew_secs: skew.as_secs(),
            });
        }
        timestamp = Some(raw.trim().to_string());
    }
    if let Some(h) = &source.hmac {
        let raw = header(headers, &h.header)?.trim();
        let encoded = raw
            .strip_prefix(h.prefix.as_str())
            .ok_or(Rejection::MalformedSignature)?;
        let given = match h.encoding {
            SignatureEncoding::Hex => hex::decode(encoded),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| hex::FromHexError::InvalidStringLength),
        }
        .map_err(|_| Rejection::MalformedSignature)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(h.secret.expose().as_bytes())
            .map_err(|_| Rejection::BadSignature)?;
        if h.signs_timestamp {
            mac.update(timestamp.as_deref().unwrap_or_default().as_bytes());
            mac.update(b".");
        }
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| Rejection::BadSignature)?;
    }
    Ok(())
}

/// The hex HMAC-SHA256 of `body` under `secret` (what a sender puts in the signature header).
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::Secret;
    use crate::webhook::config::HmacCheck;
    use axum::http::HeaderValue;

    fn source(signs_timestamp: bool) -> Source {
        Source {
            name: "s".into(),
            topic: "t".into(),
            secret_header: Some(("x-token".into(), Secret::new("tok"))),
            hmac: Some(HmacCheck {
                header: "x-sig".into(),
                secret: Secret::new("key"),
                encoding: SignatureEncoding::Hex,
                prefix: "sha256=".into(),
                signs_timestamp,
            }),
            timestamp: Some(("x-ts".into(), Duration::from_secs(300))),
            max_body_bytes: 1024,
            content_types: vec!["application/json".into()],
            idempotency_header: None,
            key: None,
            event_type: None,
            accepted_events: vec![],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_correct_request_passes_and_each_fault_is_named() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let body = br#"{"a":1}"#;
        let sig = format!("sha256={}", sign_hex("key", body));
        let ts = NOW.to_string();
        let ok = headers(&[("x-token", "tok"), ("x-sig", &sig), ("x-ts", &ts)]);
        assert_eq!(check(&source(false), &ok, body, now), Ok(()));
        let cases = [
            (headers(&[("x-sig", &sig), ("x-ts", &ts)]), "missing_header"),
            (
                headers(&[("x-token", "tok2"), ("x-sig", &sig), ("x-ts", &ts)]),
                "bad_secret",
            ),
            (
                headers(&[("x-token", "tok"), ("x-sig", "sha256=zz"), ("x-ts", &ts)]),
                "malformed_signature",
            ),
            (
                headers(&[("x-token", "tok"), ("x-sig", &sig[7..]), ("x-ts", &ts)]),
                "malformed_signature",
            ),
            (
                headers(&[("x-token", "tok"), ("x-sig", &sig), ("x-ts", "soon")]),
                "malformed_timestamp",
            ),
            (
                headers(&[
                    ("x-token", "tok"),
                    ("x-sig", &sig),
                    ("x-ts", &(NOW - 301).to_string()),
                ]),
                "stale_timestamp",
            ),
            (
                headers(&[
                    ("x-token", "tok"),
                    ("x-sig", &sig),
                    ("x-ts", &(NOW + 400).to_string()),
                ]),
                "stale_timestamp",
            ),
        ];
        for (h, want) in cases {
            assert_eq!(
                check(&source(false), &h, body, now).map_err(|r| r.label()),
                Err(want)
            );
        }
        let tampered = br#"{"a":2}"#;
        assert_eq!(
            check(&source(false), &ok, tampered, now),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn a_timestamp_past_the_end_of_time_is_refused_not_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let body = br#"{"a":1}"#;
        let sig = format!("sha256={}", sign_hex("key", body));
        for ts in [u64::MAX.to_string(), (1u64 << 63).to_string()] {
            let h = headers(&[("x-token", "tok"), ("x-sig", &sig), ("x-ts", &ts)]);
            assert_eq!(
                check(&source(false), &h, body, now),
                Err(Rejection::MalformedTimestamp)
            );
        }
    }

    #[test]
    fn a_signed_timestamp_cannot_be_refreshed_by_a_replayer() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let body = b"{}";
        let ts = NOW.to_string();
        let signed = [ts.as_bytes(), b".", body].concat();
        let sig = format!("sha256={}", sign_hex("key", &signed));
        let ok = headers(&[("x-token", "tok"), ("x-sig", &sig), ("x-ts", &ts)]);
        assert_eq!(check(&source(true), &ok, body, now), Ok(()));
        let later = (NOW + 10).to_string();
        let replay = headers(&[("x-token", "tok"), ("x-sig", &sig), ("x-ts", &later)]);
        assert_eq!(
            check(&source(true), &replay, body, now),
            Err(Rejection::BadSignature)
        );
    }
}
