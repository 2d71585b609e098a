//! The self-managed GitLab checklist of Qovery's guide, run from regwarden's side (README,
//! "Self-managed GitLab"): the registry is enabled, its URL is the one GitLab reports, its
//! realm is this GitLab's `/jwt/auth`, its certificate is one Qovery can trust, Qovery's
//! clusters can reach it, and the Qovery registries bound to it point at it with the right
//! kind. regwarden's own registry check proves a credential from where regwarden stands (its
//! `ca_file`, its network); these checks are about where Qovery stands.

pub mod tls;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use reqwest::Url;
use serde::Serialize;

use crate::gitlab::{GitlabClient, Namespace, Project};
use crate::qovery::{QoveryClient, Registry, RegistryKind};
use crate::reconcile::plan::Binding;

/// A certificate that expires within this is worth a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Which item of the checklist a finding is about (the `check` label of
/// `regwarden_registry_checklist`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The instance has a registry, and each bound project's is on.
    RegistryEnabled,
    /// `gitlab.registry_url` is the address GitLab reports.
    RegistryUrl,
    /// The registry sends clients to this GitLab's `/jwt/auth` for tokens.
    Realm,
    /// The certificate chain verifies against public roots alone, and is not about to expire.
    Tls,
    /// The registry's host resolves to an address Qovery's managed clusters can reach.
    Reachable,
    /// The Qovery registries bound to this GitLab point at its registry, with the right kind.
    QoveryRegistry,
    /// Qovery lists an image's tags through each bound registry that exists (a report: Qovery
    /// does not document what that listing proves, so a refusal is a warning).
    QoveryView,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::RegistryEnabled => "registry_enabled",
            Check::RegistryUrl => "registry_url",
            Check::Realm => "realm",
            Check::Tls => "tls",
            Check::Reachable => "reachable",
            Check::QoveryRegistry => "qovery_registry",
            Check::QoveryView => "qovery_view",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One item of the checklist, for one host, project or Qovery registry.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: Check,
    /// The registry host, the project or the Qovery registry the finding is about.
    pub subject: String,
    pub status: Status,
    /// What was found and, unless it holds, what to change.
    pub message: String,
}

impl Finding {
    fn new(check: Check, subject: impl Into<String>, status: Status, message: String) -> Self {
        // Hosts, realms and registry names come from peers: printed as they are, they could
        // forge a line or drive a terminal.
        Self {
            check,
            subject: crate::outbound::printable(&subject.into()).into_owned(),
            status,
            message: crate::outbound::printable(&message).into_owned(),
        }
    }

    /// Whether the item holds (a warning holds, with a remark).
    pub fn holds(&self) -> bool {
        self.status != Status::Fail
    }
}

/// What the checklist needs: GitLab, the registry as configured, and (for the Qovery items)
/// Qovery.
pub struct Checklist<'a> {
    /// regwarden's own client (with `gitlab.ca_file`): the realm is read the way regwarden
    /// reads it.
    pub http: &'a reqwest::Client,
    pub gitlab: &'a GitlabClient,
    pub gitlab_url: &'a Url,
    pub qovery: Option<(&'a QoveryClient, &'a str)>,
    /// `gitlab.registry_url` (or gitlab.com's registry), when the configuration gives one.
    pub configured: Option<&'a Url>,
    pub ca_file: Option<&'a Path>,
    pub timeout: Duration,
    /// `qovery.private_network`: Qovery's clusters run inside the user's own network.
    pub private_network: bool,
}

/// The registry the checklist settled on, and everything it found.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    #[serde(serialize_with = "url_or_null")]
    pub registry: Option<Url>,
    pub findings: Vec<Finding>,
}

fn url_or_null<S: serde::Serializer>(url: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_str(&trimmed(u)),
        None => s.serialize_none(),
    }
}

impl Outcome {
    /// Whether each item holds (every finding of it does), in the order first met: what
    /// `regwarden_registry_checklist{host,check}` shows.
    pub fn by_check(&self) -> Vec<(Check, bool)> {
        let mut items: Vec<(Check, bool)> = Vec::new();
        for f in &self.findings {
            match items.iter_mut().find(|(c, _)| *c == f.check) {
                Some((_, holds)) => *holds &= f.holds(),
                None => items.push((f.check, f.holds())),
            }
        }
        items
    }

