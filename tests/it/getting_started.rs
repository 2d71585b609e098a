//! The README's "Getting started" commands, run in order as written, against the test world:
//! GitLab and Qovery are reached through the variables `init` and `serve` read
//! (`REGWARDEN_GITLAB_URL`, `REGWARDEN_QOVERY_URL`, `REGWARDEN_CA_FILE`, `REGWARDEN_LISTEN`), so
//! not a word of the README changes for the test.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::serving::http;
use crate::support::world::{ORG, PROJECT, QOVERY_REGISTRY, World};

/// The lines of the README's getting-started block.
fn readme_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- getting-started:")
        .expect("the README marks its getting-started block");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = block[open..].find("```").expect("the block ends") + open;
    block[open..close].lines().map(str::to_string).collect()
}

#[tokio::test]
async fn the_readmes_getting_started_commands_work_in_order() {
    let w = World::start().await;
    let pat = w.gitlab.add_access_token(
        crate::support::gitlab::Owner::User,
        "alice-laptop",
        &["read_registry"],
    );
    // What a newcomer has: a registry set up by hand in Qovery's console, as its guide says.
    w.qovery.add_hand_made_registry(
        ORG,
        QOVERY_REGISTRY,
        &w.registry_url,
        &[&format!("{PROJECT}:v1")],
        "alice",
        &pat.token,
    );
    let commands = readme_commands();
    let (last, before) = commands.split_last().unwrap();
    assert!(last.starts_with("regwarden serve "), "{last}");
    // One shell, as a person's terminal: the server replaces it at the end.
    let script = format!("{}\nexec {last}\n", before.join("\n"));
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("terminal.log");
    let bin = Path::new(env!("CARGO_BIN_EXE_regwarden")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args(["-eu", "-c", &script])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", home.path())
        .env("GITLAB_TOKEN", &w.gitlab_token)
        .env("QOVERY_API_TOKEN", &w.qovery_token)
        .env("REGWARDEN_GITLAB_URL", w.gitlab.url())
        .env("REGWARDEN_QOVERY_URL", &w.qovery_url)
        .env("REGWARDEN_CA_FILE", &w.ca)
        .env("REGWARDEN_TEST_PUBLIC_ROOTS", &w.ca)
        .env("REGWARDEN_LISTEN", "127.0.0.1:0")
        .env("REGWARDEN_METRICS_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .kill_on_drop(true);
    let started = Instant::now();
    let mut shell = cmd.spawn().unwrap();

    let mut url = None;
    for _ in 0..600 {
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(u) = printed
            .lines()
            .find_map(|l| l.strip_prefix("regwarden: listening on "))
        {
            url = Some(u.to_string());
            break;
        }
        if let Ok(Some(status)) = shell.try_wait() {
            panic!("the commands stopped ({status}):\n{printed}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let printed = std::fs::read_to_string(&log).unwrap();
    let url = url.unwrap_or_else(|| panic!("serve never listened:\n{printed}"));
    let health = http().get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    eprintln!("the getting-started commands took {took:?} up to a listening server");

    // init bound the registry; the first pass took it over with a checked token; the hook
    // carries the secret the server verifies.
    assert!(
        printed.contains(&format!(
            "bound Qovery registry \"{QOVERY_REGISTRY}\" to project {PROJECT}"
        )),
        "{printed}"
    );
    assert!(home.path().join("regwarden.toml").exists());
    w.assert_converged().await;
    let hooks = w.gitlab.hooks();
    assert_eq!(hooks.len(), 1, "{printed}");
    assert_eq!(
        hooks[0].url,
        "https://regwarden.example.com/webhooks/gitlab"
    );
    assert!(hooks[0].token.is_some());
    for secret in [&w.gitlab_token, &w.qovery_token, &pat.token] {
        assert!(
            !printed.contains(secret.as_str()),
            "a secret in the terminal"
        );
    }
    let _ = shell.start_kill();
    let _ = shell.wait().await;
}
