//! The CI/CD component run for real: `gitlab-ci-local` (pinned in ci/package.json, shell
//! executor) runs each template's job from a test repository that includes it with
//! `component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA`, the regwarden binary on
//! PATH, against the fake GitLab, the real registry and the fake Qovery.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::gitlab::CI_KID;
use crate::support::tools::gitlab_ci_local;
use crate::support::world::{ORG, PROJECT, Settings, World};

/// A git repository of project acme/api whose pipeline includes one of our components.
struct Repo {
    dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Repo {
    fn including(component: &str, inputs: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        for entry in std::fs::read_dir(templates).unwrap().flatten() {
            std::fs::copy(
                entry.path(),
                dir.path().join("templates").join(entry.file_name()),
            )
            .unwrap();
        }
        let inputs: String = inputs
            .iter()
            .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
            .collect();
        std::fs::write(
            dir.path().join(".gitlab-ci.yml"),
            format!(
                "stages: [deploy]\ninclude:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/{component}@$CI_COMMIT_SHA\n    inputs:\n{inputs}"
            ),
        )
        .unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(
            dir.path(),
            &[
                "remote",
                "add",
                "origin",
                &format!("https://gitlab.example.com/{PROJECT}.git"),
            ],
        );
        git(dir.path(), &["add", "-A"]);
        git(
            dir.path(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-q",
                "-m",
                "pipeline",
            ],
        );
        Repo { dir }
    }

    /// Runs one job; returns whether it passed, and its output. Asynchronous: the fakes it
    /// talks to are served by this test's own runtime.
    async fn run(&self, tool: &Path, job: &str, variables: &[(&str, &str)]) -> (bool, String) {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_regwarden")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(tool);
        cmd.current_dir(self.dir.path())
            .env("PATH", path)
            .args(["--force-shell-executor", "--no-color"]);
        for (k, v) in variables {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        let out = cmd.arg(job).output().await.expect("run gitlab-ci-local");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn dotenv(&self) -> String {
        // gitlab-ci-local keeps a job's artifacts in its build directory.
        let mut found = String::new();
        for entry in walk(&self.dir.path().join(".gitlab-ci-local")) {
            if entry.file_name().is_some_and(|n| n == "regwarden.env") {
                found = std::fs::read_to_string(entry).unwrap_or_default();
            }
        }
        found
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn common_inputs(w: &World) -> Vec<(&'static str, &str)> {
    vec![
        ("qovery-organization-id", ORG),
        ("qovery-url", w.qovery_url_str()),
        ("registry-url", w.registry_url.as_str()),
    ]
}

#[tokio::test]
async fn register_checks_the_deploy_token_then_writes_qovery_once() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let w = World::start().await;
    let deploy = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner(PROJECT), &["read_registry"]);
    let repo = Repo::including("register", &common_inputs(&w));
    let ca = w.ca.display().to_string();
    let vars = [
        ("CI_DEPLOY_USER", deploy.username.as_str()),
        ("CI_DEPLOY_PASSWORD", deploy.token.as_str()),
        ("QOVERY_API_TOKEN", w.qovery_token.as_str()),
        ("REGWARDEN_CA_FILE", ca.as_str()),
    ];

    let (ok, out) = repo.run(&tool, "regwarden-register", &vars).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Qovery registry \"gitlab-acme-api\" created"),
        "{out}"
    );
    assert!(
        !out.contains(&deploy.token),
        "the token is never echoed:\n{out}"
    );
    let registry = w.qovery_registry().expect("registered");
    assert_eq!(registry.password.as_deref(), Some(deploy.token.as_str()));
    assert!(
        repo.dotenv()
            .contains(&format!("REGWARDEN_QOVERY_REGISTRY_ID={}", registry.id)),
        "{}",
        repo.dotenv()
    );

    let (ok, out) = repo.run(&tool, "regwarden-register", &vars).await;
    assert!(ok, "{out}");
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(
        w.qovery
            .calls("PUT /organization/{organizationId}/containerRegistry/{containerRegistryId}"),
        0,
        "the second run skipped the write"
    );
}

#[tokio::test]
async fn register_with_a_bad_credential_fails_and_leaves_qovery_untouched() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let w = World::start().await;
    w.gitlab.add_project("acme/web");
    let other = w
        .gitlab
        .add_deploy_token(w.gitlab.project_owner("acme/web"), &["read_registry"]);
    let repo = Repo::including("register", &common_inputs(&w));
    let ca = w.ca.display().to_string();

