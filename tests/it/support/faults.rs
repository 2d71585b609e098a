//! Fault injection and call counting for the fakes, per route (`"POST /api/v4/projects/{id}/deploy_tokens"`,
//! the method and axum's matched path).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What goes wrong with one call.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status (with this `Retry-After`, for a 429) without acting.
    Status(u16, Option<u64>),
    /// Act, then answer 500: the work was done but the answer says otherwise.
    ApplyThenFail,
    /// Act, then drop the connection before answering.
    ApplyThenDrop,
    /// Wait this long before acting and answering (a timeout, with a short client timeout).
    Delay(Duration),
    /// Drop the connection without answering or acting.
    Drop,
    /// Answer this status with this text as the error's `message` and `detail`, without
    /// acting (a peer whose words are hostile).
    Says(u16, String),
}

#[derive(Default)]
pub struct Faults {
    queued: HashMap<String, VecDeque<Fault>>,
    calls: HashMap<String, usize>,
    /// Added to every call (benchmarks).
    pub latency: Duration,
}

pub type SharedFaults = Arc<Mutex<Faults>>;

impl Faults {
    pub fn push(&mut self, route: &str, fault: Fault, times: usize) {
        let queue = self.queued.entry(route.to_string()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Drops every fault not applied yet.
    pub fn clear(&mut self) {
        self.queued.clear();
    }

    pub fn calls(&self, route: &str) -> usize {
        self.calls.get(route).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.calls.values().sum()
    }
}

/// Ends the connection without a response: the handler's task unwinds, hyper drops the
/// socket. `resume_unwind` skips the panic hook, so the test output stays clean.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("fault: drop the connection"))
}

/// The middleware: counts the call, then applies the first queued fault of its route.
pub async fn inject(State(faults): State<SharedFaults>, request: Request, next: Next) -> Response {
    let route = format!(
        "{} {}",
        request.method(),
        request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| request.uri().path().to_string())
    );
    let (fault, latency) = {
        let mut f = faults.lock().unwrap();
        *f.calls.entry(route.clone()).or_default() += 1;
        let fault = f.queued.get_mut(&route).and_then(|q| q.pop_front());
        (fault, f.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(request).await,
        Some(Fault::Status(code, retry_after)) => {
            let status = StatusCode::from_u16(code).unwrap();
            let mut response = if code == 429 {
                (status, "Retry later").into_response()
            } else {
                (
                    status,
                    Json(json!({"message": format!("{code} injected fault")})),
                )
                    .into_response()
            };
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(secs));
            }
            response
        }
        Some(Fault::ApplyThenFail) => {
            let _ = next.run(request).await;
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Body::from("{\"message\":\"500 Internal Server Error\"}"),
            )
                .into_response()
        }
        Some(Fault::ApplyThenDrop) => {
            let _ = next.run(request).await;
            drop_connection()
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(request).await
        }
        Some(Fault::Drop) => drop_connection(),
        Some(Fault::Says(code, text)) => (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"status": code, "message": text, "detail": text})),
        )
            .into_response(),
    }
}
