//! `POST /api/v1/ci/reconcile`: a CI job's ID token, verified against the fake GitLab's JWKS,
//! queues a reconcile pass of its project's bindings; anything else is refused.

use std::time::Duration;

use crate::support::gitlab::CI_KID;
use crate::support::serving::Serving;
use crate::support::world::{PROJECT, Settings, World};

const AUDIENCE: &str = "https://regwarden.example.com";

/// A served world, and how many times GitLab was asked for a project by then (its first
/// passes read it: the rotation, and each pass's registry checklist).
async fn served() -> (World, Serving, usize) {
    let server = format!("reconcile_interval = \"1h\"\nci_audience = \"{AUDIENCE}\"");
    let (w, s) = World::served(Settings::default(), &server, &[]).await;
    let reads = w.gitlab.calls("GET /api/v4/projects/{id}");
    (w, s, reads)
}

/// Look-ups of a project since `before`.
fn project_reads(w: &World, before: usize) -> usize {
    w.gitlab.calls("GET /api/v4/projects/{id}") - before
}

async fn call(s: &Serving, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let http = regwarden::outbound::client(None, Duration::from_secs(10)).unwrap();
    let mut req = http.post(format!("{}/api/v1/ci/reconcile", s.url));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_bound_projects_id_token_queues_a_pass_that_repairs_its_binding() {
    let (w, s, _) = served().await;
    let old = w.held_token().unwrap();
    // Someone revokes the token Qovery holds: the next pass must replace it.
    w.gitlab.revoke_deploy_token(old.id);
    let token = w.gitlab.mint_id_token(PROJECT, AUDIENCE, CI_KID, 300);

    let (code, body) = call(&s, Some(&token)).await;

    assert_eq!(code, 202, "{body}");
    assert_eq!(body["bindings"], serde_json::json!(["api"]));
    for _ in 0..100 {
        if w.held_token().is_some_and(|t| t.id != old.id && t.active()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.qovery_can_pull().await, "server log:\n{}", w.server_log());
    s.kill().await;
}

#[tokio::test]
async fn tokens_that_are_not_for_this_server_are_refused() {
    let (w, s, reads) = served().await;
    w.gitlab.add_project("other/thing");

    let wrong_audience = w
        .gitlab
        .mint_id_token(PROJECT, "https://elsewhere.example", CI_KID, 300);
    let expired = w.gitlab.mint_id_token(PROJECT, AUDIENCE, CI_KID, -3600);
    let unknown_key = w
        .gitlab
        .mint_id_token(PROJECT, AUDIENCE, "not-a-published-kid", 300);
    let unbound = w.gitlab.mint_id_token("other/thing", AUDIENCE, CI_KID, 300);

    assert_eq!(call(&s, None).await.0, 401);
    assert_eq!(call(&s, Some("not.a.jwt")).await.0, 401);
    // The answers are fixed: what to fix on the caller's side, never GitLab's or the JWKS's
    // own words, which go to the server's log.
    let (code, body) = call(&s, Some(&wrong_audience)).await;
    assert_eq!(code, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not valid for this server"),
        "{body}"
    );
    assert_eq!(call(&s, Some(&expired)).await.0, 401);
    let (code, unknown_key_body) = call(&s, Some(&unknown_key)).await;
    assert_eq!(code, 401);
    assert_eq!(unknown_key_body, body, "one answer for every invalid token");
    // A token for a project this server does not bind is refused as any invalid token is,
    // so that nobody learns which projects are bound without a valid token of one.
    let keys_fetched = w.gitlab.calls("GET /oauth/discovery/keys");
    let (code, unbound_body) = call(&s, Some(&unbound)).await;
    assert_eq!(code, 401);
    assert_eq!(unbound_body, body);
    let log = w.server_log();
    for cause in ["InvalidAudience", "not-a-published-kid", "other/thing"] {
        assert!(log.contains(cause), "{cause} is not in the log:\n{log}");
    }
    // Refused from the configuration alone: neither the JWKS nor the project was asked for.
    assert_eq!(w.gitlab.calls("GET /oauth/discovery/keys"), keys_fetched);
    assert_eq!(project_reads(&w, reads), 0);

    // An unknown kid fetches the keys again at most once a minute, not on every request: all
    // of the above came within a minute of the first fetch.
    let again = call(&s, Some(&unknown_key)).await;
    assert_eq!(again.0, 401);
    assert_eq!(w.gitlab.calls("GET /oauth/discovery/keys"), 1);
    s.kill().await;
}

#[tokio::test]
async fn a_project_gets_one_pass_per_interval_however_often_its_jobs_notify() {
    let (w, s, reads) = served().await;
    let first = w.gitlab.mint_id_token(PROJECT, AUDIENCE, CI_KID, 300);
    let second = w.gitlab.mint_id_token(PROJECT, AUDIENCE, CI_KID, 300);
    assert_ne!(first, second, "two jobs, two ID tokens");

    let (code, body) = call(&s, Some(&first)).await;
    assert_eq!(code, 202, "{body}");
    let http = regwarden::outbound::client(None, Duration::from_secs(10)).unwrap();
    let again = http
        .post(format!("{}/api/v1/ci/reconcile", s.url))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();

    assert_eq!(again.status().as_u16(), 429);
    let wait: u64 = again.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    assert_eq!(
        project_reads(&w, reads),
        1,
        "one GitLab call for the one pass"
    );
    s.kill().await;
}

#[tokio::test]
async fn without_ci_audience_the_endpoint_is_off() {
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    let s = w.serve(&[]).await;
    let token = w.gitlab.mint_id_token(PROJECT, AUDIENCE, CI_KID, 300);

    let (code, body) = call(&s, Some(&token)).await;

    assert_eq!(code, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("server.ci_audience"),
        "{body}"
    );
    s.kill().await;
}
