//! What a queued job asks for, and the worker pool that does it. A job that fails is retried
//! with backoff, then marked dead (visible in `history` and `/metrics`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::metrics::{BindingLabels, Metrics, OutcomeLabels, TokenLabels};
use crate::config::{Config, CredentialKind};
use crate::gitlab::Namespace;
use crate::gitlab::events::{Event, TokenOwner};
use crate::reconcile::{
    Binding, BindingOutcome, BindingReport, Engine, Force, PassOptions, bindings,
};
use crate::store::{JobOutcome, JournalEntry, Store, now_ms};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "job")]
pub enum JobPayload {
    /// React to a webhook event received at `received_ms` (Unix milliseconds).
    Event {
        event: Event,
        /// Absent in jobs queued by earlier versions: the time the job runs stands in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        received_ms: Option<i64>,
    },
    /// A reconcile pass: every binding (`None`) or these, for a reason (timer, CI job).
    Reconcile {
        bindings: Option<Vec<String>>,
        reason: String,
    },
}

/// What an event asks of the bindings.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Nothing(String),
    Pass {
        bindings: Vec<String>,
        force: Force,
    },
    /// A project was renamed or transferred, as the event says: the bindings' tokens are
    /// re-checked once GitLab confirms that its path is another than the one they were checked
    /// at.
    Moved {
        bindings: Vec<String>,
        project_id: u64,
    },
    /// A project was destroyed, as the event says: acted on once GitLab answers 404 for it.
    Destroyed {
        project_id: u64,
        path: String,
    },
}

fn project_matches(b: &Binding, path: &str, id: u64) -> bool {
    matches!(&b.namespace, Namespace::Project(p) if p == path || *p == id.to_string())
}

fn names(bindings: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = bindings.collect();
    v.sort();
    v.dedup();
    v
}

/// The bindings of credential `kind` on `owner` that made token `token_name`: rotated while
/// Qovery still holds the token that expires.
fn expiring(
    all: &[Binding],
    kind: CredentialKind,
    owner: &TokenOwner,
    token_id: u64,
    token_name: &str,
) -> Action {
    let hit = names(
        all.iter()
            .filter(|b| b.policy.credential == kind)
            .filter(|b| match (owner, &b.namespace) {
                (TokenOwner::Project(p), _) => project_matches(b, &p.path, p.id),
                (TokenOwner::Group(g), Namespace::Group(ns)) => {
                    *ns == g.path || *ns == g.id.to_string()
                }
                _ => false,
            })
            .filter(|b| b.made_at(token_name).is_some())
            .map(|b| b.name.clone()),
    );
    if hit.is_empty() {
        Action::Nothing(format!("token {token_name:?} is not one of regwarden's"))
    } else {
        Action::Pass {
            bindings: hit,
            force: Force::IfHolding { token_id },
        }
    }
}

/// Which bindings an event concerns, and what to do about them. An expiry forces a rotation
/// only while Qovery still holds the token that expires, and a move (once GitLab confirms it)
/// only while Qovery holds a token made before it: several deliveries of one event (a project,
/// a group and a system hook; a redelivery) make one rotation.
fn action(event: &Event, all: &[Binding]) -> Action {
    match event {
        Event::DeployTokenExpiring {
            owner,
            token_id,
            token_name,
            ..
        } => expiring(
            all,
            CredentialKind::DeployToken,
            owner,
            *token_id,
            token_name,
        ),
        Event::AccessTokenExpiring {
            owner,
            token_id,
            token_name,
            ..
        } => expiring(
            all,
            CredentialKind::AccessToken,
            owner,
            *token_id,
            token_name,
        ),
        Event::ProjectCreated { project } => {
            let hit = names(
                all.iter()
                    .filter(|b| project_matches(b, &project.path, project.id))
                    .map(|b| b.name.clone()),
            );
            if hit.is_empty() {
                Action::Nothing(format!(
                    "no binding or auto_bind rule covers {}",
                    project.path
                ))
            } else {
                Action::Pass {
                    bindings: hit,
                    force: Force::No,
                }
            }
        }
        Event::ProjectRenamed { project, old_path }
        | Event::ProjectTransferred { project, old_path } => {
            let hit = names(
                all.iter()
                    .filter(|b| {
                        project_matches(b, &project.path, project.id)
                            || project_matches(b, old_path, project.id)
                    })
                    .map(|b| b.name.clone()),
            );
            if hit.is_empty() {
                Action::Nothing(format!("no binding covers {} or {old_path}", project.path))
            } else {
                // The repository path may have changed: confirmed with GitLab first.
                Action::Moved {
                    bindings: hit,
                    project_id: project.id,
                }
            }
        }
        // Whether a binding or a rule covers the project was judged at the intake; what its
        // registries are is read from their markers, by the project's id (an auto-bound
        // project that is gone has no binding any more).
        Event::ProjectDestroyed { project } => Action::Destroyed {
            project_id: project.id,
            path: project.path.clone(),
        },
        Event::Ignored { event } => Action::Nothing(format!("{event} is not handled")),
    }
}

