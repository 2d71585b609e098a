//! A registry credential (username and token) and its public fingerprint.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A username and a secret token. `Debug` shows the username and the fingerprint only.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: SecretString,
}

impl Credential {
    pub fn new(username: impl Into<String>, password: SecretString) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.password.expose_secret())
    }

    /// Removes every occurrence of the secret from a text that came from elsewhere (a server's
    /// error body, say) before it is shown: a peer may echo what it was sent, as it was sent
    /// (the token), or as HTTP Basic auth carries it (`base64(username:token)`, with or
    /// without padding, in the standard or the URL-safe alphabet). Scrub a whole text before
    /// shortening it: a cut could leave part of a secret that no longer matches.
    pub fn scrub(&self, text: &str) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let secret = self.password.expose_secret();
        if secret.is_empty() {
            return text.to_string();
        }
        let basic = format!("{}:{secret}", self.username);
        let mut forms = vec![secret.to_string()];
        // As a JSON string carries it (a `"` or `\\` escaped).
        if let Ok(json) = serde_json::to_string(secret) {
            forms.push(json[1..json.len() - 1].to_string());
        }
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(basic.as_bytes()));
        }
        // Longest first, so that a padded form goes whole before its unpadded prefix.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let mut out = text.to_string();
        for form in &forms {
            out = out.replace(form.as_str(), "[REDACTED]");
        }
        out
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// `sha256:` and the first 12 hex digits of the SHA-256 of a secret: enough to tell tokens
/// apart in logs, the journal and Qovery's marker line, far too little to recover one.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("sha256:{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_prefix_of_twelve_hex_digits() {
        // printf 'gldt-secret' | sha256sum
        let fp = Fingerprint::of("gldt-secret");
        assert_eq!(fp.as_str(), "sha256:658cedb5e25d");
        assert_eq!(fp, Fingerprint::of("gldt-secret"));
        assert_ne!(fp, Fingerprint::of("gldt-secreT"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credential::new("gitlab+deploy-token-7", SecretString::from("gldt-hunter2"));
        let shown = format!("{c:?}");
        assert!(shown.contains("gitlab+deploy-token-7"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn scrub_removes_an_echoed_password() {
        let c = Credential::new("u", SecretString::from("gldt-hunter2"));
        assert_eq!(c.scrub("bad token gldt-hunter2!"), "bad token [REDACTED]!");
    }

    #[test]
    fn scrub_removes_the_basic_auth_form_too() {
        use base64::Engine;
        let c = Credential::new("gitlab+deploy-token-7", SecretString::from("gldt-hunter2"));
        let padded =
            base64::engine::general_purpose::STANDARD.encode("gitlab+deploy-token-7:gldt-hunter2");
        let text = format!(
            "refused Authorization: Basic {padded} and {}",
            padded.trim_end_matches('=')
        );
        let scrubbed = c.scrub(&text);
        assert_eq!(
            scrubbed,
            "refused Authorization: Basic [REDACTED] and [REDACTED]"
        );
    }
}
