//! A reconcile pass over the bindings: observe each (its GitLab tokens, its Qovery registry),
//! plan, and, holding the binding's lock and having observed it again, carry the plan out (a
//! rotation, `rotation.rs`, or revocations). One rotation per binding at a time, across
//! workers, processes and replicas, through the store's binding lock, which dies with its
//! holder (invariant I3, docs/architecture.md); a crash anywhere converges on the very next
//! pass, because every decision is taken from GitLab and Qovery after taking the lock, not
//! from memory (I4).

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use reqwest::Url;
use serde::Serialize;
use tracing::Instrument;

use super::journal::Journal;
use super::plan::{Binding, Force, Observed, OwnedToken, Plan, RotateReason, plan};
use super::rotation::Rotation;
use crate::gitlab::{GitlabClient, Namespace};
use crate::outbound::ApiError;
use crate::qovery::{QoveryClient, Registry, RegistryKind};
use crate::store::{BindingLock, Store};

/// What a pass may do.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassOptions {
    /// Plan only: no write anywhere (GitLab, Qovery, the store).
    pub dry_run: bool,
    /// When to rotate a binding whose token is not due.
    pub force: Force,
    /// The bindings are all the configuration makes (no `--binding` selection, every
    /// `[[auto_bind]]` rule expanded): a registry this deployment keeps that none of them names
    /// is stranded, and reported.
    pub complete: bool,
    /// Run the self-managed GitLab checklist too (timer and command-line passes), when the
    /// engine has its settings.
    pub checklist: bool,
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
    /// This deployment (`reconcile.instance`): the registries whose marker names it are its.
    pub instance: String,
}

impl From<&crate::config::ReconcileConfig> for EngineSettings {
    fn from(c: &crate::config::ReconcileConfig) -> Self {
        Self {
            concurrency: c.concurrency,
            check_attempts: c.check_attempts,
            check_interval: c.check_interval.0,
            lease_ttl: c.lease_ttl.0,
            instance: c.instance.clone(),
        }
    }
}

pub struct Engine {
    pub gitlab: GitlabClient,
    pub qovery: QoveryClient,
    /// For the registry check of new credentials.
    pub http: reqwest::Client,
    pub organization: String,
    /// The registry credentials are checked against and Qovery pulls from.
    pub registry: RegistryAddress,
    /// `None` in a dry run: nothing is written, not even the journal.
    pub store: Option<Store>,
    pub settings: EngineSettings,
    /// The self-managed GitLab checklist's settings; `None`: passes never run it.
    pub checklist: Option<crate::checklist::Settings>,
}

/// What a pass did: each binding's report, and the checklist when the pass ran it.
#[derive(Debug, Default)]
pub struct Pass {
    pub bindings: Vec<BindingReport>,
    pub checklist: Option<crate::checklist::Outcome>,
}

/// The registry: `gitlab.registry_url` when the configuration gives it, else the address
/// GitLab reports for the bound projects (`container_registry_image_prefix`), asked once, at
/// the first pass that needs it (a GitLab that does not answer then is asked again at the
/// next pass).
pub struct RegistryAddress {
    configured: Option<Url>,
    kind: crate::config::RegistryKindSetting,
    derived: tokio::sync::OnceCell<(Url, RegistryKind)>,
}

impl RegistryAddress {
    pub fn new(configured: Option<Url>, kind: crate::config::RegistryKindSetting) -> Self {
        let derived = tokio::sync::OnceCell::new();
        if let Some(url) = &configured {
            let _ = derived.set((url.clone(), kind.resolve(url)));
        }
        Self {
            configured,
            kind,
            derived,
        }
    }

    /// A registry known from the start, with the kind of the Qovery registries written for it.
    pub fn known(url: Url, kind: RegistryKind) -> Self {
        let derived = tokio::sync::OnceCell::new();
        let _ = derived.set((url.clone(), kind));
        Self {
            configured: Some(url),
            kind: crate::config::RegistryKindSetting::Auto,
            derived,
        }
    }

    /// The registry's URL and the kind of the Qovery registries written for it, once known.
    fn get(&self) -> Option<&(Url, RegistryKind)> {
        self.derived.get()
    }

