//! How the HTTP edge refuses or fails a request: one error type, one status per variant, and a
//! fixed body. What went wrong inside (GitLab's or a JWKS's error text, a store's error) is
//! logged where it is turned into an answer, never sent: a caller learns what to fix on its
//! side, not how regwarden's dependencies answered.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::verify::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A webhook whose signature or token does not verify: a bare 401, which tells nothing
    /// about which check failed.
    #[error("webhook refused: {}", .0.label())]
    WebhookRefused(Rejection),
    /// A well-authenticated body that cannot be read: the caller's own payload, so the answer
    /// names the problem (field, type).
    #[error("unreadable body: {0}")]
    BadRequest(String),
    /// A body over `server.max_body`.
    #[error("body over server.max_body")]
    TooLarge,
    /// No credential a CI caller could have got right: what to send.
    #[error("no ID token: {0}")]
    NoIdToken(&'static str),
    /// An ID token that does not verify; the reason is logged.
    #[error("ID token refused: {0}")]
    BadIdToken(super::ci_endpoint::IdTokenError),
    /// Authenticated, but nothing here for it; the reason is logged.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A webhook signed with a key scoped to other namespaces than the event's.
    #[error("webhook key out of scope: {0}")]
    OutOfScope(String),
    /// The CI endpoint is off (`server.ci_audience` is not set).
    #[error("the CI endpoint is off")]
    CiOff,
    /// Webhooks are off: no webhook secret is configured (the timer alone runs passes).
    #[error("webhooks are off")]
    WebhooksOff,
    #[error("rate limited for {}s", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// regwarden's own store (or another part of it) failed: try again later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Too many bodies are being read at once (`server.max_inflight_body`): try again.
    #[error("too many deliveries being read at once")]
    Busy,
}

impl EdgeError {
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::WebhookRefused(_) | EdgeError::NoIdToken(_) | EdgeError::BadIdToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::Forbidden(_) | EdgeError::OutOfScope(_) => StatusCode::FORBIDDEN,
            EdgeError::CiOff | EdgeError::WebhooksOff => StatusCode::NOT_FOUND,
            EdgeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            EdgeError::Unavailable(_) | EdgeError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the caller reads: fixed text, or, for its own unreadable payload, what is wrong
    /// with it.
    fn body(&self) -> Option<serde_json::Value> {
        let refused = |error: &str| Some(json!({ "status": "refused", "error": error }));
        match self {
            EdgeError::WebhookRefused(_) => None,
            EdgeError::BadRequest(why) => Some(json!({ "status": "bad_request", "error": why })),
            EdgeError::TooLarge => Some(json!({
                "status": "too_large",
                "error": "the body is larger than this server reads (server.max_body)"
            })),
            EdgeError::NoIdToken(what) => refused(what),
            EdgeError::BadIdToken(_) => refused(
                "the ID token is not valid for this server (signature, issuer, audience or \
                 expiry): give the job an id_tokens entry whose aud is this server's URL",
            ),
            EdgeError::Forbidden(_) => refused("this server binds nothing for that project"),
            EdgeError::OutOfScope(_) => refused(
                "the key this delivery is signed with does not speak for the namespace of its event",
            ),
            EdgeError::CiOff => {
                refused("the CI endpoint is off: set server.ci_audience to this server's URL")
            }
            EdgeError::WebhooksOff => refused(
                "webhooks are off: this server has no webhook secret (server.signing_tokens_env or server.secret_tokens_env)",
            ),
            EdgeError::RateLimited { .. } => {
                refused("this project had a pass moments ago; retry later")
            }
            EdgeError::Busy => Some(json!({
                "status": "busy",
                "error": "the server is reading as many deliveries as it reads at once; retry later"
            })),
            EdgeError::Unavailable(_) => Some(
                json!({ "status": "unavailable", "error": "the server cannot record the request now; retry later" }),
            ),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for EdgeError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EdgeError::TooLarge
        } else {
            EdgeError::BadRequest(format!(
                "the body could not be read: {}",
                rejection.body_text()
            ))
        }
    }
}

/// Refusals of unauthenticated requests logged at warning level a minute: past that, they go
/// to debug (the metrics count every one), so that a flood of them cannot flood the log.
const REFUSALS_LOGGED_A_MINUTE: u32 = 20;

/// Whether one more unauthenticated refusal may be logged at warning level now: a window
/// opens at the first refusal logged and lasts a minute (not a calendar minute, whose edge
/// would let twice as many through in a moment).
fn refusal_loggable() -> bool {
    use std::sync::Mutex;
    use std::time::Instant;
    static WINDOW: Mutex<Option<(Instant, u32)>> = Mutex::new(None);
    let now = Instant::now();
    let mut window = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let (opened, count) = match *window {
        Some((opened, count)) if now.duration_since(opened) < Duration::from_secs(60) => {
            (opened, count + 1)
        }
        _ => (now, 1),
    };
    *window = Some((opened, count));
    count <= REFUSALS_LOGGED_A_MINUTE
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        // What a request said (a kid, a claim, a field) is printed escaped.
        let error = crate::outbound::printable(&self.to_string()).into_owned();
        match &self {
            EdgeError::Unavailable(_) => tracing::error!(%error, "request failed"),
            // Before any proof of who sends it: rate-limited.
            EdgeError::WebhookRefused(_)
            | EdgeError::NoIdToken(_)
            | EdgeError::BadIdToken(_)
            | EdgeError::TooLarge
            | EdgeError::BadRequest(_)
            | EdgeError::Busy
            | EdgeError::CiOff
            | EdgeError::WebhooksOff => {
                if refusal_loggable() {
                    tracing::warn!(%error, "request refused")
                } else {
                    tracing::debug!(%error, "request refused")
                }
            }
            _ => tracing::warn!(%error, "request refused"),
        }
        let status = self.status();
        let mut response = match self.body() {
            Some(body) => (status, Json(body)).into_response(),
            None => status.into_response(),
        };
        if let EdgeError::RateLimited { retry_after } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        if matches!(self, EdgeError::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_are_logged_not_answered() {
        let leaky = [
            EdgeError::BadIdToken(super::super::ci_endpoint::IdTokenError::UnknownKey(
                "a kid from jsonwebtoken".into(),
            )),
            EdgeError::Forbidden("GitLab said 404 Project Not Found".into()),
            EdgeError::Unavailable("the store failed: disk I/O error".into()),
        ];
        for e in leaky {
            let inside = e.to_string();
            let body = e.body().unwrap().to_string();
            assert!(!body.contains("jsonwebtoken"), "{body}");
            assert!(!body.contains("Project Not Found"), "{body}");
            assert!(!body.contains("disk"), "{body}");
            assert!(inside.len() > 10);
        }
        assert!(
            EdgeError::WebhookRefused(Rejection::BadSignature)
                .body()
                .is_none()
        );
    }
}