    /// The registry's `host:port`, for labels and messages.
    pub fn host(&self) -> Option<String> {
        self.registry.as_ref().map(host_label)
    }
}

/// What a reconcile pass needs to run the checklist: the `[gitlab]` and `[qovery]` settings it
/// reads.
#[derive(Clone, Debug)]
pub struct Settings {
    pub gitlab_url: Url,
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
    pub private_network: bool,
}

impl Settings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            gitlab_url: config.gitlab.url.0.clone(),
            ca_file: config.gitlab.ca_file.clone(),
            timeout: config.reconcile.http_timeout.0,
            private_network: config.qovery.private_network,
        }
    }
}

impl Checklist<'_> {
    /// Every item, for `bindings`' projects and for the one registry host they use
    /// (`config check --online`): each bound project read, Qovery's registries listed, and
    /// Qovery's own view of each bound one.
    pub async fn run(&self, bindings: &[Binding]) -> Outcome {
        let mut findings = Vec::new();
        let projects = self.bound_projects(bindings, &mut findings).await;
        let registry = self.registry_items(&projects, &mut findings).await;
        if let (Some(registry), Some((qovery, org))) = (&registry, self.qovery) {
            findings.extend(
                qovery_side(qovery, org, bindings, &projects, registry, self.gitlab_url).await,
            );
        }
        Outcome { registry, findings }
    }

    /// The checklist of one reconcile pass, at most once per registry host: one GitLab read
    /// (a bound project, for the registry GitLab reports), the registry's own items, and the
    /// Qovery registries from the list the pass has already read. No other GitLab or Qovery
    /// call.
    pub async fn for_pass(&self, bindings: &[Binding], registries: &[Registry]) -> Outcome {
        let mut findings = Vec::new();
        let first = bindings
            .iter()
            .position(|b| b.blocked.is_none())
            .map_or(&[][..], |i| &bindings[i..=i]);
        let projects = self.bound_projects(first, &mut findings).await;
        let registry = self.registry_items(&projects, &mut findings).await;
        if let Some(registry) = &registry {
            findings.extend(qovery_registries(
                registries,
                bindings,
                registry,
                self.gitlab_url,
            ));
        }
        Outcome { registry, findings }
    }

    /// `registry_enabled` for `projects`, `registry_url`, and the registry's own items
    /// (`realm`, `tls`, `reachable`); the registry they settled on.
    async fn registry_items(
        &self,
        projects: &[(String, Project)],
        findings: &mut Vec<Finding>,
    ) -> Option<Url> {
        let reported = registry_address(projects);
        findings.extend(registry_enabled(projects, self.gitlab_url));
        let registry = self.registry_url(reported.as_ref(), findings)?;
        let host = host_label(&registry);
        let (realm, tls, reachable) = tokio::join!(
            self.realm(&registry, &host),
            self.tls(&registry, &host),
            self.reachable(&registry, &host)
        );
        findings.extend([realm, tls, reachable]);
        Some(registry)
    }

    /// Each bound project as GitLab describes it; a group binding stands for one project of
    /// its group (the registry's address is instance-wide). A project that cannot be read is
    /// a failed `registry_enabled` item.
    async fn bound_projects(
        &self,
        bindings: &[Binding],
        findings: &mut Vec<Finding>,
    ) -> Vec<(String, Project)> {
        use futures_util::StreamExt;
        let mut seen = std::collections::HashSet::new();
        let wanted: Vec<&Binding> = bindings
            .iter()
            .filter(|b| b.blocked.is_none() && seen.insert(b.namespace.clone()))
            .collect();
        // Boxed one by one: a stream of closures' futures is not provably `Send` to the
        // compiler when a server's task awaits it.
        use futures_util::FutureExt;
        let reads: Vec<futures_util::future::BoxFuture<'_, _>> = wanted
            .into_iter()
            .map(|b| self.project_of(b).boxed())
            .collect();
        let read = futures_util::stream::iter(reads)
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        let mut projects = Vec::new();
        for (b, result) in read {
            match result {
                Ok(Some(p)) => projects.push((b.name.clone(), p)),
                Ok(None) => findings.push(Finding::new(
                    Check::RegistryEnabled,
                    namespace_label(&b.namespace),
                    Status::Warn,
                    format!(
                        "binding {:?}: group {} has no project of its own, so no registry to check",
                        b.name,
                        namespace_label(&b.namespace)
                    ),
                )),
                Err(e) => findings.push(Finding::new(
                    Check::RegistryEnabled,
                    namespace_label(&b.namespace),
                    Status::Fail,
                    format!(
                        "binding {:?}: cannot read {} from GitLab: {e}",
                        b.name,
                        namespace_label(&b.namespace)
                    ),
                )),
            }
        }
        projects
    }

    /// A binding's project: by its pinned id, its path, or the first of its group.
    async fn project_of<'b>(
        &self,
        b: &'b Binding,
    ) -> (
        &'b Binding,
        Result<Option<Project>, crate::outbound::ApiError>,
    ) {
        let result = match (&b.namespace, b.pinned) {
            (_, Some(id)) => self.gitlab.project(&id.to_string()).await.map(Some),
            (Namespace::Project(p), None) => self.gitlab.project(p).await.map(Some),
            (Namespace::Group(g), None) => self.gitlab.a_group_project(g).await,
        };
        (b, result)
    }

    /// The registry to check: `gitlab.registry_url` when set (and then it must be GitLab's own
    /// address), else the one GitLab reports.
    fn registry_url(&self, reported: Option<&Url>, findings: &mut Vec<Finding>) -> Option<Url> {
        let subject = "gitlab.registry_url";
        match (self.configured, reported) {
            (Some(ours), Some(gitlabs)) if same_origin(ours, gitlabs) => {
                findings.push(Finding::new(
                    Check::RegistryUrl,
                    subject,
                    Status::Ok,
                    format!("{}: the registry GitLab reports", trimmed(ours)),
                ));
                Some(ours.clone())
            }
            (Some(ours), Some(gitlabs)) => {
                findings.push(Finding::new(
                    Check::RegistryUrl,
                    subject,
                    Status::Fail,
                    format!(
                        "{} is not the registry GitLab reports, {}{}: set gitlab.registry_url = \"{}\" (or leave it out: regwarden then uses GitLab's)",
                        trimmed(ours),
                        trimmed(gitlabs),
                        url_difference(ours, gitlabs, self.gitlab_url),
                        trimmed(gitlabs)
                    ),
                ));
                Some(ours.clone())
            }
            (Some(ours), None) => {
                findings.push(Finding::new(
                    Check::RegistryUrl,
                    subject,
                    Status::Warn,
                    format!(
                        "{}: GitLab reported no registry address for the bound projects to compare it with",
                        trimmed(ours)
                    ),
                ));
                Some(ours.clone())
            }
            (None, Some(gitlabs)) => {
                findings.push(Finding::new(
                    Check::RegistryUrl,
                    subject,
                    Status::Ok,
                    format!(
                        "not set: regwarden uses {}, the registry GitLab reports",
                        trimmed(gitlabs)
                    ),
                ));
                Some(gitlabs.clone())
            }
            (None, None) => {
                findings.push(Finding::new(
                    Check::RegistryUrl,
                    subject,
                    Status::Fail,
                    "not set, and GitLab reported no registry for the bound projects: set gitlab.registry_url to the registry's URL (e.g. \"https://gitlab.example.com:5050\")".into(),
                ));
                None
            }
        }
    }

    async fn realm(&self, registry: &Url, host: &str) -> Finding {
        let expected = jwt_auth(self.gitlab_url);
        let (status, message) = match crate::registry::authentication(self.http, registry).await {
            Err(e) => (Status::Fail, crate::outbound::error_chain(e.as_ref())),
            Ok(crate::registry::Authentication::Token { realm: Some(realm) }) => {
                match Url::parse(&realm) {
                    Ok(r)
                        if same_origin(&r, &expected)
                            && r.path().trim_end_matches('/') == expected.path() =>
                    {
                        (Status::Ok, format!("token realm {realm}: this GitLab's"))
                    }
                    _ => (
                        Status::Fail,
                        format!(
                            "the registry sends clients to {realm} for tokens, not to this GitLab's {expected}: it belongs to another GitLab, or its auth.token.realm is wrong (set it to {expected}); tokens regwarden makes here would not open it"
                        ),
                    ),
                }
            }
            Ok(other) => (
                Status::Fail,
                format!(
                    "the registry uses {}, not token authentication with this GitLab's realm {expected}: it is not GitLab's registry, or its auth.token section is missing",
                    other.label()
                ),
            ),
        };
        Finding::new(Check::Realm, host, status, message)
    }

    async fn tls(&self, registry: &Url, host: &str) -> Finding {
        if registry.scheme() != "https" {
            return Finding::new(
                Check::Tls,
                host,
                Status::Fail,
                format!(
                    "{} is plain http: Qovery requires an https:// registry URL (every kind's URL \"must start by https://\"): serve the registry over TLS with a certificate from a public CA",
                    trimmed(registry)
                ),
            );
        }
        let (Some(name), Some(port)) = (tls_host(registry), registry.port_or_known_default())
        else {
            return Finding::new(Check::Tls, host, Status::Fail, "no host in the URL".into());
        };
        let (status, message) = match tls::inspect(&name, port, self.ca_file, self.timeout).await {
            tls::Verdict::Public { not_after } => expiry(not_after),
            tls::Verdict::PrivateOnly { why, .. } => (
                Status::Fail,
                format!(
                    "the certificate chain is valid only with gitlab.ca_file, not against public roots ({why}): Qovery cannot be given a private CA for a container registry, so it will refuse this registry; give the registry a certificate from a public CA (e.g. Let's Encrypt)"
                ),
            ),
            tls::Verdict::Untrusted { why } => (
                Status::Fail,
                format!(
                    "the certificate does not verify against public roots ({why}): Qovery will refuse this registry; give it a valid certificate from a public CA (e.g. Let's Encrypt)"
                ),
            ),
            tls::Verdict::Unreachable { why } => (Status::Fail, why),
        };
        Finding::new(Check::Tls, host, status, message)
    }

    async fn reachable(&self, registry: &Url, host: &str) -> Finding {
        let (Some(name), Some(port)) = (tls_host(registry), registry.port_or_known_default())
        else {
            return Finding::new(Check::Reachable, host, Status::Fail, "no host".into());
        };
        let resolved =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((name.as_str(), port)))
                .await;
        let addresses: Vec<IpAddr> = match resolved {
            Ok(Ok(a)) => a.map(|a| a.ip()).collect(),
            Ok(Err(e)) => {
                return Finding::new(
                    Check::Reachable,
                    host,
                    Status::Fail,
                    format!("{name} does not resolve here: {e}"),
                );
            }
            Err(_) => {
                return Finding::new(
                    Check::Reachable,
                    host,
                    Status::Fail,
                    format!("resolving {name} took longer than {:?}", self.timeout),
                );
            }
        };
        let shown = addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let resolves = if name.parse::<IpAddr>().is_ok() {
            format!("{name} is an address that is")
        } else {
            format!("{name} resolves to {shown}, each")
        };
        let (status, message) = if addresses.iter().any(|ip| is_public(*ip)) {
            (Status::Ok, format!("{name} resolves to {shown}"))
        } else if self.private_network {
            (
                Status::Ok,
                format!(
                    "{resolves} not public; qovery.private_network = true says Qovery's clusters run inside that network"
                ),
            )
        } else {
            (
                Status::Warn,
                format!(
                    "{resolves} private, loopback or link-local: Qovery's managed clusters cannot reach it; expose the registry publicly, or set qovery.private_network = true if your Qovery clusters run inside that network"
                ),
            )
        };
        Finding::new(Check::Reachable, host, status, message)
    }
}