    /// Learns the registry's address from GitLab unless it is known: from the first bound
    /// project (a group binding's first project) that GitLab describes.
    pub async fn resolve(
        &self,
        gitlab: &GitlabClient,
        bindings: &[Binding],
    ) -> Result<&(Url, RegistryKind), String> {
        self.derived
            .get_or_try_init(|| async {
                let mut last = None;
                for b in bindings.iter().filter(|b| b.blocked.is_none()).take(3) {
                    let project = match (&b.namespace, b.pinned) {
                        (_, Some(id)) => gitlab.project(&id.to_string()).await.map(Some),
                        (Namespace::Project(p), None) => gitlab.project(p).await.map(Some),
                        (Namespace::Group(g), None) => gitlab.a_group_project(g).await,
                    };
                    match project {
                        Ok(Some(p)) => match p.registry_address() {
                            Some(address) => {
                                let url = Url::parse(&format!("https://{address}")).map_err(
                                    |e| format!("GitLab reports the registry address {address:?}, which is not a host: {e}"),
                                )?;
                                tracing::info!(registry = %url, project = %p.path_with_namespace, "gitlab.registry_url is not set: using the registry GitLab reports");
                                let kind = self.kind.resolve(&url);
                                return Ok((url, kind));
                            }
                            None => {
                                return Err(format!(
                                    "gitlab.registry_url is not set and GitLab reports no container registry for project {} (the instance has none): enable the registry, or set gitlab.registry_url",
                                    p.path_with_namespace
                                ));
                            }
                        },
                        Ok(None) => {}
                        Err(e) => last = Some(e.to_string()),
                    }
                }
                Err(match last {
                    Some(e) => format!(
                        "gitlab.registry_url is not set and GitLab could not say where its registry is: {e}"
                    ),
                    None => "gitlab.registry_url is not set and no bound project tells where GitLab's registry is: set gitlab.registry_url".into(),
                })
            })
            .await
    }

    /// Whether the configuration gives the registry's URL.
    pub fn configured(&self) -> Option<&Url> {
        self.configured.as_ref()
    }
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
    /// A Qovery registry this deployment keeps whose marker names a binding the configuration
    /// no longer makes: nothing renews its token.
    Stranded,
}

impl BindingOutcome {
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            BindingOutcome::Failed | BindingOutcome::Blocked | BindingOutcome::Stranded
        )
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
    /// Qovery's own view of the registry after the switch (a report, not a gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qovery_view: Option<QoveryView>,
}

/// What Qovery answered when asked to list an image's tags through the registry just
/// written (`getContainerVersions`).
#[derive(Clone, Debug, Serialize)]
pub struct QoveryView {
    pub ok: bool,
    /// The image asked about: one the registry's services deploy, else the binding's
    /// repository.
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl std::fmt::Display for QoveryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.error, self.tags) {
            (None, Some(n)) => write!(f, "ok ({}: {n} tag(s) listed by Qovery)", self.image),
            (None, None) => write!(f, "ok ({})", self.image),
            (Some(e), _) => write!(
                f,
                "Qovery could not list {} through the registry: {e}",
                self.image
            ),
        }
    }
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
            qovery_view: None,
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
        fingerprint: marker.fingerprint.clone(),
        expires: marker.expires,
    })
}

impl Engine {
    /// The registry's URL. Known from the start of every pass ([`Engine::run`] resolves it
    /// before any binding is looked at); this is only called within a pass.
    pub fn registry_url(&self) -> &Url {
        &self.registry_details().0
    }

    /// The kind of the Qovery registries written for the registry.
    pub fn registry_kind(&self) -> &RegistryKind {
        &self.registry_details().1
    }

    fn registry_details(&self) -> &(Url, RegistryKind) {
        self.registry
            .get()
            .expect("Engine::run resolves the registry before any binding is handled")
    }

    /// One pass over `bindings`: observe, plan, and (unless a dry run) apply.
    pub async fn run(&self, bindings: &[Binding], options: PassOptions) -> Vec<BindingReport> {
        self.pass(bindings, options).await.bindings
    }

