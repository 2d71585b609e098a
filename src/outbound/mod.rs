//! What regwarden sends out over HTTP (to GitLab, Qovery, registries, a JWKS): the one way a
//! client is built (rustls, the system's trust store plus an optional private CA bundle, a user
//! agent, timeouts on every call, redirects followed only within one origin, so a credential
//! never follows one to another host or from https to http), answers read up to a size limit,
//! and, in `api.rs`, what GitLab's and Qovery's clients share.

mod api;

use std::path::Path;
use std::time::Duration;

pub use api::{Api, ApiError, Reply, RetryPolicy};

/// Why an HTTP client could not be built (always a local, configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("cannot read the CA file {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot set up TLS: {0}")]
    Build(String),
}

pub const USER_AGENT: &str = concat!("regwarden/", env!("CARGO_PKG_VERSION"));

/// Selects rustls' crypto once per process. ring seeds from the OS; aws-lc-rs (reqwest's
/// default) runs a CPU-jitter entropy collector on first use that costs ~20 ms, most of the
/// run time of a one-shot `regwarden check`.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds a client whose every request times out after `timeout`.
pub fn client(
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, ClientSetupError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(same_origin_redirects());
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ClientSetupError::ReadCa {
            path: shown.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientSetupError::BadCa {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(ClientSetupError::BadCa {
                path: shown,
                reason: "no BEGIN CERTIFICATE block found".into(),
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| ClientSetupError::Build(error_chain(&e)))
}

/// Redirects stay within the origin they start from (an upgrade from http to https on the
/// same host allowed): every request regwarden sends may carry a credential (`PRIVATE-TOKEN`,
/// Qovery's `Authorization`, a registry's Basic auth, a password in a body), and reqwest only
/// strips the standard authorization headers on a cross-host hop. A refused redirect ends the
/// call with the 3xx answer itself.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        // `previous()` starts with the first URL: five redirects followed make six.
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let Some(from) = attempt.previous().last() else {
            return attempt.stop();
        };
        let to = attempt.url();
        let same_host = from.host_str() == to.host_str();
        let follow = match (from.scheme(), to.scheme()) {
            (a, b) if a == b => {
                same_host && from.port_or_known_default() == to.port_or_known_default()
            }
            ("http", "https") => same_host,
            _ => false,
        };
        if follow {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// A URL that would carry credentials over the network in clear.
#[derive(Debug, thiserror::Error)]
#[error("{url} is plain http to another host: tokens would cross the network unencrypted")]
pub struct Cleartext {
    pub url: String,
}

/// Refuses `http://` to a host other than loopback. The caller says how to allow it.
pub fn refuse_cleartext(url: &reqwest::Url) -> Result<(), Cleartext> {
    if url.scheme() == "http" && !is_loopback(url) {
        Err(Cleartext {
            url: url.as_str().trim_end_matches('/').to_string(),
        })
    } else {
        Ok(())
    }
}

/// The most regwarden reads of any one answer from GitLab, Qovery, a registry or a JWKS
/// endpoint; a longer one is an error, not an allocation. A page of 100 GitLab projects is
/// a few hundred KiB.
pub const MAX_ANSWER: usize = 8 << 20;

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is longer than {limit} bytes")]
    TooLong { limit: usize },
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
}

/// Reads `response`'s body, up to `limit` bytes: a `Content-Length` above it is refused
/// before reading, and a stream that runs past it is cut.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLong { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLong { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// [`read_body`] as text (invalid UTF-8 replaced).
pub async fn read_text(response: reqwest::Response, limit: usize) -> Result<String, BodyError> {
    let body = read_body(response, limit).await?;
    Ok(match String::from_utf8(body) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// An error and its causes on one line, without repeating a cause a parent already quotes.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Text that came from elsewhere (a request, a payload, an answer, a JWT) made safe to print in
/// a log line or on a terminal: control characters (a newline that would forge a log line, an
/// escape that would drive the terminal) and the invisible direction and width marks are shown
/// escaped (`\n`, `\u{1b}`), the rest is kept.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Shortens a peer's error text to one bounded, printable line.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = printable(&flat).into_owned();
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// `base` with a trailing slash, so that `join("x")` appends instead of replacing.
pub fn directory_url(base: &reqwest::Url, suffix: &str) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        suffix.trim_matches('/')
    );
    let path = if path.ends_with('/') {
        path
    } else {
        format!("{path}/")
    };
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn text_from_elsewhere_prints_on_one_line_without_escape_sequences() {
        assert_eq!(printable("acme/api"), "acme/api");
        assert_eq!(
            printable("a\n2026-12-03 ERROR forged\u{1b}[2J\u{202e}x"),
            "a\\n2026-12-03 ERROR forged\\u{1b}[2J\\u{202e}x"
        );
        assert_eq!(
            one_line("bad\u{1b}[31m\nthing", 100),
            "bad\\u{1b}[31m thing"
        );
    }
}
