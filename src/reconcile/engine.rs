//! The rotation protocol (create → test → switch → finish) and a reconcile pass over the
//! bindings. Invariants (docs/architecture.md): Qovery only ever receives a credential that
//! just passed the registry check (I1); the token Qovery holds is revoked only after Qovery
//! holds its successor and the grace period is over (I2); one rotation per binding at a time,
//! across workers, processes and replicas, through the store's binding lock, which dies with
//! its holder (I3); a crash anywhere converges on the very next pass, because every decision
//! is taken from GitLab and Qovery after taking the lock, not from memory (I4).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Url;
use serde::Serialize;
use tracing::Instrument;

use super::crash;
use super::marker::Marker;
use super::plan::{
    Binding, Force, Observed, OwnedToken, Plan, grace_end, in_grace, plan, revocations, to_chrono,
};
use crate::config::{CredentialKind, Scope};
use crate::credential::Credential;
use crate::gitlab::{GitlabClient, Namespace, NewAccessToken, NewDeployToken};
use crate::outbound::ApiError;
use crate::qovery::{ContainerRegistry, QoveryClient, RegistryKind, RegistryRequest};
use crate::registry::{self, Access};
use crate::store::{BindingLock, JournalEntry, Store, now_ms};

/// What a pass may do.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassOptions {
    /// Plan only: no write anywhere (GitLab, Qovery, the store).
    pub dry_run: bool,
    /// When to rotate a binding whose token is not due.
    pub force: Force,
}

/// Tunables of the engine (from `[reconcile]`).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub concurrency: usize,
    pub check_attempts: u32,
    pub check_interval: Duration,
    /// The longest a rotation may hold its binding's lock before the switch: one that took
    /// longer (a process frozen, calls retried for long) stops short of writing Qovery.
    pub lease_ttl: Duration,
}

impl From<&crate::config::ReconcileConfig> for EngineSettings {
    fn from(c: &crate::config::ReconcileConfig) -> Self {
        Self {
            concurrency: c.concurrency,
            check_attempts: c.check_attempts,
            check_interval: c.check_interval.0,
            lease_ttl: c.lease_ttl.0,
        }
    }
}

pub struct Engine {
    pub gitlab: GitlabClient,
    pub qovery: QoveryClient,
    /// For the registry check of new credentials.
    pub http: reqwest::Client,
    pub organization: String,
    pub registry_url: Url,
    pub registry_kind: RegistryKind,
    /// `None` in a dry run: nothing is written, not even the journal.
    pub store: Option<Store>,
    pub settings: EngineSettings,
}

/// How a binding ended a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingOutcome {
    /// Nothing to do, or only previous tokens revoked.
    Healthy,
    /// A new token was made, checked, and handed to Qovery.
    Rotated,
    /// Dry run: the plan, not carried out.
    Planned,
    /// Another worker, process or replica, alive, holds the binding's lock and is working
    /// on it: it finishes the job. Not a failure.
    Busy,
    /// Something is in the way regwarden will not touch.
    Blocked,
    Failed,
}

impl BindingOutcome {
    pub fn is_failure(self) -> bool {
        matches!(self, BindingOutcome::Failed | BindingOutcome::Blocked)
    }
}

/// The token Qovery holds after the pass.
#[derive(Clone, Debug, Serialize)]
pub struct HeldToken {
    pub token_id: u64,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<NaiveDate>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BindingReport {
    pub binding: String,
    pub outcome: BindingOutcome,
    pub plan: Plan,
    /// What was done (or, in a dry run, would be), one line each.
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldToken>,
    /// The token this pass made and handed to Qovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_token: Option<u64>,
}

impl BindingReport {
    fn new(binding: &Binding) -> Self {
        Self {
            binding: binding.name.clone(),
            outcome: BindingOutcome::Healthy,
            plan: Plan::default(),
            actions: Vec::new(),
            error: None,
            held: None,
            rotated_token: None,
        }
    }

