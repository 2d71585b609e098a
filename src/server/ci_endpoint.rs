//! `POST /api/v1/ci/reconcile`: a GitLab CI job proves who it is with its ID token (RS256,
//! from `id_tokens:` with `aud` = this server's URL), and the bindings of its project are
//! reconciled. No GitLab or Qovery secret lives in CI.
//!
//! The token is verified against GitLab's JWKS (`<gitlab.url>/oauth/discovery/keys`, cached,
//! fetched again for an unknown `kid` at most once a minute), its `iss` (the GitLab URL), `aud`
//! (`server.ci_audience`) and `exp`/`nbf` with a minute of leeway. The project is authorized by
//! its stable `project_id`: GitLab is asked for the project's current path, never the claim's.
//!
//! Work is bounded before the token is verified: a token whose claimed project the
//! configuration cannot bind is refused without calling GitLab, and a verified project gets
//! one pass (one GitLab call) per [`PER_PROJECT_INTERVAL`] at most.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde_json::{Value, json};
use std::sync::Mutex;

use super::AppState;
use super::edge::EdgeError;
use super::jobs::JobPayload;
use crate::reconcile::bindings;

/// GitLab's JWKS holds a few keys; more than this is not a key set.
const JWKS_LIMIT: usize = 256 << 10;

/// An unknown `kid` makes the keys be fetched again, but not more often than this.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

pub struct CiAuth {
    http: reqwest::Client,
    jwks_url: Url,
    issuer: String,
    audience: String,
    keys: Mutex<Keys>,
    refetch_after: Duration,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// Not before this may the keys be fetched again: a minute after a fetch, a few seconds
    /// after a failed one.
    next_fetch: Option<Instant>,
}

/// How soon a JWKS fetch that failed is tried again.
const RETRY_FAILED_FETCH: Duration = Duration::from_secs(5);

impl CiAuth {
    pub fn new(http: reqwest::Client, gitlab: &Url, audience: &str) -> Self {
        let issuer = gitlab.as_str().trim_end_matches('/').to_string();
        let jwks_url = crate::outbound::directory_url(gitlab, "oauth/discovery")
            .join("keys")
            .expect("a valid URL");
        Self {
            http,
            jwks_url,
            issuer,
            audience: audience.to_string(),
            keys: Mutex::new(Keys::default()),
            refetch_after: REFETCH_AFTER,
        }
    }

    /// The key `kid`, from the cache, else from a fetch of the JWKS. The cache's lock is never
    /// held across the fetch: a slow JWKS (or a flood of unknown kids) does not hold up the
    /// verification of tokens whose key is known. A fetch claims the right to fetch first, so
    /// requests arriving meanwhile do not fetch too.
    async fn key(&self, kid: &str) -> Result<DecodingKey, IdTokenError> {
        {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = keys.by_kid.get(kid) {
                return Ok(k.clone());
            }
            if keys.next_fetch.is_some_and(|at| Instant::now() < at) {
                return Err(IdTokenError::UnknownKey(kid.to_string()));
            }
            // This request fetches; another one before it is done finds the key unknown.
            keys.next_fetch = Some(Instant::now() + RETRY_FAILED_FETCH);
        }
        let fetched = self.fetch_keys().await;
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let set = match fetched {
            Ok(set) => {
                keys.next_fetch = Some(Instant::now() + self.refetch_after);
                set
            }
            Err(e) => {
                keys.next_fetch = Some(Instant::now() + RETRY_FAILED_FETCH);
                return Err(e);
            }
        };
        keys.by_kid = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
            })
            .collect();
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or_else(|| IdTokenError::UnknownKey(kid.to_string()))
    }

    async fn fetch_keys(&self) -> Result<JwkSet, IdTokenError> {
        let response = self
            .http
            .get(self.jwks_url.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| IdTokenError::Jwks(crate::outbound::error_chain(&e)))?;
        crate::outbound::read_body(response, JWKS_LIMIT)
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| IdTokenError::Jwks(format!("unreadable: {e}")))
    }

    /// The verified claims of an ID token.
    async fn verify(&self, token: &str) -> Result<Value, IdTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(IdTokenError::NotJwt)?;
        if header.alg != Algorithm::RS256 {
            return Err(IdTokenError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(IdTokenError::NoKeyId)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(IdTokenError::Invalid)
    }
}

