//! The one way regwarden builds an HTTP client: rustls, the system's trust store plus an
//! optional private CA bundle, a user agent, and timeouts on every call.

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
        .redirect(reqwest::redirect::Policy::limited(5));
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

/// Shortens a peer's error text to one bounded line.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
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
