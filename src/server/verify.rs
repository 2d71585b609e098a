//! Who may post webhooks: GitLab's Standard Webhooks signature (`webhook-signature`, an
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with a `whsec_` key), or, for
//! hooks without a signing token, the legacy `X-Gitlab-Token` shared secret. Several secrets
//! of each kind are accepted, so they can be rotated. Every comparison is constant-time.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{SecretSource, ServerConfig};

type HmacSha256 = Hmac<Sha256>;

/// The most `webhook-signature` candidates looked at. GitLab sends one (two while a signing
/// token is being rotated); more is refused, so an unauthenticated request cannot ask for
/// unbounded work.
pub const MAX_SIGNATURES: usize = 16;

/// Why a request was refused (a metrics label; the caller only ever sees a bare 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No signature and no token, or a token where a signature is required.
    Missing,
    /// `webhook-signature` present but empty or not `v1,<base64>`, or its headers missing.
    Malformed,
    /// `webhook-timestamp` outside the tolerance.
    Stale,
    /// No signature matches any signing key.
    BadSignature,
    /// `X-Gitlab-Token` matches no secret token.
    BadToken,
}

impl Rejection {
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::Stale => "stale",
            Rejection::BadSignature => "bad_signature",
            Rejection::BadToken => "bad_token",
        }
    }
}

/// How a request proved itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    Signature,
    SecretToken,
}

/// What a verified request may speak for: everything, or the namespaces (full paths of groups
/// or projects) of the scoped keys that signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Any,
    Namespaces(Vec<String>),
}

impl Scope {
    /// Whether an event about the project or group at `path` is this scope's.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Scope::Any => true,
            Scope::Namespaces(all) => all.iter().any(|ns| {
                path == ns
                    || path
                        .strip_prefix(ns.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }),
        }
    }
}

/// A verified request: how, and what for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub proof: Proof,
    pub scope: Scope,
}

/// One accepted secret, and the namespaces it speaks for (`None`: all).
struct Key<T> {
    secret: T,
    scope: Option<std::sync::Arc<[String]>>,
}

pub struct Verifier {
    signing_keys: Vec<Key<SecretBox<Vec<u8>>>>,
    /// SHA-256 of each secret token: comparing digests takes the same time whatever the
    /// lengths.
    token_digests: Vec<Key<[u8; 32]>>,
    require_signature: bool,
    tolerance: Duration,
}

/// The scope of the keys that matched: any, when one of them is unscoped; else the union of
/// theirs. Computed once the constant-time comparisons are over.
fn scope_of<T>(keys: &[Key<T>], matched: &[bool]) -> Scope {
    let mut namespaces = Vec::new();
    for (key, hit) in keys.iter().zip(matched) {
        if !hit {
            continue;
        }
        match &key.scope {
            None => return Scope::Any,
            Some(ns) => namespaces.extend(ns.iter().cloned()),
        }
    }
    Scope::Namespaces(namespaces)
}

/// The secrets of a comma-separated list the configuration names (a variable, or a file):
/// an unset variable is a kind of secret not configured (none); a file that cannot be read is
/// a mistake to report, not a secret to do without. The first is the current one.
pub fn configured_secrets(
    key: &'static str,
    env: &str,
    file: Option<&std::path::Path>,
) -> Result<Vec<String>, crate::config::SecretError> {
    match (SecretSource { key, env, file }).read() {
        Ok(s) => Ok(split(&s)),
        Err(crate::config::SecretError::MissingEnv { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Splits a comma-separated secret list; empty items are dropped.
fn split(secret: &SecretString) -> Vec<String> {
    secret
        .expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why the webhook secrets cannot be used: a configuration problem, named with its key.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("a signing token starts with whsec_ (GitLab shows it once, when generated)")]
    NotWhsec,
    #[error("a signing token is whsec_ followed by standard base64")]
    NotBase64,
    #[error("a signing token encodes at least 16 bytes (GitLab's encode 32)")]
    TooShort,
    #[error(
        "server.require_signature is set but no signing token is configured: set server.signing_tokens_env (whsec_...)"
    )]
    SignatureRequired,
    #[error(
        "no webhook secret is configured: set the variable named by server.signing_tokens_env (whsec_..., preferred) or server.secret_tokens_env"
    )]
    NoSecret,
    /// A secret file the configuration names cannot be read.
    #[error("{0}")]
    Secret(#[from] crate::config::SecretError),
    /// One of the above, with the variables the configuration names.
    #[error("{error} (signing tokens: {signing_env}, secret tokens: {secret_env})")]
    InConfig {
        error: Box<SetupError>,
        signing_env: String,
        secret_env: String,
    },
}

