//! How a command ends when it does not succeed, and the exit status that means, the same for
//! every command (the `--help` of `regwarden` lists them):
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command ran, and something it checked or did failed (a binding, a probe, the store, a peer) |
//! | 2 | bad usage or configuration: the message says what to change |
//! | 3, 4, 5 | a credential check's outcome (`check`, `ci register`): rejected, no access, unreachable |

use std::fmt;

use crate::registry::Outcome;

#[derive(Debug)]
pub enum Failure {
    /// Exit 1, with what failed and why (the chain of causes).
    Failed(anyhow::Error),
    /// Exit 2: what to change in the command line or the environment.
    Usage(String),
    /// Exit 2: every problem of the configuration file, each with its file, line and key.
    Config(crate::config::ConfigError),
    /// Exit 3, 4 or 5: a credential check that did not pass.
    Check { outcome: Outcome, message: String },
    /// Exit 1, the command's own report already said why.
    Reported,
}

impl Failure {
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure::Failed(error.into())
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Failure::Usage(message.to_string())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Failed(_) | Failure::Reported => 1,
            Failure::Usage(_) | Failure::Config(_) => 2,
            Failure::Check { outcome, .. } => outcome.exit_code(),
        }
    }

    /// The message for standard error, if the command did not print its own report.
    pub fn message(&self) -> Option<String> {
        match self {
            // With its causes, each once: "the store: cannot open ...: connection refused".
            Failure::Failed(e) => Some(crate::outbound::error_chain(e.as_ref())),
            Failure::Usage(m) | Failure::Check { message: m, .. } if !m.is_empty() => {
                Some(m.clone())
            }
            Failure::Usage(_) | Failure::Check { .. } => None,
            Failure::Config(_) | Failure::Reported => None,
        }
    }

    /// Writes the failure to standard error: `prefix` and the message, or the configuration's
    /// problems as they are (`file:line: key: message`, one per line).
    pub fn print(&self, prefix: &str) {
        if let Failure::Config(e) = self {
            eprintln!("{e}");
        } else if let Some(message) = self.message() {
            eprintln!("{prefix}{message}");
        }
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_documented_exit_code() {
        assert_eq!(Failure::failed(anyhow::anyhow!("x")).exit_code(), 1);
        assert_eq!(Failure::Reported.exit_code(), 1);
        assert_eq!(Failure::usage("x").exit_code(), 2);
        for (outcome, code) in [
            (Outcome::Rejected, 3),
            (Outcome::NoAccess, 4),
            (Outcome::Unreachable, 5),
        ] {
            let f = Failure::Check {
                outcome,
                message: String::new(),
            };
            assert_eq!(f.exit_code(), code);
        }
    }

    #[test]
    fn a_failure_says_its_causes_each_once() {
        let e = anyhow::anyhow!("connection refused").context("cannot open the store");
        assert_eq!(
            Failure::failed(e).message().unwrap(),
            "cannot open the store: connection refused"
        );
        // A message that already quotes its cause does not repeat it.
        let quoted = anyhow::anyhow!("connection refused")
            .context("cannot open the store at x: connection refused")
            .context("the store");
        assert_eq!(
            Failure::failed(quoted).message().unwrap(),
            "the store: cannot open the store at x: connection refused"
        );
        // A check whose report was printed adds no empty line.
        let check = Failure::Check {
            outcome: Outcome::Rejected,
            message: String::new(),
        };
        assert_eq!(check.message(), None);
    }
}
