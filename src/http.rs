//! The one way regwarden builds an HTTP client: rustls, the system's trust store plus an
//! optional private CA bundle, a user agent, and timeouts on every call.

use std::path::Path;
use std::time::Duration;

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

/// Why a call to GitLab's or Qovery's API failed, in the terms a caller branches on.
/// Messages carry the service's own words, never a token.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{service} refused the API token (401): it is wrong, revoked or expired{}", suffix(.message))]
    Unauthorized {
        service: &'static str,
        message: String,
    },
    #[error("{service} denied the request (403): the token lacks a role or scope for it{}", suffix(.message))]
    Forbidden {
        service: &'static str,
        message: String,
    },
    #[error("{service} has no such resource (404){}", suffix(.message))]
    NotFound {
        service: &'static str,
        message: String,
    },
    #[error("{service} is rate limiting regwarden (429); retry in {retry_after:?}")]
    RateLimited {
        service: &'static str,
        retry_after: Duration,
    },
    #[error("{service} failed for now ({status}){}", suffix(.message))]
    Transient {
        service: &'static str,
        status: String,
        message: String,
    },
    #[error("{service} refused the request ({status}){}", suffix(.message))]
    Permanent {
        service: &'static str,
        status: u16,
        message: String,
    },
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl ApiError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Transient { .. }
        )
    }

    /// Maps a network-level failure (no HTTP status).
    pub fn from_transport(service: &'static str, err: &reqwest::Error) -> Self {
        let status = if err.is_timeout() {
            "timeout"
        } else {
            "unreachable"
        };
        ApiError::Transient {
            service,
            status: status.into(),
            message: error_chain(err),
        }
    }

    /// Maps an HTTP error status and the message read from its body.
    pub fn from_status(
        service: &'static str,
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        message: String,
    ) -> Self {
        match status.as_u16() {
            401 => ApiError::Unauthorized { service, message },
            403 => ApiError::Forbidden { service, message },
            404 => ApiError::NotFound { service, message },
            429 => ApiError::RateLimited {
                service,
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            s if s >= 500 => ApiError::Transient {
                service,
                status: s.to_string(),
                message,
            },
            s => ApiError::Permanent {
                service,
                status: s,
                message,
            },
        }
    }
}

/// Shortens a peer's error text to one bounded line.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Turns an unsuccessful response into an [`ApiError`], reading the service's message from
/// the first of `fields` present in a JSON body, else from the raw text.
pub async fn error_from_response(
    service: &'static str,
    response: reqwest::Response,
    fields: &[&str],
) -> ApiError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| {
            fields.iter().find_map(|f| match json.get(f) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
        })
        .unwrap_or(body);
    ApiError::from_status(service, status, retry_after, one_line(&message, 300))
}

/// Sends a request and reads a JSON answer, mapping every failure to an [`ApiError`].
pub async fn send_json<T: serde::de::DeserializeOwned>(
    service: &'static str,
    request: reqwest::RequestBuilder,
    message_fields: &[&str],
) -> Result<T, ApiError> {
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::from_transport(service, &e))?;
    if !response.status().is_success() {
        return Err(error_from_response(service, response, message_fields).await);
    }
    response.json().await.map_err(|e| ApiError::Transient {
        service,
        status: "unreadable answer".into(),
        message: error_chain(&e),
    })
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
