//! What a registry and its token realm answer: a `WWW-Authenticate` challenge, the realm's JSON
//! token answer, and the `access` claim of the JWT in it. None of them may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regwarden::registry::{challenge, token};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = challenge::parse(&text);
    if let Ok(t) = token::token_answer(data) {
        let _ = token::granted_actions(&t, "acme/api");
    }
    let _ = token::granted_actions(&text, "acme/api");
});
