//! GitLab webhook payloads: the first input line is the `X-Gitlab-Event` header, the rest the
//! body. Parsing never panics, and an event regwarden makes always serializes (it is queued as
//! a job).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let header = String::from_utf8_lossy(header);
    if let Ok(event) = regwarden::gitlab::events::parse(&header, body) {
        serde_json::to_string(&event).expect("an event serializes");
    }
});
