//! Does a credential really let its holder pull (or push) a repository? The Docker Registry
//! v2 token flow, done by hand so that each step's answer can be explained:
//!
//! 1. `GET /v2/`: the registry names its auth scheme in a `WWW-Authenticate` challenge.
//! 2. Bearer: ask the realm (GitLab's `/jwt/auth`) for `repository:<path>:<actions>` with Basic
//!    auth, then read the `access` claim of the JWT it grants. GitLab answers 200 even for a
//!    token of another project, with the repository missing from `access`: a login that
//!    succeeds proves nothing about the repository.
//! 3. `GET /v2/<path>/tags/list` with that JWT (or with Basic auth): the registry itself must
//!    not refuse it. 404 `NAME_UNKNOWN` is a repository with no image yet, and still access.

pub mod challenge;
pub mod token;

use std::fmt;

use reqwest::{Response, StatusCode, Url, header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::credential::{Credential, Fingerprint};
use crate::outbound::{directory_url, error_chain, one_line};

/// What the credential must allow on the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Pull images (a deploy token with `read_registry`).
    Pull,
    /// Pull and push images (`read_registry` and `write_registry`).
    Push,
}

impl Access {
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Access::Pull => &["pull"],
            Access::Push => &["pull", "push"],
        }
    }
}

/// The verdict of a check. Each has its own exit code in `regwarden check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The credential works for the repository and the actions.
    Ok,
    /// The realm (or a Basic-auth registry) refused the credential: wrong, revoked or expired.
    Rejected,
    /// The credential is valid but does not reach the repository with the actions.
    NoAccess,
    /// The registry or its realm could not be reached, or answered nonsense.
    Unreachable,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Rejected => 3,
            Outcome::NoAccess => 4,
            Outcome::Unreachable => 5,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::NoAccess => "no_access",
            Outcome::Unreachable => "unreachable",
        })
    }
}

/// How the registry asked to be authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    Bearer,
    Basic,
    /// The registry answered `/v2/` without asking for credentials.
    None,
}

/// The full account of one check. It holds no secret: only the username and the fingerprint.
#[derive(Clone, Debug, Serialize)]
pub struct CredentialCheck {
    pub outcome: Outcome,
    /// One line, for a person: what happened and, when it failed, the likely cause.
    pub explanation: String,
    /// What the other side said, when it said something useful (scrubbed of the password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub registry: String,
    pub repository: String,
    pub username: String,
    pub fingerprint: Fingerprint,
    pub requested: Vec<String>,
    /// The actions the realm's JWT grants on the repository (`None` when it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthScheme>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// `true` when the repository exists but holds no image yet (404 `NAME_UNKNOWN`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repository_empty: bool,
    /// The tag whose manifest was asked for, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `true` when that tag is not in the repository (404): no credential could pull it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tag_missing: bool,
}

impl CredentialCheck {
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Whether a passed check proves anything about this credential: only a grant the token
    /// realm made for it does (GitLab's realm refuses a wrong or revoked token with 401, and
    /// lists in the JWT's `access` claim what this one may do). A registry that answers
    /// `/v2/` without asking for credentials, one with Basic auth (which may let anyone pull),
    /// or a realm whose token is not a JWT, would let any token pass: inconclusive.
    pub fn proves_the_credential(&self) -> Result<(), String> {
        let why = match (self.auth, &self.granted) {
            (Some(AuthScheme::Bearer), Some(granted)) if !granted.is_empty() => return Ok(()),
            (Some(AuthScheme::None), _) => {
                "the registry answered /v2/ without asking for credentials"
            }
            (Some(AuthScheme::Basic), _) => {
                "the registry asks for Basic auth instead of tokens from a realm"
            }
            (Some(AuthScheme::Bearer), _) => {
                "the realm's token is not a JWT whose access claim could be read"
            }
            (None, _) => "the registry named no auth scheme",
        };
        Err(format!(
            "the check is inconclusive: {why}, so any token would pass it; regwarden hands Qovery only a credential a token realm (GitLab's /jwt/auth) granted access for: point gitlab.registry_url at the registry GitLab uses, with token auth"
        ))
    }
}

/// One failed step: the outcome it leads to, a sentence, and what the peer said.
struct Failure {
    outcome: Outcome,
    explanation: String,
    detail: Option<String>,
}

impl Failure {
    fn new(outcome: Outcome, explanation: impl Into<String>) -> Self {
        Self {
            outcome,
            explanation: explanation.into(),
            detail: None,
        }
    }

    fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
}

