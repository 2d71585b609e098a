//! The self-managed GitLab checklist (`config check --online`): what Qovery needs of the
//! registry, checked from regwarden's side against the real registry and the fakes. Every
//! item that fails exits 1 and says what to change.

use serde_json::Value;

use crate::support::gitlab::RegistryAccess;
use crate::support::world::{PROJECT, Settings, World, host_port};

/// `config check --online --output json`: its exit code and the checklist's findings.
async fn checklist(w: &World, env: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let run = w
        .regwarden_env(&["config", "check", "--online", "--output", "json"], env)
        .await;
    let json = run.json();
    let findings = json["findings"].as_array().unwrap().clone();
    (run.code, findings)
}

/// The finding of checklist item `check` (its subject starts with the item's name).
fn item(findings: &[Value], check: &str) -> Value {
    let prefix = format!("{check} ");
    let mine: Vec<&Value> = findings
        .iter()
        .filter(|f| f["subject"].as_str().unwrap().starts_with(&prefix))
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one {check} finding expected in {findings:#?}"
    );
    mine[0].clone()
}

fn status(f: &Value) -> &str {
    f["status"].as_str().unwrap()
}

fn message(f: &Value) -> &str {
    f["message"].as_str().unwrap()
}

fn private_network() -> Settings {
    Settings {
        qovery: "private_network = true",
        ..Settings::default()
    }
}

/// Rewrites one line of the world's configuration file.
fn edit_config(w: &World, from: &str, to: &str) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(&w.config, text.replace(from, to)).unwrap();
}

