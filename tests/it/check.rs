//! `regwarden check` against the real registry (distribution 2.8) whose token realm is the
//! fake GitLab: every outcome and exit code a user relies on.

use std::path::Path;

use crate::support::cli::{Run, regwarden};
use crate::support::gitlab::{FakeGitlab, Issued, Owner};
use crate::support::registry::{Auth, Registry, Tls, push_image};
use tempfile::TempDir;

struct World {
    dir: TempDir,
    gitlab: FakeGitlab,
    registry: Registry,
}

/// GitLab (projects `acme/api`, `acme/web`, `acme/new`, `other/tool`) with a registry in
/// front of it, and an image pushed to `acme/api`.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    for path in ["acme/api", "acme/web", "acme/new", "other/tool"] {
        gitlab.add_project(path);
    }
    let registry = Registry::start(
        dir.path(),
        Auth::Token {
            realm: &gitlab.realm(),
            signer_cert: gitlab.signer_cert(),
        },
        None,
    )
    .await;
    let push = gitlab.mint_registry_jwt("acme/api", &["pull", "push"]);
    push_image(&registry.url, None, "acme/api", "v1", &push).await;
    World {
        dir,
        gitlab,
        registry,
    }
}

impl World {
    async fn check(&self, repository: &str, who: &Issued, extra: &[&str]) -> Run {
        check_at(&self.registry.url, repository, who, extra).await
    }
}

async fn check_at(registry: &str, repository: &str, who: &Issued, extra: &[&str]) -> Run {
    let mut args = vec![
        "check",
        "--registry",
        registry,
        "--repository",
        repository,
        "--username",
        &who.username,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    let run = regwarden(args)
        .stdin(&format!("{}\n", who.token))
        .run()
        .await;
    run.assert_never_shows(&who.token);
    run
}

impl World {
    /// The owner that project `path` is (its deploy or access tokens').
    fn project(&self, path: &str) -> Owner {
        self.gitlab.project_owner(path)
    }
}

#[tokio::test]
async fn a_deploy_token_with_read_registry_can_pull_its_project() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("ok: the credential can pull acme/api"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&token.username), "{}", run.stdout);
    assert_eq!(w.gitlab.calls("GET /jwt/auth"), 1);
}

#[tokio::test]
async fn json_output_reports_the_grant_and_the_fingerprint_but_no_secret() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);

    let run = w.check("acme/api", &token, &["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["repository"], "acme/api");
    assert_eq!(json["username"], token.username.as_str());
    assert_eq!(json["granted"], serde_json::json!(["pull"]));
    assert_eq!(json["auth"], "bearer");
    assert_eq!(json["realm"], w.gitlab.realm().as_str());
    let fingerprint = json["fingerprint"].as_str().unwrap();
    assert!(
        fingerprint.starts_with("sha256:") && fingerprint.len() == 19,
        "{fingerprint}"
    );
}

#[tokio::test]
async fn a_repository_without_images_yet_still_counts_as_access() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/new"), &["read_registry"]);

    let run = w.check("acme/new", &token, &["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["repository_empty"], true);
}

#[tokio::test]
async fn a_wrong_token_is_rejected() {
    let w = world().await;
    let mut token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);
    token.token = "gldt-not-the-right-one".into();

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.starts_with("rejected: "), "{}", run.stdout);
    assert!(run.stdout.contains("revoked or expired"), "{}", run.stdout);
}

#[tokio::test]
async fn a_token_revoked_in_gitlab_is_rejected_at_the_next_check() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);
    assert_eq!(w.check("acme/api", &token, &[]).await.code, 0);

    w.gitlab.revoke_deploy_token(token.id);

    let run = w.check("acme/api", &token, &[]).await;
    assert_eq!(run.code, 3, "{run:?}");
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);
    w.gitlab.expire_deploy_token(token.id);

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 3, "{run:?}");
}

#[tokio::test]
async fn a_token_without_a_registry_scope_has_no_access() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_repository"]);

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.starts_with("no_access: "), "{}", run.stdout);
    assert!(
        run.stdout.contains("no read_registry scope"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_token_of_another_project_is_valid_but_has_no_access() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/web"), &["read_registry"]);

    let run = w.check("acme/api", &token, &["--output", "json"]).await;

    assert_eq!(run.code, 4, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "no_access");
    assert_eq!(json["granted"], serde_json::json!([]));
    assert!(
        json["explanation"]
            .as_str()
            .unwrap()
            .contains("belongs to another project"),
        "{json}"
    );
}

#[tokio::test]
async fn push_access_needs_write_registry() {
    let w = world().await;
    let reader = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);
    let writer = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry", "write_registry"]);

    let refused = w.check("acme/api", &reader, &["--access", "push"]).await;
    let allowed = w
        .check(
            "acme/api",
            &writer,
            &["--access", "push", "--output", "json"],
        )
        .await;

    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stdout.contains("needs the write_registry scope"),
        "{}",
        refused.stdout
    );
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert_eq!(
        allowed.json()["granted"],
        serde_json::json!(["pull", "push"])
    );
}

