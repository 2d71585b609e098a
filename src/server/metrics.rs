//! `/metrics` in Prometheus text format. Labels carry event kinds, outcomes and binding names,
//! never a token, a token name or a fingerprint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::JobCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub event: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    pub binding: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub binding: String,
    pub kind: String,
    pub managed: String,
}

/// A metric without labels that is absent until set (a plain gauge would show 0).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoLabels {}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// `project` or `group`.
    pub kind: String,
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChecklistLabels {
    pub host: String,
    pub check: String,
}

pub struct Metrics {
    registry: Registry,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub verification_failures: Family<ReasonLabels, Counter>,
    pub jobs: Family<StatusLabels, Gauge>,
    pub rotations: Family<OutcomeLabels, Counter>,
    pub job_duration: Histogram,
    pub days_until_expiry: Family<BindingLabels, Gauge>,
    pub rule_failures: Counter,
    pub connections_refused: Counter,
    /// Days until regwarden's own GitLab API token expires (absent: no expiry, or not read yet;
    /// never 0 for a token that does not expire).
    pub api_token_days_until_expiry: Family<NoLabels, Gauge>,
    /// Looks at the API token that did something or failed, by outcome.
    pub api_token_events: Family<OutcomeLabels, Counter>,
    /// Seconds until the soonest expiry among the tokens of a binding, by kind and whether
    /// regwarden manages them (the timer's inventory).
    pub token_expiry: Family<TokenLabels, Gauge>,
    /// The self-managed GitLab checklist of the timer's last pass, per registry host and item:
    /// 1 when it holds (a warning holds), 0 when it does not.
    pub registry_checklist: Family<ChecklistLabels, Gauge>,
    /// Per project or group that needs regwarden's hook: 1 when GitLab has it and sends it
    /// deliveries, 0 when it could not be made, GitLab disabled it, or it has no secret
    /// regwarden verifies (with `server.public_url`).
    pub hooks: Family<HookLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("regwarden");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by event and outcome",
            deliveries.clone(),
        );
        let verification_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "webhook_verification_failures",
            "Webhook requests refused, by reason",
            verification_failures.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the queue by status", jobs.clone());
        let rotations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rotations",
            "Binding outcomes of passes run by the server",
            rotations.clone(),
        );
        let job_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "job_duration_seconds",
            "Time to run one job",
            job_duration.clone(),
        );
        let days_until_expiry = Family::<BindingLabels, Gauge>::default();
        registry.register(
            "token_days_until_expiry",
            "Days until the token Qovery holds expires, per binding",
            days_until_expiry.clone(),
        );
        let rule_failures = Counter::default();
        registry.register(
            "auto_bind_failures",
            "Expansions of an [[auto_bind]] rule that failed (its group missing, denied or unreachable)",
            rule_failures.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections answered 503 because server.max_connections were open",
            connections_refused.clone(),
        );
        let api_token_days_until_expiry = Family::<NoLabels, Gauge>::default();
        registry.register(
            "api_token_days_until_expiry",
            "Days until regwarden's own GitLab API token expires",
            api_token_days_until_expiry.clone(),
        );
        let api_token_events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "api_token_events",
            "Rotations of regwarden's own GitLab API token, and failures to keep it alive (lost, unknown, refused, ...)",
            api_token_events.clone(),
        );
        let token_expiry = Family::<TokenLabels, Gauge>::default();
        registry.register(
            "token_expiry_seconds",
            "Seconds until the soonest expiry among a binding's tokens of a kind, managed by regwarden or not",
            token_expiry.clone(),
        );
        let registry_checklist = Family::<ChecklistLabels, Gauge>::default();
        registry.register(
            "registry_checklist",
            "Whether each item of the self-managed GitLab checklist holds for the registry (1) or not (0), as of the timer's last pass",
            registry_checklist.clone(),
        );
        let hooks = Family::<HookLabels, Gauge>::default();
        registry.register(
            "gitlab_hook_ok",
            "Whether each project or group that needs regwarden's webhook has it, enabled and with a secret regwarden verifies (1) or not (0), as of the timer's last pass",
            hooks.clone(),
        );
        Self {
            registry,
            hooks,
            registry_checklist,
            token_expiry,
            api_token_days_until_expiry,
            api_token_events,
            rule_failures,
            connections_refused,
            deliveries,
            verification_failures,
            jobs,
            rotations,
            job_duration,
            days_until_expiry,
        }
    }
}

impl Metrics {
    /// The API token's days left, or no figure at all for a token that never expires.
    pub fn api_token_expiry(&self, days: Option<i64>) {
        match days {
            Some(days) => {
                self.api_token_days_until_expiry
                    .get_or_create(&NoLabels {})
                    .set(days);
            }
            None => self.api_token_days_until_expiry.clear(),
        }
    }

    /// The checklist of a pass replaces the last one's: a host or item no longer checked
    /// goes.
    pub fn observe_checklist(&self, checklist: &crate::checklist::Outcome) {
        self.registry_checklist.clear();
        let Some(host) = checklist.host() else {
            return;
        };
        for (check, holds) in checklist.by_check() {
            self.registry_checklist
                .get_or_create(&ChecklistLabels {
                    host: host.clone(),
                    check: check.as_str().to_string(),
                })
                .set(i64::from(holds));
        }
    }

    /// The hooks of a pass replace the last one's.
    pub fn observe_hooks(&self, outcomes: &[crate::hooks::Outcome]) {
        self.hooks.clear();
        for o in outcomes {
            self.hooks
                .get_or_create(&HookLabels {
                    kind: o.kind.as_str().into(),
                    path: o.path.clone(),
                })
                .set(i64::from(!o.failed()));
        }
    }

    pub fn delivery(&self, event: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                event: event.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn set_jobs(&self, counts: JobCounts) {
        for (status, n) in [
            ("queued", counts.queued),
            ("running", counts.running),
            ("dead", counts.dead),
        ] {
            self.jobs
                .get_or_create(&StatusLabels {
                    status: status.into(),
                })
                .set(n);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