/// Checks `credential` against the registry at `registry` for `repository` and `access`.
///
/// Makes no retry: a caller that expects a brand-new token to need a moment retries itself.
pub async fn check(
    client: &reqwest::Client,
    registry: &Url,
    repository: &str,
    access: Access,
    credential: &Credential,
) -> CredentialCheck {
    check_flow(client, registry, repository, access, None, credential).await
}

/// Checks that `credential` can pull image `repository:tag`: the same flow as [`check`],
/// then the tag's manifest (`HEAD /v2/<repository>/manifests/<tag>`) with the realm's token.
/// A tag the registry does not hold is reported (`tag_missing`), not a refusal: no credential
/// could pull it.
pub async fn check_image(
    client: &reqwest::Client,
    registry: &Url,
    repository: &str,
    tag: &str,
    credential: &Credential,
) -> CredentialCheck {
    check_flow(
        client,
        registry,
        repository,
        Access::Pull,
        Some(tag),
        credential,
    )
    .await
}

async fn check_flow(
    client: &reqwest::Client,
    registry: &Url,
    repository: &str,
    access: Access,
    tag: Option<&str>,
    credential: &Credential,
) -> CredentialCheck {
    let mut report = CredentialCheck {
        outcome: Outcome::Ok,
        explanation: String::new(),
        detail: None,
        registry: registry.as_str().trim_end_matches('/').to_string(),
        repository: repository.to_string(),
        username: credential.username.clone(),
        fingerprint: credential.fingerprint(),
        requested: access.actions().iter().map(|a| a.to_string()).collect(),
        granted: None,
        auth: None,
        realm: None,
        repository_empty: false,
        tag: tag.map(str::to_string),
        tag_missing: false,
    };
    let flow = Flow {
        client,
        base: directory_url(registry, ""),
        repository,
        access,
        tag,
        credential,
    };
    match flow.run(&mut report).await {
        Ok(explanation) => report.explanation = explanation,
        Err(failure) => {
            report.outcome = failure.outcome;
            report.explanation = failure.explanation;
            report.detail = failure.detail.map(|d| credential.scrub(&d));
        }
    }
    tracing::debug!(
        outcome = %report.outcome,
        repository,
        username = %report.username,
        fingerprint = %report.fingerprint,
        "credential check"
    );
    report
}

struct Flow<'a> {
    client: &'a reqwest::Client,
    base: Url,
    repository: &'a str,
    access: Access,
    /// A tag whose manifest must be readable too.
    tag: Option<&'a str>,
    credential: &'a Credential,
}

enum Auth {
    Bearer(String),
    Basic,
    None,
}

