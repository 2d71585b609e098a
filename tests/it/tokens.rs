//! `regwarden tokens`: the inventory of the tokens the bindings depend on (never a secret),
//! the page when a token Qovery holds and regwarden does not manage is about to expire, and
//! the same figures on the server's `/metrics`.

use std::time::Duration;

use chrono::Utc;

use crate::support::gitlab::Owner;
use crate::support::world::{ORG, PROJECT, QOVERY_REGISTRY, Settings, World};

/// The inventory's entries as (kind, name-or-username, managed, held_by), sorted.
fn entries(json: &serde_json::Value) -> Vec<(String, String, bool, Option<String>)> {
    let mut out: Vec<_> = json["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_string(),
                t["name"].as_str().unwrap().to_string(),
                t["managed"].as_bool().unwrap(),
                t["held_by"].as_str().map(str::to_string),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_inventory_lists_every_token_with_who_made_it_and_which_one_qovery_holds() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let ours = w.held_token().unwrap();
    let theirs = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner(PROJECT), &["read_registry"]);
    let theirs_name = w
        .gitlab
        .deploy_tokens()
        .into_iter()
        .find(|t| t.id == theirs.id)
        .unwrap()
        .name;

    let run = w.regwarden(&["tokens", "--output", "json"]).await;
    let text = w.regwarden(&["tokens"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        entries(&run.json()),
        [
            ("api_token".into(), "regwarden-admin".into(), false, None),
            ("deploy_token".into(), theirs_name.clone(), false, None),
            (
                "deploy_token".into(),
                ours.name.clone(),
                true,
                Some(QOVERY_REGISTRY.into())
            ),
        ]
    );
    assert!(
        text.stdout.lines().any(|l| l.starts_with(&format!(
            "api: deploy_token {} {:?} user {} [read_registry] expires ",
            ours.id, ours.name, ours.username
        )) && l
            .ends_with(", managed, held by Qovery registry \"gitlab-acme-api\"")),
        "{}",
        text.stdout
    );
    for secret in w
        .token_secrets()
        .iter()
        .chain([&w.gitlab_token, &w.qovery_token])
    {
        run.assert_never_shows(secret);
        text.assert_never_shows(secret);
    }
}

#[tokio::test]
async fn a_hand_made_credential_qovery_holds_pages_someone_before_it_expires() {
    let w = World::start().await;
    let theirs = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner(PROJECT), &["read_registry"]);
    let in_ten_days = Utc::now() + chrono::Duration::days(10);
    for t in w.gitlab.state.lock().unwrap().deploy_tokens.iter_mut() {
        t.expires_at = Some(in_ten_days);
    }
    w.qovery.add_hand_made_registry(
        ORG,
        QOVERY_REGISTRY,
        &w.registry_url,
        &[],
        &theirs.username,
        &theirs.token,
    );

    let soon = w
        .regwarden(&["tokens", "--within", "30d", "--output", "json"])
        .await;
    let later = w.regwarden(&["tokens", "--within", "5d"]).await;

    assert_eq!(soon.code, 1, "{soon:?}");
    let held: Vec<_> = entries(&soon.json())
        .into_iter()
        .filter(|e| e.3.is_some())
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!((held[0].0.as_str(), held[0].2), ("deploy_token", false));
    assert!(
        soon.stderr.contains(&format!(
            "Qovery registry \"gitlab-acme-api\" holds deploy_token {}, which regwarden does not manage, and it expires on {}",
            held[0].1,
            in_ten_days.format("%Y-%m-%d")
        )),
        "{}",
        soon.stderr
    );
    assert_eq!(later.code, 0, "nothing within 5 days: {later:?}");
    assert_eq!(later.stdout.trim(), "no tokens", "{}", later.stdout);
    soon.assert_never_shows(&theirs.token);
}

#[tokio::test]
async fn the_server_keeps_the_soonest_expiry_per_binding_kind_and_management_on_metrics() {
    let (w, s) = World::served(Settings::default(), "reconcile_interval = \"1h\"", &[]).await;

    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.metrics().await.1;
        if metrics.contains("regwarden_token_expiry_seconds{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("regwarden_token_expiry_seconds{")
                && l.contains("binding=\"api\"")
                && l.contains("kind=\"deploy_token\"")
                && l.contains("managed=\"true\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let thirty_days = 30 * 86_400;
    assert!(
        (thirty_days - 120..=thirty_days).contains(&seconds),
        "the token made with the default 30d lifetime: {line}"
    );
    for secret in w.token_secrets() {
        assert!(!metrics.contains(&secret));
    }
    s.terminate().await;
}

#[tokio::test]
async fn a_persons_token_qovery_holds_is_shown_and_paged_though_its_expiry_is_unseen() {
    let w = World::start().await;
    let pat = w
        .gitlab
        .add_access_token(Owner::User, "alice-laptop", &["read_registry"]);
    w.qovery.add_hand_made_registry(
        ORG,
        QOVERY_REGISTRY,
        &w.registry_url,
        &[],
        "alice",
        &pat.token,
    );

    let run = w
        .regwarden(&["tokens", "--within", "30d", "--output", "json"])
        .await;

    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        entries(&run.json()),
        [(
            "unknown".into(),
            "a credential regwarden cannot list".into(),
            false,
            Some(QOVERY_REGISTRY.into())
        )]
    );
    assert_eq!(run.json()["tokens"][0]["username"], "alice");
    assert!(
        run.stderr
            .contains("expires at a time regwarden cannot see: the next reconcile pass takes the registry over"),
        "{}",
        run.stderr
    );
    run.assert_never_shows(&pat.token);
}