/// Why an ID token was refused: logged by the edge, never sent back.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("not a JWT: {0}")]
    NotJwt(#[source] jsonwebtoken::errors::Error),
    #[error("{0:?} tokens are not accepted; GitLab signs ID tokens with RS256")]
    Algorithm(Algorithm),
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("no key {0:?} in GitLab's JWKS")]
    UnknownKey(String),
    #[error("cannot fetch GitLab's JWKS: {0}")]
    Jwks(String),
    #[error("the ID token is not valid here: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("the ID token has no project_id claim")]
    NoProjectId,
    /// Refused on its claims, unverified, before any call to GitLab; answered like any other
    /// invalid token, so that nobody learns which projects are bound without a valid one.
    #[error("the token claims project {path} ({id}), which no binding or rule covers")]
    NotBound { path: String, id: String },
}

/// A claim GitLab sends as a string (`"project_id": "20"`) or, on some versions, a number.
fn id_claim(claims: &Value, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The claims of a token not verified yet, read only to decide whether verifying it is worth
/// any work: an unsigned claim never authorizes anything.
fn unverified_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A CI pass per project at most this often: a pipeline that notifies in a loop costs
/// regwarden one GitLab call per interval.
pub const PER_PROJECT_INTERVAL: Duration = Duration::from_secs(10);

/// When each project last had a pass queued, to space them by [`PER_PROJECT_INTERVAL`]. Only
/// verified tokens reach it, so it holds real projects only, and old entries are dropped.
#[derive(Default)]
pub struct ProjectPace {
    last: std::sync::Mutex<HashMap<String, Instant>>,
}

impl ProjectPace {
    /// `Err(wait)` when `project` had a pass less than the interval ago.
    fn admit(&self, project: &str) -> Result<(), Duration> {
        let mut last = self.last.lock().expect("never poisoned");
        let now = Instant::now();
        if let Some(at) = last.get(project)
            && now.duration_since(*at) < PER_PROJECT_INTERVAL
        {
            return Err(PER_PROJECT_INTERVAL - now.duration_since(*at));
        }
        if last.len() > 10_000 {
            last.retain(|_, at| now.duration_since(*at) < PER_PROJECT_INTERVAL);
        }
        last.insert(project.to_string(), now);
        Ok(())
    }

    /// Forgets `project`'s last pass (it did not happen after all).
    fn forget(&self, project: &str) {
        self.last.lock().expect("never poisoned").remove(project);
    }
}

/// A CI job, authenticated by its ID token before the handler runs: the token's project
/// could be bound here (checked on its claims before any call to GitLab), the token verifies
/// against GitLab's JWKS, and the project's pass is not too soon after its last one.
pub struct CiJob {
    /// The project's stable id, from the verified token.
    pub project_id: String,
    pub job_id: Option<String>,
    /// What a retry of the same request has in common with it.
    pub key: String,
}

impl FromRequestParts<AppState> for CiJob {
    type Rejection = EdgeError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, EdgeError> {
        let ci = app.ci.as_ref().ok_or(EdgeError::CiOff)?;
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(EdgeError::NoIdToken(
                "send the job's ID token as Authorization: Bearer",
            ))?;
        let claimed = unverified_claims(token);
        let claim = |name| claimed.as_ref().and_then(|c| id_claim(c, name));
        match (claim("project_path"), claim("project_id")) {
            (Some(path), Some(id)) if bindings::may_bind(&app.config, &path, &id) => {}
            (Some(path), Some(id)) => {
                return Err(EdgeError::BadIdToken(IdTokenError::NotBound { path, id }));
            }
            _ => {
                return Err(EdgeError::NoIdToken(
                    "not a GitLab ID token (no project_path and project_id claims)",
                ));
            }
        }
        let claims = ci.verify(token).await.map_err(|e| match e {
            // GitLab's JWKS could not be read: the server's trouble, not the token's.
            IdTokenError::Jwks(_) => EdgeError::Unavailable(e.to_string()),
            e => EdgeError::BadIdToken(e),
        })?;
        let project_id = id_claim(&claims, "project_id")
            .ok_or(EdgeError::BadIdToken(IdTokenError::NoProjectId))?;
        app.ci_pace
            .admit(&project_id)
            .map_err(|retry_after| EdgeError::RateLimited { retry_after })?;
        // One pass per ID token: a retried request does not queue a second one.
        let key = format!(
            "ci:{}",
            id_claim(&claims, "jti")
                .unwrap_or_else(|| super::dedupe_key(&parts.headers, token.as_bytes()))
        );
        Ok(CiJob {
            project_id,
            job_id: id_claim(&claims, "job_id"),
            key,
        })
    }
}

pub async fn reconcile(State(app): State<AppState>, job: CiJob) -> Result<Response, EdgeError> {
    // The project's path now, from GitLab, by its stable id.
    let project = match app.engine.gitlab.project(&job.project_id).await {
        Ok(p) => p,
        Err(e) if e.is_transient() => {
            // GitLab failed for now: this pass did not happen, so a retry may ask again.
            app.ci_pace.forget(&job.project_id);
            return Err(EdgeError::Unavailable(format!(
                "project {}: {e}",
                job.project_id
            )));
        }
        Err(e) => {
            return Err(EdgeError::Forbidden(format!(
                "project {}: {e}",
                job.project_id
            )));
        }
    };
    let path = &project.path_with_namespace;
    let names: Vec<String> = bindings::for_project(&app.config, &project)
        .into_iter()
        .map(|b| b.name)
        .collect();
    if names.is_empty() {
        return Err(EdgeError::Forbidden(format!(
            "project {path} ({}) has no binding on this server",
            job.project_id
        )));
    }
    let payload = serde_json::to_string(&JobPayload::Reconcile {
        bindings: Some(names.clone()),
        reason: format!(
            "CI job {} of {path}",
            job.job_id.as_deref().unwrap_or_default()
        ),
    })
    .expect("a payload serializes");
    app.store
        .record_delivery(&job.key, "ci_reconcile", Some(&payload))
        .await
        .map_err(|e| EdgeError::Unavailable(format!("cannot queue the CI pass: {e}")))?;
    app.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "bindings": names })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::routing::get;

    use super::*;

    /// A JWKS endpoint on loopback whose key set the test changes, counting its fetches.
    struct Jwks {
        url: Url,
        kids: Arc<std::sync::Mutex<Vec<&'static str>>>,
        fetches: Arc<AtomicUsize>,
        /// Milliseconds each answer waits.
        delay_ms: Arc<AtomicUsize>,
    }

    async fn jwks() -> Jwks {
        let kids = Arc::new(std::sync::Mutex::new(vec!["k1"]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicUsize::new(0));
        let (k, f, d) = (kids.clone(), fetches.clone(), delay_ms.clone());
        let app = Router::new().route(
            "/oauth/discovery/keys",
            get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let keys: Vec<Value> = k
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|kid| json!({ "kty": "oct", "kid": kid, "k": "c2VjcmV0LWtleS1tYXRlcmlhbA" }))
                    .collect();
                let delay = Duration::from_millis(d.load(Ordering::SeqCst) as u64);
                async move {
                    tokio::time::sleep(delay).await;
                    Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Jwks {
            url,
            kids,
            fetches,
            delay_ms,
        }
    }

    #[tokio::test]
    async fn a_slow_jwks_fetch_holds_up_no_token_whose_key_is_known() {
        let server = jwks().await;
        let http = crate::outbound::client(None, Duration::from_secs(10)).unwrap();
        let mut auth = CiAuth::new(http, &server.url, "https://regwarden.test");
        auth.refetch_after = Duration::ZERO;
        let auth = Arc::new(auth);
        assert!(auth.key("k1").await.is_ok());
        server.delay_ms.store(3_000, Ordering::SeqCst);
        server.kids.lock().unwrap().push("k2");

        let fetching = {
            let auth = auth.clone();
            tokio::spawn(async move { auth.key("k2").await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The fetch takes 3 s: a known key served well within it was not held up by it.
        let known = tokio::time::timeout(Duration::from_secs(2), auth.key("k1")).await;
        let unknown_meanwhile = auth.key("k3").await;

        assert!(
            known.is_ok_and(|k| k.is_ok()),
            "a known key waited for the fetch"
        );
        assert!(
            unknown_meanwhile.is_err(),
            "a second fetch is not started meanwhile"
        );
        assert!(fetching.await.unwrap(), "the slow fetch still lands");
        assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_keys_again_only_once_the_interval_has_passed() {
        let server = jwks().await;
        let http = crate::outbound::client(None, Duration::from_secs(5)).unwrap();
        let mut auth = CiAuth::new(http, &server.url, "https://regwarden.test");
        auth.refetch_after = Duration::from_secs(2);

        assert!(auth.key("k1").await.is_ok());
        assert!(auth.key("k1").await.is_ok(), "served from the cache");
        assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

        // GitLab rotates its signing key: the new kid is unknown until the interval is over,
        // and asking again and again does not hammer GitLab.
        server.kids.lock().unwrap().push("k2");
        for _ in 0..5 {
            let refused = auth.key("k2").await.expect_err("not fetched yet");
            assert!(refused.to_string().contains("no key \"k2\""), "{refused}");
        }
        assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(
            auth.key("k2").await.is_ok(),
            "fetched again after the interval"
        );
        assert!(
            auth.key("k1").await.is_ok(),
            "the old key is still published"
        );
        assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    }
}
