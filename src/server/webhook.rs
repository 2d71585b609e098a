//! `POST /webhooks/gitlab`: body limit, verification, parsing, dedupe, durable record, 202.
//! The worker acts later. GitLab disables a hook after four failures in a row, so a
//! well-authenticated event regwarden merely does not handle gets a 2xx, never a 4xx.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::AppState;
use super::edge::EdgeError;
use super::jobs::JobPayload;
use crate::gitlab::events::{self, Event};

/// The key a delivery is deduplicated on: `webhook-id`, else `Idempotency-Key` (the same value
/// on GitLab 17.4+), else `X-Gitlab-Event-UUID` with a hash of the body, else the body alone.
pub fn dedupe_key(headers: &HeaderMap, body: &[u8]) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let body_hash = || {
        Sha256::digest(body)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if let Some(id) = header("webhook-id") {
        format!("id:{id}")
    } else if let Some(key) = header("idempotency-key") {
        format!("id:{key}")
    } else if let Some(uuid) = header("x-gitlab-event-uuid") {
        format!("uuid:{uuid}:{}", body_hash())
    } else {
        format!("body:{}", body_hash())
    }
}

/// How long the intake waits for the store before answering 503.
const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

fn status(code: StatusCode, status: &str) -> Response {
    (code, Json(json!({ "status": status }))).into_response()
}

/// A GitLab delivery, read under `server.max_body`, verified (signature or token) and parsed
/// into an [`Event`] before the handler runs. Nothing is parsed before it is authenticated.
pub struct Delivery {
    /// What a redelivery of it has in common with it.
    pub key: String,
    pub event: Event,
    /// Why regwarden could not read it, when it could not: it is then ignored.
    pub unreadable: Option<String>,
}

impl FromRequest<AppState> for Delivery {
    type Rejection = EdgeError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, EdgeError> {
        let refused = |rejection: super::verify::Rejection| {
            app.metrics
                .verification_failures
                .get_or_create(&super::metrics::ReasonLabels {
                    reason: rejection.label().into(),
                })
                .inc();
            EdgeError::WebhookRefused(rejection)
        };
        let verifier = app.verifier.as_ref().ok_or(EdgeError::WebhooksOff)?;
        let headers = request.headers().clone();
        let now = chrono::Utc::now().timestamp();
        // What needs no body is judged before any of it is read.
        let early = verifier.precheck(&headers, now).map_err(refused)?;
        // The body is read within a budget shared by every connection: unauthenticated
        // clients cannot make the server hold more than `server.max_inflight_body` at once.
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let max_body = app.max_body as u64;
        if declared.is_some_and(|n| n > max_body) {
            return Err(EdgeError::TooLarge);
        }
        let want = declared.unwrap_or(max_body).min(max_body);
        let permit = app
            .body_budget
            .clone()
            .try_acquire_many_owned(u32::try_from(want.div_ceil(1024).max(1)).unwrap_or(u32::MAX))
            .map_err(|_| {
                app.metrics.delivery("unread", "busy");
                EdgeError::Busy
            })?;
        let body = axum::body::to_bytes(request.into_body(), want as usize)
            .await
            .map_err(|e| {
                if e.to_string().contains("length limit") {
                    EdgeError::TooLarge
                } else {
                    EdgeError::BadRequest(format!("the body could not be read: {e}"))
                }
            })?;
        let authenticated = match early {
            Some(a) => a,
            None => verifier.verify(&headers, &body, now).map_err(refused)?,
        };
        drop(permit);
        let event_header = headers
            .get("x-gitlab-event")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // An authenticated delivery is answered 2xx whatever its shape: GitLab counts a 4xx as
        // a failure and disables the hook after four in a row, which would silence every
        // event of it. One regwarden cannot read is ignored, loudly; the timer's pass covers
        // what it may have announced.
        let (event, unreadable) = match events::parse(event_header, &body) {
            Ok(event) => (event, None),
            Err(e) => {
                let error = crate::outbound::printable(&e.to_string()).into_owned();
                tracing::warn!(event = event_header, %error, "ignoring an authenticated delivery regwarden cannot read");
                let event = Event::Ignored {
                    event: format!("{event_header} (unreadable)"),
                };
                (event, Some(e.to_string()))
            }
        };
        // A scoped key speaks only for its namespaces: an event about another one is refused,
        // so that a key given to one group's hooks cannot move another group's bindings.
        if let Some(outside) = event
            .namespaces()
            .into_iter()
            .find(|ns| !authenticated.scope.covers(ns))
        {
            app.metrics
                .verification_failures
                .get_or_create(&super::metrics::ReasonLabels {
                    reason: "out_of_scope".into(),
                })
                .inc();
            return Err(EdgeError::OutOfScope(format!(
                "an event about {outside} signed with a key for {:?}",
                authenticated.scope
            )));
        }
        Ok(Delivery {
            key: dedupe_key(&headers, &body),
            event,
            unreadable,
        })
    }
}

