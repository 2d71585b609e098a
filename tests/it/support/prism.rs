//! Prism (`@stoplight/prism-cli`, pinned in ci/package.json) serving an API's own OpenAPI
//! description (`tests/fixtures/`) as a validating proxy: every request is checked against the
//! description before it reaches the fake, and every answer of the fake on its way back. A
//! request that breaks the description gets 422. Prism listens on a port the system picks
//! (`-p 0`) and tells which in its start-up line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prism {
    pub url: String,
    child: Child,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prism {
    /// Starts `bin` (Prism) as a proxy in front of `upstream` that validates every request and
    /// answer against the OpenAPI description `spec`, and answers a violation with an error
    /// (422 for a request) instead of forwarding it.
    pub fn proxy(bin: &Path, spec: &Path, upstream: &str) -> Prism {
        Self::start(bin, spec, upstream, true)
    }

    /// Like [`Prism::proxy`], but every request is forwarded, and what Prism finds wrong is
    /// listed in the `sl-violations` header of the answer.
    pub fn validator(bin: &Path, spec: &Path, upstream: &str) -> Prism {
        Self::start(bin, spec, upstream, false)
    }

    fn start(bin: &Path, spec: &Path, upstream: &str, errors: bool) -> Prism {
        let child = Command::new(bin)
            .arg("proxy")
            .arg(spec)
            .args([
                upstream,
                &format!("--errors={errors}"),
                "-h",
                "127.0.0.1",
                "-p",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prism");
        // Owned from here on, so that every way out (a panic included) stops the process.
        let mut prism = Prism {
            url: String::new(),
            child,
        };
        let stdout = prism.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep reading after start-up: Prism dies of a closed pipe if its log has no reader.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                // "Prism is listening on http://127.0.0.1:41234": the address it bound.
                Ok(line) if line.contains("Prism is listening on ") => {
                    let (_, url) = line.split_once("Prism is listening on ").unwrap();
                    let url = url.split_whitespace().next().unwrap_or_default();
                    prism.url = url.trim_end_matches('/').to_string();
                    return prism;
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    if let Ok(Some(status)) = prism.child.try_wait() {
                        panic!("prism exited with {status}: {}", seen.join("\n"));
                    }
                }
            }
        }
        panic!("prism did not start in 60 s: {}", seen.join("\n"));
    }
}
