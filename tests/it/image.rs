//! The container image `ci/Containerfile` builds (ci/image.sh; ci/test.sh builds it with buildah
//! before the suite and names it in REGWARDEN_IMAGE): how it is configured, what its runtime
//! stage holds, and that the binary in it does the work as its non-root user: a reconcile pass,
//! `regwarden serve`, a component job's script, and TLS through the image's trust store.
//! The containers run with buildah's chroot isolation, on the host's network, so they reach
//! the servers the tests start on 127.0.0.1.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::support::cli::Run;
use crate::support::world::{ORG, PROJECT, World};

/// The image under test and the buildah store that holds it.
#[derive(Clone)]
struct Image {
    name: String,
    store: PathBuf,
    driver: String,
}

/// The image under test, from `ci/test.sh` (which builds it with `ci/image.sh` as root). Run
/// as root, a missing image fails under CI; as another user, buildah cannot build or run it
/// here, and the tests skip (loudly, and counted in ci/test.sh's summary).
fn image() -> Option<Image> {
    match (
        std::env::var("REGWARDEN_IMAGE"),
        std::env::var("REGWARDEN_IMAGE_STORE"),
    ) {
        (Ok(name), Ok(store)) if !name.is_empty() => Some(Image {
            name,
            store: store.into(),
            driver: std::env::var("REGWARDEN_IMAGE_STORAGE_DRIVER")
                .unwrap_or_else(|_| "overlay".into()),
        }),
        _ => {
            let why = "REGWARDEN_IMAGE and REGWARDEN_IMAGE_STORE are unset";
            let how = "run ci/test.sh as root: it installs buildah and debootstrap and builds the image with ci/image.sh";
            let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
            if root && std::env::var_os("REGWARDEN_SKIP_IMAGE").is_none() {
                crate::support::tools::missing("the built image", why, how);
            } else {
                crate::support::tools::skip(
                    "the built image (buildah runs it as root only)",
                    why,
                    how,
                );
            }
            None
        }
    }
}

impl Image {
    /// `buildah` on the store that holds the image.
    fn std_buildah(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("buildah");
        cmd.arg("--root")
            .arg(self.store.join("root"))
            .arg("--runroot")
            .arg(self.store.join("run"))
            .args(["--storage-driver", &self.driver])
            .env("BUILDAH_ISOLATION", "chroot")
            .stdin(Stdio::null());
        cmd
    }

    fn buildah(&self) -> tokio::process::Command {
        self.std_buildah().into()
    }

    async fn buildah_ok(&self, args: &[&str]) -> String {
        let out = self.buildah().args(args).output().await.unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The image's OCI configuration.
    async fn config(&self) -> serde_json::Value {
        let text = self
            .buildah_ok(&["inspect", "--type", "image", &self.name])
            .await;
        let inspect: serde_json::Value = serde_json::from_str(&text).unwrap();
        inspect["OCIv1"]["config"].clone()
    }

    /// A working container made from the image; removed when dropped.
    async fn container(&self) -> Container {
        let name = self
            .buildah_ok(&["from", "--pull=never", &self.name])
            .await
            .trim()
            .to_string();
        Container {
            image: self.clone(),
            name,
        }
    }
}

struct Container {
    image: Image,
    name: String,
}

/// How to run one command in a container.
#[derive(Default)]
struct Exec<'a> {
    user: Option<&'a str>,
    env: Vec<(&'a str, String)>,
    volumes: Vec<&'a Path>,
    workdir: Option<&'a Path>,
}

impl Container {
    fn command(&self, exec: &Exec<'_>, argv: &[&str]) -> tokio::process::Command {
        let mut cmd = self.image.buildah();
        cmd.arg("run");
        if let Some(user) = exec.user {
            cmd.args(["--user", user]);
        }
        for (k, v) in &exec.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        for dir in &exec.volumes {
            cmd.arg("--volume")
                .arg(format!("{}:{}", dir.display(), dir.display()));
        }
        if let Some(dir) = exec.workdir {
            cmd.arg("--workingdir").arg(dir);
        }
        cmd.arg(&self.name).arg("--").args(argv);
        cmd
    }