    /// One pass, with the checklist when `options.checklist` asks for it.
    pub async fn pass(&self, bindings: &[Binding], options: PassOptions) -> Pass {
        let failed = |message: String| Pass {
            bindings: bindings
                .iter()
                .map(|b| BindingReport::new(b).fail(message.clone()))
                .collect(),
            checklist: None,
        };
        if bindings.is_empty() && !options.complete {
            return Pass::default();
        }
        if let Err(message) = self.registry.resolve(&self.gitlab, bindings).await {
            return failed(message);
        }
        // One list of Qovery registries serves every binding of the pass.
        let registries = match self.qovery.registries(&self.organization).await {
            Ok(r) => r,
            Err(e) => return failed(format!("cannot list Qovery registries: {e}")),
        };
        // Auto-bound projects that moved keep their registry; then no two projects may share
        // a binding name or a registry.
        let bindings = &super::bindings::block_collisions(super::bindings::follow_moves(
            bindings.to_vec(),
            &registries,
        ));
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
        let checklist = async {
            match (&self.checklist, options.checklist) {
                (Some(settings), true) => {
                    Some(self.checklist(settings, bindings, &registries).await)
                }
                _ => None,
            }
        };
        let (mut reports, checklist) =
            tokio::join!(futures_util::future::join_all(futures), checklist);
        progress.finish();
        if options.complete {
            reports.extend(
                stranded(bindings, &registries, &self.settings.instance)
                    .into_iter()
                    .map(BindingReport::from),
            );
        }
        Pass {
            bindings: reports,
            checklist,
        }
    }

    /// The checklist of this pass (once for the registry host); the caller shows it.
    async fn checklist(
        &self,
        settings: &crate::checklist::Settings,
        bindings: &[Binding],
        registries: &[Registry],
    ) -> crate::checklist::Outcome {
        crate::checklist::Checklist {
            http: &self.http,
            gitlab: &self.gitlab,
            gitlab_url: &settings.gitlab_url,
            qovery: None,
            configured: self.registry.configured(),
            ca_file: settings.ca_file.as_deref(),
            timeout: settings.timeout,
            private_network: settings.private_network,
        }
        .for_pass(bindings, registries)
        .await
    }

