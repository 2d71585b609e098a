//! Prism (`@stoplight/prism-cli`, pinned in ci/package.json) serving Qovery's own OpenAPI as a
//! validating proxy: every request is checked against the spec before it reaches the fake,
//! and every answer of the fake on its way back. A request that breaks the spec gets 422.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::closed_port;

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

/// Why the contract tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    for var in ["REGWARDEN_PRISM", "REGWARDEN_QOVERY_OPENAPI"] {
        match std::env::var(var) {
            Ok(v) if std::path::Path::new(&v).exists() => {}
            Ok(v) => return Some(format!("{var}={v} does not exist")),
            Err(_) => {
                return Some(format!(
                    "{var} is not set (ci/test.sh sets it: Prism from ci/package.json, the spec from ../shared/reference)"
                ));
            }
        }
    }
    None
}

impl Prism {
    /// Starts `prism proxy` in front of `upstream`, with errors on any violation.
    pub fn proxy(upstream: &str) -> Prism {
        let bin = std::env::var("REGWARDEN_PRISM").unwrap();
        let spec = std::env::var("REGWARDEN_QOVERY_OPENAPI").unwrap();
        let port = closed_port();
        let child = Command::new(bin)
            .args([
                "proxy",
                &spec,
                upstream,
                "--errors",
                "-h",
                "127.0.0.1",
                "-p",
            ])
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prism");
        // Owned from here on, so that every way out (a panic included) stops the process.
        let mut prism = Prism {
            url: format!("http://127.0.0.1:{port}"),
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
                Ok(line) if line.contains("Prism is listening") => return prism,
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