impl Flow<'_> {
    async fn run(&self, report: &mut CredentialCheck) -> Result<String, Failure> {
        let v2 = self.url("v2/")?;
        let ping = self.send(self.client.get(v2), "the registry").await?;
        let auth = match ping.status() {
            s if s.is_success() => {
                report.auth = Some(AuthScheme::None);
                Auth::None
            }
            StatusCode::UNAUTHORIZED => {
                let challenges = challenges_of(&ping);
                if let Some(bearer) = challenges.iter().find(|c| c.is("bearer")) {
                    report.auth = Some(AuthScheme::Bearer);
                    let realm = bearer.param("realm").ok_or_else(|| {
                        Failure::new(
                            Outcome::Unreachable,
                            "the registry's Bearer challenge names no realm",
                        )
                    })?;
                    report.realm = Some(realm.to_string());
                    let token = self
                        .token_from_realm(realm, bearer.param("service"), report)
                        .await?;
                    Auth::Bearer(token)
                } else if challenges.iter().any(|c| c.is("basic")) {
                    report.auth = Some(AuthScheme::Basic);
                    Auth::Basic
                } else {
                    return Err(Failure::new(
                        Outcome::Unreachable,
                        "the registry answered 401 to GET /v2/ without a Bearer or Basic WWW-Authenticate challenge",
                    ));
                }
            }
            status => {
                return Err(Failure::new(
                    Outcome::Unreachable,
                    format!("GET /v2/ answered {status}: this URL does not serve the Docker Registry v2 API"),
                )
                .with_detail(error_summary(ping, self.credential).await));
            }
        };
        let listed = self.list_tags(&auth, report).await?;
        match self.tag {
            Some(tag) if !report.repository_empty => self.manifest(&auth, tag, report).await,
            Some(_) => {
                report.tag_missing = true;
                Ok(listed)
            }
            None => Ok(listed),
        }
    }

    /// `HEAD /v2/<repository>/manifests/<tag>`: the deployed tag is there and this credential
    /// may read it.
    async fn manifest(
        &self,
        auth: &Auth,
        tag: &str,
        report: &mut CredentialCheck,
    ) -> Result<String, Failure> {
        let url = self.url(&format!("v2/{}/manifests/{tag}", self.repository))?;
        let request = self.authorize(self.client.head(url), auth).header(
            header::ACCEPT,
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, \
             application/vnd.docker.distribution.manifest.v2+json",
        );
        let response = self.send(request, "the registry").await?;
        match response.status() {
            s if s.is_success() => Ok(format!("the credential can pull {}:{tag}", self.repository)),
            StatusCode::NOT_FOUND => {
                report.tag_missing = true;
                Ok(format!(
                    "the credential can pull {}, which has no tag {tag}",
                    self.repository
                ))
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(Failure::new(
                Outcome::NoAccess,
                format!(
                    "the registry refused the manifest of {}:{tag} ({status})",
                    self.repository
                ),
            )),
            status => Err(Failure::new(
                Outcome::Unreachable,
                format!(
                    "HEAD /v2/{}/manifests/{tag} answered {status}",
                    self.repository
                ),
            )),
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
        match auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic => request.basic_auth(
                &self.credential.username,
                Some(self.credential.password.expose_secret()),
            ),
            Auth::None => request,
        }
    }

    fn url(&self, path: &str) -> Result<Url, Failure> {
        self.base.join(path).map_err(|e| {
            Failure::new(
                Outcome::Unreachable,
                format!("cannot build the URL for {path}: {e}"),
            )
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        peer: &str,
    ) -> Result<Response, Failure> {
        request.send().await.map_err(|e| {
            let hint = if is_certificate_error(&e) {
                ": the server's certificate is not trusted; pass the CA that signed it with --ca-file"
            } else if e.is_timeout() {
                ": no answer in time"
            } else if e.is_connect() {
                ": cannot connect"
            } else {
                ""
            };
            Failure::new(Outcome::Unreachable, format!("cannot reach {peer}{hint}"))
                .with_detail(Some(error_chain(&e)))
        })
    }

    async fn token_from_realm(
        &self,
        realm: &str,
        service: Option<&str>,
        report: &mut CredentialCheck,
    ) -> Result<String, Failure> {
        let realm_url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::new(
                    Outcome::Unreachable,
                    format!("the registry's realm {realm:?} is not an http(s) URL"),
                )
            })?;
        // The realm comes from the registry's answer: a registry reached over https does not
        // get to send the credential elsewhere in clear.
        if self.base.scheme() == "https"
            && let Err(why) = crate::outbound::refuse_cleartext(&realm_url)
        {
            return Err(Failure::new(
                Outcome::Unreachable,
                format!("the registry's realm {why}; regwarden does not send a credential there"),
            ));
        }
        let scope = format!(
            "repository:{}:{}",
            self.repository,
            self.access.actions().join(",")
        );
        let mut query: Vec<(&str, &str)> = vec![("scope", &scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let request = self.client.get(realm_url).query(&query).basic_auth(
            &self.credential.username,
            Some(self.credential.password.expose_secret()),
        );
        let response = self.send(request, "the registry's token realm").await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(Failure::new(
                    Outcome::Rejected,
                    "the realm refused the credential (401): the username or token is wrong, or the token is revoked or expired",
                )
                .with_detail(error_summary(response, self.credential).await));
            }
            StatusCode::FORBIDDEN => {
                return Err(Failure::new(
                    Outcome::NoAccess,
                    "the realm accepted the credential but refused registry access (403): the token has no read_registry scope",
                )
                .with_detail(error_summary(response, self.credential).await));
            }
            StatusCode::NOT_FOUND => {
                return Err(Failure::new(
                    Outcome::Unreachable,
                    "the realm answered 404: the container registry is disabled on this GitLab, or the service name is wrong",
                )
                .with_detail(error_summary(response, self.credential).await));
            }
            status => {
                return Err(Failure::new(
                    Outcome::Unreachable,
                    format!("the realm answered {status}"),
                )
                .with_detail(error_summary(response, self.credential).await));
            }
        }
        let token = crate::outbound::read_body(response, TOKEN_ANSWER_LIMIT)
            .await
            .map_err(|e| e.to_string())
            .and_then(|bytes| token::token_answer(&bytes).map_err(|e| e.to_string()))
            .map_err(|e| {
                Failure::new(
                    Outcome::Unreachable,
                    "the realm answered 200 but not with a JSON token",
                )
                .with_detail(Some(e))
            })?;
        self.judge_claims(&token, report)?;
        Ok(token)
    }

    /// Reads the JWT's `access` claim (see `token.rs`): it explains *why* access is missing.
    fn judge_claims(&self, token: &str, report: &mut CredentialCheck) -> Result<(), Failure> {
        // Not every registry hands out JWTs (some tokens are opaque); the tags call decides.
        let Some(granted) = token::granted_actions(token, self.repository) else {
            return Ok(());
        };
        let has = |action: &str| granted.iter().any(|g| g == action || g == "*");
        let missing: Vec<&str> = self
            .access
            .actions()
            .iter()
            .copied()
            .filter(|a| !has(a))
            .collect();
        report.granted = Some(granted.clone());
        if granted.is_empty() {
            return Err(Failure::new(
                Outcome::NoAccess,
                format!(
                    "the credential is valid but the realm granted no access to {}: the token belongs to another project or group",
                    self.repository
                ),
            ));
        }
        if !missing.is_empty() {
            let scope_hint = if missing.contains(&"push") {
                "write_registry"
            } else {
                "read_registry"
            };
            return Err(Failure::new(
                Outcome::NoAccess,
                format!(
                    "the realm granted {} but not {} on {}: the token needs the {scope_hint} scope",
                    granted.join(","),
                    missing.join(","),
                    self.repository
                ),
            ));
        }
        Ok(())
    }

    async fn list_tags(
        &self,
        auth: &Auth,
        report: &mut CredentialCheck,
    ) -> Result<String, Failure> {
        let url = self.url(&format!("v2/{}/tags/list", self.repository))?;
        let request = self.authorize(self.client.get(url), auth);
        let auth_label = match auth {
            Auth::Bearer(_) => "the realm's token",
            Auth::Basic => "the credential",
            Auth::None => "no credential at all",
        };
        let response = self.send(request, "the registry").await?;
        let status = response.status();
        let actions = self.access.actions().join(",");
        match status {
            s if s.is_success() => Ok(match auth {
                Auth::None => format!("the registry requires no credential: {} is readable by anyone", self.repository),
                Auth::Basic if self.access == Access::Push => format!(
                    "the credential can list {}; a Basic-auth registry does not say whether it may push",
                    self.repository
                ),
                _ => format!("the credential can {actions} {}", self.repository),
            }),
            StatusCode::NOT_FOUND => {
                let detail = error_summary(response, self.credential).await;
                if detail.as_deref().is_some_and(|d| d.contains("NAME_UNKNOWN")) {
                    report.repository_empty = true;
                    Ok(format!(
                        "the credential can {actions} {}, which holds no image yet",
                        self.repository
                    ))
                } else {
                    Err(Failure::new(
                        Outcome::Unreachable,
                        format!("GET /v2/{}/tags/list answered 404 without NAME_UNKNOWN", self.repository),
                    )
                    .with_detail(detail))
                }
            }
            StatusCode::UNAUTHORIZED if matches!(auth, Auth::Basic) => Err(Failure::new(
                Outcome::Rejected,
                "the registry refused the credential (401): the username or token is wrong, or the token is revoked or expired",
            )
            .with_detail(error_summary(response, self.credential).await)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::new(
                Outcome::NoAccess,
                format!(
                    "the registry refused to list {} with {auth_label} ({status})",
                    self.repository
                ),
            )
            .with_detail(error_summary(response, self.credential).await)),
            _ => Err(Failure::new(
                Outcome::Unreachable,
                format!("GET /v2/{}/tags/list answered {status}", self.repository),
            )
            .with_detail(error_summary(response, self.credential).await)),
        }
    }
}