    async fn binding(
        &self,
        b: &Binding,
        registry: Option<Registry>,
        options: PassOptions,
    ) -> BindingReport {
        let report = BindingReport::new(b);
        if let Some(why) = &b.blocked {
            let mut report = report;
            report.outcome = BindingOutcome::Blocked;
            report.error = Some(why.clone());
            return report;
        }
        let observed = match self.observe(b, registry).await {
            Ok(o) => o,
            Err(e) => return report.fail(tokens_unreadable(b, &e)),
        };
        let first = plan(b, &observed, Utc::now(), options.force);
        if options.dry_run {
            let mut report = dry_run_report(report, b, &observed, first);
            if report.outcome == BindingOutcome::Planned && report.plan.rotate.is_some() {
                report.actions.extend(self.images_to_check(&observed).await);
            }
            return report;
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
    async fn observe(&self, b: &Binding, registry: Option<Registry>) -> Result<Observed, ApiError> {
        let tokens = self
            .gitlab
            .tokens(&b.policy, &b.namespace, &b.token_prefix())
            .await?
            .into_iter()
            .filter_map(|t| {
                Some(OwnedToken {
                    created: b.made_at(&t.name)?,
                    id: t.id,
                    name: t.name,
                    expires_at: t.expires_at,
                })
            })
            .collect();
        let mut observed = Observed {
            tokens,
            registry,
            gitlab_registry: Some(self.registry_url().clone()),
            distrusted: None,
        };
        observed.distrust_inconsistent_marker(b);
        if let Some(why) = &observed.distrusted {
            tracing::warn!("{why}");
        }
        Ok(observed)
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
                // A holder alive for longer than a rotation may take is stuck (a process frozen,
                // a call hanging): busy is not success for ever.
                if let Some(since) = store.lock_holder_since(&b.name).await
                    && let Ok(age) = std::time::SystemTime::now().duration_since(since)
                    && age > self.settings.lease_ttl
                {
                    return report.fail(format!(
                        "busy for {}s: another worker or process has held this binding's lock since {}, longer than reconcile.lease_ttl ({}s); that rotation is stuck (a frozen process, a call that hangs), and this is reported until its holder ends",
                        age.as_secs(),
                        chrono::DateTime::<Utc>::from(since).format("%Y-%m-%d %H:%M:%S UTC"),
                        self.settings.lease_ttl.as_secs()
                    ));
                }
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
            // Blocked stays blocked: something is in the way, not broken.
            Err(ActError::Blocked(why))
            | Err(ActError::Rotation(super::rotation::RotationError::Blocked(why))) => {
                report.outcome = BindingOutcome::Blocked;
                report.error = Some(why);
                report
            }
            Err(e) => report.fail(e.to_string()),
        }
    }

    async fn act_locked(
        &self,
        b: &Binding,
        known_id: Option<&str>,
        options: PassOptions,
        lock: &mut BindingLock,
        report: &mut BindingReport,
    ) -> Result<(), ActError> {
        let registry = self
            .fresh_registry(b, known_id)
            .await
            .map_err(ActError::Registry)?;
        let observed = self
            .observe(b, registry)
            .await
            .map_err(|e| ActError::Tokens(tokens_unreadable(b, &e)))?;
        let the_plan = plan(b, &observed, Utc::now(), options.force);
        report.plan = the_plan.clone();
        report.held = held_of(&observed);
        if let Some(why) = &observed.distrusted {
            report.actions.push(why.clone());
        }
        if let Some(why) = the_plan.blocked {
            report.outcome = BindingOutcome::Blocked;
            return Err(ActError::Blocked(why));
        }
        let journal = Journal::new(self.store.as_ref(), &b.name);
        match &the_plan.rotate {
            Some(reason) => {
                report.actions.push(format!("rotate: {reason}"));
                let rotation = Rotation {
                    engine: self,
                    binding: b,
                    observed: &observed,
                    journal,
                };
                rotation.run(lock, report).await?;
                report.outcome = BindingOutcome::Rotated;
                if let RotateReason::TakeOver { username } = reason {
                    let took = format!(
                        "took Qovery registry {:?} over from a credential regwarden did not create (username {}); that credential was not revoked: revoke it in GitLab once nothing else uses it",
                        b.qovery_registry,
                        username.as_deref().unwrap_or("unknown")
                    );
                    let token = report.rotated_token.map(|id| (id, ""));
                    rotation.journal.step("take_over", "ok", &took, token).await;
                    report.actions.push(took);
                }
            }
            None => {
                for r in &the_plan.revoke {
                    self.revoke(b, &r.token, &r.reason.to_string(), &journal, report)
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
    ) -> Result<Option<Registry>, ApiError> {
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

    /// For a dry run: the images a rotation would check the new credential against, as
    /// lines of the report.
    async fn images_to_check(&self, observed: &Observed) -> Vec<String> {
        let Some(registry) = &observed.registry else {
            return Vec::new();
        };
        if registry.services == Some(0) {
            return Vec::new();
        }
        match self
            .qovery
            .deployed_images(&self.organization, &registry.id)
            .await
        {
            Ok(images) if images.is_empty() => Vec::new(),
            Ok(images) => {
                let list: Vec<String> = images
                    .iter()
                    .map(|(service, image)| {
                        format!(
                            "{}:{} ({} {:?}, {:?})",
                            image.image_name,
                            image.tag,
                            super::rotation::service_kind(&service.service_type),
                            service.service_name,
                            service.environment_name
                        )
                    })
                    .collect();
                vec![format!(
                    "would check the new credential against the images the registry's services deploy: {}",
                    list.join(", ")
                )]
            }
            Err(e) => vec![format!(
                "cannot read which images the registry's services deploy (a rotation would need to): {e}"
            )],
        }
    }

    /// Revokes one of the binding's tokens; a failure is journaled and left to a later pass
    /// (the token shows up there as one Qovery does not hold).
    pub(super) async fn revoke(
        &self,
        b: &Binding,
        token: &OwnedToken,
        why: &str,
        journal: &Journal<'_>,
        report: &mut BindingReport,
    ) {
        let token_ref = Some((token.id, ""));
        match self
            .gitlab
            .revoke_token(&b.policy, &b.namespace, token.id)
            .await
        {
            Ok(()) => {
                journal.step("revoke", "ok", why, token_ref).await;
                report
                    .actions
                    .push(format!("revoked token {}: {why}", token.id));
            }
            Err(e) => {
                let message = format!("cannot revoke token {} ({why}): {e}", token.id);
                journal.step("revoke", "failed", &message, token_ref).await;
                report.actions.push(message);
            }
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
    if let Some(why) = &observed.distrusted {
        report.actions.push(why.clone());
    }
    if let Some(why) = &the_plan.blocked {
        report.outcome = BindingOutcome::Blocked;
        report.error = Some(why.clone());
    } else if the_plan.is_empty() {
        report.outcome = BindingOutcome::Healthy;
    } else {
        report.outcome = BindingOutcome::Planned;
        if let Some(RotateReason::TakeOver { username }) = &the_plan.rotate {
            report.actions.push(format!(
                "would take Qovery registry {:?} over from a credential regwarden did not create (username {}), and never revoke it: create a {} for {}, check it against {}, switch the registry to it",
                b.qovery_registry,
                username.as_deref().unwrap_or("unknown"),
                b.policy.credential,
                namespace_label(&b.namespace),
                b.repository_label(),
            ));
        } else if let Some(reason) = &the_plan.rotate {
            report.actions.push(format!(
                "would rotate ({reason}): create a {} for {}, check it against {}, switch Qovery registry {:?}",
                b.policy.credential,
                namespace_label(&b.namespace),
                b.repository_label(),
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

/// A Qovery registry this deployment keeps (its instance in the marker) whose marker names a
/// binding the configuration no longer makes: a binding removed from the configuration, a
/// project an `[[auto_bind]]` rule no longer makes one for (destroyed, moved out of the group,
/// its registry turned off). Its token expires unrenewed.
#[derive(Clone, Debug, Serialize)]
pub struct Stranded {
    pub registry: String,
    pub binding: String,
    pub token_id: u64,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<crate::marker::Pin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Stranded {
    pub fn message(&self) -> String {
        let pinned = self
            .pin
            .map(|p| {
                let at = self
                    .path
                    .as_ref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default();
                format!(", {p}{at}")
            })
            .unwrap_or_default();
        let expires = self.expires.map_or("never".to_string(), |d| d.to_string());
        format!(
            "Qovery registry {:?} is kept for binding {:?}{}, which the configuration no longer makes: nothing renews its token {} (expires {expires}). Bind it again, or delete the registry once no service uses it",
            self.registry,
            self.binding,
            crate::outbound::printable(&pinned),
            self.token_id
        )
    }
}

/// The registries of `instance` that none of `bindings` keeps (by binding name or registry).
pub fn stranded(bindings: &[Binding], registries: &[Registry], instance: &str) -> Vec<Stranded> {
    registries
        .iter()
        .filter(|r| !r.is_cluster_owned())
        .filter_map(|r| Some((r, r.marker.as_ref()?)))
        // Token 0 is `ci register`'s marker: a credential the pipeline had, no token of ours.
        .filter(|(_, m)| m.token_id != 0 && m.instance == instance)
        .filter(|(r, m)| {
            !bindings
                .iter()
                .any(|b| b.name == m.binding || b.qovery_registry == r.name)
        })
        .map(|(r, m)| Stranded {
            registry: r.name.clone(),
            binding: m.binding.clone(),
            token_id: m.token_id,
            fingerprint: m.fingerprint.clone(),
            expires: m.expires,
            pin: m.pin,
            path: m.path.clone(),
        })
        .collect()
}

impl From<Stranded> for BindingReport {
    fn from(s: Stranded) -> Self {
        BindingReport {
            binding: s.binding.clone(),
            outcome: BindingOutcome::Stranded,
            plan: Plan::default(),
            actions: Vec::new(),
            error: Some(s.message()),
            held: Some(HeldToken {
                token_id: s.token_id,
                fingerprint: s.fingerprint.clone(),
                expires: s.expires,
            }),
            rotated_token: None,
            qovery_view: None,
        }
    }
}

/// Why a binding's work under its lock stopped.
#[derive(Debug, thiserror::Error)]
enum ActError {
    #[error("cannot read the Qovery registry: {0}")]
    Registry(#[source] ApiError),
    #[error("{0}")]
    Tokens(String),
    /// Something is in the way regwarden will not touch.
    #[error("{0}")]
    Blocked(String),
    #[error(transparent)]
    Rotation(#[from] super::rotation::RotationError),
}

/// How a binding reports that its GitLab tokens could not be read, naming what failed.
fn tokens_unreadable(b: &Binding, e: &ApiError) -> String {
    format!(
        "cannot read the GitLab tokens of {}: {e}",
        namespace_label(&b.namespace)
    )
}

pub fn namespace_label(ns: &Namespace) -> String {
    match ns {
        Namespace::Project(p) => format!("project {p}"),
        Namespace::Group(g) => format!("group {g}"),
    }
}