/// The certificate holds; a warning when it expires within [`EXPIRY_WARNING_DAYS`].
fn expiry(not_after: Option<chrono::DateTime<Utc>>) -> (Status, String) {
    match not_after {
        Some(at) if at - Utc::now() < chrono::Duration::days(EXPIRY_WARNING_DAYS) => (
            Status::Warn,
            format!(
                "the chain verifies against public roots, but the certificate expires on {} (in {} days): renew it before then, or Qovery can no longer pull from the registry",
                at.format("%Y-%m-%d %H:%M UTC"),
                (at - Utc::now()).num_days().max(0)
            ),
        ),
        Some(at) => (
            Status::Ok,
            format!(
                "the chain verifies against public roots (Mozilla's, as Qovery trusts them); the certificate expires on {}",
                at.format("%Y-%m-%d")
            ),
        ),
        None => (
            Status::Ok,
            "the chain verifies against public roots (Mozilla's, as Qovery trusts them)".into(),
        ),
    }
}

/// `registry_enabled`: one failure for an instance without a registry, one per bound project
/// whose registry is off, and one line for the rest.
fn registry_enabled(projects: &[(String, Project)], gitlab_url: &Url) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !projects.is_empty()
        && projects
            .iter()
            .all(|(_, p)| p.container_registry_image_prefix.is_none())
    {
        findings.push(Finding::new(
            Check::RegistryEnabled,
            trimmed(gitlab_url),
            Status::Fail,
            "GitLab reports no container registry on this instance (its projects have no container_registry_image_prefix): an administrator enables it (registry_external_url in gitlab.rb, or the registry section of the Helm chart)".into(),
        ));
        return findings;
    }
    let mut enabled = 0;
    for (binding, p) in projects {
        let off = p.container_registry_access_level.as_deref() == Some("disabled")
            || p.container_registry_enabled == Some(false);
        if off {
            findings.push(Finding::new(
                Check::RegistryEnabled,
                &p.path_with_namespace,
                Status::Fail,
                format!(
                    "binding {binding:?}: project {} (id {}) has its container registry turned off (container_registry_access_level = disabled): turn on Settings > General > Visibility, project features, permissions > Container registry, or PUT /projects/{} with container_registry_access_level=enabled",
                    p.path_with_namespace, p.id, p.id
                ),
            ));
        } else {
            enabled += 1;
        }
    }
    if enabled > 0 {
        findings.push(Finding::new(
            Check::RegistryEnabled,
            trimmed(gitlab_url),
            Status::Ok,
            format!("the container registry is on for {enabled} bound project(s)"),
        ));
    }
    findings
}

