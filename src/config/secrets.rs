//! Secrets never live in the configuration file: it names the environment variable (or the
//! file) that holds each one, and this reads it, naming the variable or file in every error,
//! never a value.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::Config;

/// Where a secret comes from: an environment variable, or a file (which wins when given).
#[derive(Debug, Clone)]
pub struct SecretSource<'a> {
    /// The config key that names the source, for messages (e.g. `gitlab.token_env`).
    pub key: &'a str,
    pub env: &'a str,
    pub file: Option<&'a Path>,
}

/// Why a secret could not be read. Names the variable or file, never shows a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{key} names the environment variable {env}, which is not set or is empty: export it, or set {file_key} to a file holding the secret"
    )]
    MissingEnv {
        key: String,
        env: String,
        file_key: String,
    },
    #[error("cannot read the secret file {path} ({key}): {source}")]
    File {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret file {path} ({key}) is empty")]
    EmptyFile { key: String, path: PathBuf },
}

/// A secret file holds a token or a URL: a few hundred bytes. Reading more is a mistake (the
/// wrong path, a device), and is refused.
const MAX_SECRET_FILE: u64 = 64 << 10;

/// Reads a secret file: a regular file (not a FIFO or a device, which could block or never
/// end), no larger than [`MAX_SECRET_FILE`]. Inside the multi-threaded runtime the read runs
/// as blocking work, off the threads that drive requests.
fn read_secret_file(path: &Path) -> std::io::Result<String> {
    let read = || {
        use std::io::Read;
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, before
        // the check below could refuse it. It changes nothing for a regular file.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)?
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if meta.len() > MAX_SECRET_FILE {
            return Err(std::io::Error::other(format!(
                "larger than {} KiB: not a secret file",
                MAX_SECRET_FILE >> 10
            )));
        }
        let mut text = String::new();
        file.take(MAX_SECRET_FILE + 1).read_to_string(&mut text)?;
        Ok(text)
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(read)
        }
        _ => read(),
    }
}

impl SecretSource<'_> {
    /// Reads the secret, trimming surrounding white space (files usually end in a newline).
    pub fn read(&self) -> Result<SecretString, SecretError> {
        if let Some(path) = self.file {
            let text = read_secret_file(path).map_err(|source| SecretError::File {
                key: self.file_key(),
                path: path.to_path_buf(),
                source,
            })?;
            let value = text.trim();
            if value.is_empty() {
                return Err(SecretError::EmptyFile {
                    key: self.file_key(),
                    path: path.to_path_buf(),
                });
            }
            return Ok(SecretString::from(value.to_string()));
        }
        match std::env::var(self.env) {
            Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(SecretError::MissingEnv {
                key: self.key.to_string(),
                env: self.env.to_string(),
                file_key: self.file_key(),
            }),
        }
    }

    fn file_key(&self) -> String {
        match self.key.strip_suffix("_env") {
            Some(stem) => format!("{stem}_file"),
            None => format!("{}_file", self.key),
        }
    }
}

impl Config {
    pub fn gitlab_token_source(&self) -> SecretSource<'_> {
        SecretSource {
            key: "gitlab.token_env",
            env: &self.gitlab.token_env,
            file: self.gitlab.token_file.as_deref(),
        }
    }

    pub fn qovery_token_source(&self) -> SecretSource<'_> {
        SecretSource {
            key: "qovery.token_env",
            env: &self.qovery.token_env,
            file: self.qovery.token_file.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn source<'a>(env: &'a str, file: Option<&'a Path>) -> SecretSource<'a> {
        SecretSource {
            key: "gitlab.token_env",
            env,
            file,
        }
    }

    #[test]
    fn a_secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "glpat-abc\n").unwrap();
        let secret = source("REGWARDEN_TEST_UNSET_1", Some(&path))
            .read()
            .unwrap();
        assert_eq!(secret.expose_secret(), "glpat-abc");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without a writer, a blocking open would never return: run it on a thread and bound
        // the wait, so a regression fails instead of hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let r = source("REGWARDEN_TEST_UNSET_2", Some(&p))
                .read()
                .map(|_| ());
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO blocked")
            .unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(err.contains("gitlab.token_file"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn a_directory_or_an_oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = source("X", Some(dir.path()))
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; (MAX_SECRET_FILE + 1) as usize]).unwrap();
        let err = source("X", Some(&big)).read().unwrap_err().to_string();
        assert!(err.contains("larger than 64 KiB"), "{err}");
        // The refusal names the file, never its content.
        assert!(!err.contains("aaaa"), "{err}");

        let exact = dir.path().join("exact");
        std::fs::write(&exact, vec![b'a'; MAX_SECRET_FILE as usize]).unwrap();
        assert!(source("X", Some(&exact)).read().is_ok());
    }

    #[test]
    fn an_empty_file_or_variable_names_the_key_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let err = source("X", Some(&empty)).read().unwrap_err().to_string();
        assert!(
            err.contains("gitlab.token_file") && err.contains("is empty"),
            "{err}"
        );

        let err = source("REGWARDEN_TEST_SURELY_UNSET", None)
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("gitlab.token_env"), "{err}");
        assert!(err.contains("REGWARDEN_TEST_SURELY_UNSET"), "{err}");
        assert!(err.contains("gitlab.token_file"), "{err}");
    }
}