#[tokio::test]
async fn a_group_deploy_token_reaches_the_projects_of_its_group() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.gitlab.group_owner("acme"), &["read_registry"]);
    let other = w
        .gitlab
        .add_deploy_token(w.gitlab.group_owner("other"), &["read_registry"]);

    assert_eq!(w.check("acme/api", &token, &[]).await.code, 0);
    assert_eq!(w.check("acme/api", &other, &[]).await.code, 4);
}

#[tokio::test]
async fn a_project_access_token_works_with_any_username() {
    let w = world().await;
    let mut token = w
        .gitlab
        .add_access_token(w.project("acme/api"), "ci", &["read_registry"]);
    token.username = "anything".into();

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test]
async fn a_grant_the_registry_itself_refuses_means_no_access() {
    // GitLab signing with a key the registry does not trust: the realm says yes, the
    // registry says no. The check believes the registry.
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);
    w.gitlab.set_sign_with_untrusted_key(true);

    let run = w.check("acme/api", &token, &[]).await;

    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout.contains("the registry refused to list acme/api"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_registry_nobody_listens_at_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    gitlab.add_project("acme/api");
    let token = gitlab.add_deploy_token(gitlab.project_owner("acme/api"), &["read_registry"]);
    let closed = crate::support::server::closed_port();
    let url = format!("http://127.0.0.1:{}", closed.port());

    let run = check_at(&url, "acme/api", &token, &[]).await;

    assert_eq!(run.code, 5, "{run:?}");
    assert!(
        run.stdout
            .starts_with("unreachable: cannot reach the registry: cannot connect"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_realm_nobody_listens_at_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    let closed = crate::support::server::closed_port();
    let dead_realm = format!("http://127.0.0.1:{}/jwt/auth", closed.port());
    let registry = Registry::start(
        dir.path(),
        Auth::Token {
            realm: &dead_realm,
            signer_cert: gitlab.signer_cert(),
        },
        None,
    )
    .await;
    gitlab.add_project("acme/api");
    let token = gitlab.add_deploy_token(gitlab.project_owner("acme/api"), &["read_registry"]);

    let run = check_at(&registry.url, "acme/api", &token, &[]).await;

    assert_eq!(run.code, 5, "{run:?}");
    assert!(
        run.stdout
            .contains("cannot reach the registry's token realm"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_url_that_serves_no_registry_api_is_reported_as_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let gitlab = FakeGitlab::start(dir.path()).await;
    gitlab.add_project("acme/api");
    let token = gitlab.add_deploy_token(gitlab.project_owner("acme/api"), &["read_registry"]);

    // The fake GitLab answers 404 on /v2/: a wrong --registry.
    let run = check_at(&gitlab.url(), "acme/api", &token, &[]).await;

    assert_eq!(run.code, 5, "{run:?}");
    assert!(
        run.stdout
            .contains("does not serve the Docker Registry v2 API"),
        "{}",
        run.stdout
    );
}

async fn tls_world(dir: &Path) -> (FakeGitlab, Registry, crate::support::pki::PrivateCa) {
    let gitlab = FakeGitlab::start(dir).await;
    let ca = crate::support::pki::PrivateCa::generate(dir);
    let registry = Registry::start(
        dir,
        Auth::Token {
            realm: &gitlab.realm(),
            signer_cert: gitlab.signer_cert(),
        },
        Some(Tls {
            cert: &ca.server_cert,
            key: &ca.server_key,
            ca: &ca.ca_path,
        }),
    )
    .await;
    let push = gitlab.mint_registry_jwt("acme/api", &["pull", "push"]);
    push_image(&registry.url, Some(&ca.ca_path), "acme/api", "v1", &push).await;
    (gitlab, registry, ca)
}

#[tokio::test]
async fn a_registry_behind_a_private_ca_is_trusted_with_ca_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let (gitlab, registry, ca) = tls_world(dir.path()).await;
    gitlab.add_project("acme/api");
    let token = gitlab.add_deploy_token(gitlab.project_owner("acme/api"), &["read_registry"]);
    let ca_file = ca.ca_path.to_str().unwrap();

    let trusted = check_at(&registry.url, "acme/api", &token, &["--ca-file", ca_file]).await;
    let untrusted = check_at(&registry.url, "acme/api", &token, &[]).await;

    assert!(registry.url.starts_with("https://"));
    assert_eq!(trusted.code, 0, "{trusted:?}");
    assert_eq!(untrusted.code, 5, "{untrusted:?}");
    assert!(
        untrusted.stdout.contains("--ca-file"),
        "{}",
        untrusted.stdout
    );
}

#[tokio::test]
async fn a_basic_auth_registry_is_checked_with_the_credential_itself() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "robot", "s3cret-robot-token"])
        .output()
        .expect("the htpasswd command (apache2-utils) is needed; ci/test.sh installs it");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let registry = Registry::start(dir.path(), Auth::Htpasswd { file: &htpasswd }, None).await;
    let good = Issued {
        id: 0,
        username: "robot".into(),
        token: "s3cret-robot-token".into(),
    };
    let bad = Issued {
        token: "wrong-robot-token".into(),
        ..good.clone()
    };

    let ok = check_at(&registry.url, "acme/api", &good, &["--output", "json"]).await;
    let rejected = check_at(&registry.url, "acme/api", &bad, &[]).await;

    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.json()["auth"], "basic");
    assert_eq!(rejected.code, 3, "{rejected:?}");
}