pub struct Worker {
    pub config: Arc<Config>,
    pub engine: Arc<Engine>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub name: String,
    pub job_lock: Duration,
    /// Tries of a job before it is dead.
    pub max_attempts: i64,
    /// The secrets regwarden's hooks are given, read at start-up with those deliveries are
    /// checked against (`None`: hooks are not kept).
    pub hook_secrets: Option<Arc<crate::hooks::Secrets>>,
}

impl Worker {
    /// Claims and runs jobs until `stop` turns true; a running job is finished first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.store.claim_job(&self.name, self.job_lock).await {
                Ok(Some(job)) => {
                    let started = Instant::now();
                    let span = tracing::info_span!("job", id = job.id, attempt = job.attempts);
                    let result =
                        tracing::Instrument::instrument(self.process(&job.payload), span).await;
                    self.metrics
                        .job_duration
                        .observe(started.elapsed().as_secs_f64());
                    self.settle(job.id, job.attempts, result).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim a job"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn settle(&self, id: i64, attempts: i64, result: anyhow::Result<()>) {
        // The store keeps the message with its causes; it never holds a secret (I5).
        let error = result
            .as_ref()
            .err()
            .map(|e| crate::outbound::error_chain(e.as_ref()));
        let outcome = match &error {
            None => JobOutcome::Done,
            Some(e) if attempts < self.max_attempts => {
                // 2, 4, 8, 16 s, with up to a second of jitter so replicas spread out.
                let backoff = 1000 * (1i64 << attempts.min(8)) + fastrand_ms();
                tracing::warn!(error = %e, retry_in_ms = backoff, "job failed; retrying");
                JobOutcome::Retry {
                    at_ms: now_ms() + backoff,
                    error: e,
                }
            }
            Some(e) => {
                tracing::error!(error = %e, "job failed for good");
                let _ = self
                    .store
                    .record(&JournalEntry {
                        at_ms: now_ms(),
                        binding: "(server)".into(),
                        rotation: None,
                        step: "job".into(),
                        outcome: "dead".into(),
                        reason: format!("job {id} gave up after {attempts} tries: {e}"),
                        token_id: None,
                        fingerprint: None,
                    })
                    .await;
                JobOutcome::Dead { error: e }
            }
        };
        if let Err(e) = self.store.settle_job(id, outcome).await {
            tracing::warn!(error = %e, "cannot settle a job; its lock will expire and it runs again");
        }
    }

    /// The API token, before the timer's pass uses it: rotated when due (and allowed), its
    /// expiry in `/metrics`, and what went wrong loudly (log, journal, metric). A token whose
    /// rotation may have happened stops the pass: it may be dead.
    async fn keep_api_token_alive(&self) -> anyhow::Result<()> {
        let own = crate::own_token::keep_alive(
            &self.config.gitlab,
            &self.engine.gitlab,
            Some(&self.store),
            self.config.reconcile.lease_ttl.0,
        )
        .await;
        let report = crate::own_token::Report::of(&own);
        report.record(Some(&self.store)).await;
        // A token read as never expiring has no figure (not 0, which would page someone); one
        // not read this time keeps the last.
        if let Some(expires_on) = report.expires_on {
            let days = (expires_on - chrono::Utc::now().date_naive()).num_days();
            self.metrics.api_token_expiry(Some(days));
        } else if report.status == "fine" {
            self.metrics.api_token_expiry(None);
        }
        if !matches!(report.status, "fine" | "busy") {
            self.metrics
                .api_token_events
                .get_or_create(&crate::server::metrics::OutcomeLabels {
                    outcome: report.status.into(),
                })
                .inc();
        }
        let message = report.message.as_deref().unwrap_or_default();
        match own {
            Err(e) if e.is_fatal() => return Err(e.into()),
            Err(_) => tracing::error!(status = report.status, "{message}"),
            Ok(crate::own_token::OwnToken::Expiring { .. }) => tracing::warn!("{message}"),
            Ok(crate::own_token::OwnToken::Rotated { .. }) => tracing::info!("{message}"),
            Ok(_) => {}
        }
        Ok(())
    }

