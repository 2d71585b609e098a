//! What GitLab's and Qovery's clients share: one authenticated base URL, one error type a
//! caller can branch on, and one retry policy (backoff with jitter, `Retry-After` honoured,
//! permanent errors never retried).

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{directory_url, error_chain, one_line};

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
    #[error("{service} is rate limiting regwarden (429); retry in {}s", .retry_after.as_secs())]
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
    /// What the configuration asks cannot be done on this instance, for a reason regwarden
    /// knows (the service's own answer, if any, is in the message): the fix is a setting.
    #[error("{message}")]
    Setup {
        service: &'static str,
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

    /// Whether the request was certainly not carried out (it was refused before acting).
    /// A transient failure (a 5xx, a timeout, a dropped connection) may have been carried
    /// out before the answer was lost.
    pub fn certainly_not_applied(&self) -> bool {
        !matches!(self, ApiError::Transient { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }

    /// The same error with `f` applied to the service's message (to remove a secret the
    /// service may have echoed from the request).
    pub fn map_message(self, f: impl Fn(&str) -> String) -> Self {
        match self {
            ApiError::Unauthorized { service, message } => ApiError::Unauthorized {
                service,
                message: f(&message),
            },
            ApiError::Forbidden { service, message } => ApiError::Forbidden {
                service,
                message: f(&message),
            },
            ApiError::NotFound { service, message } => ApiError::NotFound {
                service,
                message: f(&message),
            },
            ApiError::Transient {
                service,
                status,
                message,
            } => ApiError::Transient {
                service,
                status,
                message: f(&message),
            },
            ApiError::Permanent {
                service,
                status,
                message,
            } => ApiError::Permanent {
                service,
                status,
                message: f(&message),
            },
            ApiError::Setup { service, message } => ApiError::Setup {
                service,
                message: f(&message),
            },
            e @ ApiError::RateLimited { .. } => e,
        }
    }

    /// The status the service answered with, if it answered one regwarden keeps.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::NotFound { .. } => Some(404),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::Permanent { status, .. } => Some(*status),
            ApiError::Transient { .. } | ApiError::Setup { .. } => None,
        }
    }

    /// The service's own message (empty when it gave none).
    pub fn message(&self) -> &str {
        match self {
            ApiError::Unauthorized { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::NotFound { message, .. }
            | ApiError::Transient { message, .. }
            | ApiError::Permanent { message, .. }
            | ApiError::Setup { message, .. } => message,
            ApiError::RateLimited { .. } => "",
        }
    }

    /// Maps a network-level failure (no HTTP status).
    fn from_transport(service: &'static str, err: &reqwest::Error) -> Self {
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

    fn from_status(
        service: &'static str,
        status: StatusCode,
        retry_after: Duration,
        message: String,
    ) -> Self {
        match status.as_u16() {
            401 => ApiError::Unauthorized { service, message },
            403 => ApiError::Forbidden { service, message },
            404 => ApiError::NotFound { service, message },
            429 => ApiError::RateLimited {
                service,
                retry_after,
            },
            408 => ApiError::Transient {
                service,
                status: "408".into(),
                message,
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

/// How a client retries a call that may succeed later: exponential backoff with jitter
/// for 5xx and network failures, the server's own delay for 429 (up to a bound).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` regwarden waits; a longer one ends the call.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails permanently, or the policy is spent.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter();
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ApiError::is_transient)
            .adjust(|err, next| match err {
                // Honour the server's delay, but only while the policy has tries left.
                ApiError::RateLimited { retry_after, .. } => next
                    .filter(|_| *retry_after <= self.max_rate_limit_wait)
                    .map(|_| *retry_after),
                _ => next,
            })
            .notify(|err, wait| {
                tracing::warn!(call = what, error = %err, wait_ms = wait.as_millis() as u64, "retrying")
            })
            .await
    }
}

/// A successful answer: its headers and body.
#[derive(Debug)]
pub struct Reply {
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self, service: &'static str) -> Result<T, ApiError> {
        serde_json::from_str(&self.body).map_err(|e| ApiError::Transient {
            service,
            status: "unreadable answer".into(),
            message: e.to_string(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One authenticated API: base URL, auth header, how its error bodies read.
#[derive(Clone)]
pub struct Api {
    pub service: &'static str,
    http: reqwest::Client,
    base: Url,
    auth_header: HeaderName,
    /// Shared by the clones of this API: a rotated token replaces it for all of them.
    auth_value: std::sync::Arc<std::sync::RwLock<SecretString>>,
    message_fields: &'static [&'static str],
    pub retry: RetryPolicy,
    /// When the service last asked regwarden (with a 429) to wait: until then, shared by every
    /// clone, no request is sent. A short wait is waited; a long one (Qovery's hourly quota)
    /// fails each call at once, so that a pass that meets it stops cleanly instead of spending
    /// more of the quota, and the next pass goes on.
    paused_until: std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    /// Credentials this copy sends in its requests (a Qovery registry's password, a webhook's
    /// secrets): the service's answers are scrubbed of them before they are read, shortened
    /// or kept.
    scrub: Vec<std::sync::Arc<crate::credential::Credential>>,
}

impl Api {
    pub fn new(
        service: &'static str,
        http: reqwest::Client,
        base: &Url,
        auth_header: HeaderName,
        auth_value: SecretString,
        message_fields: &'static [&'static str],
    ) -> Self {
        Self {
            service,
            http,
            base: directory_url(base, ""),
            auth_header,
            auth_value: std::sync::Arc::new(std::sync::RwLock::new(auth_value)),
            message_fields,
            retry: RetryPolicy::default(),
            paused_until: Default::default(),
            scrub: Vec::new(),
        }
    }

    /// This API, scrubbing `credential` out of every message the service answers (only this
    /// copy; with the credentials it scrubs already).
    pub fn scrubbing(&self, credential: &crate::credential::Credential) -> Api {
        let mut api = self.clone();
        api.scrub.push(std::sync::Arc::new(credential.clone()));
        api
    }

    /// Waits out a short pause the service asked for; a long one is this call's error.
    async fn respect_pause(&self) -> Result<(), ApiError> {
        let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else { return Ok(()) };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        if left <= self.retry.max_rate_limit_wait {
            tokio::time::sleep(left).await;
            return Ok(());
        }
        Err(ApiError::RateLimited {
            service: self.service,
            retry_after: left,
        })
    }

    fn pause_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// This API, sending `value` instead of the shared credential (only this copy).
    pub fn with_auth_value(&self, value: SecretString) -> Api {
        Api {
            auth_value: std::sync::Arc::new(std::sync::RwLock::new(value)),
            ..self.clone()
        }
    }

    /// Replaces the credential every clone of this API sends from now on.
    pub fn set_auth_value(&self, value: SecretString) {
        *self.auth_value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        self.base.join(path).map_err(|e| ApiError::Permanent {
            service: self.service,
            status: 0,
            message: format!("cannot build the URL for {path}: {e}"),
        })
    }

    /// One attempt, no retry.
    pub async fn once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ApiError> {
        self.respect_pause().await?;
        let value = self
            .auth_value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut auth =
            HeaderValue::from_str(value.expose_secret()).map_err(|_| ApiError::Permanent {
                service: self.service,
                status: 0,
                message: "the API token holds characters an HTTP header cannot carry".into(),
            })?;
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method, self.url(path)?)
            .header(self.auth_header.clone(), auth);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::from_transport(self.service, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match super::read_text(response, super::MAX_ANSWER).await {
            Ok(body) => body,
            Err(super::BodyError::Transport(e)) => {
                return Err(ApiError::from_transport(self.service, &e));
            }
            // An answer too long to read: refused if the status says so; a success (or a
            // server error) may have done its work, so it is not "certainly not applied".
            Err(e @ super::BodyError::TooLong { .. }) if !status.is_client_error() => {
                return Err(ApiError::Transient {
                    service: self.service,
                    status: status.as_u16().to_string(),
                    message: e.to_string(),
                });
            }
            Err(e @ super::BodyError::TooLong { .. }) => {
                return Err(ApiError::Permanent {
                    service: self.service,
                    status: status.as_u16(),
                    message: e.to_string(),
                });
            }
        };
        if status.is_success() {
            return Ok(Reply { headers, body });
        }
        if status.is_redirection() {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("elsewhere");
            return Err(ApiError::Permanent {
                service: self.service,
                status: status.as_u16(),
                message: format!(
                    "redirected to {}; regwarden follows redirects only within one origin, so that \
                     the API token never reaches another host: configure the URL it ends at",
                    one_line(to, 200)
                ),
            });
        }
        // Scrubbed as sent back (raw, or escaped in JSON), and again once read.
        let mut body = body;
        for credential in &self.scrub {
            body = credential.scrub(&body);
        }
        let mut message = self.message_of(&body);
        for credential in &self.scrub {
            message = credential.scrub(&message);
        }
        let wait = rate_limit_wait(&headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.pause_for(wait);
        }
        Err(ApiError::from_status(
            self.service,
            status,
            wait,
            one_line(&message, 300),
        ))
    }

    /// An idempotent call (GET, PUT, DELETE), retried by the policy.
    pub async fn idempotent(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, ApiError> {
        let what = format!("{} {method} {path}", self.service);
        self.retry
            .run(&what, || self.once(method.clone(), path, query, body))
            .await
    }

    /// The service's message from an error body: the first of `message_fields` present in a
    /// JSON body, else the raw text.
    fn message_of(&self, body: &str) -> String {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|json| {
                self.message_fields.iter().find_map(|f| match json.get(f) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Null) | None => None,
                    Some(other) => Some(other.to_string()),
                })
            })
            .unwrap_or_else(|| body.to_string())
    }
}

/// The wait a 429 asks for: `Retry-After` (seconds), else `RateLimit-Reset` (Unix time),
/// else one second.
fn rate_limit_wait(headers: &HeaderMap) -> Duration {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = number("retry-after") {
        return Duration::from_secs(secs);
    }
    // `RateLimit-Reset` (the IETF draft), `X-RateLimit-Reset` (Qovery's documentation).
    if let Some(reset) = number("ratelimit-reset").or_else(|| number("x-ratelimit-reset")) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Duration::from_secs(reset.saturating_sub(now).max(1));
    }
    Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> ApiError {
        ApiError::Transient {
            service: "X",
            status: "500".into(),
            message: String::new(),
        }
    }

    #[test]
    fn only_failures_that_may_pass_later_are_transient() {
        let permanent = ApiError::Permanent {
            service: "X",
            status: 400,
            message: String::new(),
        };
        assert!(!permanent.is_transient());
        assert!(permanent.certainly_not_applied());
        assert!(transient().is_transient());
        assert!(!transient().certainly_not_applied());
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_retries_transient_failures_then_gives_up() {
        let policy = RetryPolicy::default();
        let calls = std::cell::Cell::new(0);
        let result: Result<(), ApiError> = policy
            .run("test", || async {
                calls.set(calls.get() + 1);
                Err(transient())
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), policy.attempts);
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_waits_as_a_rate_limit_asks_but_not_beyond_its_bound() {
        let policy = RetryPolicy::default();
        let asked = |secs| ApiError::RateLimited {
            service: "X",
            retry_after: Duration::from_secs(secs),
        };
        let start = tokio::time::Instant::now();
        let calls = std::cell::Cell::new(0);
        let result = policy
            .run("test", || async {
                calls.set(calls.get() + 1);
                if calls.get() == 1 {
                    Err(asked(7))
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(start.elapsed().as_secs(), 7);

        let calls = std::cell::Cell::new(0);
        let result: Result<(), ApiError> = policy
            .run("test", || async {
                calls.set(calls.get() + 1);
                Err(asked(3600))
            })
            .await;
        assert!(matches!(result, Err(ApiError::RateLimited { .. })));
        assert_eq!(calls.get(), 1, "an hour-long Retry-After is not waited out");
    }

    #[test]
    fn rate_limit_headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&h), Duration::from_secs(7));
        let mut h = HeaderMap::new();
        let in_ten = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 10;
        h.insert("ratelimit-reset", HeaderValue::from(in_ten));
        let wait = rate_limit_wait(&h);
        assert!(wait >= Duration::from_secs(9) && wait <= Duration::from_secs(10));
        assert_eq!(rate_limit_wait(&HeaderMap::new()), Duration::from_secs(1));
    }
}