#[tokio::test]
async fn every_item_holds_for_a_registry_qovery_can_use() {
    let w = World::with(private_network()).await;
    w.reconcile(&[]).await;

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 0, "{findings:#?}");
    let host = host_port(&w.registry_url);
    for check in [
        "registry_enabled",
        "registry_url",
        "realm",
        "tls",
        "reachable",
        "qovery_registry",
    ] {
        let f = item(&findings, check);
        assert_eq!(status(&f), "ok", "{f}");
    }
    assert_eq!(item(&findings, "realm")["subject"], format!("realm {host}"));
    assert!(
        message(&item(&findings, "tls")).contains("verifies against public roots"),
        "{findings:#?}"
    );
    assert!(
        message(&item(&findings, "reachable")).contains("qovery.private_network = true"),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn a_chain_only_ca_file_makes_valid_is_a_failure_qovery_cannot_get_past() {
    let w = World::with(private_network()).await;

    // The world's CA is not among the public roots.
    let (code, findings) = checklist(&w, &[("REGWARDEN_TEST_PUBLIC_ROOTS", "")]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let tls = item(&findings, "tls");
    assert_eq!(status(&tls), "fail");
    assert!(
        message(&tls).contains("valid only with gitlab.ca_file")
            && message(&tls).contains("Qovery cannot be given a private CA")
            && message(&tls).contains("certificate from a public CA"),
        "{tls}"
    );

    // Without ca_file either, nothing vouches for it.
    edit_config(&w, &format!("ca_file = \"{}\"\n", w.ca.display()), "");
    let (code, findings) = checklist(&w, &[("REGWARDEN_TEST_PUBLIC_ROOTS", "")]).await;
    assert_eq!(code, 1);
    let tls = item(&findings, "tls");
    assert!(
        message(&tls).contains("does not verify against public roots"),
        "{tls}"
    );
}

#[tokio::test]
async fn a_plain_http_registry_is_a_failure_for_qovery() {
    let w = World::with(Settings {
        plain_http_registry: true,
        ..private_network()
    })
    .await;
    assert!(w.registry_url.starts_with("http://"));

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let tls = item(&findings, "tls");
    assert_eq!(status(&tls), "fail");
    assert!(
        message(&tls).contains("plain http") && message(&tls).contains("https://"),
        "{tls}"
    );
    // The other items are still checked.
    assert_eq!(status(&item(&findings, "realm")), "ok");
}

#[tokio::test]
async fn a_registry_url_without_the_port_gitlab_reports_is_named_with_gitlabs_address() {
    let w = World::with(private_network()).await;
    let host = host_port(&w.registry_url);
    let without_port = format!("https://{}", host.split(':').next().unwrap());
    edit_config(
        &w,
        &format!("registry_url = \"{}\"", w.registry_url),
        &format!("registry_url = \"{without_port}\""),
    );

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let url = item(&findings, "registry_url");
    assert_eq!(status(&url), "fail");
    let port = host.rsplit(':').next().unwrap();
    assert!(
        message(&url).contains(&format!("the port :{port} is missing"))
            && message(&url).contains(&format!("set gitlab.registry_url = \"https://{host}\"")),
        "{url}"
    );
}

#[tokio::test]
async fn without_registry_url_regwarden_uses_the_registry_gitlab_reports() {
    let w = World::with(private_network()).await;
    edit_config(&w, &format!("registry_url = \"{}\"\n", w.registry_url), "");

    let (code, findings) = checklist(&w, &[]).await;
    assert_eq!(code, 0, "{findings:#?}");
    let url = item(&findings, "registry_url");
    assert!(
        message(&url).contains(&format!(
            "not set: regwarden uses https://{}",
            host_port(&w.registry_url)
        )),
        "{url}"
    );

    // The pass checks the new credential against that registry and hands it to Qovery.
    let (code, outcomes) = w.outcomes(&[]).await;
    assert_eq!(code, 0, "{outcomes:?}");
    assert_eq!(outcomes["api"], "rotated");
    assert!(w.qovery_can_pull().await);
    let written = w
        .qovery
        .registry_named(crate::support::world::QOVERY_REGISTRY)
        .unwrap();
    assert_eq!(
        written.url.trim_end_matches('/'),
        w.registry_url.trim_end_matches('/')
    );
}

#[tokio::test]
async fn a_project_with_its_registry_disabled_is_named_with_the_setting() {
    let w = World::with(private_network()).await;
    w.gitlab
        .set_registry_access(PROJECT, RegistryAccess::Disabled);

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let f = item(&findings, "registry_enabled");
    assert_eq!(f["subject"], format!("registry_enabled {PROJECT}"));
    assert!(
        message(&f).contains("container_registry_access_level")
            && message(&f).contains("Settings > General"),
        "{f}"
    );
}

#[tokio::test]
async fn an_instance_without_a_registry_is_a_failure() {
    let w = World::with(private_network()).await;
    w.gitlab.set_registry_host_port(None);

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let f = item(&findings, "registry_enabled");
    assert!(
        message(&f).contains("no container registry on this instance"),
        "{f}"
    );
}

#[tokio::test]
async fn a_realm_on_another_host_is_a_failure() {
    // The fake GitLab listens on 127.0.0.1; `localhost` names the same server under another
    // host, as a registry of another GitLab (or a wrong auth.token.realm) would.
    let w = World::with(Settings {
        realm_host: Some("localhost"),
        ..private_network()
    })
    .await;

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let f = item(&findings, "realm");
    assert_eq!(status(&f), "fail");
    let realm = w.gitlab.realm().replacen("127.0.0.1", "localhost", 1);
    assert!(
        message(&f).contains(&format!("sends clients to {realm}"))
            && message(&f).contains(&format!("not to this GitLab's {}", w.gitlab.realm()))
            && message(&f).contains("auth.token.realm"),
        "{f}"
    );
}

#[tokio::test]
async fn a_certificate_that_expires_within_30_days_is_a_warning_with_its_date() {
    let w = World::with(Settings {
        certificate_days: 10,
        ..private_network()
    })
    .await;

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 0, "a warning is not a failure: {findings:#?}");
    let tls = item(&findings, "tls");
    assert_eq!(status(&tls), "warn");
    let in_ten_days = chrono::Utc::now() + chrono::Duration::days(10);
    let date = in_ten_days.format("%Y-%m-%d").to_string();
    let day_before = (in_ten_days - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        (message(&tls).contains(&date) || message(&tls).contains(&day_before))
            && message(&tls).contains("renew it"),
        "{tls}"
    );
}

#[tokio::test]
async fn a_loopback_registry_is_a_warning_unless_qovery_runs_in_that_network() {
    let w = World::start().await;

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 0, "{findings:#?}");
    let f = item(&findings, "reachable");
    assert_eq!(status(&f), "warn");
    assert!(
        message(&f).contains("127.0.0.1")
            && message(&f).contains("Qovery's managed clusters cannot reach it")
            && message(&f).contains("qovery.private_network = true"),
        "{f}"
    );
    // Before the first pass, the binding's Qovery registry is yet to be made.
    let q = item(&findings, "qovery_registry");
    assert_eq!(status(&q), "ok");
    assert!(message(&q).contains("does not exist yet"), "{q}");
}

