//! The GitLab client against the stateful fake: typed errors, pagination, retries, and the
//! two rules that keep tokens from multiplying or vanishing (a lost create is looked up, a
//! rotate is never re-sent).

use std::time::Duration;

use crate::support::faults::Fault;
use crate::support::gitlab::{FakeGitlab, Owner};
use chrono::{Duration as Days, Utc};
use regwarden::gitlab::{GitlabClient, Namespace, NewAccessToken, NewDeployToken};
use regwarden::outbound::{ApiError, RetryPolicy};
use secrecy::{ExposeSecret, SecretString};

const CREATE: &str = "POST /api/v4/projects/{id}/deploy_tokens";
const LIST: &str = "GET /api/v4/projects/{id}/deploy_tokens";

struct World {
    _dir: tempfile::TempDir,
    gitlab: FakeGitlab,
    token: String,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    gitlab.add_project("acme/api");
    let token = gitlab.admin_token();
    World {
        _dir: dir,
        gitlab,
        token,
    }
}

/// Quick retries, so that tests of the retry path stay fast.
fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

impl World {
    fn client_with(&self, token: &str, timeout: Duration) -> GitlabClient {
        let http = regwarden::outbound::client(None, timeout).unwrap();
        let base = reqwest::Url::parse(&self.gitlab.url()).unwrap();
        GitlabClient::new(http, &base, SecretString::from(token.to_string()))
            .with_retry_policy(fast_policy())
    }

    fn client(&self) -> GitlabClient {
        self.client_with(&self.token, Duration::from_secs(5))
    }
}

fn api() -> Namespace {
    Namespace::Project("acme/api".into())
}

fn new_token(name: &str) -> NewDeployToken<'_> {
    NewDeployToken {
        name,
        scopes: &["read_registry"],
        expires_at: Utc::now() + Days::days(30),
    }
}

/// Neither the error's message nor its debug form may show a secret.
fn assert_hides(err: &ApiError, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for s in secrets {
        assert!(!shown.contains(s), "{shown}");
    }
}

#[tokio::test]
async fn a_project_is_found_by_path_with_its_registry_prefix() {
    let w = world().await;
    let project = w.client().project("acme/api").await.unwrap();
    assert_eq!(project.path_with_namespace, "acme/api");
    assert_eq!(
        project.container_registry_image_prefix.as_deref(),
        Some("registry.gitlab.invalid/acme/api")
    );
    let by_id = w.client().project(&project.id.to_string()).await.unwrap();
    assert_eq!(by_id, project);
}

