//! The benchmark environment of `ci/bench/check.sh`: the real registry over TLS (private CA),
//! its token realm on the fake GitLab, an image in `acme/api` and a deploy token that can pull
//! it. Prints `KEY=value` lines, then `READY`, and runs until SIGTERM or SIGINT, when it stops
//! the registry it started.

#[path = "../tests/it/support/mod.rs"]
mod support;

use support::gitlab::FakeGitlab;
use support::pki::PrivateCa;
use support::registry::{Auth, Registry, Tls, push_image};

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench_env WORK_DIR");
    let dir = std::path::Path::new(&dir);
    let gitlab = FakeGitlab::start(dir).await;
    let ca = PrivateCa::generate(dir);
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
    gitlab.add_project("acme/api");
    let token = gitlab.add_deploy_token(gitlab.project_owner("acme/api"), &["read_registry"]);

    // skopeo reads CA certificates from a directory of *.crt files.
    let cert_dir = dir.join("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&ca.ca_path, cert_dir.join("ca.crt")).unwrap();

    println!("REGISTRY_URL={}", registry.url);
    println!(
        "REGISTRY_HOST={}",
        registry.url.trim_start_matches("https://")
    );
    println!("REPOSITORY=acme/api");
    println!("USERNAME={}", token.username);
    println!("PASSWORD={}", token.token);
    println!("CA_FILE={}", ca.ca_path.display());
    println!("CERT_DIR={}", cert_dir.display());
    println!("READY");

    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(registry);
    eprintln!(
        "bench_env: realm served {} token requests",
        gitlab.calls("GET /jwt/auth")
    );
}