#[tokio::test]
async fn the_password_can_come_from_the_environment() {
    let w = world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.project("acme/api"), &["read_registry"]);

    let run = regwarden([
        "check",
        "--registry",
        &w.registry.url,
        "--repository",
        "acme/api",
        "--username",
        &token.username,
    ])
    .env("REGWARDEN_PASSWORD", &token.token)
    .run()
    .await;

    assert_eq!(run.code, 0, "{run:?}");
    run.assert_never_shows(&token.token);
    drop(w.dir);
}

#[tokio::test]
async fn without_a_password_the_check_explains_where_to_give_one() {
    let run = regwarden([
        "check",
        "--registry",
        "http://127.0.0.1:9",
        "--repository",
        "acme/api",
        "--username",
        "u",
    ])
    .run()
    .await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--password-stdin"), "{}", run.stderr);
    assert!(run.stderr.contains("REGWARDEN_PASSWORD"), "{}", run.stderr);
}

#[tokio::test]
async fn a_password_flag_does_not_exist() {
    let run = regwarden([
        "check",
        "--registry",
        "http://127.0.0.1:9",
        "--repository",
        "acme/api",
        "--username",
        "u",
        "--password",
        "gldt-would-end-up-in-shell-history",
    ])
    .run()
    .await;

    assert_eq!(run.code, 2, "{run:?}");
    run.assert_never_shows("gldt-would-end-up-in-shell-history");
}

#[tokio::test]
async fn credentials_in_the_registry_url_are_refused() {
    let run = regwarden([
        "check",
        "--registry",
        "https://robot:gldt-in-url@registry.example.com",
        "--repository",
        "acme/api",
        "--username",
        "u",
    ])
    .env("REGWARDEN_PASSWORD", "x")
    .run()
    .await;

    assert_eq!(run.code, 2, "{run:?}");
    run.assert_never_shows("gldt-in-url");
}

#[tokio::test]
async fn a_service_account_token_reaches_a_registry_through_its_role_only() {
    let w = world().await;
    let user = w
        .gitlab
        .add_service_account(w.gitlab.group_home("acme"), "regwarden-pull");
    let pat = w
        .gitlab
        .add_account_token(user, &["read_registry", "write_registry"]);

    let stranger = w.check("acme/api", &pat, &[]).await;
    w.gitlab.add_member(user, w.project("acme/api"), 20);
    let reporter_pull = w.check("acme/api", &pat, &[]).await;
    let reporter_push = w.check("acme/api", &pat, &["--access", "push"]).await;
    w.gitlab.add_member(user, w.gitlab.group_owner("acme"), 30);
    let developer_push = w.check("acme/api", &pat, &["--access", "push"]).await;

    assert_eq!(stranger.code, 4, "no role, no access: {stranger:?}");
    assert_eq!(reporter_pull.code, 0, "{reporter_pull:?}");
    assert_eq!(
        reporter_push.code, 4,
        "a Reporter cannot push: {reporter_push:?}"
    );
    assert_eq!(
        developer_push.code, 0,
        "Developer through the group pushes: {developer_push:?}"
    );
}
