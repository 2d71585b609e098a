//! The webhook verifier on arbitrary `webhook-id`, `webhook-timestamp`, `webhook-signature`,
//! `X-Gitlab-Token` headers and body (input lines, in that order; the rest is the body): it
//! must refuse or accept without panicking, and accept only what the key really signed.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use regwarden::server::verify::Verifier;

const KEY: &str = "whsec_cmVnd2FyZGVuLXRlc3Qtc2lnbmluZy1rZXktMzJiISE=";
const NOW: i64 = 1_744_578_123;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let mut headers = HeaderMap::new();
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-gitlab-token",
    ] {
        if let Some(value) = parts.next()
            && !value.is_empty()
            && let Ok(value) = HeaderValue::from_bytes(value)
        {
            headers.insert(name, value);
        }
    }
    let body = parts.next().unwrap_or_default();
    let verifier = Verifier::new(
        &[KEY.to_string()],
        &["legacy-secret".to_string()],
        false,
        std::time::Duration::from_secs(300),
    )
    .expect("a valid verifier");
    let _ = verifier.verify(&headers, body, NOW);
});
