//! The webhook receiver's checks before anything is stored: shared-secret header, HMAC signature
//! (hex and base64, with a prefix, over the body or `<timestamp>.<body>`) and the timestamp
//! window, on attacker-chosen headers and body. Must never panic.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use strata_connectors::secret::Secret;
use strata_connectors::webhook::config::{HmacCheck, SignatureEncoding, Source};
use strata_connectors::webhook::verify::check;

fn source(encoding: SignatureEncoding, signs_timestamp: bool) -> Source {
    Source {
        name: "s".into(),
        topic: "t".into(),
        secret_header: Some(("x-token".into(), Secret::new("tok"))),
        hmac: Some(HmacCheck {
            header: "x-sig".into(),
            secret: Secret::new("key"),
            encoding,
            prefix: "sha256=".into(),
            signs_timestamp,
        }),
        timestamp: Some(("x-ts".into(), Duration::from_secs(300))),
        max_body_bytes: 1 << 20,
        content_types: vec!["application/json".into()],
        idempotency_header: None,
        key: None,
        event_type: None,
        accepted_events: vec![],
    }
}

fuzz_target!(
    init: {
        // Panics our guards catch (third-party parsers that panic on bad input) are not
        // findings; libfuzzer-sys' own hook would abort on them before they unwind. A panic
        // that escapes still aborts (libfuzzer-sys catches it at the top) and is kept as a
        // crash. `STRATA_FUZZ_SHOW_PANICS=1` prints them.
        if std::env::var_os("STRATA_FUZZ_SHOW_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| {
    // Fields separated by 0xff: timestamp header, signature header, body.
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let ts = parts.next().unwrap_or_default();
    let sig = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert("x-token", HeaderValue::from_static("tok"));
    if let Ok(v) = HeaderValue::from_bytes(ts) {
        headers.insert("x-ts", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(sig) {
        headers.insert("x-sig", v);
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    for (encoding, signs) in [
        (SignatureEncoding::Hex, false),
        (SignatureEncoding::Hex, true),
        (SignatureEncoding::Base64, true),
    ] {
        let _ = check(&source(encoding, signs), &headers, body, now);
        let _ = check(&source(encoding, signs), &headers, body, SystemTime::now());
    }
    }
);