    let (ok, out) = repo
        .run(
            &tool,
            "regwarden-register",
            &[
                ("CI_DEPLOY_USER", other.username.as_str()),
                ("CI_DEPLOY_PASSWORD", other.token.as_str()),
                ("QOVERY_API_TOKEN", w.qovery_token.as_str()),
                ("REGWARDEN_CA_FILE", ca.as_str()),
            ],
        )
        .await;

    assert!(!ok, "{out}");
    assert!(out.contains("Qovery was not changed"), "{out}");
    assert!(out.contains("belongs to another project"), "{out}");
    assert!(w.qovery.registries().is_empty());
}

#[tokio::test]
async fn register_names_a_missing_variable_and_how_to_provide_it() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let w = World::start().await;
    let repo = Repo::including("register", &common_inputs(&w));

    let (ok, out) = repo
        .run(
            &tool,
            "regwarden-register",
            &[("QOVERY_API_TOKEN", w.qovery_token.as_str())],
        )
        .await;

    assert!(!ok, "{out}");
    assert!(
        out.contains("CI_DEPLOY_USER is not set: create a deploy token named gitlab-deploy-token"),
        "{out}"
    );
}

#[tokio::test]
async fn rotate_runs_the_protocol_from_a_pipeline() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let w = World::start().await;
    let mut inputs = common_inputs(&w);
    let gitlab_url = w.gitlab.url();
    inputs.push(("gitlab-url", gitlab_url.as_str()));
    let repo = Repo::including("rotate", &inputs);
    let ca = w.ca.display().to_string();

    let (ok, out) = repo
        .run(
            &tool,
            "regwarden-rotate",
            &[
                ("GITLAB_TOKEN", w.gitlab_token.as_str()),
                ("QOVERY_API_TOKEN", w.qovery_token.as_str()),
                ("REGWARDEN_CA_FILE", ca.as_str()),
            ],
        )
        .await;

    assert!(ok, "{out}");
    assert!(out.contains("gitlab-acme-api rotated"), "{out}");
    assert!(w.qovery_can_pull().await);
    let held = w.held_token().unwrap();
    assert!(
        held.name.starts_with("regwarden-acme-api-"),
        "{}",
        held.name
    );
    for secret in w.token_secrets() {
        assert!(!out.contains(&secret), "a token was echoed:\n{out}");
    }
    assert!(
        repo.dotenv()
            .contains(&format!("REGWARDEN_TOKEN_ID={}", held.id)),
        "{}",
        repo.dotenv()
    );
}

#[tokio::test]
async fn notify_sends_the_id_token_to_a_running_server() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let audience = "https://regwarden.example.com";
    let w = World::with(Settings {
        extra: format!("\n[server]\nreconcile_interval = \"1h\"\nci_audience = \"{audience}\"\n"),
        ..Settings::default()
    })
    .await;
    let s = w.serve(&[]).await;
    let repo = Repo::including("notify", &[("server", s.url.as_str())]);
    let token = w.gitlab.mint_id_token(PROJECT, audience, CI_KID, 300);

    let (ok, out) = repo
        .run(
            &tool,
            "regwarden-notify",
            &[("REGWARDEN_ID_TOKEN", token.as_str())],
        )
        .await;

    assert!(ok, "{out}");
    assert!(out.contains("will reconcile api"), "{out}");
    for _ in 0..100 {
        if w.held_token().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.qovery_can_pull().await, "{}", w.server_log());
    s.kill().await;
}

