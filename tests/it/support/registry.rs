//! The real container registry: Debian's `docker-registry` (CNCF distribution 2.8), started
//! per test on a loopback port the system picks (`http.addr: 127.0.0.1:0`, read back from the
//! registry's log), with token auth pointing at the fake GitLab realm.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::gitlab::{ISSUER, SERVICE};

/// How the registry authenticates.
pub enum Auth<'a> {
    /// `auth.token` with this realm, trusting this signer certificate.
    Token {
        realm: &'a str,
        signer_cert: &'a Path,
    },
    /// `auth.htpasswd` with this (bcrypt) htpasswd file.
    Htpasswd { file: &'a Path },
    /// No `auth` section: anyone pulls and pushes (a misconfigured registry).
    Anonymous,
}

pub struct Tls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

pub struct Registry {
    pub url: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_binary() -> String {
    if let Ok(bin) = std::env::var("REGWARDEN_TEST_REGISTRY_BIN") {
        return bin;
    }
    for candidate in [
        "/usr/bin/docker-registry",
        "/usr/local/bin/registry",
        "/usr/bin/registry",
    ] {
        if Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    panic!(
        "no container registry binary: these tests need Debian's docker-registry (apt-get install docker-registry; \
         ci/test.sh does it) or REGWARDEN_TEST_REGISTRY_BIN"
    );
}

impl Registry {
    pub async fn start(dir: &Path, auth: Auth<'_>, tls: Option<Tls<'_>>) -> Self {
        let root = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir_in(dir)
            .unwrap()
            .keep();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let auth_yaml = match &auth {
            Auth::Token { realm, signer_cert } => format!(
                "  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                signer_cert.display()
            ),
            Auth::Htpasswd { file } => {
                format!(
                    "  htpasswd:\n    realm: regwarden-test\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Anonymous => String::new(),
        };
        let tls_yaml = match &tls {
            Some(t) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ),
            None => String::new(),
        };
        let auth = if auth_yaml.is_empty() {
            String::new()
        } else {
            format!("auth:\n{auth_yaml}")
        };
        // Port 0: the registry binds a port the system picks and logs it, at level info.
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: regwarden-test-upload-secret\n{tls_yaml}{auth}",
            root.join("data").display()
        );
        let config_path = root.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = root.join("registry.err");
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(
                std::fs::File::create(root.join("registry.log")).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start docker-registry");
        // Owned from here on, so that every way out (a panic included) stops the process.
        let mut registry = Registry {
            url: String::new(),
            child,
            log,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        if !registry
            .wait_ready(scheme, tls.as_ref().map(|t| t.ca))
            .await
        {
            panic!(
                "the registry did not start: {}",
                std::fs::read_to_string(&registry.log).unwrap_or_default()
            );
        }
        registry
    }

    /// Learns the address from the log, then waits until the registry answers there.
    async fn wait_ready(&mut self, scheme: &str, ca: Option<&Path>) -> bool {
        let client = test_client(ca);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.url.is_empty()
                && let Some(addr) =
                    bound_address(&std::fs::read_to_string(&self.log).unwrap_or_default())
            {
                self.url = format!("{scheme}://{addr}");
            }
            if !self.url.is_empty()
                && let Ok(r) = client.get(format!("{}/v2/", self.url)).send().await
                && (r.status() == 401 || r.status() == 200)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// The address in the registry's start-up line, `msg="listening on 127.0.0.1:41234"` (followed
/// by `, tls` with TLS): the port the system picked for `http.addr: 127.0.0.1:0`.
fn bound_address(log: &str) -> Option<String> {
    let (_, rest) = log.split_once("msg=\"listening on ")?;
    rest.split(['"', ',']).next().map(str::to_string)
}

/// An HTTP client for test set-up that trusts the test CA when given.
pub fn test_client(ca: Option<&Path>) -> reqwest::Client {
    regwarden::outbound::client(ca, Duration::from_secs(10)).expect("an HTTP client")
}

fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Pushes a tiny image (one config blob, one layer) as `repository:tag`, with a bearer token
/// that grants push (see `FakeGitlab::mint_registry_jwt`).
pub async fn push_image(
    registry_url: &str,
    ca: Option<&Path>,
    repository: &str,
    tag: &str,
    bearer: &str,
) {
    let client = test_client(ca);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let layer = format!("regwarden test layer for {repository}").into_bytes();
    for blob in [config.as_slice(), layer.as_slice()] {
        let start = client
            .post(format!("{registry_url}/v2/{repository}/blobs/uploads/"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(
            start.status(),
            202,
            "start upload: {}",
            start.text().await.unwrap()
        );
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{registry_url}{location}")
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = client
            .put(format!("{location}{separator}digest={}", digest(blob)))
            .bearer_auth(bearer)
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            201,
            "finish upload: {}",
            put.text().await.unwrap()
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": digest(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": digest(&layer)}],
    });
    let put = client
        .put(format!("{registry_url}/v2/{repository}/manifests/{tag}"))
        .bearer_auth(bearer)
        .header(
            "content-type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        201,
        "put manifest: {}",
        put.text().await.unwrap()
    );
}
