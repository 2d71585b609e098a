//! The benchmark of `ci/bench/reconcile.sh`: N bindings against the fakes with a latency
//! added to every API call, the real registry (TLS, private CA) behind the fake GitLab's
//! realm. Runs the given regwarden binary three times (a pass that rotates every binding, a
//! steady-state pass, then a forced pass in which each registry serves two services) and prints
//! wall times and API calls per binding, GitLab and Qovery counted apart. With CREDENTIAL
//! `service_account`, every binding mints tokens of one group service account (made by the
//! first pass), as a team moving off personal tokens would set it up.
//!
//! Usage: bench_reconcile REGWARDEN_BINARY BINDINGS LATENCY_MS CONCURRENCY [CREDENTIAL]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::gitlab::FakeGitlab;
use support::pki::PrivateCa;
use support::qovery::FakeQovery;
use support::registry::{Auth, Registry, Tls};

const ORG: &str = "3c90c3cc-0d44-4b50-8888-8dd25736052a";

struct Counts {
    gitlab_api: usize,
    realm: usize,
    qovery: usize,
}

fn counts(gitlab: &FakeGitlab, qovery: &FakeQovery) -> Counts {
    let realm = gitlab.calls("GET /jwt/auth");
    Counts {
        gitlab_api: gitlab.total_calls() - realm,
        realm,
        qovery: qovery.faults.lock().unwrap().total_calls(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (binary, n, latency, concurrency, credential) = match args.as_slice() {
        [_, b, n, l, c] => (b, n, l, c, "deploy_token"),
        [_, b, n, l, c, credential] => (b, n, l, c, credential.as_str()),
        _ => panic!(
            "usage: bench_reconcile REGWARDEN_BINARY BINDINGS LATENCY_MS CONCURRENCY [CREDENTIAL]"
        ),
    };
    let policy = match credential {
        "deploy_token" => String::new(),
        "service_account" => "credential = \"service_account\"\nservice_account = \"regwarden-pull\"\ncreate_service_account = true\n".to_string(),
        other => panic!("CREDENTIAL is deploy_token or service_account, not {other:?}"),
    };
    let n: usize = n.parse().unwrap();
    let latency = Duration::from_millis(latency.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();

    let gitlab = FakeGitlab::start(dir.path()).await;
    for i in 0..n {
        gitlab.add_project(&format!("bench/p{i:04}"));
    }
    let gitlab_token = gitlab.admin_token();
    let ca = PrivateCa::generate(dir.path());
    let registry = Registry::start(
        dir.path(),
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
    // GitLab reports the registry it uses (`registry.host_port`), as the checklist of every
    // pass reads it.
    gitlab.set_registry_host_port(Some(registry.url.trim_start_matches("https://")));
    let qovery = FakeQovery::start().await;
    let qovery_token = qovery.add_organization(ORG, "bench");

    let mut config = format!(
        "[gitlab]\nurl = \"{}\"\nregistry_url = \"{}\"\nca_file = \"{}\"\n\n[qovery]\nurl = \"{}\"\norganization_id = \"{ORG}\"\n\n\
         [store]\nurl = \"sqlite://{}\"\n\n[reconcile]\nconcurrency = {concurrency}\ncheck_attempts = 1\nhttp_timeout = \"30s\"\n",
        gitlab.url(),
        registry.url,
        ca.ca_path.display(),
        qovery.url(),
        dir.path().join("regwarden.db").display(),
    );
    for i in 0..n {
        config.push_str(&format!(
            "\n[[binding]]\nname = \"p{i:04}\"\nproject = \"bench/p{i:04}\"\nqovery_registry = \"gitlab-bench-p{i:04}\"\n{policy}"
        ));
    }
    let config_path = dir.path().join("regwarden.toml");
    std::fs::write(&config_path, config).unwrap();

    gitlab.faults.lock().unwrap().latency = latency;
    qovery.faults.lock().unwrap().latency = latency;

    println!(
        "{credential}: bindings: {n}; latency added to every API and realm call: {} ms; concurrency: {concurrency}",
        latency.as_millis()
    );
    let mut failed = false;
    for (label, extra) in [
        ("rotate-all pass", false),
        ("steady-state pass", true),
        (
            "forced pass, each registry serving a container and a job",
            false,
        ),
    ] {
        if label.starts_with("forced") {
            // What a rotation reads of Qovery once services use the registries: their list,
            // then each service's image (then the registry check of each distinct image).
            for r in qovery.registries() {
                let project = r.name.trim_start_matches("gitlab-bench-");
                let image = format!("bench/{project}:v1");
                qovery.add_service(&r.id, "CONTAINER", project, "production", &image);
                qovery.add_service(&r.id, "CRON", "report", "production", &image);
            }
        }
        let force: &[&str] = if label.starts_with("forced") {
            &["--force"]
        } else {
            &[]
        };
        let before = counts(&gitlab, &qovery);
        let started = Instant::now();
        let out = tokio::process::Command::new(binary)
            .arg("reconcile")
            .args(force)
            .args(["--output", "json", "--config"])
            .arg(&config_path)
            .env("GITLAB_TOKEN", &gitlab_token)
            .env("QOVERY_API_TOKEN", &qovery_token)
            .output()
            .await
            .unwrap();
        let wall = started.elapsed();
        let after = counts(&gitlab, &qovery);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let outcomes = report["bindings"]
            .as_array()
            .map(|b| {
                let mut tally = std::collections::BTreeMap::<String, usize>::new();
                for r in b {
                    *tally
                        .entry(r["outcome"].as_str().unwrap_or("?").to_string())
                        .or_default() += 1;
                }
                tally
            })
            .unwrap_or_default();
        let gitlab_calls = after.gitlab_api - before.gitlab_api;
        let qovery_calls = after.qovery - before.qovery;
        let per_binding = (gitlab_calls + qovery_calls) as f64 / n as f64;
        println!(
            "{label}: {:.2} s; API calls per binding {per_binding:.3} (GitLab {gitlab_calls}, Qovery {qovery_calls}); \
             realm calls {}; outcomes {outcomes:?}",
            wall.as_secs_f64(),
            after.realm - before.realm,
        );
        if !out.status.success() {
            failed = true;
            eprintln!("{label} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        if extra {
            let ok_calls = per_binding <= 1.1;
            let ok_time = wall <= Duration::from_secs(5);
            println!(
                "targets: steady state <= 1.1 API calls per binding: {}; within 5 s: {}",
                if ok_calls { "met" } else { "MISSED" },
                if ok_time { "met" } else { "MISSED" }
            );
        }
    }
    drop(registry);
    if failed {
        std::process::exit(1);
    }
}