#[tokio::test]
async fn qovery_registries_with_another_url_or_the_wrong_kind_are_named_with_the_fix() {
    let w = World::with(private_network()).await;
    let host = host_port(&w.registry_url);
    let ip = host.split(':').next().unwrap();
    // Set up by hand from Qovery's guide: the port left out.
    w.qovery.add_hand_made_registry(
        crate::support::world::ORG,
        "no-port",
        &format!("https://{ip}"),
        &[],
        "someone",
        "a-password",
    );
    // GITLAB_CR for a self-managed registry, which Qovery fixes to registry.gitlab.com.
    let wrong_kind = w.qovery.add_hand_made_registry(
        crate::support::world::ORG,
        "wrong-kind",
        &w.registry_url,
        &[],
        "someone",
        "a-password",
    );
    w.qovery.set_registry_kind(&wrong_kind, "GITLAB_CR");

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let named = |name: &str| {
        findings
            .iter()
            .find(|f| f["subject"] == format!("qovery_registry qovery registry {name:?}"))
            .cloned()
            .unwrap_or_else(|| panic!("no finding about {name} in {findings:#?}"))
    };
    let no_port = named("no-port");
    assert_eq!(status(&no_port), "fail");
    assert!(
        message(&no_port).contains(&format!(
            "the port :{} is missing",
            host.rsplit(':').next().unwrap()
        )) && message(&no_port).contains(&format!("set its URL to https://{host}")),
        "{no_port}"
    );
    let kind = named("wrong-kind");
    assert_eq!(status(&kind), "fail");
    assert!(
        message(&kind).contains("GITLAB_CR") && message(&kind).contains("GENERIC_CR"),
        "{kind}"
    );
}