#[tokio::test]
async fn the_projects_own_pipeline_is_valid_gitlab_ci() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // gitlab-ci-local reads the pipeline from a git checkout: a copy of the file in a fresh one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join(".gitlab-ci.yml"),
        dir.path().join(".gitlab-ci.yml"),
    )
    .unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(
        dir.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.com/regwarden/regwarden.git",
        ],
    );
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "ci",
        ],
    );

    // On a semver tag, the release job joins the test and image jobs.
    let out = tokio::process::Command::new(&tool)
        .current_dir(dir.path())
        .args(["--list", "--no-color", "--variable", "CI_COMMIT_TAG=v1.2.3"])
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);

    assert!(out.status.success(), "{text}");
    for job in ["test", "build-image", "create-release"] {
        assert!(text.contains(job), "{job} is missing:\n{text}");
    }

    // The expanded pipeline: the image is built and pushed with buildah (kaniko's project is
    // archived), with the job's own registry credentials, and the test job runs ci/test.sh
    // with nothing switched off.
    let out = tokio::process::Command::new(&tool)
        .current_dir(dir.path())
        .args([
            "--preview",
            "--no-color",
            "--variable",
            "CI_COMMIT_TAG=v1.2.3",
        ])
        .output()
        .await
        .unwrap();
    let preview = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{preview}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: serde_json::Value = serde_yaml_from_preview(&preview);
    let build = &yaml["build-image"];
    let script = build["script"].to_string();
    assert!(script.contains("ci/image.sh"), "{build:#}");
    assert!(script.contains("buildah"), "{build:#}");
    assert!(
        script.contains("--password-stdin") && script.contains("$CI_REGISTRY_USER"),
        "{build:#}"
    );
    assert!(!preview.contains("kaniko"), "{preview}");
    let test = &yaml["test"];
    assert_eq!(
        test["script"],
        serde_json::json!(["ci/test.sh"]),
        "{test:#}"
    );
    assert!(!preview.contains("REGWARDEN_SKIP_IMAGE"), "{preview}");
    // The SBOM of the binary's dependencies, as the pipeline's CycloneDX report.
    let sbom = &yaml["sbom"];
    let script = sbom["script"].to_string();
    assert!(script.contains("cargo cyclonedx --format json"), "{sbom:#}");
    assert!(
        script.contains("cargo install cargo-cyclonedx --version"),
        "pinned: {sbom:#}"
    );
    assert_eq!(
        sbom["artifacts"]["reports"]["cyclonedx"], "gl-sbom-cargo-regwarden.cdx.json",
        "{sbom:#}"
    );
    // The release pushes the tag the components run: the version without a leading v.
    assert!(
        yaml["build-image"]["script"]
            .to_string()
            .contains("${CI_COMMIT_TAG#v}"),
        "{build:#}"
    );
}

