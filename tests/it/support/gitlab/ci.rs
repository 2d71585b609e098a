//! CI ID tokens (`docs/reference/gitlab.md` §7): the keys GitLab publishes at
//! `/oauth/discovery/keys`, and the ID tokens a job would be given, signed with them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{App, CI_KID, FakeGitlab, random_suffix};

pub(super) fn routes() -> Router<App> {
    Router::new().route("/oauth/discovery/keys", get(jwks))
}

impl FakeGitlab {
    /// A CI job's ID token (reference §7), signed with the key the JWKS publishes. The ids are
    /// strings, as in GitLab's example. `kid` and `exp_in` let tests spoil it.
    pub fn mint_id_token(&self, project_path: &str, aud: &str, kid: &str, exp_in: i64) -> String {
        let s = self.state.lock().unwrap();
        let project = s
            .project(project_path)
            .cloned()
            .expect("a project of the fake");
        drop(s);
        let now = Utc::now().timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.typ = Some("JWT".into());
        let claims = json!({
            "iss": self.url(),
            "sub": format!("project_path:{project_path}:ref_type:branch:ref:main"),
            "aud": aud,
            "iat": now,
            "nbf": now - 1,
            "exp": now + exp_in,
            "jti": random_suffix(now as u64),
            "project_id": project.id.to_string(),
            "project_path": project_path,
            "namespace_id": project.namespace_id.to_string(),
            "namespace_path": project_path.rsplit_once('/').map(|(g, _)| g).unwrap_or(""),
            "job_id": "1212",
            "ref": "main",
            "ref_type": "branch",
            "ref_protected": "true",
        });
        let key = EncodingKey::from_rsa_pem(&self.keys.ci.key_pem).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

/// `GET /oauth/discovery/keys`: the keys CI ID tokens are signed with (reference §7).
async fn jwks(State(app): State<App>) -> Response {
    Json(json!({"keys": [{
        "kty": "RSA",
        "kid": CI_KID,
        "e": "AQAB",
        "n": app.keys.ci.modulus_b64url,
        "use": "sig",
        "alg": "RS256",
    }]}))
    .into_response()
}