#[tokio::test]
async fn a_created_deploy_token_is_listed_and_revocable() {
    let w = world().await;
    let client = w.client();

    let created = client
        .create_deploy_token(&api(), &new_token("regwarden-api-1"))
        .await
        .unwrap();
    assert!(created.secret.expose_secret().starts_with("gldt-"));
    assert!(created.token.username.starts_with("gitlab+deploy-token-"));
    assert!(created.token.expires_at.is_some());

    let listed = client.deploy_tokens(&api(), true).await.unwrap();
    assert_eq!(listed, vec![created.token.clone()]);
    assert_eq!(
        client.deploy_token(&api(), created.token.id).await.unwrap(),
        created.token
    );

    client
        .revoke_deploy_token(&api(), created.token.id)
        .await
        .unwrap();
    assert!(client.deploy_tokens(&api(), true).await.unwrap().is_empty());
    // Revoking twice is not an error: the token is gone either way.
    client
        .revoke_deploy_token(&api(), created.token.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn group_deploy_tokens_use_the_group_routes() {
    let w = world().await;
    let group = Namespace::Group("acme".into());
    let created = w
        .client()
        .create_deploy_token(&group, &new_token("regwarden-acme-1"))
        .await
        .unwrap();
    assert_eq!(
        w.client().deploy_tokens(&group, true).await.unwrap(),
        vec![created.token]
    );
    assert!(
        w.client()
            .deploy_tokens(&api(), true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.gitlab.calls("POST /api/v4/groups/{id}/deploy_tokens"), 1);
}

#[tokio::test]
async fn lists_are_followed_through_every_page() {
    let w = world().await;
    for _ in 0..250 {
        w.gitlab
            .add_deploy_token(w.gitlab.project_owner("acme/api"), &["read_registry"]);
    }

    let all = w.client().deploy_tokens(&api(), false).await.unwrap();

    assert_eq!(all.len(), 250);
    let mut ids: Vec<u64> = all.iter().map(|t| t.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250, "no item twice");
    assert_eq!(w.gitlab.calls(LIST), 3, "100 per page");
}

#[tokio::test]
async fn errors_are_typed_so_callers_can_branch() {
    let w = world().await;

    let unauthorized = w
        .client_with("glpat-wrong", Duration::from_secs(5))
        .project("acme/api")
        .await
        .unwrap_err();
    assert!(
        matches!(unauthorized, ApiError::Unauthorized { .. }),
        "{unauthorized}"
    );
    assert_hides(&unauthorized, &["glpat-wrong"]);

    let read_only = w
        .gitlab
        .add_access_token(Owner::User, "reader", &["read_api"])
        .token;
    let forbidden = w
        .client_with(&read_only, Duration::from_secs(5))
        .deploy_tokens(&api(), true)
        .await
        .unwrap_err();
    assert!(
        matches!(forbidden, ApiError::Forbidden { .. }),
        "{forbidden}"
    );
    assert_hides(&forbidden, &[&read_only]);

    let missing = w.client().project("acme/nope").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        missing.to_string().contains("404 Project Not Found"),
        "{missing}"
    );

    let invalid = w
        .client()
        .create_deploy_token(
            &api(),
            &NewDeployToken {
                scopes: &["sudo"],
                ..new_token("x")
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(invalid, ApiError::Permanent { status: 400, .. }),
        "{invalid}"
    );
    assert!(
        invalid
            .to_string()
            .contains("scopes does not have a valid value")
    );
    assert_eq!(w.gitlab.calls(CREATE), 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_retry_after_says() {
    let w = world().await;
    w.gitlab.fail(LIST, Fault::Status(429, Some(1)), 1);
    let started = std::time::Instant::now();

    let tokens = w.client().deploy_tokens(&api(), true).await;

    assert!(tokens.is_ok(), "{tokens:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(w.gitlab.calls(LIST), 2);
}

#[tokio::test]
async fn a_server_error_is_retried_then_succeeds() {
    let w = world().await;
    w.gitlab.fail(LIST, Fault::Status(502, None), 2);

    assert!(w.client().deploy_tokens(&api(), true).await.is_ok());
    assert_eq!(w.gitlab.calls(LIST), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let w = world().await;
    w.gitlab.fail(LIST, Fault::Status(500, None), 10);

    let err = w.client().deploy_tokens(&api(), true).await.unwrap_err();

    assert!(err.is_transient(), "{err}");
    assert_eq!(w.gitlab.calls(LIST), 3, "the policy allows 3 tries");
}

#[tokio::test]
async fn a_timeout_and_a_dropped_connection_are_retried() {
    let w = world().await;
    w.gitlab.fail(LIST, Fault::Delay(Duration::from_secs(3)), 1);
    w.gitlab.fail(LIST, Fault::Drop, 1);

    let tokens = w
        .client_with(&w.token, Duration::from_millis(300))
        .deploy_tokens(&api(), true)
        .await;

    assert!(tokens.is_ok(), "{tokens:?}");
    assert_eq!(w.gitlab.calls(LIST), 3);
}

#[tokio::test]
async fn a_timeout_that_never_ends_is_reported_as_such() {
    let w = world().await;
    w.gitlab.fail(LIST, Fault::Delay(Duration::from_secs(3)), 3);

    let err = w
        .client_with(&w.token, Duration::from_millis(200))
        .deploy_tokens(&api(), true)
        .await
        .unwrap_err();

    assert!(err.to_string().contains("(timeout)"), "{err}");
    assert_hides(&err, &[&w.token]);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_leaves_exactly_one_usable_token() {
    let w = world().await;
    // GitLab creates the token, then the answer is lost, twice in different ways.
    w.gitlab.fail(CREATE, Fault::ApplyThenFail, 1);
    w.gitlab.fail(CREATE, Fault::ApplyThenDrop, 1);

    let created = w
        .client()
        .create_deploy_token(&api(), &new_token("regwarden-api-20261124"))
        .await
        .unwrap();

    let active: Vec<_> = w
        .gitlab
        .deploy_tokens()
        .into_iter()
        .filter(|t| t.active())
        .collect();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].id, created.token.id);
    assert_eq!(active[0].token, created.secret.expose_secret());
    assert_eq!(w.gitlab.calls(CREATE), 3);
}

#[tokio::test]
async fn a_create_refused_by_rate_limit_is_retried_without_a_lookup() {
    let w = world().await;
    w.gitlab.fail(CREATE, Fault::Status(429, Some(0)), 1);

    w.client()
        .create_deploy_token(&api(), &new_token("regwarden-api-1"))
        .await
        .unwrap();

    assert_eq!(w.gitlab.calls(CREATE), 2);
    assert_eq!(w.gitlab.calls(LIST), 0, "a 429 means nothing was created");
    assert_eq!(w.gitlab.deploy_tokens().len(), 1);
}

#[tokio::test]
async fn a_create_that_fails_for_good_after_applying_leaves_no_orphan() {
    let w = world().await;
    w.gitlab.fail(CREATE, Fault::ApplyThenFail, 3);

    let err = w
        .client()
        .create_deploy_token(&api(), &new_token("regwarden-api-1"))
        .await
        .unwrap_err();

    assert!(err.is_transient(), "{err}");
    assert!(
        w.gitlab.deploy_tokens().iter().all(|t| !t.active()),
        "every token created without an answer was revoked: {:?}",
        w.gitlab.deploy_tokens()
    );
}

fn new_access(name: &str) -> NewAccessToken<'_> {
    NewAccessToken {
        name,
        scopes: &["read_registry"],
        expires_at: Utc::now().date_naive() + Days::days(30),
        access_level: 20,
    }
}

#[tokio::test]
async fn access_tokens_are_created_listed_and_revoked() {
    let w = world().await;
    let client = w.client();

    let created = client
        .create_access_token(&api(), &new_access("regwarden-api-1"))
        .await
        .unwrap();
    assert!(created.secret.expose_secret().starts_with("glpat-"));
    assert_eq!(created.token.access_level, Some(20));

    let active = client.access_tokens(&api(), true).await.unwrap();
    assert_eq!(active, vec![created.token.clone()]);

    client
        .revoke_access_token(&api(), created.token.id)
        .await
        .unwrap();
    assert!(client.access_tokens(&api(), true).await.unwrap().is_empty());
}

#[tokio::test]
async fn rotate_revokes_the_old_token_at_once_and_returns_its_successor() {
    let w = world().await;
    let client = w.client();
    let first = client
        .create_access_token(&api(), &new_access("regwarden-api-1"))
        .await
        .unwrap();
    let expires = Utc::now().date_naive() + Days::days(60);

    let second = client
        .rotate_access_token(&api(), first.token.id, expires)
        .await
        .unwrap();

    assert_ne!(second.token.id, first.token.id);
    assert_eq!(second.token.expires_at, Some(expires));
    let active = client.access_tokens(&api(), true).await.unwrap();
    assert_eq!(active, vec![second.token.clone()]);

    // Rotating the old token again is reuse: GitLab revokes the whole family.
    let reuse = client
        .rotate_access_token(&api(), first.token.id, expires)
        .await;
    assert!(reuse.is_err());
    assert!(client.access_tokens(&api(), true).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rotate_is_never_sent_twice() {
    let w = world().await;
    let first = w
        .client()
        .create_access_token(&api(), &new_access("regwarden-api-1"))
        .await
        .unwrap();
    let route = "POST /api/v4/projects/{id}/access_tokens/{token_id}/rotate";
    w.gitlab.fail(route, Fault::ApplyThenFail, 1);

    let err = w
        .client()
        .rotate_access_token(
            &api(),
            first.token.id,
            Utc::now().date_naive() + Days::days(7),
        )
        .await
        .unwrap_err();

    assert!(err.is_transient(), "{err}");
    assert_eq!(w.gitlab.calls(route), 1);
    // The successor exists and is active: a second rotate would have destroyed it.
    let active = w.client().access_tokens(&api(), true).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_ne!(active[0].id, first.token.id);
}

#[tokio::test]
async fn group_projects_include_subgroups() {
    let w = world().await;
    w.gitlab.add_project("acme/platform/web");
    w.gitlab.add_project("other/thing");

    let mut paths: Vec<String> = w
        .client()
        .group_projects("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.path_with_namespace)
        .collect();
    paths.sort();

    assert_eq!(paths, vec!["acme/api", "acme/platform/web"]);
}

#[tokio::test]
async fn the_api_token_never_follows_a_redirect_to_another_origin() {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    // Where a redirect would lead: it records every request it gets, and its headers.
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let elsewhere = crate::support::server::Served::start(axum::Router::new().fallback(
        move |headers: HeaderMap| {
            record.lock().unwrap().push(headers);
            async { "{}" }
        },
    ))
    .await;
    // Another port of the same host, and another name of the same machine: both are another
    // origin.
    for target in [
        elsewhere.url(),
        elsewhere.url().replace("127.0.0.1", "localhost"),
    ] {
        let to = format!("{target}/api/v4/projects/acme%2Fapi/deploy_tokens");
        let redirecting =
            crate::support::server::Served::start(axum::Router::new().fallback(move || {
                let to = to.clone();
                async move {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [("location", to)],
                    )
                }
            }))
            .await;
        let client = GitlabClient::new(
            regwarden::outbound::client(None, Duration::from_secs(5)).unwrap(),
            &reqwest::Url::parse(&redirecting.url()).unwrap(),
            SecretString::from("glpat-secret-never-sent"),
        );

        let err = client
            .deploy_tokens(&Namespace::Project("acme/api".into()), true)
            .await
            .unwrap_err();

        let message = err.to_string();
        assert!(message.contains("(307)"), "{message}");
        assert!(message.contains("within one origin"), "{message}");
        assert!(!message.contains("glpat-secret-never-sent"), "{message}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other origin was called: {:?}",
        seen.lock().unwrap()
    );
}