    async fn process(&self, payload: &str) -> anyhow::Result<()> {
        let payload: JobPayload = serde_json::from_str(payload).context("unreadable job")?;
        let timer = matches!(&payload, JobPayload::Reconcile { reason, .. } if reason == "timer");
        // Another worker or replica may have rotated the API token into its file.
        if let Err(e) =
            crate::own_token::refresh_from_file(&self.config.gitlab, &self.engine.gitlab)
        {
            tracing::warn!("cannot read the API token file again: {e}");
        }
        let mut complete = false;
        let (selected, force, failed_rules) = match payload {
            JobPayload::Reconcile { bindings, reason } => {
                tracing::info!(%reason, "reconcile pass");
                if reason == "timer" {
                    self.keep_api_token_alive().await?;
                }
                complete = bindings.is_none();
                let resolved = match &bindings {
                    None => bindings::resolve(&self.config, &self.engine.gitlab).await,
                    Some(names) => {
                        bindings::resolve_named(&self.config, &self.engine.gitlab, names).await
                    }
                };
                complete &= resolved.failed_rules.is_empty();
                (resolved.bindings, Force::No, resolved.failed_rules)
            }
            JobPayload::Event { event, received_ms } => {
                let resolved = bindings::resolve(&self.config, &self.engine.gitlab).await;
                let received = received_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .unwrap_or_else(chrono::Utc::now);
                // A rule that failed matters to this event only if it could cover its project.
                let failed_rules: Vec<bindings::RuleFailure> = resolved
                    .failed_rules
                    .into_iter()
                    .filter(|f| event.project_path().is_none_or(|p| f.could_cover(p)))
                    .collect();
                match action(&event, &resolved.bindings) {
                    Action::Nothing(why) if failed_rules.is_empty() => {
                        let why = crate::outbound::printable(&why);
                        tracing::info!(event = event.kind(), "nothing to do: {why}");
                        return Ok(());
                    }
                    Action::Nothing(_) => (Vec::new(), Force::No, failed_rules),
                    Action::Pass { bindings, force } => (
                        resolved
                            .bindings
                            .into_iter()
                            .filter(|b| bindings.contains(&b.name))
                            .collect(),
                        force,
                        failed_rules,
                    ),
                    Action::Moved {
                        bindings,
                        project_id,
                    } => {
                        let named: Vec<Binding> = resolved
                            .bindings
                            .into_iter()
                            .filter(|b| bindings.contains(&b.name))
                            .collect();
                        let moved = self.moved(named, project_id).await?;
                        (moved, Force::IfMadeBefore { at: received }, failed_rules)
                    }
                    Action::Destroyed { project_id, path } => {
                        self.project_destroyed(project_id, &path).await?;
                        (Vec::new(), Force::No, failed_rules)
                    }
                }
            }
        };
        let pass = self
            .engine
            .pass(
                &selected,
                PassOptions {
                    dry_run: false,
                    force,
                    complete,
                    // The timer's passes; a delivery's pass is about its bindings alone.
                    checklist: timer,
                },
            )
            .await;
        let reports = pass.bindings;
        self.observe(&reports);
        if let Some(checklist) = &pass.checklist {
            for f in checklist
                .findings
                .iter()
                .filter(|f| f.status != crate::checklist::Status::Ok)
            {
                tracing::warn!(check = f.check.as_str(), subject = %f.subject, "registry checklist: {}", f.message);
            }
            self.metrics.observe_checklist(checklist);
        }
        if timer {
            self.observe_inventory(&selected).await;
            self.keep_hooks().await;
        }
        let mut failed: Vec<String> = reports
            .iter()
            .filter(|r| r.outcome.is_failure())
            .map(|r| format!("{}: {}", r.binding, r.error.as_deref().unwrap_or("failed")))
            .collect();
        // A forced pass that found its binding busy asks again once the holder is done: the
        // holder may be a pass that was not forced (a timer's), and the force (an expiry, a
        // move) would be lost. The next try re-reads GitLab and Qovery; if the holder already
        // rotated, the force no longer applies and the job ends.
        if force != Force::No {
            failed.extend(
                reports
                    .iter()
                    .filter(|r| r.outcome == BindingOutcome::Busy)
                    .map(|r| format!("{}: busy; the forced rotation is tried again", r.binding)),
            );
        }
        for rule in &failed_rules {
            self.metrics.rule_failures.inc();
            failed.push(format!(
                "[[auto_bind]] group {}: {}",
                rule.group, rule.error
            ));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(failed.join("; ")))
        }
    }

    /// With `server.public_url`, the timer's pass keeps regwarden's hooks in GitLab
    /// (`crate::hooks`) and shows each on `/metrics`; a hook that needs a person is logged.
    /// It never fails the pass: the rotations do not depend on it.
    async fn keep_hooks(&self) {
        let (Ok(url), Some(secrets)) = (crate::hooks::hook_url(&self.config), &self.hook_secrets)
        else {
            return;
        };
        let targets = crate::hooks::targets(&self.config);
        let outcomes = crate::hooks::sync(
            &self.engine.gitlab,
            &url,
            secrets,
            &targets,
            crate::hooks::Options::default(),
        )
        .await;
        for o in &outcomes {
            match (&o.problem, o.action) {
                (Some(problem), _) => tracing::warn!(
                    path = %o.path,
                    hook_id = ?o.hook_id,
                    "the GitLab hook needs a person: {problem}"
                ),
                (None, "created" | "updated") => tracing::info!(
                    path = %o.path,
                    hook_id = ?o.hook_id,
                    action = o.action,
                    "GitLab hook kept"
                ),
                _ => {}
            }
        }
        self.metrics.observe_hooks(&outcomes);
    }

    /// The token inventory of the bindings as gauges: the soonest expiry per binding, kind
    /// and managed or not. Label sets that no longer exist go.
    async fn observe_inventory(&self, bindings: &[Binding]) {
        // The timer's pass already reports stranded registries.
        let inventory = crate::inventory::collect(&self.engine, bindings, false).await;
        for gap in &inventory.gaps {
            tracing::warn!(binding = %gap.binding, "token inventory: {}", gap.message);
        }
        let now = chrono::Utc::now();
        let mut soonest = std::collections::HashMap::<TokenLabels, i64>::new();
        for t in &inventory.tokens {
            let Some(expires) = t.expires_at else {
                continue;
            };
            let labels = TokenLabels {
                binding: t.binding.clone(),
                kind: t.kind.as_str().into(),
                managed: t.managed.to_string(),
            };
            let left = (expires - now).num_seconds();
            let e = soonest.entry(labels).or_insert(left);
            *e = (*e).min(left);
        }
        self.metrics.token_expiry.clear();
        for (labels, left) in soonest {
            self.metrics.token_expiry.get_or_create(&labels).set(left);
        }
    }

    fn observe(&self, reports: &[BindingReport]) {
        for r in reports {
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            self.metrics
                .rotations
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            if let Some(expires) = r.held.as_ref().and_then(|h| h.expires) {
                let days = (expires - chrono::Utc::now().date_naive()).num_days();
                self.metrics
                    .days_until_expiry
                    .get_or_create(&BindingLabels {
                        binding: r.binding.clone(),
                    })
                    .set(days);
            }
        }
    }

    /// A bound project is gone, and its tokens with it. Its Qovery registry is deleted when
    /// no service uses it; otherwise it is kept and a warning says why.
    /// Of the bindings a rename or transfer event names, those whose registry holds a token
    /// checked at another path than the project's path now, by its id: an event is a hint,
    /// never proof (any holder of a webhook key could send one), and a rotation is worth it
    /// only when the path really moved. A marker without a path (written before regwarden
    /// kept one) counts as moved.
    async fn moved(&self, bindings: Vec<Binding>, project_id: u64) -> anyhow::Result<Vec<Binding>> {
        let now = match self.engine.gitlab.project(&project_id.to_string()).await {
            Ok(p) => p.path_with_namespace,
            Err(e) if e.is_not_found() => {
                tracing::info!(
                    project = project_id,
                    "a move event for a project GitLab does not have (any more): nothing to re-check"
                );
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot confirm the move with GitLab"));
            }
        };
        let registries = self
            .engine
            .qovery
            .registries(&self.engine.organization)
            .await
            .context("cannot read the Qovery registries")?;
        let total = bindings.len();
        let moved: Vec<Binding> = bindings
            .into_iter()
            .filter(|b| {
                let marker = registries
                    .iter()
                    .find(|r| r.name == b.qovery_registry)
                    .and_then(|r| r.marker.as_ref());
                marker.is_none_or(|m| m.path.as_deref() != Some(now.as_str()))
            })
            .collect();
        if moved.len() < total {
            tracing::info!(
                project = project_id,
                path = %now,
                "a move event: the tokens of {} binding(s) were already checked at the project's path now",
                total - moved.len()
            );
        }
        Ok(moved)
    }

    /// A project-destroyed event, confirmed: only when GitLab answers 404 for the project's
    /// id, and only for the registries whose marker pins that id and names this deployment.
    /// Each is deleted when no Qovery service uses it, else kept with a warning.
    async fn project_destroyed(&self, project_id: u64, path: &str) -> anyhow::Result<()> {
        match self.engine.gitlab.project(&project_id.to_string()).await {
            Err(e) if e.is_not_found() => {}
            Ok(p) => {
                tracing::warn!(
                    project = project_id,
                    path = %p.path_with_namespace,
                    "a destroy event for a project GitLab still has: ignored"
                );
                return Ok(());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot confirm the destroy with GitLab"));
            }
        }
        let org = &self.engine.organization;
        let instance = &self.engine.settings.instance;
        let registries = self
            .engine
            .qovery
            .registries(org)
            .await
            .context("cannot read the Qovery registries")?;
        for registry in registries.iter().filter(|r| {
            r.marker.as_ref().is_some_and(|m| {
                m.instance == *instance && m.pin == Some(crate::marker::Pin::Project(project_id))
            })
        }) {
            let binding = registry
                .marker
                .as_ref()
                .map(|m| m.binding.clone())
                .unwrap_or_default();
            let (outcome, reason) = if registry.is_cluster_owned() {
                (
                    "skipped",
                    "the registry belongs to a Qovery cluster".to_string(),
                )
            } else if registry.services.unwrap_or(1) > 0 {
                (
                    "kept",
                    format!(
                        "project {project_id} ({path}) is gone but {} service(s) still use Qovery registry {:?}",
                        registry.services.unwrap_or(0),
                        registry.name
                    ),
                )
            } else {
                self.engine
                    .qovery
                    .delete_registry(org, registry)
                    .await
                    .with_context(|| {
                        format!("cannot delete Qovery registry {:?}", registry.name)
                    })?;
                (
                    "ok",
                    format!(
                        "project {project_id} ({path}) is gone; deleted Qovery registry {:?}",
                        registry.name
                    ),
                )
            };
            if outcome == "kept" {
                tracing::warn!(binding = %binding, "{reason}");
            }
            let _ = self
                .store
                .record(&JournalEntry {
                    at_ms: now_ms(),
                    binding,
                    rotation: None,
                    step: "delete_registry".into(),
                    outcome: outcome.into(),
                    reason,
                    token_id: None,
                    fingerprint: None,
                })
                .await;
        }
        Ok(())
    }
}