    fn fail(mut self, error: impl Into<String>) -> Self {
        self.outcome = BindingOutcome::Failed;
        self.error = Some(error.into());
        self
    }
}

fn held_of(observed: &Observed) -> Option<HeldToken> {
    let marker = observed.marker()?;
    Some(HeldToken {
        token_id: marker.token_id,
        fingerprint: marker.fingerprint,
        expires: marker.expires,
    })
}

/// A fresh id for the journal lines of one rotation.
fn rotation_id(binding: &str) -> String {
    format!("{binding}-{}", now_ms())
}

impl Engine {
    /// One pass over `bindings`: observe, plan, and (unless a dry run) apply.
    pub async fn run(&self, bindings: &[Binding], options: PassOptions) -> Vec<BindingReport> {
        // One list of Qovery registries serves every binding of the pass.
        let registries = match self.qovery.registries(&self.organization).await {
            Ok(r) => r,
            Err(e) => {
                let message = format!("cannot list Qovery registries: {e}");
                return bindings
                    .iter()
                    .map(|b| BindingReport::new(b).fail(message.clone()))
                    .collect();
            }
        };
        let progress = super::progress::Progress::new(bindings.len());
        // A semaphore bounds the work; every binding's future exists from the start, which at
        // thousands of bindings is a few kilobytes each.
        let permits = tokio::sync::Semaphore::new(self.settings.concurrency.max(1));
        let futures = bindings.iter().map(|b| {
            let registry = registries
                .iter()
                .find(|r| r.name == b.qovery_registry)
                .cloned();
            let span = tracing::info_span!("binding", binding = %b.name);
            let permits = &permits;
            let progress = &progress;
            async move {
                let _permit = permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                let report = self.binding(b, registry, options).instrument(span).await;
                progress.tick();
                report
            }
        });
        let reports = futures_util::future::join_all(futures).await;
        progress.finish();
        reports
    }

    async fn binding(
        &self,
        b: &Binding,
        registry: Option<ContainerRegistry>,
        options: PassOptions,
    ) -> BindingReport {
        let report = BindingReport::new(b);
        let observed = match self.observe(b, registry).await {
            Ok(o) => o,
            Err(e) => return report.fail(tokens_unreadable(b, &e)),
        };
        let first = plan(b, &observed, Utc::now(), options.force);
        if options.dry_run {
            return dry_run_report(report, b, &observed, first);
        }
        if let Some(why) = &first.blocked {
            let mut report = report;
            report.outcome = BindingOutcome::Blocked;
            report.error = Some(why.clone());
            report.plan = first;
            return report;
        }
        if first.is_empty() {
            let mut report = report;
            report.held = held_of(&observed);
            return report;
        }
        let known_id = observed.registry.as_ref().map(|r| r.id.clone());
        self.act(b, known_id.as_deref(), options).await
    }

    /// The binding's active regwarden tokens, and its Qovery registry.
    async fn observe(
        &self,
        b: &Binding,
        registry: Option<ContainerRegistry>,
    ) -> Result<Observed, ApiError> {
        let tokens = match b.policy.credential {
            CredentialKind::DeployToken => self
                .gitlab
                .deploy_tokens(&b.namespace, true)
                .await?
                .into_iter()
                .filter_map(|t| {
                    let created = b.made_at(&t.name)?;
                    Some(OwnedToken {
                        id: t.id,
                        name: t.name,
                        created,
                        expires_at: t.expires_at,
                    })
                })
                .collect(),
            CredentialKind::AccessToken => self
                .gitlab
                .access_tokens(&b.namespace, true)
                .await?
                .into_iter()
                .filter_map(|t| {
                    let created = b.made_at(&t.name)?;
                    Some(OwnedToken {
                        id: t.id,
                        name: t.name,
                        created,
                        expires_at: t
                            .expires_at
                            .map(|d| d.and_time(Default::default()).and_utc()),
                    })
                })
                .collect(),
        };
        Ok(Observed { tokens, registry })
    }