    async fn run(&self, exec: &Exec<'_>, argv: &[&str]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(exec, argv).output())
            .await
            .expect("the command in the container ended within 120 s")
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self
            .image
            .std_buildah()
            .args(["rm", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A world whose files the image's user (uid 10001) may read and write: the configuration,
/// the CA file and the SQLite store live in its directory.
async fn shared_world() -> World {
    let w = World::start().await;
    std::fs::set_permissions(w.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    w
}

fn api_tokens(w: &World) -> Vec<(&'static str, String)> {
    vec![
        ("GITLAB_TOKEN", w.gitlab_token.clone()),
        ("QOVERY_API_TOKEN", w.qovery_token.clone()),
    ]
}

#[tokio::test]
async fn the_image_serves_by_default_as_a_non_root_user() {
    let Some(image) = image() else { return };

    let config = image.config().await;

    assert_eq!(config["User"], "10001:10001", "{config:#}");
    assert_eq!(
        config["Cmd"],
        serde_json::json!([
            "regwarden",
            "serve",
            "--config",
            "/etc/regwarden/regwarden.toml",
            "--listen",
            "0.0.0.0:8080"
        ]),
        "{config:#}"
    );
    // The component's jobs run a shell script in this image: no entrypoint to get in the way.
    assert!(
        config["Entrypoint"].as_array().is_none_or(|e| e.is_empty()),
        "{config:#}"
    );
    assert!(
        config["ExposedPorts"].get("8080/tcp").is_some()
            && config["ExposedPorts"].get("9090/tcp").is_some(),
        "{config:#}"
    );
    assert_eq!(config["WorkingDir"], "/var/lib/regwarden", "{config:#}");
    // A relative store path (the default's) is read there, not beside the mounted file.
    assert!(
        config["Env"].as_array().is_some_and(|env| env
            .iter()
            .any(|e| e == "STATE_DIRECTORY=/var/lib/regwarden")),
        "{config:#}"
    );
    assert!(
        config["Volumes"].get("/var/lib/regwarden").is_some(),
        "{config:#}"
    );

    let c = image.container().await;
    let who = c.run(&Exec::default(), &["id", "-u"]).await;
    assert_eq!((who.code, who.stdout.trim()), (0, "10001"), "{who:?}");
    let version = c.run(&Exec::default(), &["regwarden", "--version"]).await;
    assert_eq!(version.code, 0, "{version:?}");
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version:?}"
    );
    // The example configuration ships beside where the real one is mounted.
    let example = c
        .run(
            &Exec::default(),
            &["test", "-r", "/etc/regwarden/regwarden.example.toml"],
        )
        .await;
    assert_eq!(example.code, 0, "{example:?}");
}

#[tokio::test]
async fn the_runtime_stage_holds_the_binary_and_ca_certificates_but_no_toolchain() {
    let Some(image) = image() else { return };
    let c = image.container().await;

    let tools = c
        .run(
            &Exec::default(),
            &[
                "sh",
                "-c",
                "for t in cargo rustc cc gcc strip; do command -v $t; done; true",
            ],
        )
        .await;
    assert_eq!(
        tools.stdout, "",
        "the build stage's tools stayed in the build stage"
    );

    let bundle = c
        .run(
            &Exec::default(),
            &[
                "grep",
                "-c",
                "BEGIN CERTIFICATE",
                "/etc/ssl/certs/ca-certificates.crt",
            ],
        )
        .await;
    assert_eq!(bundle.code, 0, "{bundle:?}");
    let roots: usize = bundle.stdout.trim().parse().unwrap();
    assert!(
        roots > 100,
        "the system's CA bundle holds {roots} certificates"
    );
}

/// The image's size as buildah reports it (`133 MB`), in bytes (powers of 1000).
fn parse_size(text: &str) -> f64 {
    let (number, unit) = text.trim().split_once(' ').expect("a size and its unit");
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?}"),
    };
    number.parse::<f64>().unwrap() * scale
}

#[tokio::test]
async fn the_image_is_small_and_holds_a_shell_but_no_package_manager() {
    let Some(image) = image() else { return };

    let size = image
        .buildah_ok(&["images", "--format", "{{.Size}}", &image.name])
        .await;
    let bytes = parse_size(size.lines().next().unwrap_or_default());
    eprintln!("the image is {} ({bytes} bytes)", size.trim());
    assert!(bytes <= 30e6, "the image is {}", size.trim());

    let c = image.container().await;
    // The component's jobs run a shell script; the runner needs `sh`.
    let shell = c
        .run(
            &Exec::default(),
            &[
                "sh",
                "-c",
                "echo works; for f in /usr/bin/apt-get /usr/bin/dpkg /var/lib/dpkg /bin/bash /usr/bin/perl /usr/lib/x86_64-linux-gnu/libssl.so.3; do [ -e $f ] && echo $f; done; true",
            ],
        )
        .await;
    assert_eq!(shell.code, 0, "{shell:?}");
    assert_eq!(
        shell.stdout, "works\n",
        "busybox, no Debian system: {shell:?}"
    );
}

#[tokio::test]
async fn the_image_trusts_a_ca_added_to_its_system_store() {
    let Some(image) = image() else { return };
    let w = shared_world().await;
    let token = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner(PROJECT), &["read_registry"]);
    let c = image.container().await;
    let check = Exec {
        env: vec![("REGWARDEN_PASSWORD", token.token.clone())],
        ..Exec::default()
    };
    let argv = [
        "regwarden",
        "check",
        "--registry",
        &w.registry_url,
        "--repository",
        PROJECT,
        "--username",
        &token.username,
    ];