/// Up to a second of jitter, without a random-number crate: the clock's low bits differ
/// between replicas and between calls.
fn fastrand_ms() -> i64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        % 1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::gitlab::events::{GroupRef, ProjectRef};

    fn binding(name: &str, ns: Namespace, credential: CredentialKind) -> Binding {
        Binding {
            name: name.into(),
            instance: String::new(),
            namespace: ns,
            repository: Some("x".into()),
            qovery_registry: format!("r-{name}"),
            policy: Policy {
                credential,
                ..Policy::default()
            },
            pinned: None,
            from_rule: false,
            blocked: None,
        }
    }

    fn all() -> Vec<Binding> {
        vec![
            binding(
                "api",
                Namespace::Project("acme/api".into()),
                CredentialKind::DeployToken,
            ),
            binding(
                "web",
                Namespace::Project("acme/web".into()),
                CredentialKind::DeployToken,
            ),
            binding(
                "grp",
                Namespace::Group("acme/platform".into()),
                CredentialKind::AccessToken,
            ),
            binding(
                "shared",
                Namespace::Group("acme/shared".into()),
                CredentialKind::DeployToken,
            ),
        ]
    }

    fn project(path: &str) -> ProjectRef {
        ProjectRef {
            id: 7,
            path: path.into(),
        }
    }

    #[test]
    fn an_expiring_regwarden_token_forces_its_binding() {
        let e = Event::DeployTokenExpiring {
            owner: TokenOwner::Project(project("acme/api")),
            token_id: 1,
            token_name: "regwarden-api-20261124T100000Z".into(),
            expires_at: "2026-12-01 00:00:00 UTC".into(),
        };
        assert_eq!(
            action(&e, &all()),
            Action::Pass {
                bindings: vec!["api".into()],
                force: Force::IfHolding { token_id: 1 }
            }
        );
    }

    #[test]
    fn an_expiring_token_of_someone_else_is_left_alone() {
        let e = Event::DeployTokenExpiring {
            owner: TokenOwner::Project(project("acme/api")),
            token_id: 1,
            token_name: "ci-pull".into(),
            expires_at: "x".into(),
        };
        assert!(matches!(action(&e, &all()), Action::Nothing(_)));
    }

    #[test]
    fn a_group_access_token_reaches_its_group_binding() {
        let e = Event::AccessTokenExpiring {
            owner: TokenOwner::Group(GroupRef {
                id: 9,
                path: "acme/platform".into(),
            }),
            token_id: 1,
            token_name: "regwarden-grp-20261124T100000Z".into(),
            expires_at: "2026-12-01".into(),
        };
        assert_eq!(
            action(&e, &all()),
            Action::Pass {
                bindings: vec!["grp".into()],
                force: Force::IfHolding { token_id: 1 }
            }
        );
    }

    #[test]
    fn a_group_deploy_token_reaches_its_group_binding() {
        let e = Event::DeployTokenExpiring {
            owner: TokenOwner::Group(GroupRef {
                id: 11,
                path: "acme/shared".into(),
            }),
            token_id: 4,
            token_name: "regwarden-shared-20261124T100000Z".into(),
            expires_at: "2026-12-01 00:00:00 UTC".into(),
        };
        assert_eq!(
            action(&e, &all()),
            Action::Pass {
                bindings: vec!["shared".into()],
                force: Force::IfHolding { token_id: 4 }
            }
        );
    }

    #[test]
    fn project_events_reach_the_bindings_of_the_project() {
        let renamed = Event::ProjectRenamed {
            project: project("acme/api2"),
            old_path: "acme/api".into(),
        };
        assert_eq!(
            action(&renamed, &all()),
            Action::Moved {
                bindings: vec!["api".into()],
                project_id: 7
            }
        );
        let created = Event::ProjectCreated {
            project: project("acme/web"),
        };
        assert_eq!(
            action(&created, &all()),
            Action::Pass {
                bindings: vec!["web".into()],
                force: Force::No
            }
        );
        let destroyed = Event::ProjectDestroyed {
            project: project("acme/web"),
        };
        assert_eq!(
            action(&destroyed, &all()),
            Action::Destroyed {
                project_id: 7,
                path: "acme/web".into()
            }
        );
        let elsewhere = Event::ProjectCreated {
            project: project("other/thing"),
        };
        assert!(matches!(action(&elsewhere, &all()), Action::Nothing(_)));
    }
}