#[tokio::test]
async fn every_pass_reports_the_checklist_once_for_the_registry_host() {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let project_reads = w.gitlab.calls("GET /api/v4/projects/{id}");
    let qovery_calls = w.qovery.faults.lock().unwrap().total_calls();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["bindings"][0]["outcome"], "healthy");
    let checklist = &json["checklist"];
    assert_eq!(
        checklist["registry"].as_str().unwrap(),
        w.registry_url.trim_end_matches('/')
    );
    let findings = checklist["findings"].as_array().unwrap();
    let of = |check: &str| {
        findings
            .iter()
            .filter(|f| f["check"] == check)
            .cloned()
            .collect::<Vec<_>>()
    };
    for check in ["registry_url", "realm", "tls", "reachable"] {
        assert_eq!(
            of(check).len(),
            1,
            "{check} once for the host: {findings:#?}"
        );
    }
    assert_eq!(of("reachable")[0]["status"], "warn");
    assert_eq!(of("tls")[0]["status"], "ok");
    assert_eq!(of("qovery_registry")[0]["status"], "ok");
    // One GitLab read for the host, and nothing more of Qovery than the pass's own list.
    assert_eq!(
        w.gitlab.calls("GET /api/v4/projects/{id}") - project_reads,
        1
    );
    assert_eq!(
        w.qovery.faults.lock().unwrap().total_calls() - qovery_calls,
        1,
        "the pass's one list of registries"
    );

    let text = w.reconcile(&[]).await;
    let host = host_port(&w.registry_url);
    assert!(
        text.stdout.contains(&format!(
            "registry {host}: the self-managed GitLab checklist (config check --online):\n  warn reachable {host}: 127.0.0.1 is an address that is private, loopback or link-local"
        )),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn an_item_that_fails_is_reported_by_the_pass_without_failing_it() {
    let w = World::with(private_network()).await;

    let run = w
        .regwarden_env(
            &["reconcile", "--output", "json"],
            &[("REGWARDEN_TEST_PUBLIC_ROOTS", "")],
        )
        .await;

    assert_eq!(run.code, 0, "the bindings decide the exit code: {run:?}");
    let json = run.json();
    assert_eq!(json["bindings"][0]["outcome"], "rotated");
    let tls = json["checklist"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "tls")
        .cloned()
        .unwrap();
    assert_eq!(tls["status"], "fail", "{tls}");

    let text = w
        .regwarden_env(&["reconcile"], &[("REGWARDEN_TEST_PUBLIC_ROOTS", "")])
        .await;
    assert!(
        text.stdout.contains("  FAIL tls ")
            && text.stdout.contains("valid only with gitlab.ca_file"),
        "{}",
        text.stdout
    );
    // With every item holding, one line says so.
    let quiet = w.reconcile(&[]).await;
    assert!(
        quiet
            .stdout
            .contains("the self-managed GitLab checklist holds ("),
        "{}",
        quiet.stdout
    );
}

#[tokio::test]
async fn the_timers_pass_shows_the_checklist_on_metrics() {
    let (w, s) = World::served(
        Settings {
            realm_host: Some("localhost"),
            ..Settings::default()
        },
        "reconcile_interval = \"1h\"",
        &[],
    )
    .await;

    let (_, metrics) = s.metrics().await;

    let host = host_port(&w.registry_url);
    let gauge = |check: &str| {
        let prefix = format!("regwarden_registry_checklist{{host=\"{host}\",check=\"{check}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("no gauge for {check} in\n{metrics}"))
    };
    assert_eq!(
        gauge("realm"),
        "0",
        "a realm on another host than this GitLab's"
    );
    assert_eq!(gauge("tls"), "1");
    assert_eq!(gauge("reachable"), "1", "a warning holds");
    assert_eq!(gauge("registry_url"), "1");
    s.kill().await;
}

#[tokio::test]
async fn bound_projects_groups_and_rule_groups_that_do_not_exist_are_named() {
    let w = World::with(Settings {
        extra: "\n[[binding]]\nname = \"ghost\"\nproject = \"acme/missing\"\nqovery_registry = \"gitlab-ghost\"\n\n\
                [[binding]]\nname = \"team\"\ngroup = \"nobody/here\"\nrepository = \"nobody/here/x\"\nqovery_registry = \"gitlab-team\"\n\n\
                [[auto_bind]]\ngroup = \"acme/gone\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n"
            .into(),
        ..private_network()
    })
    .await;

    let (code, findings) = checklist(&w, &[]).await;

    assert_eq!(code, 1, "{findings:#?}");
    let failed = |subject: &str| {
        findings
            .iter()
            .find(|f| f["subject"] == subject && f["status"] == "fail")
            .unwrap_or_else(|| panic!("no failure for {subject} in {findings:#?}"))
            .clone()
    };
    assert!(
        message(&failed("registry_enabled project acme/missing")).contains("binding \"ghost\""),
        "{findings:#?}"
    );
    assert!(
        message(&failed("registry_enabled group nobody/here")).contains("binding \"team\""),
        "{findings:#?}"
    );
    assert!(
        message(&failed("auto_bind acme/gone")).contains("acme/gone"),
        "{findings:#?}"
    );
    // The binding that exists is still checked.
    assert!(
        findings.iter().any(|f| f["status"] == "ok"
            && message(f).contains("the container registry is on for 1 bound project(s)")),
        "{findings:#?}"
    );
}