impl SetupError {
    /// Whether the only problem is that no secret is configured at all (the server then runs
    /// with webhooks off).
    pub fn is_no_secret(&self) -> bool {
        match self {
            SetupError::NoSecret => true,
            SetupError::InConfig { error, .. } => error.is_no_secret(),
            _ => false,
        }
    }
}

/// Decodes `whsec_<base64>` into the HMAC key.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, SetupError> {
    let encoded = secret.strip_prefix("whsec_").ok_or(SetupError::NotWhsec)?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SetupError::NotBase64)?;
    if key.len() < 16 {
        return Err(SetupError::TooShort);
    }
    Ok(key)
}

impl Verifier {
    pub fn new(
        signing_tokens: &[String],
        secret_tokens: &[String],
        require_signature: bool,
        tolerance: Duration,
    ) -> Result<Verifier, SetupError> {
        Self::scoped(
            signing_tokens.iter().map(|t| (t.clone(), None)).collect(),
            secret_tokens.iter().map(|t| (t.clone(), None)).collect(),
            require_signature,
            tolerance,
        )
    }

    /// Like [`Verifier::new`], each secret with the namespaces it speaks for (`None`: all).
    pub fn scoped(
        signing_tokens: Vec<(String, Option<Vec<String>>)>,
        secret_tokens: Vec<(String, Option<Vec<String>>)>,
        require_signature: bool,
        tolerance: Duration,
    ) -> Result<Verifier, SetupError> {
        let signing_keys = signing_tokens
            .into_iter()
            .map(|(t, scope)| {
                signing_key(&t).map(|k| Key {
                    secret: SecretBox::new(Box::new(k)),
                    scope: scope.map(Into::into),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_digests = secret_tokens
            .into_iter()
            .map(|(t, scope)| Key {
                secret: Sha256::digest(t.as_bytes()).into(),
                scope: scope.map(Into::into),
            })
            .collect();
        let verifier = Verifier {
            signing_keys,
            token_digests,
            require_signature,
            tolerance,
        };
        if verifier.signing_keys.is_empty()
            && (verifier.token_digests.is_empty() || require_signature)
        {
            return Err(if require_signature {
                SetupError::SignatureRequired
            } else {
                SetupError::NoSecret
            });
        }
        Ok(verifier)
    }

    /// Reads the secrets the configuration names (environment variables or files).
    pub fn from_config(server: &ServerConfig) -> Result<Verifier, SetupError> {
        let signing = configured_secrets(
            "server.signing_tokens_env",
            &server.signing_tokens_env,
            server.signing_tokens_file.as_deref(),
        )?;
        let tokens = configured_secrets(
            "server.secret_tokens_env",
            &server.secret_tokens_env,
            server.secret_tokens_file.as_deref(),
        )?;
        let mut signing: Vec<_> = signing.into_iter().map(|t| (t, None)).collect();
        let mut tokens: Vec<_> = tokens.into_iter().map(|t| (t, None)).collect();
        for key in &server.webhook_keys {
            let scope = Some(key.namespaces.clone());
            // A scoped key must be there: a variable it names that is unset is a mistake.
            let strict = |key: &'static str,
                          env: &Option<String>,
                          file: &Option<std::path::PathBuf>| {
                match (env, file) {
                    (None, None) => Ok(Vec::new()),
                    (env, file) => (SecretSource {
                        key,
                        env: env.as_deref().unwrap_or(""),
                        file: file.as_deref(),
                    })
                    .read()
                    .map(|s| split(&s))
                    .map_err(SetupError::from),
                }
            };
            for t in strict(
                "server.webhook_key.signing_token_env",
                &key.signing_token_env,
                &key.signing_token_file,
            )? {
                signing.push((t, scope.clone()));
            }
            for t in strict(
                "server.webhook_key.secret_token_env",
                &key.secret_token_env,
                &key.secret_token_file,
            )? {
                tokens.push((t, scope.clone()));
            }
        }
        Self::scoped(
            signing,
            tokens,
            server.require_signature,
            server.timestamp_tolerance.0,
        )
        .map_err(|e| SetupError::InConfig {
            error: Box::new(e),
            signing_env: server.signing_tokens_env.clone(),
            secret_env: server.secret_tokens_env.clone(),
        })
    }

    /// What can be judged before a body is read: a request with neither a signature nor a
    /// secret token, or a token that matches none (a token is proof on its own), or a signature
    /// whose headers are malformed or whose timestamp is stale, is refused here, and none of its
    /// body is read. `Ok(Some(_))`: authenticated by its token already; `Ok(None)`: the
    /// signature is checked once the body is read ([`Self::verify`]).
    pub fn precheck(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Option<Authenticated>, Rejection> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(signatures) = header("webhook-signature") {
            let (Some(_), Some(timestamp)) = (header("webhook-id"), header("webhook-timestamp"))
            else {
                return Err(Rejection::Malformed);
            };
            let ts: i64 = timestamp.trim().parse().map_err(|_| Rejection::Malformed)?;
            if now.abs_diff(ts) > self.tolerance.as_secs() {
                return Err(Rejection::Stale);
            }
            let listed = signatures
                .split_whitespace()
                .take(MAX_SIGNATURES + 1)
                .count();
            if listed == 0 || listed > MAX_SIGNATURES || self.signing_keys.is_empty() {
                return Err(if listed == 0 || listed > MAX_SIGNATURES {
                    Rejection::Malformed
                } else {
                    Rejection::BadSignature
                });
            }
            return Ok(None);
        }
        // A token needs no body: the whole check happens here.
        self.verify(headers, &[], now).map(Some)
    }

    /// Checks a request; `now` is the current Unix time in seconds.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Authenticated, Rejection> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(signatures) = header("webhook-signature") {
            return self.verify_signature(
                signatures,
                header("webhook-id"),
                header("webhook-timestamp"),
                body,
                now,
            );
        }
        if self.require_signature {
            return Err(Rejection::Missing);
        }
        let Some(token) = header("x-gitlab-token") else {
            return Err(Rejection::Missing);
        };
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every secret is compared, so the time taken does not tell which one matched.
        let hits: Vec<subtle::Choice> = self
            .token_digests
            .iter()
            .map(|d| d.secret.ct_eq(&presented))
            .collect();
        let matched = hits
            .iter()
            .fold(subtle::Choice::from(0), |acc, hit| acc | *hit);
        if bool::from(matched) {
            let hits: Vec<bool> = hits.into_iter().map(bool::from).collect();
            Ok(Authenticated {
                proof: Proof::SecretToken,
                scope: scope_of(&self.token_digests, &hits),
            })
        } else {
            Err(Rejection::BadToken)
        }
    }

    fn verify_signature(
        &self,
        signatures: &str,
        id: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Authenticated, Rejection> {
        let (Some(id), Some(timestamp)) = (id, timestamp) else {
            return Err(Rejection::Malformed);
        };
        let ts: i64 = timestamp.trim().parse().map_err(|_| Rejection::Malformed)?;
        if now.abs_diff(ts) > self.tolerance.as_secs() {
            return Err(Rejection::Stale);
        }
        // Bound the work an unauthenticated request can ask for: at most MAX_SIGNATURES
        // candidates are looked at, and each key's HMAC is computed once, whatever their number.
        let listed: Vec<&str> = signatures
            .split_whitespace()
            .take(MAX_SIGNATURES + 1)
            .collect();
        if listed.len() > MAX_SIGNATURES {
            return Err(Rejection::Malformed);
        }
        let candidates: Vec<Vec<u8>> = listed
            .iter()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .filter(|sig| !sig.is_empty())
            .collect();
        if candidates.is_empty() {
            return Err(Rejection::Malformed);
        }
        // Every key against every candidate, without stopping at a match: the time taken
        // does not tell which key or candidate matched.
        let mut matched = subtle::Choice::from(0);
        let mut hits = Vec::with_capacity(self.signing_keys.len());
        for key in &self.signing_keys {
            let mut mac = HmacSha256::new_from_slice(key.secret.expose_secret())
                .expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            let mut hit = subtle::Choice::from(0);
            for candidate in &candidates {
                // Lengths are public (a SHA-256 HMAC is 32 bytes); ct_eq of unequal lengths
                // is false.
                hit |= expected[..].ct_eq(candidate.as_slice());
            }
            matched |= hit;
            hits.push(hit);
        }
        if bool::from(matched) {
            let hits: Vec<bool> = hits.into_iter().map(bool::from).collect();
            Ok(Authenticated {
                proof: Proof::Signature,
                scope: scope_of(&self.signing_keys, &hits),
            })
        } else {
            Err(Rejection::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // Mutation testing (`cargo mutants -f src/server/verify.rs`) left these two alive: an
    // exclusive or where two matches must still count as one, and `>=` at the tolerance's edge.

    #[test]
    fn what_needs_no_body_is_judged_before_it_is_read() {
        let v = verifier(&[SECRET], &["tok"], false);
        assert_eq!(v.precheck(&HeaderMap::new(), TS), Err(Rejection::Missing));
        assert_eq!(v.precheck(&signed(SIGNATURE, ID, TS), TS), Ok(None));
        assert_eq!(
            v.precheck(&signed(SIGNATURE, ID, TS), TS + 301),
            Err(Rejection::Stale)
        );
        let mut no_id = signed(SIGNATURE, ID, TS);
        no_id.remove("webhook-id");
        assert_eq!(v.precheck(&no_id, TS), Err(Rejection::Malformed));
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", HeaderValue::from_static("tok"));
        assert!(matches!(v.precheck(&h, TS), Ok(Some(_))));
        h.insert("x-gitlab-token", HeaderValue::from_static("guess"));
        assert_eq!(v.precheck(&h, TS), Err(Rejection::BadToken));
        // A signature where no signing key is configured cannot verify.
        let tokens_only = verifier(&[], &["tok"], false);
        assert_eq!(
            tokens_only.precheck(&signed(SIGNATURE, ID, TS), TS),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn refusals_are_labelled_for_the_metrics() {
        let labels: Vec<&str> = [
            Rejection::Missing,
            Rejection::Malformed,
            Rejection::Stale,
            Rejection::BadSignature,
            Rejection::BadToken,
        ]
        .iter()
        .map(|r| r.label())
        .collect();
        assert_eq!(
            labels,
            [
                "missing",
                "malformed",
                "stale",
                "bad_signature",
                "bad_token"
            ]
        );
    }

    #[test]
    fn a_secret_list_is_split_on_commas_without_empty_items() {
        let list = SecretString::from(" whsec_a , ,whsec_b,".to_string());
        assert_eq!(split(&list), ["whsec_a", "whsec_b"]);
        assert!(split(&SecretString::from(" , ".to_string())).is_empty());
    }

    #[test]
    fn two_matches_still_count_as_a_match() {
        // The same secret configured twice (a rotation that lists it in two places).
        let v = verifier(&[SECRET, SECRET], &["tok", "tok"], false);
        assert!(v.verify(&signed(SIGNATURE, ID, TS), BODY, TS).is_ok());
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", HeaderValue::from_static("tok"));
        assert!(v.verify(&h, BODY, TS).is_ok());
        // One key, its signature listed twice in the header.
        let one = verifier(&[SECRET], &[], false);
        let twice = format!("{SIGNATURE} {SIGNATURE}");
        assert!(one.verify(&signed(&twice, ID, TS), BODY, TS).is_ok());
    }

    #[test]
    fn a_timestamp_exactly_at_the_tolerance_is_accepted_and_one_second_past_it_is_stale() {
        let v = verifier(&[SECRET], &[], false);
        let h = signed(SIGNATURE, ID, TS);
        assert!(v.verify(&h, BODY, TS + 300).is_ok());
        assert!(v.verify(&h, BODY, TS - 300).is_ok());
        assert_eq!(v.verify(&h, BODY, TS + 301), Err(Rejection::Stale));
        assert_eq!(v.verify(&h, BODY, TS - 301), Err(Rejection::Stale));
    }

    #[test]
    fn a_scope_covers_its_namespaces_and_what_is_below_them() {
        let acme = Scope::Namespaces(vec!["acme".into(), "tools/ci".into()]);
        assert!(acme.covers("acme") && acme.covers("acme/api") && acme.covers("tools/ci/x"));
        assert!(!acme.covers("acme2/api") && !acme.covers("tools") && !acme.covers("other/acme"));
        assert!(Scope::Any.covers("anything/at/all"));
    }

    #[test]
    fn a_scoped_key_lends_its_scope_and_an_unscoped_one_lends_all() {
        let scoped = |ns: &str| Some(vec![ns.to_string()]);
        let v = Verifier::scoped(
            vec![(SECRET.into(), scoped("acme"))],
            vec![("only-other".into(), scoped("other")), ("all".into(), None)],
            false,
            Duration::from_secs(300),
        )
        .unwrap();
        let signed = v.verify(&signed(SIGNATURE, ID, TS), BODY, TS).unwrap();
        assert_eq!(signed.scope, Scope::Namespaces(vec!["acme".into()]));
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", HeaderValue::from_static("only-other"));
        assert_eq!(
            v.verify(&h, BODY, TS).unwrap().scope,
            Scope::Namespaces(vec!["other".into()])
        );
        h.insert("x-gitlab-token", HeaderValue::from_static("all"));
        assert_eq!(v.verify(&h, BODY, TS).unwrap().scope, Scope::Any);
    }

    // Computed independently:
    //   key=$(printf 'regwarden-test-signing-key-32b!!' | xxd -p -c 256)
    //   printf '%s' 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1744578123.{"object_kind":"deploy_token"}' \
    //     | openssl dgst -sha256 -mac HMAC -macopt hexkey:$key -binary | base64
    const SECRET: &str = "whsec_cmVnd2FyZGVuLXRlc3Qtc2lnbmluZy1rZXktMzJiISE=";
    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const TS: i64 = 1744578123;
    const BODY: &[u8] = br#"{"object_kind":"deploy_token"}"#;
    const SIGNATURE: &str = "v1,NQozMc8iDwDH92arH2gVV9LETTfPzSi5MSXoyX7kuKo=";

    fn verifier(signing: &[&str], tokens: &[&str], require: bool) -> Verifier {
        Verifier::new(
            &signing.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &tokens.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            require,
            Duration::from_secs(300),
        )
        .unwrap()
    }

    fn signed(signature: &str, id: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert("webhook-timestamp", HeaderValue::from(ts));
        h
    }

    #[test]
    fn the_documented_algorithm_matches_an_independent_vector() {
        let v = verifier(&[SECRET], &[], false);
        assert_eq!(
            v.verify(&signed(SIGNATURE, ID, TS), BODY, TS + 10),
            Ok(Authenticated {
                proof: Proof::Signature,
                scope: Scope::Any
            })
        );
    }

    #[test]
    fn any_configured_key_and_any_listed_signature_may_match() {
        let other = "whsec_b3RoZXItc2VjcmV0LWtleS1mb3ItdGVzdHMhIQ==";
        let v = verifier(&[other, SECRET], &[], false);
        let several = format!("v1,AAAA {SIGNATURE} v2,ignored");
        assert_eq!(
            v.verify(&signed(&several, ID, TS), BODY, TS),
            Ok(Authenticated {
                proof: Proof::Signature,
                scope: Scope::Any
            })
        );
    }

    #[test]
    fn a_changed_body_id_or_timestamp_breaks_the_signature() {
        let v = verifier(&[SECRET], &[], false);
        assert_eq!(
            v.verify(&signed(SIGNATURE, ID, TS), b"{}", TS),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            v.verify(&signed(SIGNATURE, "msg_other", TS), BODY, TS),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            v.verify(&signed(SIGNATURE, ID, TS + 1), BODY, TS),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let v = verifier(&[SECRET], &[], false);
        assert_eq!(
            v.verify(&signed(SIGNATURE, ID, TS), BODY, TS + 301),
            Err(Rejection::Stale)
        );
        assert_eq!(
            v.verify(&signed(SIGNATURE, ID, TS), BODY, TS - 301),
            Err(Rejection::Stale)
        );
        // Timestamps at the ends of the range are stale, not an overflow.
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert_eq!(
                v.verify(&signed(SIGNATURE, ID, ts), BODY, TS),
                Err(Rejection::Stale),
                "{ts}"
            );
        }
    }

    #[test]
    fn empty_and_malformed_signatures_are_refused() {
        let v = verifier(&[SECRET], &["legacy"], false);
        for bad in [
            "",
            "   ",
            "v1,",
            "v1,!!!",
            "v2,NQozMc8iDwDH92arH2gVV9LETTfPzSi5MSXoyX7kuKo=",
        ] {
            assert_eq!(
                v.verify(&signed(bad, ID, TS), BODY, TS),
                Err(Rejection::Malformed),
                "{bad:?}"
            );
        }
        let mut h = signed(SIGNATURE, ID, TS);
        h.remove("webhook-id");
        assert_eq!(v.verify(&h, BODY, TS), Err(Rejection::Malformed));
    }

    #[test]
    fn more_than_sixteen_candidates_are_refused_even_with_a_valid_one() {
        let v = verifier(&[SECRET], &[], false);
        let padding = vec!["v1,AAAA"; MAX_SIGNATURES].join(" ");
        let seventeen = format!("{padding} {SIGNATURE}");
        assert_eq!(
            v.verify(&signed(&seventeen, ID, TS), BODY, TS),
            Err(Rejection::Malformed)
        );
        let sixteen = format!(
            "{} {SIGNATURE}",
            vec!["v1,AAAA"; MAX_SIGNATURES - 1].join(" ")
        );
        assert_eq!(
            v.verify(&signed(&sixteen, ID, TS), BODY, TS),
            Ok(Authenticated {
                proof: Proof::Signature,
                scope: Scope::Any
            })
        );
    }

    #[test]
    fn a_bad_signature_does_not_fall_back_to_the_token() {
        let v = verifier(&[SECRET], &["legacy"], false);
        let mut h = signed("v1,AAAA", ID, TS);
        h.insert("x-gitlab-token", HeaderValue::from_static("legacy"));
        assert_eq!(v.verify(&h, BODY, TS), Err(Rejection::BadSignature));
    }

    #[test]
    fn the_legacy_token_matches_any_configured_secret() {
        let v = verifier(&[], &["first", "second"], false);
        let with = |t: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-gitlab-token", HeaderValue::from_static(t));
            h
        };
        assert_eq!(
            v.verify(&with("second"), BODY, TS),
            Ok(Authenticated {
                proof: Proof::SecretToken,
                scope: Scope::Any
            })
        );
        assert_eq!(v.verify(&with("secon"), BODY, TS), Err(Rejection::BadToken));
        assert_eq!(
            v.verify(&HeaderMap::new(), BODY, TS),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn require_signature_refuses_the_legacy_token() {
        let v = verifier(&[SECRET], &["legacy"], true);
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", HeaderValue::from_static("legacy"));
        assert_eq!(v.verify(&h, BODY, TS), Err(Rejection::Missing));
    }

    #[test]
    fn an_unreadable_secret_file_is_reported_not_ignored() {
        let server = ServerConfig {
            signing_tokens_file: Some("/nonexistent/regwarden/signing".into()),
            ..ServerConfig::default()
        };
        let e = Verifier::from_config(&server).err().expect("refused");
        let message = e.to_string();
        assert!(
            message.contains("/nonexistent/regwarden/signing"),
            "{message}"
        );
        assert!(message.contains("server.signing_tokens_file"), "{message}");
    }

    #[test]
    fn a_server_without_any_secret_does_not_start() {
        assert!(Verifier::new(&[], &[], false, Duration::from_secs(300)).is_err());
        assert!(Verifier::new(&[], &["t".into()], true, Duration::from_secs(300)).is_err());
        let bad = Verifier::new(&["not-whsec".into()], &[], false, Duration::from_secs(300));
        assert!(bad.err().unwrap().to_string().contains("whsec_"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    /// Signs as GitLab does (Standard Webhooks), independently of the verifier's code path.
    fn sign(key: &[u8], id: &str, ts: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn headers(signature: &str, id: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert("webhook-timestamp", HeaderValue::from(ts));
        h
    }

    proptest! {
        #[test]
        fn what_a_configured_key_signs_verifies_and_nothing_else_does(
            key in proptest::collection::vec(any::<u8>(), 16..48),
            other_key in proptest::collection::vec(any::<u8>(), 16..48),
            id in "msg_[A-Za-z0-9]{1,24}",
            ts in 1_600_000_000i64..2_000_000_000,
            skew in -300i64..=300,
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<prop::sample::Index>(),
        ) {
            prop_assume!(key != other_key);
            let secret = format!("whsec_{}", STANDARD.encode(&key));
            let v = Verifier::new(&[secret], &[], true, Duration::from_secs(300)).unwrap();
            let good = sign(&key, &id, ts, &body);
            prop_assert_eq!(
                v.verify(&headers(&good, &id, ts), &body, ts + skew),
                Ok(Authenticated { proof: Proof::Signature, scope: Scope::Any })
            );
            let forged = sign(&other_key, &id, ts, &body);
            prop_assert_eq!(
                v.verify(&headers(&forged, &id, ts), &body, ts),
                Err(Rejection::BadSignature)
            );
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip.index(changed.len());
                changed[i] ^= 1;
                prop_assert_eq!(
                    v.verify(&headers(&good, &id, ts), &changed, ts),
                    Err(Rejection::BadSignature)
                );
            }
        }
    }
}