/// Every challenge of every `WWW-Authenticate` header of a response.
fn challenges_of(response: &Response) -> Vec<challenge::Challenge> {
    response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(challenge::parse)
        .collect()
}

/// Is a Docker Registry v2 API answering at `registry`, and how does it authenticate?
pub async fn probe(client: &reqwest::Client, registry: &Url) -> anyhow::Result<String> {
    let auth = authentication(client, registry).await?;
    Ok(match auth {
        Authentication::Open => format!("{registry}: answers without authentication"),
        Authentication::Token { realm } => format!(
            "{registry}: token authentication, realm {}",
            realm.as_deref().unwrap_or("(none)")
        ),
        Authentication::Basic => format!("{registry}: Basic authentication"),
    })
}

/// How a registry asks its clients to authenticate, from its answer to `GET /v2/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// It answers without any.
    Open,
    /// Bearer tokens from a realm (GitLab's `/jwt/auth`).
    Token {
        realm: Option<String>,
    },
    Basic,
}

impl Authentication {
    pub fn label(&self) -> String {
        match self {
            Authentication::Open => "no authentication".into(),
            Authentication::Token { realm: Some(r) } => format!("token authentication (realm {r})"),
            Authentication::Token { realm: None } => "token authentication without a realm".into(),
            Authentication::Basic => "Basic authentication".into(),
        }
    }
}

