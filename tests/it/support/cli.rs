//! Runs the real `regwarden` binary, as a user would, with a clean environment.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails the test if `secret` appears anywhere in what the run printed.
    pub fn assert_never_shows(&self, secret: &str) {
        assert!(!secret.is_empty());
        assert!(
            !self.stdout.contains(secret),
            "secret on stdout:\n{}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(secret),
            "secret on stderr:\n{}",
            self.stderr
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A command line being prepared: arguments, environment, standard input.
pub struct Regwarden {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    dir: Option<std::path::PathBuf>,
}

pub fn regwarden<I, S>(args: I) -> Regwarden
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Regwarden {
        args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
        env: Vec::new(),
        stdin: None,
        dir: None,
    }
}

impl Regwarden {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs it from `dir` (the test's own working directory otherwise).
    pub fn current_dir(mut self, dir: &std::path::Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn stdin(mut self, input: &str) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Starts the process and hands it over (a test that kills it).
    pub fn spawn(self) -> tokio::process::Child {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().expect("run the regwarden binary")
    }

    /// Starts the process with its stdout and stderr appended to `log`.
    pub fn spawn_logging(self, log: &std::path::Path) -> tokio::process::Child {
        let mut cmd = self.command();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file));
        cmd.spawn().expect("run the regwarden binary")
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_regwarden"));
        cmd.args(&self.args).kill_on_drop(true);
        // Only what the test sets: nothing from the developer's shell leaks in.
        for (key, _) in std::env::vars() {
            if key.starts_with("REGWARDEN_")
                || key.starts_with("GITLAB_")
                || key.starts_with("QOVERY_")
                || key == "RUST_LOG"
            {
                cmd.env_remove(key);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    pub async fn run(self) -> Run {
        let mut cmd = self.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run the regwarden binary");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = &self.stdin {
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
        drop(stdin);
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .expect("regwarden finished within 60 s")
                .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
