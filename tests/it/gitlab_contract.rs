//! The contract with GitLab: every request the GitLab client sends while real reconcile passes
//! run against the stateful fake GitLab is also checked by Prism against GitLab's own OpenAPI
//! description (`tests/fixtures/gitlab-openapi-v2-subset.yaml`, from gitlabhq/gitlabhq's
//! `doc/api/openapi/openapi_v2.yaml`). Prism runs as a validation proxy in front of the fake and
//! reports what it finds wrong with each request in its `sl-violations` answer header; a
//! recorder between regwarden and Prism keeps those reports. Every request must validate.
//!
//! GitLab's description is generated (grape-swagger) and wrong in two known places, each
//! exempted for exactly one message (Prism lists every problem of a request, so a second
//! problem still fails):
//!
//! - `/api/v4/groups/{id}/...`: the path parameter `id` is typed integer, yet GitLab takes a
//!   group's URL-encoded full path there (`lib/api/deploy_tokens.rb` and
//!   `lib/api/resource_access_tokens.rb` declare `types: [Integer, String]`; grape-swagger writes
//!   the first type only). Exempt: "Request path parameter id must be integer", on group paths
//!   only.
//! - `POST /api/v4/{projects,groups}/{id}/access_tokens`: the `scopes` enum lacks
//!   `read_registry` and `write_registry`, which GitLab offers when its container registry is
//!   enabled (`Gitlab::Auth.registry_scopes`); the description was generated without one.
//!   Exempt: "Request body property scopes.N must be equal to one of the allowed values", when
//!   element N is one of those two scopes.
//! - `GET /api/v4/user` (the API token's own user, `lib/api/users.rb`, mounted under `/api/v4`
//!   like every other route) is filed under `/api/v3/user` in the description, so Prism finds no
//!   route for it. Exempt: "Selected route not found", for that one request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fixtures::gitlab_openapi;
use crate::support::prism::Prism;
use crate::support::server::Served;
use crate::support::world::{Settings, World};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// One request as regwarden sent it, and what Prism found wrong with it.
#[derive(Clone, Debug)]
struct Checked {
    method: String,
    /// The path as sent (URL-encoded), without the query.
    path: String,
    body: Option<serde_json::Value>,
    /// Prism's findings about the request (its answer-side findings are left out: the fake's
    /// answers are not GitLab's).
    violations: Vec<Violation>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct Violation {
    location: Vec<String>,
    message: String,
    #[serde(default)]
    severity: String,
}

impl Violation {
    /// Where in the request, e.g. `path.id` or `body.scopes.0`.
    fn place(&self) -> String {
        self.location[1..].join(".")
    }
}

/// Why GitLab's description is wrong about `v` of request `r`, if it is one of the three
/// known defects.
fn known_defect(r: &Checked, v: &Violation) -> Option<&'static str> {
    let place = v.place();
    if r.method == "GET" && r.path == "/api/v4/user" && v.message == "Selected route not found" {
        return Some("the current user's route is filed under /api/v3");
    }
    if place == "path.id"
        && v.message == "Request path parameter id must be integer"
        && r.path.starts_with("/api/v4/groups/")
    {
        return Some("a group's id may be its URL-encoded path");
    }
    if let Some(index) = place.strip_prefix("body.scopes.")
        && v.message.starts_with(&format!(
            "Request body property scopes.{index} must be equal to one of the allowed values:"
        ))
        && r.method == "POST"
        && r.path.ends_with("/access_tokens")
    {
        let scope = r.body.as_ref()?["scopes"][index.parse::<usize>().ok()?].as_str()?;
        if matches!(scope, "read_registry" | "write_registry") {
            return Some("registry scopes are missing from the access-token scopes enum");
        }
    }
    None
}

#[derive(Clone)]
struct Recorder {
    prism: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Checked>>>,
}

/// Forwards a request to Prism (which forwards it to the fake GitLab), keeps Prism's findings,
/// and answers with what the fake answered.
async fn record(State(r): State<Recorder>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path_and_query = parts.uri.path_and_query().unwrap().as_str().to_string();
    let mut forward = r
        .http
        .request(parts.method.clone(), format!("{}{path_and_query}", r.prism))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if name != "host" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.unwrap();
    let violations: Vec<Violation> = answer
        .headers()
        .get("sl-violations")
        .map(|v| serde_json::from_slice(v.as_bytes()).unwrap())
        .unwrap_or_default();
    r.seen.lock().unwrap().push(Checked {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        body: serde_json::from_slice(&body).ok(),
        violations: violations
            .into_iter()
            .filter(|v| v.location.first().map(String::as_str) == Some("request"))
            .collect(),
    });
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name != "sl-violations" && name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
        .into_response()
}