    /// Under the binding's lock: observe afresh (another holder may just have acted on it),
    /// plan again, and carry the plan out.
    async fn act(
        &self,
        b: &Binding,
        known_id: Option<&str>,
        options: PassOptions,
    ) -> BindingReport {
        let mut report = BindingReport::new(b);
        let Some(store) = &self.store else {
            return report.fail("no store: a rotation needs the store's binding lock");
        };
        let mut lock = match store.try_lock_binding(&b.name).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                report.outcome = BindingOutcome::Busy;
                report.actions.push(
                    "another worker or process holds this binding's lock and is working on it; left to it"
                        .into(),
                );
                return report;
            }
            Err(e) => return report.fail(e.to_string()),
        };
        let result = self
            .act_locked(b, known_id, options, &mut lock, &mut report)
            .await;
        lock.release().await;
        match result {
            Ok(()) => report,
            Err(e) => report.fail(e),
        }
    }

    async fn act_locked(
        &self,
        b: &Binding,
        known_id: Option<&str>,
        options: PassOptions,
        lock: &mut BindingLock,
        report: &mut BindingReport,
    ) -> Result<(), String> {
        let registry = self
            .fresh_registry(b, known_id)
            .await
            .map_err(|e| format!("cannot read the Qovery registry: {e}"))?;
        let observed = self
            .observe(b, registry)
            .await
            .map_err(|e| tokens_unreadable(b, &e))?;
        let the_plan = plan(b, &observed, Utc::now(), options.force);
        report.plan = the_plan.clone();
        report.held = held_of(&observed);
        if let Some(why) = the_plan.blocked {
            report.outcome = BindingOutcome::Blocked;
            return Err(why);
        }
        let rotation = rotation_id(&b.name);
        match &the_plan.rotate {
            Some(reason) => {
                report.actions.push(format!("rotate: {reason}"));
                self.rotate(b, &observed, &rotation, lock, report).await?;
                report.outcome = BindingOutcome::Rotated;
            }
            None => {
                for r in &the_plan.revoke {
                    self.revoke(b, &r.token, &r.reason.to_string(), &rotation, report)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// The binding's Qovery registry as it is now: by id when the pass saw it (one small
    /// call), else by name from the list (so that one made meanwhile is not made twice).
    async fn fresh_registry(
        &self,
        b: &Binding,
        known_id: Option<&str>,
    ) -> Result<Option<ContainerRegistry>, ApiError> {
        if let Some(id) = known_id
            && let Some(r) = self.qovery.registry(&self.organization, id).await?
            && r.name == b.qovery_registry
        {
            return Ok(Some(r));
        }
        self.qovery
            .registry_by_name(&self.organization, &b.qovery_registry)
            .await
    }

    /// The four steps. Every failure before the switch revokes the new token and keeps the
    /// old one; after the switch, the old one stays for the grace period.
    async fn rotate(
        &self,
        b: &Binding,
        observed: &Observed,
        rotation: &str,
        lock: &mut BindingLock,
        report: &mut BindingReport,
    ) -> Result<(), String> {
        // 1. Create.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
        let name = b.token_name(now);
        let expires_at = chrono::Duration::from_std(b.policy.lifetime.0)
            .ok()
            .and_then(|lifetime| now.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let scopes: Vec<&str> = b
            .policy
            .scopes
            .iter()
            .map(|s| match s {
                Scope::ReadRegistry => "read_registry",
                Scope::WriteRegistry => "write_registry",
            })
            .collect();
        let created = match b.policy.credential {
            CredentialKind::DeployToken => self
                .gitlab
                .create_deploy_token(
                    &b.namespace,
                    &NewDeployToken {
                        name: &name,
                        scopes: &scopes,
                        expires_at,
                    },
                )
                .await
                .map(|c| {
                    let token = OwnedToken {
                        id: c.token.id,
                        name: c.token.name,
                        created: now,
                        expires_at: c.token.expires_at,
                    };
                    (token, Credential::new(c.token.username, c.secret))
                }),
            CredentialKind::AccessToken => {
                let access_level = if b.policy.scopes.contains(&Scope::WriteRegistry) {
                    30
                } else {
                    20
                };
                self.gitlab
                    .create_access_token(
                        &b.namespace,
                        &NewAccessToken {
                            name: &name,
                            scopes: &scopes,
                            expires_at: expires_at.date_naive(),
                            access_level,
                        },
                    )
                    .await
                    .map(|c| {
                        let token = OwnedToken {
                            id: c.token.id,
                            name: c.token.name.clone(),
                            created: now,
                            expires_at: c
                                .token
                                .expires_at
                                .map(|d| d.and_time(Default::default()).and_utc()),
                        };
                        // The registry takes any username with an access token.
                        (token, Credential::new(c.token.name, c.secret))
                    })
            }
        };
        let (token, credential) = match created {
            Ok(c) => c,
            Err(e) => {
                self.journal(b, rotation, "create", "failed", &e.to_string(), None)
                    .await;
                return Err(format!("cannot create the new GitLab token: {e}"));
            }
        };
        let fingerprint = credential.fingerprint();
        self.journal(
            b,
            rotation,
            "create",
            "ok",
            &name,
            Some((token.id, fingerprint.as_str())),
        )
        .await;
        report
            .actions
            .push(format!("created token {} ({fingerprint})", token.id));
        crash::point("after_create");

        // 2. Test, against the registry itself.
        let access = if b.policy.scopes.contains(&Scope::WriteRegistry) {
            Access::Push
        } else {
            Access::Pull
        };
        let check = self.check(b, access, &credential).await;
        let new = (token.id, fingerprint.as_str());
        if !check.is_ok() {
            let why = format!(
                "the new token failed the registry check: {}",
                check.explanation
            );
            return self
                .abandon(
                    b,
                    rotation,
                    "test",
                    why,
                    &token,
                    "it failed the registry check",
                    report,
                )
                .await;
        }
        self.journal(b, rotation, "test", "ok", &check.explanation, Some(new))
            .await;
        report
            .actions
            .push(format!("checked token {}: {}", token.id, check.explanation));
        crash::point("after_test");

        // The fence before the switch: a holder that lost its lock (its PostgreSQL session
        // ended) or stalled past lease_ttl must not write Qovery; another may be acting.
        let fence = match lock.confirm().await {
            Ok(()) if lock.held_for() <= self.settings.lease_ttl => None,
            Ok(()) => Some(format!(
                "the rotation held the binding's lock longer than lease_ttl ({}s) before the switch",
                self.settings.lease_ttl.as_secs()
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = fence {
            let why = format!("{why}; the new token was revoked and Qovery left as it was");
            return self
                .abandon(
                    b,
                    rotation,
                    "switch",
                    why,
                    &token,
                    "the rotation lost its lock",
                    report,
                )
                .await;
        }

        // 3. Switch Qovery to the new credential, with the marker naming it.
        let mut marker = Marker::new(
            &b.name,
            &b.instance,
            token.id,
            &fingerprint,
            token.expires_at.map(|e| e.date_naive()),
        );
        // The token Qovery held until now joins the retired list; entries whose grace is
        // over, or whose token is gone, leave it.
        let switch_time = Utc::now();
        let grace = to_chrono(b.policy.grace_period.0);
        marker.retired = observed
            .marker()
            .map(|m| m.retired)
            .unwrap_or_default()
            .into_iter()
            .filter(|(id, at)| {
                in_grace(*at, grace, switch_time) && observed.tokens.iter().any(|t| t.id == *id)
            })
            .collect();
        if let Some(previous) = observed.held() {
            marker.retired.push((previous.id, switch_time));
        }
        let description = marker.write_into(
            observed
                .registry
                .as_ref()
                .and_then(|r| r.description.as_deref())
                .unwrap_or(""),
        );
        let request = RegistryRequest {
            name: b.qovery_registry.clone(),
            kind: self.registry_kind.clone(),
            description,
            url: self.registry_url.as_str().trim_end_matches('/').to_string(),
            username: credential.username.clone(),
            password: credential.password.clone(),
        };
        match self.switch(b, observed, &request, token.id).await {
            Switch::Landed => {}
            Switch::Refused(why) => {
                return self
                    .abandon(
                        b,
                        rotation,
                        "switch",
                        why,
                        &token,
                        "Qovery did not take it",
                        report,
                    )
                    .await;
            }
            Switch::Unknown(why) => {
                // Qovery may hold either token now: revoking one could break its deploys. The
                // next pass reads the marker and settles it (the token Qovery does not hold
                // goes then).
                self.journal(b, rotation, "switch", "unknown", &why, Some(new))
                    .await;
                report.actions.push(format!(
                    "kept token {} and the previous one: the switch's outcome is unknown; the next pass settles it",
                    token.id
                ));
                return Err(why);
            }
        }
        self.journal(b, rotation, "switch", "ok", &b.qovery_registry, Some(new))
            .await;
        report.actions.push(format!(
            "switched Qovery registry {:?} to token {}",
            b.qovery_registry, token.id
        ));
        report.held = Some(HeldToken {
            token_id: token.id,
            fingerprint: fingerprint.as_str().to_string(),
            expires: marker.expires,
        });
        report.rotated_token = Some(token.id);
        crash::point("after_switch");

        // 4. Finish: previous tokens go once their grace period is over (a later pass, unless
        // the grace period is zero); tokens Qovery never held go now.
        let mut tokens = observed.tokens.clone();
        tokens.push(token.clone());
        let due = revocations(b, &tokens, Some(&token), Some(&marker), Utc::now());
        for r in &due {
            self.revoke(b, &r.token, &r.reason.to_string(), rotation, report)
                .await;
        }
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
        self.journal(b, rotation, "finish", "ok", "", Some(new))
            .await;
        crash::point("after_finish");
        Ok(())
    }

    /// Writes the new credential to Qovery. A write whose answer was lost (5xx, timeout) may
    /// have been applied: Qovery's marker, read back, tells; when it cannot be read either,
    /// the outcome is unknown.
    async fn switch(
        &self,
        b: &Binding,
        observed: &Observed,
        request: &RegistryRequest,
        token_id: u64,
    ) -> Switch {
        let written = match &observed.registry {
            Some(existing) => {
                self.qovery
                    .edit_registry(&self.organization, existing, request)
                    .await
            }
            None => {
                self.qovery
                    .create_registry(&self.organization, request)
                    .await
            }
        };
        let Err(e) = written else {
            return Switch::Landed;
        };
        if e.certainly_not_applied() {
            return Switch::Refused(format!("Qovery refused the new credential: {e}"));
        }
        match self
            .qovery
            .registry_by_name(&self.organization, &b.qovery_registry)
            .await
        {
            Ok(Some(r))
                if r.description
                    .as_deref()
                    .and_then(Marker::find)
                    .is_some_and(|m| m.token_id == token_id) =>
            {
                Switch::Landed
            }
            Ok(_) => Switch::Refused(format!("Qovery did not take the new credential: {e}")),
            Err(read) => Switch::Unknown(format!(
                "the switch to token {token_id} may have reached Qovery or not ({e}), and reading \
                 the registry back failed ({read})"
            )),
        }
    }

    /// The registry check of a new credential, tried a few times: a token GitLab just made
    /// can take a moment to be accepted everywhere.
    async fn check(
        &self,
        b: &Binding,
        access: Access,
        credential: &Credential,
    ) -> registry::CredentialCheck {
        let mut attempt = 1;
        loop {
            let report = registry::check(
                &self.http,
                &self.registry_url,
                &b.repository,
                access,
                credential,
            )
            .await;
            if report.is_ok() || attempt >= self.settings.check_attempts {
                return report;
            }
            tracing::info!(attempt, outcome = %report.outcome, "new token not accepted yet; retrying");
            attempt += 1;
            tokio::time::sleep(self.settings.check_interval).await;
        }
    }

    /// Revokes one of the binding's tokens; a failure is journaled and left to a later pass
    /// (the token shows up there as one Qovery does not hold).
    async fn revoke(
        &self,
        b: &Binding,
        token: &OwnedToken,
        why: &str,
        rotation: &str,
        report: &mut BindingReport,
    ) {
        let result = match b.policy.credential {
            CredentialKind::DeployToken => {
                self.gitlab
                    .revoke_deploy_token(&b.namespace, token.id)
                    .await
            }
            CredentialKind::AccessToken => {
                self.gitlab
                    .revoke_access_token(&b.namespace, token.id)
                    .await
            }
        };
        match result {
            Ok(()) => {
                self.journal(b, rotation, "revoke", "ok", why, Some((token.id, "")))
                    .await;
                report
                    .actions
                    .push(format!("revoked token {}: {why}", token.id));
            }
            Err(e) => {
                let message = format!("cannot revoke token {} ({why}): {e}", token.id);
                self.journal(
                    b,
                    rotation,
                    "revoke",
                    "failed",
                    &message,
                    Some((token.id, "")),
                )
                .await;
                report.actions.push(message);
            }
        }
    }

    /// Gives up a rotation at `step`: journals why, revokes the new token (Qovery never held
    /// it, so nothing depends on it), and returns the reason as the binding's error.
    #[allow(clippy::too_many_arguments)]
    async fn abandon(
        &self,
        b: &Binding,
        rotation: &str,
        step: &str,
        why: String,
        token: &OwnedToken,
        revoke_reason: &str,
        report: &mut BindingReport,
    ) -> Result<(), String> {
        self.journal(b, rotation, step, "failed", &why, Some((token.id, "")))
            .await;
        self.revoke(b, token, revoke_reason, rotation, report).await;
        Err(why)
    }

    /// Writes a journal line; `token` is its id and fingerprint (empty when unknown). The
    /// store is not the truth: a failure is logged, not fatal.
    async fn journal(
        &self,
        b: &Binding,
        rotation: &str,
        step: &str,
        outcome: &str,
        reason: &str,
        token: Option<(u64, &str)>,
    ) {
        let token_id = token.map(|(id, _)| id);
        let fingerprint = token.map(|(_, fp)| fp).filter(|fp| !fp.is_empty());
        tracing::info!(step, outcome, token_id, reason, "rotation step");
        let Some(store) = &self.store else { return };
        let entry = JournalEntry {
            at_ms: now_ms(),
            binding: b.name.clone(),
            rotation: Some(rotation.to_string()),
            step: step.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            token_id: token_id.map(|t| t as i64),
            fingerprint: fingerprint.map(str::to_string),
        };
        if let Err(e) = store.record(&entry).await {
            tracing::warn!(error = %e, "cannot write the journal");
        }
    }
}

fn dry_run_report(
    mut report: BindingReport,
    b: &Binding,
    observed: &Observed,
    the_plan: Plan,
) -> BindingReport {
    report.held = held_of(observed);
    if let Some(why) = &the_plan.blocked {
        report.outcome = BindingOutcome::Blocked;
        report.error = Some(why.clone());
    } else if the_plan.is_empty() {
        report.outcome = BindingOutcome::Healthy;
    } else {
        report.outcome = BindingOutcome::Planned;
        if let Some(reason) = &the_plan.rotate {
            let kind = match b.policy.credential {
                CredentialKind::DeployToken => "deploy token",
                CredentialKind::AccessToken => "access token",
            };
            report.actions.push(format!(
                "would rotate ({reason}): create a {kind} for {}, check it against {}, switch Qovery registry {:?}",
                namespace_label(&b.namespace),
                b.repository,
                b.qovery_registry
            ));
        }
        for r in &the_plan.revoke {
            report
                .actions
                .push(format!("would revoke token {} ({})", r.token.id, r.reason));
        }
    }
    report.plan = the_plan;
    report
}

/// How a binding reports that its GitLab tokens could not be read, naming what failed.
fn tokens_unreadable(b: &Binding, e: &ApiError) -> String {
    format!(
        "cannot read the GitLab tokens of {}: {e}",
        namespace_label(&b.namespace)
    )
}

/// How a switch to a new credential ended.
enum Switch {
    Landed,
    /// Certainly not applied: the new token can go.
    Refused(String),
    /// Maybe applied: neither token may go.
    Unknown(String),
}

pub fn namespace_label(ns: &Namespace) -> String {
    match ns {
        Namespace::Project(p) => format!("project {p}"),
        Namespace::Group(g) => format!("group {g}"),
    }
}