/// The registry GitLab reports: the host (and port) of `container_registry_image_prefix`,
/// which GitLab builds from its `registry.host_port` for every project when the instance
/// has a registry (`lib/api/entities/project.rb`). Qovery needs `https://`.
pub fn registry_address(projects: &[(String, Project)]) -> Option<Url> {
    projects
        .iter()
        .find_map(|(_, p)| p.registry_address())
        .and_then(|address| Url::parse(&format!("https://{address}")).ok())
}

/// Qovery's side: the organization's registries listed once, `qovery_registry` for those bound
/// to this GitLab, and Qovery's own view of each binding's registry that exists.
async fn qovery_side(
    qovery: &QoveryClient,
    org: &str,
    bindings: &[Binding],
    projects: &[(String, Project)],
    registry: &Url,
    gitlab_url: &Url,
) -> Vec<Finding> {
    let registries = match qovery.registries(org).await {
        Ok(r) => r,
        Err(e) => {
            return vec![Finding::new(
                Check::QoveryRegistry,
                "qovery",
                Status::Fail,
                format!("cannot list the organization's container registries: {e}"),
            )];
        }
    };
    let mut findings = qovery_registries(&registries, bindings, registry, gitlab_url);
    for b in bindings.iter().filter(|b| b.blocked.is_none()) {
        let Some(r) = registries.iter().find(|r| r.name == b.qovery_registry) else {
            continue;
        };
        if r.is_cluster_owned() {
            continue;
        }
        let project_path = projects
            .iter()
            .find(|(name, _)| *name == b.name)
            .filter(|_| matches!(b.namespace, Namespace::Project(_)))
            .map(|(_, p)| p.path_with_namespace.clone());
        findings.push(qovery_view(qovery, org, r, b.repository.clone().or(project_path)).await);
    }
    findings
}

