//! The rotation protocol's four steps for one binding, its lock held and GitLab and Qovery
//! just observed (docs/architecture.md, "The rotation protocol"):
//!
//! 1. [`Rotation::create`] a GitLab token;
//! 2. [`Rotation::test`] it against the registry itself (invariant I1: nothing else reaches
//!    Qovery);
//! 3. [`Rotation::switch`] Qovery to it, with the marker naming it, once the lock is proven
//!    still held;
//! 4. [`Rotation::finish`]: previous tokens go once their grace period is over (I2).
//!
//! Every failure before the switch revokes the new token and keeps the old one; a switch
//! whose outcome is unknown revokes nothing, and the next pass settles it (I4).

use chrono::{DateTime, Utc};

use super::crash;
use super::engine::namespace_label;
use super::engine::{BindingReport, Engine, HeldToken, QoveryView};
use super::journal::Journal;
use super::plan::{
    Binding, Observed, OwnedToken, grace_end, in_grace, retired_since, revocations, to_chrono,
};
use crate::config::Scope;
use crate::credential::{Credential, Fingerprint};
use crate::gitlab::TokenSpec;
use crate::marker::{Marker, Pin};
use crate::outbound::ApiError;
use crate::qovery::RegistryWrite;
use crate::registry::{self, Access};
use crate::store::BindingLock;

/// Why a rotation stopped, by step. The binding's report carries its message; the journal has
/// a line for the step.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("cannot create the new GitLab token: {0}")]
    Create(#[source] ApiError),
    #[error("the new token failed the registry check: {0}")]
    Check(String),
    /// The lock was lost, or held past `lease_ttl`, before the switch.
    #[error("{0}; Qovery was left as it was, and the new token goes")]
    LostLock(String),
    #[error("Qovery refused the new credential: {0}")]
    Refused(#[source] ApiError),
    /// Something is in the way that regwarden will not act around (the binding's path names
    /// another project than the one its registry serves).
    #[error("{0}")]
    Blocked(String),
    /// Qovery may hold either token: neither was revoked.
    #[error(
        "the switch to token {token_id} may have reached Qovery or not ({write}), and reading \
         the registry back did not settle it ({read})"
    )]
    Unknown {
        token_id: u64,
        write: ApiError,
        read: String,
    },
}

impl RotationError {
    /// The same error without the new credential's secret in any service's message.
    fn scrubbed(self, credential: &Credential) -> Self {
        let scrub = |e: ApiError| e.map_message(|m| credential.scrub(m));
        match self {
            RotationError::Create(e) => RotationError::Create(scrub(e)),
            RotationError::Refused(e) => RotationError::Refused(scrub(e)),
            RotationError::Unknown {
                token_id,
                write,
                read,
            } => RotationError::Unknown {
                token_id,
                write: scrub(write),
                read: credential.scrub(&read),
            },
            other => other,
        }
    }
}

/// One rotation of one binding: what it observed, and where it writes what it does.
pub(super) struct Rotation<'a> {
    pub engine: &'a Engine,
    pub binding: &'a Binding,
    pub observed: &'a Observed,
    pub journal: Journal<'a>,
}

/// How a Qovery service type reads in a sentence.
pub fn service_kind(service_type: &str) -> &'static str {
    match service_type {
        "CONTAINER" => "container",
        "LIFECYCLE" => "lifecycle job",
        "CRON" => "cron job",
        _ => "service",
    }
}

/// What a binding is about, as GitLab says now.
pub(super) struct Target {
    pin: Pin,
    /// The project's (or group's) full path now.
    path: String,
}

/// A token this rotation made, with its credential (its secret lives only here).
pub(super) struct New {
    token: OwnedToken,
    credential: Credential,
    fingerprint: Fingerprint,
    target: Target,
}

impl New {
    /// The repository the check pulls: the configured one, else the project's path now.
    fn repository<'a>(&'a self, b: &'a Binding) -> &'a str {
        b.repository.as_deref().unwrap_or(&self.target.path)
    }
}

impl New {
    fn id(&self) -> (u64, &str) {
        (self.token.id, self.fingerprint.as_str())
    }
}