/// The operation a request is, in the description's terms (`GET /api/v4/projects/{id}`).
fn operation(c: &Checked) -> String {
    let mut parts: Vec<&str> = c.path.split('/').collect();
    // /api/v4/<projects|groups>/<id>/<rest...>/<token id>
    if parts.len() > 4 && matches!(parts[3], "projects" | "groups") {
        parts[4] = "{id}";
    }
    if parts.len() > 6 && parts[6].chars().all(|ch| ch.is_ascii_digit()) {
        parts[6] = "{token_id}";
    }
    format!("{} {}", c.method, parts.join("/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gitlab_request_of_a_reconcile_follows_gitlabs_openapi() {
    let Some(bin) = crate::support::tools::prism() else {
        return;
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    // The recorder's address is in the configuration, and the fake's in Prism's command line:
    // reserve the recorder first, start everything, then point Prism at the fake.
    let recorder_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder_url = format!("http://{}", recorder_listener.local_addr().unwrap());
    let w = World::with(Settings {
        grace_period: "0s",
        gitlab_url: Some(recorder_url.clone()),
        extra: r#"
[[binding]]
name = "group"
group = "acme"
repository = "acme/api"
qovery_registry = "gitlab-acme"

[[binding]]
name = "api-access"
project = "acme/api"
credential = "access_token"
qovery_registry = "gitlab-acme-api-access"

[[binding]]
name = "group-access"
group = "acme"
repository = "acme/api"
credential = "access_token"
scopes = ["read_registry", "write_registry"]
qovery_registry = "gitlab-acme-access"

[[auto_bind]]
group = "acme"
name = "auto-{project_path_slug}"
qovery_registry = "auto-{project_path_slug}"
"#
        .into(),
        ..Settings::default()
    })
    .await;
    let prism = Prism::validator(&bin, &gitlab_openapi(), &w.gitlab.url());
    let app = Router::new().fallback(record).with_state(Recorder {
        prism: prism.url.clone(),
        http: regwarden::outbound::client(None, Duration::from_secs(30)).unwrap(),
        seen: seen.clone(),
    });
    let _recorder = Served::from_listener(recorder_listener, app);

    // Create everything, rotate everything (revoking the previous tokens at once), look at the
    // API token, and read one project and one token as the CI endpoint and the engine do.
    let first = w.reconcile(&[]).await;
    assert_eq!(first.code, 0, "{first:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let forced = w.reconcile(&["--force"]).await;
    assert_eq!(forced.code, 0, "{forced:?}");
    let check = w.regwarden(&["config", "check", "--online"]).await;
    assert!(check.stdout.contains("ok   gitlab:"), "{check:?}");
    let gitlab = regwarden::gitlab::GitlabClient::new(
        regwarden::outbound::client(None, Duration::from_secs(10)).unwrap(),
        &reqwest::Url::parse(&recorder_url).unwrap(),
        secrecy::SecretString::from(w.gitlab_token.clone()),
    );
    let project = gitlab
        .project(crate::support::world::PROJECT)
        .await
        .unwrap();
    gitlab.project(&project.id.to_string()).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let mut exempted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut broken = Vec::new();
    for c in &seen {
        for v in &c.violations {
            match known_defect(c, v) {
                Some(why) => *exempted.entry(why).or_default() += 1,
                None => broken.push(format!(
                    "{} {}: {} {} ({})",
                    c.method,
                    c.path,
                    v.place(),
                    v.message,
                    v.severity
                )),
            }
        }
    }
    assert!(
        broken.is_empty(),
        "requests GitLab's description refuses:\n{}",
        broken.join("\n")
    );
    let operations: BTreeSet<String> = seen.iter().map(operation).collect();
    for expected in [
        "GET /api/v4/personal_access_tokens/self",
        "GET /api/v4/projects/{id}",
        "GET /api/v4/groups/{id}/projects",
        "GET /api/v4/user",
        "GET /api/v4/groups/{id}",
        "GET /api/v4/projects/{id}/deploy_tokens",
        "POST /api/v4/projects/{id}/deploy_tokens",
        "DELETE /api/v4/projects/{id}/deploy_tokens/{token_id}",
        "GET /api/v4/groups/{id}/deploy_tokens",
        "POST /api/v4/groups/{id}/deploy_tokens",
        "DELETE /api/v4/groups/{id}/deploy_tokens/{token_id}",
        "GET /api/v4/projects/{id}/access_tokens",
        "POST /api/v4/projects/{id}/access_tokens",
        "DELETE /api/v4/projects/{id}/access_tokens/{token_id}",
        "GET /api/v4/groups/{id}/access_tokens",
        "POST /api/v4/groups/{id}/access_tokens",
        "DELETE /api/v4/groups/{id}/access_tokens/{token_id}",
    ] {
        assert!(
            operations.contains(expected),
            "{expected} was not exercised: {operations:#?}"
        );
    }
    // Every exemption was needed: the test really went through the defective parts.
    assert_eq!(exempted.len(), 3, "{exempted:?}");
}

#[tokio::test]
async fn prism_reports_a_request_that_breaks_gitlabs_description() {
    // The control: the validator does report violations, so the test above can fail.
    let Some(bin) = crate::support::tools::prism() else {
        return;
    };
    let w = World::start().await;
    let prism = Prism::validator(&bin, &gitlab_openapi(), &w.gitlab.url());

    let answer = regwarden::outbound::client(None, Duration::from_secs(20))
        .unwrap()
        .post(format!("{}/api/v4/projects/1/deploy_tokens", prism.url))
        .header("PRIVATE-TOKEN", &w.gitlab_token)
        .json(&serde_json::json!({ "name": "x", "scopes": ["not_a_scope"], "expires_at": 7 }))
        .send()
        .await
        .unwrap();

    let violations: Vec<Violation> =
        serde_json::from_slice(answer.headers()["sl-violations"].as_bytes()).unwrap();
    let places: Vec<String> = violations.iter().map(Violation::place).collect();
    assert!(
        places.iter().any(|p| p.starts_with("body.scopes")),
        "{places:?}"
    );
}