/// `qovery_registry`, from a list of the organization's registries already read. The Qovery
/// registries bound to this GitLab are the bindings' own, and any other whose URL is on the
/// registry's host or GitLab's web host (a registry set up by hand with the port missing, or
/// GitLab's address instead of its registry's). Each must point at the registry, with
/// `GENERIC_CR` unless it is gitlab.com's.
fn qovery_registries(
    registries: &[Registry],
    bindings: &[Binding],
    registry: &Url,
    gitlab_url: &Url,
) -> Vec<Finding> {
    let hosts: Vec<String> = [registry.host_str(), gitlab_url.host_str()]
        .into_iter()
        .flatten()
        .map(str::to_ascii_lowercase)
        .collect();
    let related = |r: &Registry| {
        bindings.iter().any(|b| b.qovery_registry == r.name)
            || r.url
                .as_deref()
                .and_then(|u| Url::parse(u.trim()).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                .is_some_and(|h| hosts.contains(&h))
    };
    let expected_kind = RegistryKind::for_registry(registry);
    let mut missing: Vec<&str> = bindings
        .iter()
        .filter(|b| b.blocked.is_none())
        .map(|b| b.qovery_registry.as_str())
        .filter(|name| !registries.iter().any(|r| r.name == *name))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let not_yet = missing.into_iter().map(|name| {
        Finding::new(
            Check::QoveryRegistry,
            format!("qovery registry {name:?}"),
            Status::Ok,
            format!(
                "does not exist yet: the first pass creates it for {}",
                trimmed(registry)
            ),
        )
    });
    let existing: Vec<Finding> = registries
        .iter()
        .filter(|r| !r.is_cluster_owned() && related(r))
        .map(|r| {
            let subject = format!("qovery registry {:?}", r.name);
            let (status, message) = if r.kind == RegistryKind::GitlabCr
                && expected_kind != RegistryKind::GitlabCr
            {
                (
                    Status::Fail,
                    format!(
                        "kind GITLAB_CR, whose URL Qovery fixes to https://registry.gitlab.com: for this GitLab's registry make it GENERIC_CR with url {}",
                        trimmed(registry)
                    ),
                )
            } else if !r.points_at(registry) {
                let why = match Url::parse(&r.url_label()) {
                    Ok(u) => url_difference(&u, registry, gitlab_url),
                    Err(_) => String::new(),
                };
                (
                    Status::Fail,
                    format!(
                        "points at {}, not at the registry {}{why}: set its URL to {} in Qovery",
                        r.url_label(),
                        trimmed(registry),
                        trimmed(registry)
                    ),
                )
            } else {
                (
                    Status::Ok,
                    format!("{} {}: this GitLab's registry", r.kind, r.url_label()),
                )
            };
            Finding::new(Check::QoveryRegistry, subject, status, message)
        })
        .collect();
    existing.into_iter().chain(not_yet).collect()
}

/// Qovery's own view of a bound registry: the tags of an image its services deploy (else the
/// binding's repository, else the project's path) as Qovery lists them through it.
async fn qovery_view(
    qovery: &QoveryClient,
    org: &str,
    registry: &Registry,
    fallback: Option<String>,
) -> Finding {
    let subject = format!("qovery registry {:?}", registry.name);
    let deployed = if registry.services.unwrap_or(1) > 0 {
        match qovery.deployed_images(org, &registry.id).await {
            Ok(images) => images.into_iter().next().map(|(_, i)| i.image_name),
            Err(e) => {
                return Finding::new(
                    Check::QoveryView,
                    subject,
                    Status::Warn,
                    format!("cannot read which images its services deploy: {e}"),
                );
            }
        }
    } else {
        None
    };
    let Some(image) = deployed.or(fallback) else {
        return Finding::new(
            Check::QoveryView,
            subject,
            Status::Ok,
            "no image to ask about (a group binding without repository, and no service)".into(),
        );
    };
    match qovery.image_versions(org, &registry.id, &image, None).await {
        Ok(tags) => Finding::new(
            Check::QoveryView,
            subject,
            Status::Ok,
            format!("Qovery lists {} tag(s) of {image} through it", tags.len()),
        ),
        Err(e) => Finding::new(
            Check::QoveryView,
            subject,
            Status::Warn,
            format!(
                "Qovery could not list {image} through it: {e} (Qovery does not document what this listing needs; a deploy is the proof)"
            ),
        ),
    }
}

/// Why `ours` is not `theirs`, in the terms of Qovery's guide.
fn url_difference(ours: &Url, theirs: &Url, gitlab_url: &Url) -> String {
    let host = |u: &Url| u.host_str().map(str::to_ascii_lowercase);
    if host(ours) == host(theirs) && ours.port_or_known_default() != theirs.port_or_known_default()
    {
        match theirs.port() {
            Some(p) if ours.port().is_none() => format!(" (the port :{p} is missing)"),
            _ => " (another port)".into(),
        }
    } else if host(ours) == host(gitlab_url) && host(ours) != host(theirs) {
        " (that is GitLab's web address, not its registry's)".into()
    } else if host(ours) == host(theirs) {
        " (another scheme)".into()
    } else {
        " (another host)".into()
    }
}

/// `<gitlab.url>/jwt/auth`, keeping a relative URL root (`https://example.com/gitlab`).
fn jwt_auth(gitlab_url: &Url) -> Url {
    let mut base = gitlab_url.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join("jwt/auth").unwrap_or(base)
}

/// Same scheme, host (in any case) and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

fn trimmed(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// `host:port` (the port only when it is not the scheme's default).
pub fn host_label(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => url.as_str().to_string(),
    }
}

/// The host to connect to and to name in TLS (an IPv6 literal without its brackets).
fn tls_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

fn namespace_label(ns: &Namespace) -> String {
    match ns {
        Namespace::Project(p) => format!("project {p}"),
        Namespace::Group(g) => format!("group {g}"),
    }
}

/// Whether an address is reachable from the public internet: not private (RFC 1918, IPv6
/// unique local), loopback, link-local, shared (RFC 6598, carrier-grade NAT) or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_url_difference_is_named_in_the_guides_terms() {
        let gitlab = url("https://gitlab.example.com");
        let registry = url("https://gitlab.example.com:5050");
        assert_eq!(
            url_difference(&url("https://gitlab.example.com"), &registry, &gitlab),
            " (the port :5050 is missing)"
        );
        let separate = url("https://registry.example.com");
        assert_eq!(
            url_difference(&url("https://gitlab.example.com"), &separate, &gitlab),
            " (that is GitLab's web address, not its registry's)"
        );
        assert_eq!(
            url_difference(&url("https://other.example.com"), &separate, &gitlab),
            " (another host)"
        );
    }

    #[test]
    fn the_realm_keeps_a_relative_url_root() {
        assert_eq!(
            jwt_auth(&url("https://gitlab.example.com")).as_str(),
            "https://gitlab.example.com/jwt/auth"
        );
        assert_eq!(
            jwt_auth(&url("https://example.com/gitlab")).as_str(),
            "https://example.com/gitlab/jwt/auth"
        );
    }

    #[test]
    fn a_certificate_expiring_within_30_days_is_a_warning_with_its_date() {
        let soon = Utc::now() + chrono::Duration::days(10);
        let (status, message) = expiry(Some(soon));
        assert_eq!(status, Status::Warn);
        assert!(
            message.contains(&soon.format("%Y-%m-%d").to_string()),
            "{message}"
        );
        let (status, _) = expiry(Some(Utc::now() + chrono::Duration::days(90)));
        assert_eq!(status, Status::Ok);
    }
}
