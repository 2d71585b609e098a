//! `regwarden serve` as GitLab sees it: signed and legacy webhooks through the real router,
//! durable intake and dedupe, the worker acting on a token-expiry event, health, metrics,
//! a kill after 202, and a graceful stop.

use std::time::Duration;

use crate::support::postgres::Postgres;
use crate::support::serving::{LEGACY_SECRET, Serving, signed};
use crate::support::world::{PROJECT, Settings, World};
use serde_json::json;

/// A world with a token in Qovery already, served with a long timer so only webhooks act.
async fn served_world(settings: Settings) -> (World, Serving) {
    World::served(
        settings,
        "reconcile_interval = \"1h\"\nmax_body = \"8KiB\"",
        &["--job-lock", "2s"],
    )
    .await
}

#[tokio::test]
async fn an_expiry_webhook_rotates_its_binding_once_however_often_it_is_delivered() {
    let (w, s) = served_world(Settings::default()).await;
    let old = w.held_token().unwrap();
    let body = w.expiry_payload(old.id, &old.name);

    let (first, answer) = s
        .post_webhook(signed("msg_1", &body, "Resource Deploy Token Hook"), &body)
        .await;
    let (again, again_answer) = s
        .post_webhook(signed("msg_1", &body, "Resource Deploy Token Hook"), &body)
        .await;

    assert_eq!((first, answer.as_str()), (202, r#"{"status":"accepted"}"#));
    assert_eq!(
        (again, again_answer.as_str()),
        (200, r#"{"status":"duplicate"}"#)
    );
    w.eventually("the rotation", || {
        w.held_token().is_some_and(|t| t.id != old.id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.gitlab.calls("POST /api/v4/projects/{id}/deploy_tokens"),
        2,
        "one rotation after the first pass"
    );
    assert!(w.qovery_can_pull().await);
    s.terminate().await;
}

#[tokio::test]
async fn refused_requests_get_a_bare_401_and_gitlab_never_sees_a_4xx_for_what_it_may_send() {
    let (w, s) = served_world(Settings::default()).await;
    let push = r#"{"object_kind":"push","ref":"refs/heads/main"}"#;

    let mut bad_signature = signed("msg_2", push, "Push Hook");
    bad_signature.insert("webhook-signature", "v1,AAAA".parse().unwrap());
    let mut legacy = reqwest::header::HeaderMap::new();
    legacy.insert("x-gitlab-token", LEGACY_SECRET.parse().unwrap());
    legacy.insert("x-gitlab-event", "Push Hook".parse().unwrap());
    let mut wrong_legacy = legacy.clone();
    wrong_legacy.insert("x-gitlab-token", "guess".parse().unwrap());

    assert_eq!(
        s.post_webhook(bad_signature, push).await,
        (401, String::new())
    );
    assert_eq!(
        s.post_webhook(wrong_legacy, push).await,
        (401, String::new())
    );
    assert_eq!(
        s.post_webhook(reqwest::header::HeaderMap::new(), push)
            .await,
        (401, String::new())
    );
    let (code, body) = s.post_webhook(legacy.clone(), push).await;
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ignored"}"#));

    // Authenticated but unreadable: 200, never a 4xx, which GitLab counts toward disabling
    // the hook; the answer says why it was ignored.
    let (code, body) = s
        .post_webhook(signed("msg_3", "{not json", "Push Hook"), "{not json")
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""status":"ignored""#), "{body}");
    assert!(body.contains("the body is not a JSON object"), "{body}");

    let big = format!(
        "{{\"object_kind\":\"push\",\"pad\":\"{}\"}}",
        "x".repeat(10_000)
    );
    assert_eq!(s.post_webhook(legacy, &big).await.0, 413);

    let (_, metrics) = s.metrics().await;
    assert!(
        metrics
            .contains(r#"regwarden_webhook_verification_failures_total{reason="bad_signature"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"regwarden_webhook_deliveries_total{event="ignored",outcome="ignored"} 1"#),
        "{metrics}"
    );
    drop(w);
    s.kill().await;
}

#[tokio::test]
async fn every_fixture_replays_through_the_router_without_a_4xx() {
    let fixtures = crate::support::fixtures::gitlab_deliveries();
    let (w, s) = served_world(Settings::default()).await;
    let mut replayed = 0;
    for d in fixtures {
        let (code, answer) = s
            .post_webhook(
                signed(&format!("fixture-{}", d.file), &d.body, &d.event),
                &d.body,
            )
            .await;
        assert!(code == 200 || code == 202, "{}: {code} {answer}", d.file);
        replayed += 1;
    }
    assert_eq!(replayed, 15);
    let (_, metrics) = s.metrics().await;
    assert!(!metrics.contains(&w.gitlab_token) && !metrics.contains(&w.qovery_token));
    s.kill().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (w, s) = served_world(Settings::default()).await;

    assert_eq!(s.get("/healthz").await, (200, "ok".into()));
    assert_eq!(s.get("/readyz").await, (200, "ready".into()));
    let (code, metrics) = s.metrics().await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("regwarden_jobs{status=\"queued\"}"),
        "{metrics}"
    );
    for secret in w.token_secrets() {
        assert!(!metrics.contains(&secret));
    }
    // The text is OpenMetrics, and is served as such.
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let http = regwarden::outbound::client(None, Duration::from_secs(10)).unwrap();
    let answer = http.get(&s.metrics_url).send().await.unwrap();
    assert_eq!(
        answer.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // /metrics names bindings, projects and expiries: it is not on the webhook listener, and
    // the metrics listener serves nothing else.
    assert_eq!(s.get("/metrics").await.0, 404);
    let metrics_base = s.metrics_url.trim_end_matches("/metrics");
    for path in ["/healthz", "/webhooks/gitlab"] {
        let r = http
            .get(format!("{metrics_base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    assert!(
        s.metrics_url.starts_with("http://127.0.0.1:"),
        "{}",
        s.metrics_url
    );
    s.kill().await;
}

#[tokio::test]
async fn a_delivery_answered_202_is_acted_on_after_a_kill() {
    let (w, s) = served_world(Settings::default()).await;
    let old = w.held_token().unwrap();
    // A slow GitLab keeps the job in flight when the server dies.
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(400);
    let body = w.expiry_payload(old.id, &old.name);

    let (code, _) = s
        .post_webhook(
            signed("msg_kill", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    assert_eq!(code, 202);
    s.kill().await;
    w.gitlab.faults.lock().unwrap().latency = Duration::ZERO;
    let again = w.serve(&["--job-lock", "2s"]).await;

    w.eventually("the rotation after the restart", || {
        w.held_token().is_some_and(|t| t.id != old.id)
    })
    .await;
    assert!(w.qovery_can_pull().await);
    again.kill().await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let (_w, s) = served_world(Settings::default()).await;
    let status = s.terminate().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_timer_reconciles_without_any_webhook() {
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    assert!(w.qovery_registry().is_none());

    // The first slot's pass runs at start-up.
    let s = w.serve(&[]).await;

    w.eventually("the timer's pass", || w.held_token().is_some())
        .await;
    s.kill().await;
}

#[tokio::test]
async fn without_a_webhook_secret_the_timer_runs_and_webhooks_are_off() {
    // Timer-only use: no hook points here, so no secret is configured.
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;

    let s = w.serve_without_webhook_secrets(&[]).await;

    w.eventually("the timer's pass", || w.held_token().is_some())
        .await;
    let log = w.server_log();
    assert!(
        log.contains("webhooks are off: no webhook secret is configured")
            && log.contains("$REGWARDEN_WEBHOOK_SECRET")
            && log.contains("every 1h"),
        "{log}"
    );
    // Even a delivery that would verify elsewhere: there is nothing to verify it with.
    let token = w.held_token().unwrap();
    let body = w.expiry_payload(token.id, &token.name);
    let (code, answer) = s
        .post_webhook(
            signed("msg_off", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    assert_eq!(code, 404, "{answer}");
    assert!(
        answer.contains("webhooks are off") && answer.contains("server.secret_tokens_env"),
        "{answer}"
    );
    assert_eq!(w.active_tokens().len(), 1, "the delivery did nothing");
    s.kill().await;
}

#[tokio::test]
async fn a_webhook_secret_named_but_unreadable_still_stops_the_server() {
    let w = World::with(Settings {
        extra: "\n[server]\nsecret_tokens_file = \"/nonexistent/regwarden-secret\"\n".into(),
        ..Settings::default()
    })
    .await;

    let run = w.regwarden(&["serve", "--listen", "127.0.0.1:0"]).await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("server.secret_tokens_file")
            || run.stderr.contains("/nonexistent/regwarden-secret"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_gets_503_not_a_lost_delivery() {
    let pg = Postgres::start();
    let (w, s) = served_world(Settings {
        store_url: Some(pg.url.clone()),
        ..Settings::default()
    })
    .await;
    let old = w.held_token().unwrap();
    let body = w.expiry_payload(old.id, &old.name);
    drop(pg);

    let (code, answer) = s
        .post_webhook(
            signed("msg_503", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    let (ready, _) = s.get("/readyz").await;

    assert_eq!(
        (code, answer.as_str()),
        (503, r#"{"status":"store_unavailable"}"#)
    );
    assert_eq!(ready, 503);
    s.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_postgres_run_each_job_once_and_rotate_once() {
    let pg = Postgres::start();
    let w = World::with(Settings {
        store_url: Some(pg.url.clone()),
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(30);

    // Both start in the same timer slot: one pass between them provisions the binding.
    let (a, b) = tokio::join!(w.serve(&[]), w.serve(&[]));
    w.eventually("the timer's pass", || w.held_token().is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        w.gitlab.calls("POST /api/v4/projects/{id}/deploy_tokens"),
        1
    );

    // GitLab delivers the same expiry event to both (a retry that hit the other replica).
    let old = w.held_token().unwrap();
    let body = w.expiry_payload(old.id, &old.name);
    let headers = signed("msg_twice", &body, "Resource Deploy Token Hook");
    let (first, second) = tokio::join!(
        a.post_webhook(headers.clone(), &body),
        b.post_webhook(headers, &body)
    );
    let mut codes = [first.0, second.0];
    codes.sort();
    assert_eq!(codes, [200, 202], "{first:?} {second:?}");
    w.eventually("the rotation", || {
        w.held_token().is_some_and(|t| t.id != old.id)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        w.gitlab.calls("POST /api/v4/projects/{id}/deploy_tokens"),
        2,
        "one rotation for one event"
    );
    assert!(w.qovery_can_pull().await);
    a.kill().await;
    b.kill().await;
}

fn system_hook(event: &str, project_id: u64, path: &str) -> String {
    json!({
        "created_at": "2026-11-24T07:30:58Z", "updated_at": "2026-11-24T07:38:22Z",
        "event_name": event, "name": path.rsplit('/').next().unwrap(), "path": path.rsplit('/').next().unwrap(),
        "path_with_namespace": path, "project_id": project_id, "project_namespace_id": 1,
        "owner_name": "A", "owner_email": "a@example.com", "owners": [], "project_visibility": "private"
    })
    .to_string()
}

#[tokio::test]
async fn a_destroyed_project_loses_its_unused_qovery_registry_and_keeps_a_used_one() {
    let (w, s) = served_world(Settings::default()).await;
    let project_id = w.gitlab.project_id(PROJECT);
    let body = system_hook("project_destroy", project_id, PROJECT);
    w.gitlab.destroy_project(PROJECT);

    // Used by two services: kept, with a warning in the journal.
    let registry_id = w.qovery_registry().unwrap().id;
    for name in ["api", "worker"] {
        w.qovery
            .add_service(&registry_id, "CONTAINER", name, "production", "acme/api:v1");
    }
    let (code, _) = s
        .post_webhook(signed("msg_destroy_1", &body, "System Hook"), &body)
        .await;
    assert_eq!(code, 202);
    let history =
        || async { w.regwarden(&["history", "--output", "json"]).await.json()["entries"].clone() };
    for _ in 0..100 {
        if history().await.to_string().contains("delete_registry") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = history().await;
    assert_eq!(h[0]["step"], "delete_registry");
    assert_eq!(h[0]["outcome"], "kept");
    assert!(
        h[0]["reason"]
            .as_str()
            .unwrap()
            .contains("2 service(s) still use"),
        "{h}"
    );
    assert!(w.qovery_registry().is_some());

    // Unused: deleted.
    w.qovery.remove_services(&registry_id);
    let (code, _) = s
        .post_webhook(signed("msg_destroy_2", &body, "System Hook"), &body)
        .await;
    assert_eq!(code, 202);
    w.eventually("the registry's deletion", || w.qovery_registry().is_none())
        .await;
    s.kill().await;
}

#[tokio::test]
async fn a_project_created_under_an_auto_bind_group_is_provisioned() {
    let (w, s) = served_world(Settings {
        extra:
            "\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n"
                .into(),
        ..Settings::default()
    })
    .await;
    let id = w.gitlab.add_project("acme/web");
    let body = json!({
        "event_name": "project_create", "created_at": "2026-11-24T10:43:48Z", "updated_at": "2026-11-24T10:43:48Z",
        "name": "web", "path": "web", "path_with_namespace": "acme/web", "project_id": id,
        "project_namespace_id": 1, "owners": [], "project_visibility": "private"
    })
    .to_string();

    let (code, _) = s
        .post_webhook(signed("msg_create", &body, "Project Hook"), &body)
        .await;

    assert_eq!(code, 202);
    w.eventually("the new project's registry", || {
        w.qovery.registry_named("gitlab-acme-web").is_some()
    })
    .await;
    s.kill().await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_dead_in_history_and_metrics() {
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = w.serve(&["--job-attempts", "1"]).await;
    let old = w.held_token().unwrap();
    // Qovery refuses every new credential from now on.
    w.qovery.fail(
        "PUT /organization/{organizationId}/containerRegistry/{containerRegistryId}",
        crate::support::faults::Fault::Status(400, None),
        100,
    );
    let body = w.expiry_payload(old.id, &old.name);

    let (code, _) = s
        .post_webhook(
            signed("msg_dead", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    assert_eq!(code, 202);

    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.metrics().await.1;
        if metrics.contains("regwarden_jobs{status=\"dead\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("regwarden_jobs{status=\"dead\"} 1"),
        "{metrics}"
    );
    let history = w.regwarden(&["history", "--binding", "(server)"]).await;
    assert!(history.stdout.contains("job dead"), "{}", history.stdout);
    assert!(
        history.stdout.contains("Qovery refused the new credential"),
        "{}",
        history.stdout
    );
    assert_eq!(
        w.held_token().unwrap().id,
        old.id,
        "Qovery kept the old token"
    );
    s.kill().await;
}

#[tokio::test]
async fn sigterm_lets_a_running_job_finish_before_exiting() {
    let (w, s) = served_world(Settings::default()).await;
    let old = w.held_token().unwrap();
    // A slow GitLab: the rotation takes a few seconds.
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(400);
    let body = w.expiry_payload(old.id, &old.name);
    let (code, _) = s
        .post_webhook(
            signed("msg_term", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = s.terminate().await;

    assert!(status.success(), "{status}");
    let held = w.held_token().unwrap();
    assert_ne!(
        held.id,
        old.id,
        "the job in flight finished: server log\n{}",
        w.server_log()
    );
    assert!(w.qovery_can_pull().await);
}

#[tokio::test]
async fn a_renamed_project_is_checked_again_with_a_new_token_once() {
    let (w, s) = served_world(Settings::default()).await;
    let old = w.held_token().unwrap();
    let project_id = w.gitlab.project_id(PROJECT);
    let rename = |id: &str| {
        let mut body: serde_json::Value =
            serde_json::from_str(&system_hook("project_rename", project_id, "acme/api-v2"))
                .unwrap();
        body["old_path_with_namespace"] = json!(PROJECT);
        let body = body.to_string();
        (signed(id, &body, "System Hook"), body)
    };
    // A rename event GitLab does not confirm (the project is still at acme/api): nothing.
    let (headers, body) = rename("msg_rename_0");
    assert_eq!(s.post_webhook(headers, &body).await.0, 202);
    s.until_idle(&w).await;
    assert_eq!(
        w.held_token().unwrap().id,
        old.id,
        "no rotation for an unconfirmed move"
    );

    w.gitlab.move_project(PROJECT, "acme/api-v2");
    let (headers, body) = rename("msg_rename_1");
    let (code, _) = s.post_webhook(headers, &body).await;

    assert_eq!(code, 202);
    w.eventually("the rotation", || {
        w.held_token().is_some_and(|t| t.id != old.id)
    })
    .await;
    let marker =
        regwarden::marker::Marker::find(&w.qovery_registry().unwrap().description).unwrap();
    assert_eq!(marker.path.as_deref(), Some("acme/api-v2"));
    let rotated = w.held_token().unwrap();
    // The same event again (another hook, a replay with another id): the token Qovery holds
    // was checked at the path GitLab gives now, so nothing more.
    let (headers, body) = rename("msg_rename_2");
    assert_eq!(s.post_webhook(headers, &body).await.0, 202);
    s.until_idle(&w).await;
    assert_eq!(w.held_token().unwrap().id, rotated.id);
    s.kill().await;
}

/// Every value of `v` with the path to it (keys and indexes).
fn json_paths(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    let children: Vec<(String, &serde_json::Value)> = match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        at.push(key);
        json_paths(child, at, out);
        at.pop();
    }
}

fn json_at<'a>(v: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
    path.iter().fold(v, |v, key| match v {
        serde_json::Value::Object(m) => m.get_mut(key).unwrap(),
        serde_json::Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
        _ => unreachable!("paths lead through objects and arrays"),
    })
}

/// `payload` with one to three of its values replaced by what GitLab never sends (or removed),
/// and now and then cut short or with a byte changed.
fn mutate(rng: &mut crate::support::rng::Lcg, payload: &serde_json::Value) -> String {
    let mut v = payload.clone();
    for _ in 0..1 + rng.next_below(3) {
        let mut all = Vec::new();
        json_paths(&v, &mut Vec::new(), &mut all);
        let path = all[rng.index(all.len())].clone();
        let replacement = match rng.next_below(12) {
            0 => {
                if let Some((key, parent)) = path.split_last() {
                    match json_at(&mut v, parent) {
                        serde_json::Value::Object(m) => {
                            m.remove(key);
                        }
                        serde_json::Value::Array(a) => {
                            a.remove(key.parse::<usize>().unwrap());
                        }
                        _ => {}
                    }
                }
                continue;
            }
            1 => serde_json::Value::Null,
            2 => json!(-1),
            3 => json!(u64::MAX),
            4 => json!(1e308),
            5 => json!(""),
            6 => json!("x".repeat(1500)),
            7 => json!({}),
            8 => json!([[], {}, null]),
            9 => json!(true),
            10 => json!("2026-13-45 99:99:99 UTC"),
            _ => json!("\u{0}\u{202e}../../ü\n'\"; DROP TABLE jobs"),
        };
        *json_at(&mut v, &path) = replacement;
    }
    let mut text = v.to_string().into_bytes();
    match rng.next_below(8) {
        0 => text.truncate(rng.index(text.len() + 1)),
        1 if !text.is_empty() => {
            let at = rng.index(text.len());
            text[at] = rng.next_below(256) as u8;
        }
        _ => {}
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[tokio::test]
async fn mutated_deliveries_get_a_clear_answer_and_the_server_keeps_working() {
    let (w, s) = served_world(Settings::default()).await;
    let held = w.held_token().unwrap();
    let project_id = w.gitlab.state.lock().unwrap().projects[0].id;
    // What GitLab sends, as (event header, payload): our own payloads, and GitLab's recorded
    // ones (tests/fixtures/gitlab-webhooks).
    let mut seeds: Vec<(String, serde_json::Value)> = vec![
        (
            "Resource Deploy Token Hook".into(),
            serde_json::from_str(&w.expiry_payload(held.id + 1000, &held.name)).unwrap(),
        ),
        (
            "System Hook".into(),
            serde_json::from_str(&system_hook("project_create", 4242, "acme/fresh")).unwrap(),
        ),
        (
            "System Hook".into(),
            serde_json::from_str(&system_hook(
                "project_rename",
                project_id + 7,
                "acme/renamed",
            ))
            .unwrap(),
        ),
    ];
    for d in crate::support::fixtures::gitlab_deliveries() {
        seeds.push((d.event, serde_json::from_str(&d.body).unwrap()));
    }
    let mut rng = crate::support::rng::Lcg::from_env("REGWARDEN_MUTATION_SEED", "mutation");

    let http = regwarden::outbound::client(None, Duration::from_secs(10)).unwrap();
    let mut answers = std::collections::BTreeMap::new();
    for round in 0..30 {
        for (n, (event, payload)) in seeds.iter().enumerate() {
            let body = mutate(&mut rng, payload);
            let headers = signed(&format!("mut-{round}-{n}"), &body, event);
            let (code, answer) = s.post_webhook_via(&http, headers, &body).await;
            // An authenticated delivery is never answered 4xx for its shape: GitLab disables
            // a hook after four failures in a row (a body over the limit is 413 before anything
            // is read).
            assert!(
                matches!(code, 200 | 202 | 413),
                "{event} answered {code} {answer} for:\n{body}"
            );
            let json = serde_json::from_str::<serde_json::Value>(&answer).unwrap_or_default();
            if json["status"] == "ignored" && json.get("reason").is_some() {
                *answers.entry("unreadable").or_insert(0) += 1;
            } else {
                *answers
                    .entry(if code == 202 { "accepted" } else { "other" })
                    .or_insert(0) += 1;
            }
        }
    }
    eprintln!("answers to mutated deliveries: {answers:?}");
    assert!(
        answers.contains_key("unreadable") && answers.contains_key("accepted"),
        "the storm had both unreadable and accepted deliveries: {answers:?}"
    );

    // Still up, nothing panicked, and a genuine expiry still gets its binding rotated.
    assert_eq!(s.get("/healthz").await, (200, "ok".into()));
    let held = w.held_token().unwrap();
    let body = w.expiry_payload(held.id, &held.name);
    let (code, _) = s
        .post_webhook(
            signed("genuine", &body, "Resource Deploy Token Hook"),
            &body,
        )
        .await;
    assert_eq!(code, 202);
    w.eventually("the rotation after the storm", || {
        w.held_token().is_some_and(|t| t.id != held.id)
    })
    .await;
    assert!(!w.server_log().contains("panicked"), "{}", w.server_log());
    assert!(w.qovery_can_pull().await);
    s.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_deliveries_four_workers_a_timer_pass_and_a_cli_pass_rotate_once() {
    let w = World::with(Settings {
        grace_period: "0s",
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    let old = w.held_token().unwrap();
    // Six days left: due by rotate_before (seven days) too, so the timer's pass and a CLI
    // pass want the rotation as well.
    w.gitlab
        .state
        .lock()
        .unwrap()
        .deploy_tokens
        .iter_mut()
        .filter(|t| t.id == old.id)
        .for_each(|t| t.expires_at = Some(chrono::Utc::now() + chrono::Duration::days(6)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(30);
    let body = w.expiry_payload(old.id, &old.name);

    // The server's first timer slot queues a pass at start-up; four deliveries of one expiry
    // (project, group and system hooks, and a redelivery with a new id) arrive at once, and
    // a `reconcile` from cron runs beside them.
    let s = w.serve(&["--workers", "4"]).await;
    let deliveries = ["msg_project", "msg_group", "msg_system", "msg_redelivered"]
        .map(|id| s.post_webhook(signed(id, &body, "Resource Deploy Token Hook"), &body));
    let (answers, cli) = tokio::join!(futures_util::future::join_all(deliveries), w.reconcile(&[]));
    for (code, answer) in &answers {
        assert_eq!(*code, 202, "{answer}");
    }
    assert_eq!(cli.code, 0, "{cli:?}");
    s.until_idle(&w).await;

    assert_eq!(
        w.gitlab.calls("POST /api/v4/projects/{id}/deploy_tokens"),
        2,
        "the first pass's token, and exactly one rotation\n{}\n{}",
        cli.stdout,
        w.server_log()
    );
    let held = w.held_token().unwrap();
    assert_ne!(held.id, old.id);
    assert_eq!(
        w.active_tokens().iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![held.id],
        "the old token is revoked once its (zero) grace period is over"
    );
    assert!(w.qovery_can_pull().await);
    s.kill().await;
}

#[tokio::test]
async fn an_auto_bind_rule_whose_group_is_gone_does_not_stop_the_timer_for_other_bindings() {
    let w = World::with(Settings {
        extra: "\n[[auto_bind]]\ngroup = \"acme/gone\"\nqovery_registry = \"gitlab-{project_path_slug}\"\n\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;

    let s = w.serve(&[]).await;

    w.eventually("the timer's pass of the explicit binding", || {
        w.held_token().is_some()
    })
    .await;
    assert!(w.qovery_can_pull().await);
    w.eventually("the failed rule in the log", || {
        w.server_log().contains("acme/gone")
    })
    .await;
    // The rule's failure is logged as the pass expands its rules, and counted when the pass
    // ends: the metric follows a moment later.
    let counted = |metrics: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with("regwarden_auto_bind_failures_total ") && !l.ends_with(" 0"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut metrics = s.metrics().await.1;
    while !counted(&metrics) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = s.metrics().await.1;
    }
    assert!(counted(&metrics), "{metrics}");
    s.kill().await;
}

/// `n` signature candidates, none of them right.
fn candidates(n: usize) -> String {
    vec!["v1,AAAA"; n].join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signature_candidates_is_refused_and_the_server_keeps_answering() {
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    let s = w.serve(&[]).await;
    // A body at the default limit (1 MiB), a current timestamp, and far more candidates
    // than any sender needs: as many as fit under the header limit, and 50,000, which do not.
    let body = format!(
        "{{\"object_kind\":\"push\",\"pad\":\"{}\"}}",
        "x".repeat((1 << 20) - 40)
    );
    let hostile = |n: usize| {
        let mut h = signed("msg_hostile", &body, "Push Hook");
        h.insert("webhook-signature", candidates(n).parse().unwrap());
        h
    };
    let http = regwarden::outbound::client(None, Duration::from_secs(30)).unwrap();

    // Alone, with a body small enough to be sent whole before the answer, as many candidates
    // as fit under the header limit get the bare 401 and count as malformed.
    let small = r#"{"object_kind":"push"}"#;
    let mut alone = signed("msg_hostile_alone", small, "Push Hook");
    alone.insert("webhook-signature", candidates(7_000).parse().unwrap());
    assert_eq!(s.post_webhook_via(&http, alone, small).await.0, 401);
    let malformed = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "regwarden_webhook_verification_failures_total{reason=\"malformed\"} ",
                )
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(malformed(&s.metrics().await.1), 1);

    // The server refuses without reading the body (and headers past the limit while the
    // client still writes them), then closes the connection: the client may see the reset
    // before the answer. `0` stands for that; the metric below proves the refusals happened.
    let attack = |n: usize| {
        let request = http
            .post(format!("{}/webhooks/gitlab", s.url))
            .headers(hostile(n))
            .body(body.clone());
        async move {
            match request.send().await {
                Ok(r) => r.status().as_u16(),
                Err(e) => {
                    eprintln!("{n} candidates: the connection was closed: {e}");
                    0
                }
            }
        }
    };
    let started = std::time::Instant::now();
    let attacks = [7_000, 7_000, 50_000, 50_000].map(attack);
    let health = async {
        // Asked while the hostile requests are in flight.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let asked = std::time::Instant::now();
        let (code, _) = s.get("/healthz").await;
        (code, asked.elapsed())
    };
    let (answers, (health_code, health_time)) =
        tokio::join!(futures_util::future::join_all(attacks), health);

    assert_eq!(health_code, 200);
    assert!(
        health_time < Duration::from_secs(2),
        "/healthz took {health_time:?} beside the hostile requests"
    );
    assert!(
        matches!(answers.as_slice(), [401 | 0, 401 | 0, 431 | 0, 431 | 0]),
        "{answers:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused in {:?}",
        started.elapsed()
    );
    // Beside the flood, each request the server read the headers of was refused as
    // malformed, never let through (which the answers above show too).
    let (_, metrics) = s.metrics().await;
    let counted = malformed(&metrics);
    let answered = answers[..2].iter().filter(|a| **a == 401).count() as u64;
    assert!(
        (1 + answered..=3).contains(&counted),
        "{answers:?}\n{metrics}"
    );
    assert!(
        !metrics.contains("regwarden_webhook_deliveries_total"),
        "{metrics}"
    );
    s.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_capped_and_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The defaults users run: header_read_timeout 10s, max_connections 512.
    let w = World::with(Settings {
        extra: "\n[server]\nreconcile_interval = \"1h\"\n".into(),
        ..Settings::default()
    })
    .await;
    let s = w.serve(&[]).await;
    let addr = s.url.trim_start_matches("http://").to_string();

    // A keep-alive connection that made one request and then went quiet.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: regwarden\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &answer[..n]
    );
    let idle_since = std::time::Instant::now();

    // 1,500 clients send a request line and part of the headers, then stall. They come from
    // 30 loopback addresses, 50 each, under the cap per peer (64): the global cap is what is
    // tested here.
    let first_connect = std::time::Instant::now();
    let mut stalled = Vec::new();
    for i in 0..1_500u32 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from((
                [127, 0, 0, 2 + (i % 30) as u8],
                0,
            )))
            .unwrap();
        let mut c = socket.connect(addr.parse().unwrap()).await.unwrap();
        c.write_all(b"POST /webhooks/gitlab HTTP/1.1\r\nHost: regwarden\r\nContent-")
            .await
            .unwrap();
        stalled.push(c);
    }
    let opened = std::time::Instant::now();

    // Beyond the cap, a connection is answered 503 at once, not kept.
    let mut refused = 0;
    for c in stalled.iter_mut().skip(600) {
        let mut buf = [0u8; 64];
        let deadline = Duration::from_secs(5).saturating_sub(opened.elapsed());
        if let Ok(Ok(n)) = tokio::time::timeout(deadline, c.read(&mut buf)).await
            && buf[..n].starts_with(b"HTTP/1.1 503")
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 900, "connections beyond the first 512 are refused");

    // The ones within the cap (511 beside the idle one) are closed once the header timeout
    // passes.
    let mut closed = 0;
    for c in stalled.iter_mut().take(511) {
        let mut buf = [0u8; 256];
        let deadline = Duration::from_secs(20).saturating_sub(opened.elapsed());
        loop {
            match tokio::time::timeout(deadline, c.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    let waited = opened.elapsed();
    assert_eq!(closed, 511, "closed after {waited:?}");
    // Each connection's header timeout (10 s) runs from its own connect; the first one
    // connected before the last, so time is measured from the first.
    let since_first = first_connect.elapsed();
    assert!(since_first >= Duration::from_secs(10), "{since_first:?}");
    drop(stalled);

    // The idle keep-alive connection was closed by the same timeout.
    let eof = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut answer))
        .await
        .expect("closed by then");
    assert!(matches!(eof, Ok(0) | Err(_)), "{eof:?}");
    assert!(idle_since.elapsed() >= Duration::from_secs(9));

    let (code, _) = s.get("/healthz").await;
    assert_eq!(code, 200);
    let (_, metrics) = s.metrics().await;
    let refused_total: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("regwarden_connections_refused_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!((900..=1_000).contains(&refused_total), "{metrics}");
    s.kill().await;
}

#[tokio::test]
async fn a_flood_of_unauthenticated_requests_does_not_flood_the_log() {
    let (w, s) = served_world(Settings::default()).await;
    let push = r#"{"object_kind":"push"}"#;

    for i in 0..60 {
        let mut h = signed(&format!("flood-{i}"), push, "Push Hook");
        h.insert("webhook-signature", "v1,AAAA".parse().unwrap());
        assert_eq!(s.post_webhook(h, push).await.0, 401);
    }

    let (_, metrics) = s.metrics().await;
    assert!(
        metrics.contains(
            r#"regwarden_webhook_verification_failures_total{reason="bad_signature"} 60"#
        ),
        "every refusal is counted: {metrics}"
    );
    let logged = w.server_log().matches("request refused").count();
    assert!(
        (1..=20).contains(&logged),
        "at most 20 refusals a minute reach the log at the default level: {logged}"
    );
    s.kill().await;
}

/// Reads what the server answers on `c` within `wait`: the status line's code, or `None`.
async fn status_within(c: &mut tokio::net::TcpStream, wait: Duration) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(wait, c.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn what_needs_no_body_is_refused_before_any_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let (_w, s) = served_world(Settings::default()).await;
    let addr = s.url.trim_start_matches("http://").to_string();
    // Headers announcing a body that never comes: without a signature or a token, a stale
    // timestamp, or a wrong token, the answer comes at once, not after the body.
    let now = chrono::Utc::now().timestamp();
    for extra in [
        String::new(),
        format!(
            "webhook-id: x\r\nwebhook-timestamp: {}\r\nwebhook-signature: v1,AAAA\r\n",
            now - 3600
        ),
        "x-gitlab-token: a-guess\r\n".to_string(),
    ] {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(
            format!(
                "POST /webhooks/gitlab HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n{extra}Content-Length: 8000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(
            status_within(&mut c, Duration::from_secs(5)).await,
            Some(401),
            "{extra:?}"
        );
    }
    s.kill().await;
}

#[tokio::test]
async fn bodies_read_before_authentication_share_a_budget() {
    use tokio::io::AsyncWriteExt;
    let (_w, s) = World::served(
        Settings::default(),
        "reconcile_interval = \"1h\"\nmax_inflight_body = \"4MiB\"",
        &[],
    )
    .await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let now = chrono::Utc::now().timestamp();
    // Clients with a well-formed signature (anyone can make one) each send all but the last
    // byte of a 1 MiB body, then stall.
    let mut stalled = Vec::new();
    let mut answers = Vec::new();
    for i in 0..6 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let length = (1 << 20) - 1;
        c.write_all(
            format!(
                "POST /webhooks/gitlab HTTP/1.1\r\nHost: r\r\nwebhook-id: stall-{i}\r\nwebhook-timestamp: {now}\r\nwebhook-signature: v1,AAAA\r\nContent-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let _ = c.write_all(&vec![b'x'; length - 1]).await;
        answers.push(status_within(&mut c, Duration::from_millis(1500)).await);
        stalled.push(c);
    }

    // Four fill the 4 MiB budget and wait for their last byte; the fifth and sixth are
    // answered 503 at once, and the server still answers.
    assert_eq!(answers, [None, None, None, None, Some(503), Some(503)]);
    assert_eq!(s.get("/healthz").await, (200, "ok".into()));
    // One of them goes away: its share of the budget comes back.
    drop(stalled.remove(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = r#"{"object_kind":"push"}"#;
    let (code, _) = s
        .post_webhook(signed("after", body, "Push Hook"), body)
        .await;
    assert_eq!(code, 200);
    s.kill().await;
}

#[tokio::test]
async fn one_peer_holds_at_most_its_share_of_connections_and_none_for_ever() {
    use tokio::io::AsyncWriteExt;
    let (_w, s) = World::served(
        Settings::default(),
        "reconcile_interval = \"1h\"\nmax_connections_per_peer = 4\nmax_connection_age = \"2s\"",
        &[],
    )
    .await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut mine = Vec::new();
    for _ in 0..4 {
        mine.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut fifth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        status_within(&mut fifth, Duration::from_secs(2)).await,
        Some(503)
    );
    // Another address is not held back by this one's connections.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.7:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr.parse().unwrap()).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_within(&mut other, Duration::from_secs(2)).await,
        Some(200)
    );
    drop(mine);

    // A keep-alive connection asking cheaply every 300 ms is closed after its age. The four
    // dropped connections leave the server's count as it notices them closed: until then a
    // new one may still be over the cap.
    let mut tries = 0;
    let (mut busy, started) = loop {
        tries += 1;
        assert!(
            tries < 50,
            "no connection was let in after the others closed"
        );
        let started = std::time::Instant::now();
        let mut busy = tokio::net::TcpStream::connect(&addr).await.unwrap();
        busy.write_all(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
            .await
            .unwrap();
        if status_within(&mut busy, Duration::from_secs(2)).await == Some(200) {
            break (busy, started);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut answered = 1;
    while started.elapsed() < Duration::from_secs(8) {
        if busy
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        match status_within(&mut busy, Duration::from_secs(2)).await {
            Some(200) => answered += 1,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(answered >= 2, "{answered}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the connection outlived its age"
    );
    s.kill().await;
}
