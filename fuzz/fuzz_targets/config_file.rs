//! The configuration file: any text is either a configuration or a list of problems, each
//! naming its key or line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = regwarden::config::Config::parse(text, "fuzz.toml") {
        assert!(!e.problems.is_empty());
        let _ = e.to_string();
    }
});