impl Rotation<'_> {
    /// The four steps, in order.
    pub async fn run(
        &self,
        lock: &mut BindingLock,
        report: &mut BindingReport,
    ) -> Result<(), RotationError> {
        let new = self.create(report).await?;
        crash::point("after_create");
        let deployed = match self.test(&new, report).await {
            Ok(deployed) => deployed,
            Err(e) => return Err(self.abandon(e, &new, "test", report).await),
        };
        crash::point("after_test");
        let (marker, registry_id) = match self.switch(&new, lock, report).await {
            Ok(switched) => switched,
            Err(e @ RotationError::Unknown { .. }) => {
                // Qovery may hold either token now: revoking one could break its deploys.
                self.journal
                    .step("switch", "unknown", &e.to_string(), Some(new.id()))
                    .await;
                let kept = if self.observed.held().is_some() {
                    "and the previous one"
                } else {
                    "(Qovery may or may not hold it)"
                };
                report.actions.push(format!(
                    "kept token {} {kept}: the switch's outcome is unknown; the next pass settles it",
                    new.token.id
                ));
                return Err(e);
            }
            Err(e) => return Err(self.abandon(e, &new, "switch", report).await),
        };
        crash::point("after_switch");
        let image = deployed.unwrap_or_else(|| new.repository(self.binding).to_string());
        self.qovery_view(&new, &registry_id, &image, report).await;
        self.finish(&new, &marker, report).await;
        crash::point("after_finish");
        Ok(())
    }

    /// What the binding is about now, asked of GitLab by its id or path: the project's (or
    /// group's) id and current path, before any token is made.
    ///
    /// - A binding is pinned to that id: when the registry's marker (this binding's) pins
    ///   another one, the path now names another project or group (a rename, then a newcomer
    ///   at the old path): the binding is blocked, nothing is made or revoked.
    /// - A project without a registry gets no token: GitLab exposes an image prefix for every
    ///   project of an instance with a registry, so only `container_registry_access_level`
    ///   tells, and a token would fail the check, be revoked, and be made again every pass.
    async fn target(&self) -> Result<Target, RotationError> {
        let gitlab = &self.engine.gitlab;
        let b = self.binding;
        let target = match &b.namespace {
            crate::gitlab::Namespace::Project(p) => {
                let project = gitlab.project(p).await.map_err(RotationError::Create)?;
                if !project.has_registry() {
                    return Err(RotationError::Create(ApiError::Setup {
                        service: "GitLab",
                        message: format!(
                            "project {} has its container registry disabled (container_registry_access_level = {}), so no token is made: turn it on in the project's Settings > General > Visibility, project features, permissions > Container registry, or remove the binding",
                            project.path_with_namespace,
                            project
                                .container_registry_access_level
                                .as_deref()
                                .unwrap_or("disabled")
                        ),
                    }));
                }
                Target {
                    pin: Pin::Project(project.id),
                    path: project.path_with_namespace,
                }
            }
            crate::gitlab::Namespace::Group(g) => {
                let group = gitlab.group(g).await.map_err(RotationError::Create)?;
                Target {
                    pin: Pin::Group(group.id),
                    path: group.full_path,
                }
            }
        };
        let pinned = self
            .observed
            .marker()
            .filter(|m| m.binding == b.name && m.instance == b.instance)
            .and_then(|m| m.pin.map(|pin| (pin, m.path.clone())))
            .or(b.pinned.map(|id| (Pin::Project(id), None)));
        if let Some((pin, was)) = pinned
            && pin != target.pin
        {
            let now = match pin {
                Pin::Project(id) => gitlab
                    .project(&id.to_string())
                    .await
                    .map(|p| format!("now at {}", p.path_with_namespace)),
                Pin::Group(id) => gitlab
                    .group(&id.to_string())
                    .await
                    .map(|g| format!("now at {}", g.full_path)),
            }
            .unwrap_or_else(|e| {
                if e.is_not_found() {
                    "gone, or out of the API token's sight".into()
                } else {
                    format!("not readable now: {e}")
                }
            });
            return Err(RotationError::Blocked(format!(
                "{} is now {} ({}), but Qovery registry {:?} serves {pin}{} ({now}): a path that moved to another {} is not followed, and no token of it reaches that registry. If the new one is meant, remove the marker line from the registry's description; else bind {pin} by id or by its new path",
                namespace_label(&b.namespace),
                target.pin,
                target.path,
                b.qovery_registry,
                was.map(|w| format!(", checked at {w}")).unwrap_or_default(),
                match target.pin {
                    Pin::Project(_) => "project",
                    Pin::Group(_) => "group",
                },
            )));
        }
        Ok(target)
    }

    /// Step 1: a new GitLab token, named for the binding, expiring after its lifetime.
    async fn create(&self, report: &mut BindingReport) -> Result<New, RotationError> {
        let target = match self.target().await {
            Ok(t) => t,
            Err(e) => {
                let outcome = if matches!(e, RotationError::Blocked(_)) {
                    "blocked"
                } else {
                    "failed"
                };
                self.journal
                    .step("create", outcome, &e.to_string(), None)
                    .await;
                return Err(e);
            }
        };
        let b = self.binding;
        // Token names have a one-second grain: the creation time is kept at that grain too.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
        let name = b.token_name(now);
        let expires_at = chrono::Duration::from_std(b.policy.lifetime.0)
            .ok()
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let spec = TokenSpec {
            name: &name,
            scopes: &b.policy.scopes,
            expires_at,
        };
        let (token, credential) = match self
            .engine
            .gitlab
            .create_token(&b.policy, &b.namespace, spec)
            .await
        {
            Ok(created) => created,
            Err(e) => {
                self.journal
                    .step("create", "failed", &e.to_string(), None)
                    .await;
                return Err(RotationError::Create(e));
            }
        };
        let new = New {
            token: OwnedToken {
                id: token.id,
                name: token.name,
                created: now,
                expires_at: token.expires_at,
            },
            fingerprint: credential.fingerprint(),
            credential,
            target,
        };
        self.journal
            .step("create", "ok", &name, Some(new.id()))
            .await;
        report.actions.push(format!(
            "created token {} ({})",
            new.token.id, new.fingerprint
        ));
        Ok(new)
    }

    /// Step 2: the registry check of the new credential, tried a few times, since a token
    /// GitLab just made can take a moment to be accepted everywhere. Gives the first image the
    /// registry's services deploy, if any.
    async fn test(
        &self,
        new: &New,
        report: &mut BindingReport,
    ) -> Result<Option<String>, RotationError> {
        let b = self.binding;
        let settings = &self.engine.settings;
        let access = if b.policy.scopes.contains(&Scope::WriteRegistry) {
            Access::Push
        } else {
            Access::Pull
        };
        let mut attempt = 1;
        let check = loop {
            let check = registry::check(
                &self.engine.http,
                self.engine.registry_url(),
                new.repository(b),
                access,
                &new.credential,
            )
            .await;
            if check.is_ok() || attempt >= settings.check_attempts {
                break check;
            }
            tracing::info!(attempt, outcome = %check.outcome, "new token not accepted yet; retrying");
            attempt += 1;
            tokio::time::sleep(settings.check_interval).await;
        };
        if !check.is_ok() {
            return Err(RotationError::Check(check.explanation));
        }
        // Invariant I1 needs a check that could have failed: a registry that lets anyone in
        // proves nothing about this credential.
        if let Err(why) = check.proves_the_credential() {
            return Err(RotationError::Check(why));
        }
        let served = self.test_deployed_images(new, report).await?;
        let explanation = if served.is_empty() {
            check.explanation
        } else {
            let references: Vec<&str> = served.iter().map(|(_, r)| r.as_str()).collect();
            format!(
                "{}; and every image the registry's services deploy: {}",
                check.explanation,
                references.join(", ")
            )
        };
        self.journal
            .step("test", "ok", &explanation, Some(new.id()))
            .await;
        report
            .actions
            .push(format!("checked token {}: {explanation}", new.token.id));
        Ok(served.into_iter().next().map(|(image, _)| image))
    }

    /// After the switch, Qovery's own view of the registry just written: the tags of `image`
    /// as Qovery lists them through it (`getContainerVersions`). A report, not a gate: Qovery
    /// does not document what that listing proves, and the switch is done.
    async fn qovery_view(
        &self,
        new: &New,
        registry_id: &str,
        image: &str,
        report: &mut BindingReport,
    ) {
        let engine = self.engine;
        let view = match engine
            .qovery
            .image_versions(
                &engine.organization,
                registry_id,
                image,
                Some(&new.credential),
            )
            .await
        {
            Ok(tags) => QoveryView {
                ok: true,
                image: image.to_string(),
                tags: Some(tags.len()),
                error: None,
            },
            Err(e) => QoveryView {
                ok: false,
                image: image.to_string(),
                tags: None,
                error: Some(e.to_string()),
            },
        };
        self.journal
            .step(
                "qovery_view",
                if view.ok { "ok" } else { "failed" },
                &view.to_string(),
                Some(new.id()),
            )
            .await;
        if !view.ok {
            tracing::warn!(binding = %self.binding.name, "{view}");
        }
        report.actions.push(format!("qovery view: {view}"));
        report.qovery_view = Some(view);
    }

    /// The rest of step 2: the new credential must serve every image that the Qovery services
    /// using this registry deploy from it (`associatedServices`, then each container's or job's
    /// image and tag): a token of one project must not reach a registry that also serves
    /// another project's images. Read once per rotation, never in a steady pass.
    async fn test_deployed_images(
        &self,
        new: &New,
        report: &mut BindingReport,
    ) -> Result<Vec<(String, String)>, RotationError> {
        let Some(registry) = &self.observed.registry else {
            // A registry not made yet serves nobody.
            return Ok(Vec::new());
        };
        if registry.services == Some(0) {
            return Ok(Vec::new());
        }
        let engine = self.engine;
        let deployed = engine
            .qovery
            .deployed_images(&engine.organization, &registry.id)
            .await
            .map_err(|e| {
                RotationError::Check(format!(
                    "cannot read which images the services of Qovery registry {:?} deploy, so the new credential cannot be checked against them: {e}",
                    registry.name
                ))
            })?;
        let mut checked: Vec<(String, String)> = Vec::new();
        for (service, image) in &deployed {
            let reference = format!("{}:{}", image.image_name, image.tag);
            if checked.iter().any(|(_, r)| *r == reference) {
                continue;
            }
            let check = registry::check_image(
                &engine.http,
                engine.registry_url(),
                &image.image_name,
                &image.tag,
                &new.credential,
            )
            .await;
            let refusal = if check.is_ok() {
                check.proves_the_credential().err()
            } else {
                Some(check.explanation.clone())
            };
            if let Some(why) = refusal {
                return Err(RotationError::Check(format!(
                    "{} {:?} in environment {:?} (Qovery project {:?}) deploys {reference} from this registry, which the new credential cannot pull: {why}",
                    service_kind(&service.service_type),
                    service.service_name,
                    service.environment_name,
                    service.project_name,
                )));
            }
            if check.tag_missing {
                report.actions.push(format!(
                    "note: {} {:?} in environment {:?} deploys {reference}, which the registry does not hold: no credential can pull that tag",
                    service_kind(&service.service_type),
                    service.service_name,
                    service.environment_name,
                ));
            }
            checked.push((image.image_name.clone(), reference));
        }
        Ok(checked)
    }

    /// Step 3: Qovery gets the new credential and a marker naming it; the token it held joins
    /// the marker's retired list. Only while the lock is proven held, and not past `lease_ttl`.
    async fn switch(
        &self,
        new: &New,
        lock: &mut BindingLock,
        report: &mut BindingReport,
    ) -> Result<(Marker, String), RotationError> {
        let (b, observed, engine) = (self.binding, self.observed, self.engine);
        // The fence: a holder that lost its lock (its PostgreSQL session ended, so another
        // holder may be acting) must not write Qovery, nor one that stalled past lease_ttl
        // (what it observed is that old).
        match lock.confirm().await {
            Ok(()) if lock.held_for() <= engine.settings.lease_ttl => {}
            Ok(()) => {
                return Err(RotationError::LostLock(format!(
                    "the rotation held the binding's lock longer than lease_ttl ({}s) before the switch",
                    engine.settings.lease_ttl.as_secs()
                )));
            }
            Err(e) => return Err(RotationError::LostLock(e.to_string())),
        }

        let mut marker = Marker::new(
            &b.name,
            &b.instance,
            new.token.id,
            &new.fingerprint,
            new.token.expires_at.map(|e| e.date_naive()),
        );
        marker.pin = Some(new.target.pin);
        marker.path = Some(new.target.path.clone());
        // Entries whose grace is over, or whose token is gone, leave the retired list.
        let switch_time = Utc::now();
        let grace = to_chrono(b.policy.grace_period.0);
        let held = observed.held();
        marker.retired = observed
            .marker()
            .map(|m| m.retired.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(id, at)| (id, retired_since(at, held, grace, switch_time)))
            .filter(|(id, at)| {
                in_grace(*at, grace, switch_time) && observed.tokens.iter().any(|t| t.id == *id)
            })
            .collect();
        if let Some(previous) = observed.held() {
            marker.retired.push((previous.id, switch_time));
        }
        // No marker (set up by hand, or a marker someone removed): any token of this binding
        // may be what Qovery holds, so each gets the grace period too.
        if observed.registry.is_some() && observed.marker().is_none() {
            for t in &observed.tokens {
                marker.retired.push((t.id, switch_time));
            }
        }
        // Qovery's error text may quote the request, password included: never keep it.
        let registry_id = self
            .write(&marker, &new.credential, new.token.id)
            .await
            .map_err(|e| e.scrubbed(&new.credential))?;
        self.journal
            .step("switch", "ok", &b.qovery_registry, Some(new.id()))
            .await;
        report.actions.push(format!(
            "switched Qovery registry {:?} to token {}",
            b.qovery_registry, new.token.id
        ));
        report.held = Some(HeldToken {
            token_id: new.token.id,
            fingerprint: new.fingerprint.as_str().to_string(),
            expires: marker.expires,
        });
        report.rotated_token = Some(new.token.id);
        Ok((marker, registry_id))
    }

    /// Writes the Qovery registry, and gives its id. A write whose answer was lost (5xx,
    /// timeout) may have been applied: the marker, read back, tells; when it cannot be read
    /// either, the outcome is unknown.
    async fn write(
        &self,
        marker: &Marker,
        credential: &Credential,
        token_id: u64,
    ) -> Result<String, RotationError> {
        let engine = self.engine;
        let write = RegistryWrite {
            name: &self.binding.qovery_registry,
            kind: engine.registry_kind(),
            url: engine.registry_url(),
            credential,
            marker,
        };
        let written = engine
            .qovery
            .write_registry(&engine.organization, self.observed.registry.as_ref(), write)
            .await;
        let write = match written {
            Ok(registry) => return Ok(registry.id),
            Err(e) => e,
        };
        if write.certainly_not_applied() {
            return Err(RotationError::Refused(write));
        }
        // A read-back that still shows the previous marker does not settle it either: the
        // write may yet be applied (a request Qovery is still processing), and revoking the new
        // token then would break every deploy. The next pass reads the marker again.
        let read = match engine
            .qovery
            .registry_by_name(&engine.organization, &self.binding.qovery_registry)
            .await
        {
            Ok(Some(r)) if r.marker.as_ref().is_some_and(|m| m.token_id == token_id) => {
                return Ok(r.id);
            }
            Ok(Some(r)) => format!(
                "it still names token {}",
                r.marker
                    .map_or("none".to_string(), |m| m.token_id.to_string())
            ),
            Ok(None) => "the registry is not there".to_string(),
            Err(read) => format!("the read failed: {read}"),
        };
        Err(RotationError::Unknown {
            token_id,
            write,
            read,
        })
    }

    /// Step 4: tokens due now go (a previous one whose grace period is zero or over, any
    /// Qovery never held); the others are left for a later pass, and the report says until
    /// when.
    async fn finish(&self, new: &New, marker: &Marker, report: &mut BindingReport) {
        let b = self.binding;
        let mut tokens = self.observed.tokens.clone();
        tokens.push(new.token.clone());
        let due = revocations(b, &tokens, Some(&new.token), Some(marker), Utc::now());
        for r in &due {
            self.engine
                .revoke(b, &r.token, &r.reason.to_string(), &self.journal, report)
                .await;
        }
        let grace = to_chrono(b.policy.grace_period.0);
        for (id, at) in marker
            .retired
            .iter()
            .filter(|(id, _)| !due.iter().any(|r| r.token.id == *id))
        {
            let until = grace_end(*at, grace).map_or_else(
                || "further notice".to_string(),
                |end| end.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            );
            report
                .actions
                .push(format!("kept token {id} until {until} (grace period)"));
        }
        self.journal.step("finish", "ok", "", Some(new.id())).await;
    }

    /// Gives the rotation up at `step`: journals why, and revokes the new token (Qovery never
    /// held it, so nothing depends on it).
    async fn abandon(
        &self,
        error: RotationError,
        new: &New,
        step: &str,
        report: &mut BindingReport,
    ) -> RotationError {
        self.journal
            .step(step, "failed", &error.to_string(), Some(new.id()))
            .await;
        let why = match &error {
            RotationError::Check(_) => "it failed the registry check",
            RotationError::LostLock(_) => "the rotation lost its lock",
            _ => "Qovery did not take it",
        };
        self.engine
            .revoke(self.binding, &new.token, why, &self.journal, report)
            .await;
        error
    }
}