/// Whether the configuration may bind the project an event is about (its old path too, for a
/// move); events about tokens are judged by their token's name instead.
fn covered(config: &crate::config::Config, event: &Event) -> bool {
    use crate::reconcile::bindings::may_bind;
    match event {
        Event::ProjectCreated { project } | Event::ProjectDestroyed { project } => {
            may_bind(config, &project.path, &project.id.to_string())
        }
        Event::ProjectRenamed { project, old_path }
        | Event::ProjectTransferred { project, old_path } => {
            let id = project.id.to_string();
            may_bind(config, &project.path, &id) || may_bind(config, old_path, &id)
        }
        _ => true,
    }
}

pub async fn receive(State(app): State<AppState>, delivery: Delivery) -> Response {
    let span = tracing::info_span!("delivery", event = delivery.event.kind(), key = %delivery.key);
    record(app, delivery.key, delivery.event, delivery.unreadable)
        .instrument(span)
        .await
}

async fn record(app: AppState, key: String, event: Event, unreadable: Option<String>) -> Response {
    let payload = match &event {
        Event::Ignored { .. } => None,
        // A project event about a namespace no binding or rule covers is dropped here, before
        // a job is recorded: anyone holding a webhook key (of another group, say) cannot make
        // the workers call GitLab for projects regwarden does not bind.
        e if !covered(&app.config, e) => None,
        // regwarden only ever acts on tokens it named: another token's expiry needs no job.
        Event::DeployTokenExpiring { token_name, .. }
        | Event::AccessTokenExpiring { token_name, .. }
            if !token_name.starts_with("regwarden-") =>
        {
            None
        }
        e => Some(
            serde_json::to_string(&JobPayload::Event {
                event: e.clone(),
                received_ms: Some(crate::store::now_ms()),
            })
            .expect("an event serializes"),
        ),
    };
    // GitLab waits 10 s for an answer; a store that hangs must not make it wait that long.
    let delivery = crate::store::NewDelivery {
        dedupe_key: key,
        event: event.kind().to_string(),
        payload: payload.clone(),
    };
    let recorded = tokio::time::timeout(STORE_DEADLINE, app.deliveries.record(delivery))
        .await
        .unwrap_or_else(|_| Err(crate::store::StoreError::Timeout(STORE_DEADLINE)));
    match recorded {
        Err(e) => {
            tracing::error!(error = %e, "cannot record the delivery");
            app.metrics.delivery(event.kind(), "store_unavailable");
            // GitLab will count this as a failure; better than a 2xx for a delivery we lost.
            status(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        }
        Ok(false) => {
            app.metrics.delivery(event.kind(), "duplicate");
            status(StatusCode::OK, "duplicate")
        }
        Ok(true) if unreadable.is_some() => {
            app.metrics.delivery("unreadable", "ignored");
            let why = unreadable.unwrap_or_default();
            (
                StatusCode::OK,
                Json(json!({ "status": "ignored", "reason": format!("unreadable: {why}") })),
            )
                .into_response()
        }
        Ok(true) if payload.is_none() => {
            app.metrics.delivery(event.kind(), "ignored");
            status(StatusCode::OK, "ignored")
        }
        Ok(true) => {
            tracing::info!("delivery recorded");
            app.metrics.delivery(event.kind(), "accepted");
            app.wake.notify_one();
            status(StatusCode::ACCEPTED, "accepted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_dedupe_key_prefers_webhook_id_then_idempotency_key_then_event_uuid() {
        let mut h = HeaderMap::new();
        let body = b"{}";
        let by_body = dedupe_key(&h, body);
        assert!(by_body.starts_with("body:"));
        h.insert("x-gitlab-event-uuid", HeaderValue::from_static("u-1"));
        assert!(dedupe_key(&h, body).starts_with("uuid:u-1:"));
        assert_ne!(
            dedupe_key(&h, body),
            dedupe_key(&h, b"{\"a\":1}"),
            "recursive hooks share a UUID"
        );
        h.insert("idempotency-key", HeaderValue::from_static("k-1"));
        assert_eq!(dedupe_key(&h, body), "id:k-1");
        h.insert("webhook-id", HeaderValue::from_static("k-1"));
        assert_eq!(
            dedupe_key(&h, body),
            "id:k-1",
            "webhook-id equals Idempotency-Key"
        );
    }
}