/// `gitlab-ci-local --preview` prints the expanded pipeline as YAML: read it with the YAML
/// parser gitlab-ci-local itself ships (js-yaml), as JSON.
fn serde_yaml_from_preview(preview: &str) -> serde_json::Value {
    let tool = gitlab_ci_local().expect("checked by the caller");
    let modules = tool.parent().unwrap().parent().unwrap();
    let out = std::process::Command::new("node")
        .args([
            "-e",
            "const y = require(process.argv[1] + '/js-yaml'); let t = ''; \
             process.stdin.on('data', d => t += d).on('end', () => \
             process.stdout.write(JSON.stringify(y.safeLoad(t.slice(t.indexOf('---') + 3)))));",
        ])
        .arg(modules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(preview.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// gitlab-ci-local does not check `regex:` (it warns that it is a no-op); GitLab checks inputs
/// against it with RE2. gitlab-ci-local's own dependencies carry RE2 and a YAML parser, so every
/// template's regexes are compiled and tried with them: each must accept its default (or every
/// include would fail) and the values a user would write, and refuse what the job can't use.
#[tokio::test]
async fn every_input_regex_is_re2_accepts_its_default_and_refuses_bad_values() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    let modules = tool.parent().unwrap().parent().unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    // (template/input, accepted, refused)
    let samples: &[(&str, &[&str], &[&str])] = &[
        (
            "register/qovery-organization-id",
            &[ORG, "3C90C3CC-0D44-4B50-8888-8DD25736052A"],
            &["acme", "", "3c90c3cc0d444b5088888dd25736052a"],
        ),
        (
            "rotate/qovery-organization-id",
            &[ORG],
            &["acme", "3c90c3cc-0d44-4b50-8888-8dd25736052a\nx"],
        ),
        (
            "rotate/lifetime",
            &["30d", "90days", "1h 30m"],
            &["thirty days", "30", "-1d"],
        ),
        ("rotate/rotate-before", &["7d", "12h"], &["soon", ""]),
        ("rotate/grace-period", &["1h", "15min"], &["1 hour later!"]),
        (
            "register/qovery-url",
            &["https://api.qovery.com", "http://127.0.0.1:9"],
            &["api.qovery.com"],
        ),
        (
            "rotate/qovery-url",
            &["https://api.qovery.com"],
            &["ftp://api.qovery.com"],
        ),
        (
            "rotate/gitlab-url",
            &["", "https://gitlab.example.com"],
            &["gitlab.example.com"],
        ),
        (
            "rotate/instance",
            &["ci", "ci-prod", "a", "deploy-2"],
            &[
                "",
                "CI",
                "-ci",
                "ci-",
                "ci_prod",
                "a-very-long-instance-name-of-33-c",
            ],
        ),
        (
            "notify/server",
            &["https://regwarden.example.com"],
            &["regwarden.example.com", ""],
        ),
    ];
    let probes: serde_json::Value = samples
        .iter()
        .map(|(key, ok, bad)| {
            let values: Vec<&str> = ok.iter().chain(bad.iter()).copied().collect();
            (key.to_string(), serde_json::json!(values))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let script = r#"
        const [modules, dir, probes] = process.argv.slice(1);
        const yaml = require(modules + '/js-yaml');
        const RE2 = require(modules + '/re2');
        const fs = require('fs');
        const tried = JSON.parse(probes);
        const out = {};
        for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
          const [header] = yaml.safeLoadAll(fs.readFileSync(dir + '/' + file, 'utf8'));
          for (const [name, input] of Object.entries(header.spec.inputs)) {
            if (input.regex === undefined) continue;
            const key = file.replace(/\.yml$/, '') + '/' + name;
            const re = new RE2(input.regex);
            const matches = {};
            for (const v of tried[key] || []) matches[v] = re.test(v);
            out[key] = {
              default: 'default' in input ? String(input.default) : null,
              default_matches: 'default' in input ? re.test(String(input.default)) : null,
              matches,
            };
          }
        }
        console.log(JSON.stringify(out));
    "#;
    let out = tokio::process::Command::new("node")
        .args(["-e", script])
        .arg(modules)
        .arg(&templates)
        .arg(probes.to_string())
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for (key, input) in found.as_object().unwrap() {
        assert_ne!(
            input["default_matches"], false,
            "{key}: the default {} does not match its own regex",
            input["default"]
        );
    }
    for (key, ok, bad) in samples {
        let input = &found[*key];
        assert!(input.is_object(), "{key} has no regex: {found:#}");
        for v in *ok {
            assert_eq!(input["matches"][*v], true, "{key} refuses {v:?}");
        }
        for v in *bad {
            assert_eq!(input["matches"][*v], false, "{key} accepts {v:?}");
        }
    }
}

/// The README documents every input of every component with its default.
#[test]
fn the_readme_documents_every_input_with_its_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for name in ["register", "rotate", "notify"] {
        let text = std::fs::read_to_string(root.join(format!("templates/{name}.yml"))).unwrap();
        let (spec, _) = text.split_once("\n---\n").expect("a spec header");
        let section = readme
            .split_once(&format!("### `{name}`"))
            .unwrap_or_else(|| panic!("README has no section for {name}"))
            .1;
        let section = section.split("\n### ").next().unwrap();
        let mut input: Option<&str> = None;
        let mut default: Option<String> = None;
        let mut inputs = Vec::new();
        let (_, listed) = spec.split_once("\n  inputs:\n").expect("spec:inputs");
        for line in listed.lines().chain(["    end:"]) {
            if let Some(key) = line
                .strip_prefix("    ")
                .filter(|l| !l.starts_with(' '))
                .and_then(|l| l.strip_suffix(':'))
            {
                if let Some(done) = input.take() {
                    inputs.push((done, default.take()));
                }
                input = Some(key);
            } else if let Some(value) = line.trim_start().strip_prefix("default: ") {
                default = Some(value.trim_matches('"').to_string());
            }
        }
        assert!(!inputs.is_empty(), "{name} has inputs");
        for (key, default) in inputs {
            let row = match &default {
                Some(d) if d.is_empty() => format!("| `{key}` | `\"\"` |"),
                Some(d) => format!("| `{key}` | `{d}` |"),
                None => format!("| `{key}` | required |"),
            };
            assert!(
                section.contains(&row),
                "README's {name} table lacks the row starting {row}"
            );
        }
    }
}

#[tokio::test]
async fn each_component_job_runs_the_image_of_its_own_version_never_latest() {
    let Some(tool) = gitlab_ci_local() else {
        return;
    };
    for (component, job, inputs) in [
        (
            "notify",
            "regwarden-notify",
            vec![("server", "https://regwarden.example.com")],
        ),
        (
            "register",
            "regwarden-register",
            vec![("qovery-organization-id", ORG)],
        ),
        (
            "rotate",
            "regwarden-rotate",
            vec![("qovery-organization-id", ORG)],
        ),
    ] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(format!("{component}.yml")),
        )
        .unwrap();
        assert!(!text.contains(":latest"), "{component}: {text}");
        assert!(
            text.starts_with("spec:\n") && text.contains("\n  component: [version]\n"),
            "{component} asks GitLab for its version"
        );
        let repo = Repo::including(component, &inputs);
        let out = tokio::process::Command::new(&tool)
            .current_dir(repo.dir.path())
            .args(["--preview", "--no-color"])
            .output()
            .await
            .unwrap();
        let preview = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{component}: {preview}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = serde_yaml_from_preview(&preview);
        // gitlab-ci-local expands inputs, not the component context, which GitLab fills in
        // with the version the component was included at.
        assert_eq!(
            yaml[job]["image"]["name"],
            "registry.gitlab.com/regwarden/regwarden:$[[ component.version ]]",
            "{component}: {preview}"
        );
    }
}