/// Asks `GET /v2/` how the registry authenticates its clients.
pub async fn authentication(
    client: &reqwest::Client,
    registry: &Url,
) -> anyhow::Result<Authentication> {
    let url = directory_url(registry, "v2");
    let response = client.get(url).send().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the registry at {registry}: {}",
            error_chain(&e)
        )
    })?;
    let status = response.status();
    let challenges = challenges_of(&response);
    match status {
        s if s.is_success() => Ok(Authentication::Open),
        StatusCode::UNAUTHORIZED => match challenges.iter().find(|c| c.is("bearer")) {
            Some(bearer) => Ok(Authentication::Token {
                realm: bearer.param("realm").map(str::to_string),
            }),
            None if challenges.iter().any(|c| c.is("basic")) => Ok(Authentication::Basic),
            None => Err(anyhow::anyhow!(
                "{registry}: 401 without an authentication challenge"
            )),
        },
        s => Err(anyhow::anyhow!(
            "{registry}: GET /v2/ answered {s}: not a Docker Registry v2 API"
        )),
    }
}

/// A realm's token answer is a JWT of a few KiB; more is not a token.
const TOKEN_ANSWER_LIMIT: usize = 256 << 10;
/// The most of an error answer read to explain it.
const ERROR_ANSWER_LIMIT: usize = 64 << 10;

/// The registry error format: `{"errors":[{"code":"...","message":"..."}]}`; else the start of
/// the body. Bounded so a misbehaving peer cannot flood a terminal or a log line.
async fn error_summary(response: Response, credential: &Credential) -> Option<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<RegistryError>,
    }
    #[derive(Deserialize)]
    struct RegistryError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = crate::outbound::read_text(response, ERROR_ANSWER_LIMIT)
        .await
        .ok()?;
    let summary = match serde_json::from_str::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body,
    };
    // Scrubbed whole, then shortened: a cut could leave part of a secret.
    let summary = one_line(&credential.scrub(&summary), 300);
    (!summary.is_empty()).then_some(summary)
}

fn is_certificate_error(err: &reqwest::Error) -> bool {
    let text = error_chain(err).to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer") || text.contains("invalid peer")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed(auth: Option<AuthScheme>, granted: Option<&[&str]>) -> CredentialCheck {
        CredentialCheck {
            outcome: Outcome::Ok,
            explanation: String::new(),
            detail: None,
            registry: "https://r.example".into(),
            repository: "acme/api".into(),
            username: "u".into(),
            fingerprint: Credential::new("u", secrecy::SecretString::from("p")).fingerprint(),
            requested: vec!["pull".into()],
            granted: granted.map(|g| g.iter().map(|a| a.to_string()).collect()),
            auth,
            realm: None,
            repository_empty: false,
            tag: None,
            tag_missing: false,
        }
    }

    #[test]
    fn only_a_grant_the_realm_made_proves_a_credential() {
        assert!(
            passed(Some(AuthScheme::Bearer), Some(&["pull"]))
                .proves_the_credential()
                .is_ok()
        );
        for (check, why) in [
            (
                passed(Some(AuthScheme::None), None),
                "without asking for credentials",
            ),
            (passed(Some(AuthScheme::Basic), None), "Basic auth"),
            (passed(Some(AuthScheme::Bearer), None), "not a JWT"),
            (passed(Some(AuthScheme::Bearer), Some(&[])), "not a JWT"),
        ] {
            let e = check.proves_the_credential().unwrap_err();
            assert!(e.contains("inconclusive") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn a_registry_path_prefix_is_kept() {
        let u = Url::parse("https://r.example/prefix").unwrap();
        assert_eq!(
            directory_url(&u, "").join("v2/").unwrap().as_str(),
            "https://r.example/prefix/v2/"
        );
        let u = Url::parse("https://r.example").unwrap();
        assert_eq!(
            directory_url(&u, "").join("v2/").unwrap().as_str(),
            "https://r.example/v2/"
        );
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Outcome::Ok.exit_code(), 0);
        assert_eq!(Outcome::Rejected.exit_code(), 3);
        assert_eq!(Outcome::NoAccess.exit_code(), 4);
        assert_eq!(Outcome::Unreachable.exit_code(), 5);
    }
}