    // The registry's certificate comes from a private CA the image does not know.
    let untrusted = c.run(&check, &argv).await;
    assert_eq!(untrusted.code, 5, "{untrusted:?}");
    assert!(untrusted.stdout.contains("not trusted"), "{untrusted:?}");

    // What an image built on this one does for a self-managed GitLab's CA (the README's
    // "The image"): the CA appended to the system bundle.
    let root = Exec {
        user: Some("0:0"),
        volumes: vec![w.path()],
        ..Exec::default()
    };
    let install = c
        .run(
            &root,
            &[
                "sh",
                "-c",
                &format!(
                    "cat {} >>/etc/ssl/certs/ca-certificates.crt",
                    w.ca.display()
                ),
            ],
        )
        .await;
    assert_eq!(install.code, 0, "{install:?}");

    let trusted = c.run(&check, &argv).await;
    assert_eq!(trusted.code, 0, "{trusted:?}");
    trusted.assert_never_shows(&token.token);
    untrusted.assert_never_shows(&token.token);
}

#[tokio::test]
async fn the_image_reconciles_a_binding_and_keeps_its_store_as_its_own_user() {
    let Some(image) = image() else { return };
    let w = shared_world().await;
    let c = image.container().await;
    let exec = Exec {
        env: api_tokens(&w),
        volumes: vec![w.path()],
        ..Exec::default()
    };

    let run = c
        .run(
            &exec,
            &[
                "regwarden",
                "reconcile",
                "--config",
                w.config.to_str().unwrap(),
            ],
        )
        .await;

    assert_eq!(run.code, 0, "{run:?}");
    w.assert_no_secret_in(&run);
    assert!(w.qovery_can_pull().await, "Qovery holds a working token");
    let store = std::fs::metadata(w.store_file()).expect("the store was written");
    assert_eq!(store.uid(), 10001, "the store belongs to the image's user");
}

/// Reads `pipe` to its end in the background; what came so far is in the string.
fn read_to_end(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> (Arc<Mutex<String>>, tokio::task::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    (text, task)
}

#[tokio::test]
async fn regwarden_serve_runs_in_the_image_and_stops_on_sigterm() {
    let Some(image) = image() else { return };
    let w = shared_world().await;
    let c = image.container().await;
    let stop = w.path().join("stop");
    let mut env = api_tokens(&w);
    env.push((
        "REGWARDEN_WEBHOOK_SIGNING_TOKEN",
        crate::support::serving::SIGNING_TOKEN.into(),
    ));
    let exec = Exec {
        env,
        volumes: vec![w.path()],
        ..Exec::default()
    };
    // The shell stands in for the container runtime: it sends SIGTERM when the test says so
    // and reports how regwarden ended. regwarden binds a port the system picks, on the host's
    // network, and prints which on its standard output.
    let script = format!(
        "regwarden serve --config {config} --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 & pid=$!; \
         while [ ! -e {stop} ]; do sleep 0.1; done; kill -TERM $pid; wait $pid; echo exit=$?",
        config = w.config.display(),
        stop = stop.display(),
    );
    let mut child = c
        .command(&exec, &["sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stdout_read) = read_to_end(child.stdout.take().unwrap());
    let (stderr, stderr_read) = read_to_end(child.stderr.take().unwrap());

    let http = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let url = stdout
            .lock()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("regwarden: listening on "))
            .map(str::to_string);
        if let Some(url) = url
            && let Ok(r) = http.get(format!("{url}/readyz")).send().await
        {
            ready = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(&stop, "").unwrap();
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("serve stopped")
        .unwrap();
    let _ = tokio::join!(stdout_read, stderr_read);
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();

    assert_eq!(
        ready,
        Some(reqwest::StatusCode::OK),
        "/readyz from the image:\n{stderr}"
    );
    assert!(stdout.contains("exit=0"), "{stdout}\n{stderr}");
    assert!(!stderr.contains(&w.gitlab_token) && !stderr.contains(&w.qovery_token));
}

#[tokio::test]
async fn the_register_job_script_runs_in_the_image() {
    let Some(image) = image() else { return };
    let w = shared_world().await;
    let deploy = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner(PROJECT), &["read_registry"]);
    let build_dir = w.path().join("build");
    std::fs::create_dir(&build_dir).unwrap();
    std::fs::set_permissions(&build_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = image.container().await;
    // What GitLab gives the job, and what the register template sets from its inputs.
    let mut exec = Exec {
        env: vec![
            ("CI_SERVER_URL", w.gitlab.url()),
            ("CI_API_V4_URL", format!("{}/api/v4", w.gitlab.url())),
            ("CI_PROJECT_PATH", PROJECT.into()),
            ("CI_PROJECT_ID", "1".into()),
            ("CI_DEPLOY_USER", deploy.username.clone()),
            ("CI_DEPLOY_PASSWORD", deploy.token.clone()),
            ("QOVERY_API_TOKEN", w.qovery_token.clone()),
            ("REGWARDEN_QOVERY_ORGANIZATION_ID", ORG.into()),
            ("REGWARDEN_QOVERY_URL", w.qovery_url.clone()),
            ("REGWARDEN_REGISTRY_URL", w.registry_url.clone()),
            ("REGWARDEN_CA_FILE", w.ca.display().to_string()),
        ],
        volumes: vec![w.path()],
        workdir: Some(&build_dir),
        ..Exec::default()
    };
    let script = ["sh", "-c", "regwarden ci register"];

    let run = c.run(&exec, &script).await;

    assert_eq!(run.code, 0, "{run:?}");
    run.assert_never_shows(&deploy.token);
    run.assert_never_shows(&w.qovery_token);
    let registry = w.qovery_registry().expect("registered");
    assert_eq!(registry.password.as_deref(), Some(deploy.token.as_str()));
    let dotenv = std::fs::read_to_string(build_dir.join("regwarden.env")).unwrap();
    assert!(
        dotenv.contains(&format!("REGWARDEN_QOVERY_REGISTRY_ID={}", registry.id)),
        "{dotenv}"
    );

    // Without the deploy token the job names what is missing and how to provide it.
    exec.env.retain(|(k, _)| !k.starts_with("CI_DEPLOY_"));
    let missing = c.run(&exec, &script).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        format!("{}{}", missing.stdout, missing.stderr)
            .contains("CI_DEPLOY_USER is not set: create a deploy token named gitlab-deploy-token"),
        "{missing:?}"
    );
}
