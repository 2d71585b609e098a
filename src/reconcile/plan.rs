//! Desired versus observed state, as a pure function: what a binding needs now.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::config::{CredentialKind, Policy};
use crate::gitlab::Namespace;
use crate::marker::Marker;

/// "Keep Qovery registry `qovery_registry` supplied with a working credential for this GitLab
/// project or group."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    /// The deployment of regwarden that keeps this binding (`reconcile.instance`; empty for
    /// the default). It is part of every token name and marker, so that two deployments
    /// binding one project never take each other's tokens for their own.
    pub instance: String,
    pub namespace: Namespace,
    /// The repository the registry check pulls (and pushes, with `write_registry`), when the
    /// configuration names one; else the bound project's own path, as GitLab reports it when
    /// the token is made (it moves with a rename).
    pub repository: Option<String>,
    pub qovery_registry: String,
    pub policy: Policy,
    /// The bound project's id, when it is known without asking GitLab (an `[[auto_bind]]`
    /// listing, a numeric `project`).
    pub pinned: Option<u64>,
    /// Made by an `[[auto_bind]]` rule: its names come from templates over paths that move.
    pub from_rule: bool,
    /// Why nothing may be done for it, known before any call (two projects that map to one
    /// binding name or Qovery registry).
    pub blocked: Option<String>,
}

impl Binding {
    /// The name of a token of this binding made at `at`.
    pub fn token_name(&self, at: DateTime<Utc>) -> String {
        token_name(&self.name, &self.instance, at)
    }

    /// What every token name of this binding starts with: `regwarden-<binding>-`.
    pub fn token_prefix(&self) -> String {
        format!("regwarden-{}-", self.name)
    }

    /// When the token named `name` was made, if it is one of this binding's.
    pub fn made_at(&self, name: &str) -> Option<DateTime<Utc>> {
        created_at(&self.name, &self.instance, name)
    }

    /// What the check pulls, for messages: the configured repository, or the project's path.
    pub fn repository_label(&self) -> String {
        match (&self.repository, &self.namespace) {
            (Some(r), _) => r.clone(),
            (None, Namespace::Project(p)) if p.parse::<u64>().is_ok() => {
                format!("the path of project {p}")
            }
            (None, Namespace::Project(p)) => p.clone(),
            (None, Namespace::Group(g)) => format!("group {g}"),
        }
    }
}

const TIMESTAMP: &str = "%Y%m%dT%H%M%SZ";
/// The length of a [`TIMESTAMP`]: `20261124T210000Z`.
const TIMESTAMP_LEN: usize = 16;

/// `regwarden-<binding>-<UTC timestamp>`, then `-<instance>` for a named deployment: the only
/// tokens regwarden ever revokes.
pub fn token_name(binding: &str, instance: &str, at: DateTime<Utc>) -> String {
    let mut name = format!("regwarden-{binding}-{}", at.format(TIMESTAMP));
    if !instance.is_empty() {
        name.push('-');
        name.push_str(instance);
    }
    name
}

/// When the token named `name` was made, if it is one of `binding`'s in `instance`. The
/// timestamp has a fixed width, so whatever follows it is the instance, exactly.
pub fn created_at(binding: &str, instance: &str, name: &str) -> Option<DateTime<Utc>> {
    let rest = name
        .strip_prefix("regwarden-")?
        .strip_prefix(binding)?
        .strip_prefix('-')?;
    let stamp = rest.get(..TIMESTAMP_LEN)?;
    let suffix = &rest[TIMESTAMP_LEN..];
    let ours = if instance.is_empty() {
        suffix.is_empty()
    } else {
        suffix.strip_prefix('-') == Some(instance)
    };
    if !ours {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, TIMESTAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// When a binding is rotated although its token is not due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "when")]
pub enum Force {
    /// Only when due.
    #[default]
    No,
    /// Whatever the state (`--force`).
    Always,
    /// GitLab announced that this token expires: rotate while Qovery still holds it. Once a
    /// rotation replaced it, a second announcement (another hook, a redelivery) does nothing.
    IfHolding { token_id: u64 },
    /// The project moved at this time: rotate while the token Qovery holds was made (and so
    /// checked) before it.
    IfMadeBefore { at: DateTime<Utc> },
}

impl Force {
    /// Why `held` is rotated under this force, if it is.
    fn reason(self, held: &OwnedToken) -> Option<RotateReason> {
        match self {
            Force::No => None,
            Force::Always => Some(RotateReason::Forced),
            Force::IfHolding { token_id } => {
                (held.id == token_id).then_some(RotateReason::ExpiryAnnounced { token_id })
            }
            // Token names have a one-second grain: a token made within the second of `at`
            // counts as made after it.
            Force::IfMadeBefore { at } => {
                (held.created.timestamp() < at.timestamp()).then_some(RotateReason::ProjectMoved)
            }
        }
    }
}

/// A token of a binding, deploy token or access token alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnedToken {
    pub id: u64,
    pub name: String,
    pub created: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a binding looks like in GitLab and Qovery right now.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The binding's active regwarden tokens.
    pub tokens: Vec<OwnedToken>,
    /// The Qovery registry named by the binding, if it exists.
    pub registry: Option<crate::qovery::Registry>,
    /// This GitLab's registry: a registry regwarden takes over must point there.
    pub gitlab_registry: Option<reqwest::Url>,
    /// Why the registry's marker was not believed, when it was not (it names another token
    /// than the username Qovery holds): the registry is then taken over like one set up by
    /// hand, and no token is revoked on its word.
    pub distrusted: Option<String>,
}

impl Observed {
    /// Sets aside a marker of this binding that the username Qovery holds contradicts. Anyone
    /// with access to the Qovery organization can edit a description: a marker naming another
    /// of regwarden's tokens would have regwarden revoke the one Qovery really holds. The
    /// username cannot be edited without the password, so it has the last word: a deploy
    /// token's username carries its id (`gitlab+deploy-token-<id>`), an access token's is its
    /// name (regwarden sends it), a service account's is the account's.
    pub fn distrust_inconsistent_marker(&mut self, binding: &Binding) {
        let Some(registry) = &mut self.registry else {
            return;
        };
        let (Some(marker), Some(username)) = (&registry.marker, &registry.username) else {
            return;
        };
        if marker.instance != binding.instance || marker.binding != binding.name {
            return;
        }
        let held = self.tokens.iter().find(|t| t.id == marker.token_id);
        let consistent = match binding.policy.credential {
            CredentialKind::DeployToken => {
                *username == format!("gitlab+deploy-token-{}", marker.token_id)
            }
            CredentialKind::AccessToken => match held {
                Some(t) => t.name == *username,
                // The marker's token is gone: the username may still name another live one.
                None => !self.tokens.iter().any(|t| t.name == *username),
            },
            CredentialKind::ServiceAccount => binding
                .policy
                .service_account
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(username)),
        };
        if !consistent {
            self.distrusted = Some(format!(
                "the marker of Qovery registry {:?} names token {}, but Qovery holds username {username:?}: the marker was edited or is stale, so regwarden takes the registry over like one set up by hand and revokes nothing on its word",
                registry.name, marker.token_id
            ));
            registry.marker = None;
        }
    }

    pub fn marker(&self) -> Option<&Marker> {
        self.registry.as_ref().and_then(|r| r.marker.as_ref())
    }

    /// The token Qovery holds, when it is one of ours and still active.
    pub fn held(&self) -> Option<&OwnedToken> {
        let marker = self.marker()?;
        self.tokens.iter().find(|t| t.id == marker.token_id)
    }
}

/// Why a binding gets a new token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum RotateReason {
    RegistryMissing,
    /// The registry holds a credential regwarden did not make (set up by hand per Qovery's
    /// guide: a person's token, a deploy token): regwarden takes it over with a verified token
    /// of its own, and never revokes the one it replaces.
    TakeOver {
        /// The username Qovery held.
        username: Option<String>,
    },
    HeldTokenGone {
        token_id: u64,
    },
    Expiring {
        expires_at: DateTime<Utc>,
    },
    /// A GitLab webhook announced the held token's expiry.
    ExpiryAnnounced {
        token_id: u64,
    },
    /// The project was renamed or transferred after the held token was checked.
    ProjectMoved,
    /// The registry was kept by the unnamed default deployment (binding `binding`); this named
    /// one takes it over.
    Adopt {
        binding: String,
    },
    Forced,
}

impl fmt::Display for RotateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotateReason::RegistryMissing => write!(f, "the Qovery registry does not exist yet"),
            RotateReason::TakeOver { username } => write!(
                f,
                "the Qovery registry holds a credential regwarden did not create (username {}): regwarden takes it over, and never revokes that credential",
                crate::outbound::printable(username.as_deref().unwrap_or("unknown"))
            ),
            RotateReason::HeldTokenGone { token_id } => write!(
                f,
                "the token Qovery holds ({token_id}) is revoked, expired or gone"
            ),
            RotateReason::Expiring { expires_at } => write!(
                f,
                "the token Qovery holds expires at {}",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
            RotateReason::ExpiryAnnounced { token_id } => write!(
                f,
                "GitLab announced that the token Qovery holds ({token_id}) expires soon"
            ),
            RotateReason::Adopt { binding } => write!(
                f,
                "the Qovery registry was kept by the default regwarden instance (binding {binding:?}); this instance takes it over and leaves that deployment's tokens alone"
            ),
            RotateReason::ProjectMoved => write!(
                f,
                "the project moved after the token Qovery holds was checked"
            ),
            RotateReason::Forced => write!(f, "rotation was forced"),
        }
    }
}

/// Why a token is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// A previous token whose grace period after the switch is over.
    GraceOver,
    /// Made but never handed to Qovery (a rotation that stopped half-way).
    NeverSwitched,
}

impl fmt::Display for RevokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RevokeReason::GraceOver => "its grace period is over",
            RevokeReason::NeverSwitched => "Qovery never held it",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revoke {
    pub token: OwnedToken,
    pub reason: RevokeReason,
}

/// What a binding needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub rotate: Option<RotateReason>,
    pub revoke: Vec<Revoke>,
    /// Why nothing may be done, when something is in the way.
    pub blocked: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.rotate.is_none() && self.revoke.is_empty() && self.blocked.is_none()
    }
}

/// Decides what `binding` needs, given what is observed, at `now`.
pub fn plan(binding: &Binding, observed: &Observed, now: DateTime<Utc>, force: Force) -> Plan {
    let blocked = |why: String| Plan {
        blocked: Some(why),
        ..Plan::default()
    };
    if let Some(r) = &observed.registry
        && r.is_cluster_owned()
    {
        return blocked(format!(
            "Qovery registry {:?} belongs to a Qovery cluster; regwarden never changes those",
            r.name
        ));
    }
    let marker = observed.marker();
    let adopt = match (&observed.registry, &marker) {
        // A named deployment takes over a registry the unnamed default one kept (or one written
        // before deployments had names, by an earlier `ci rotate` say): it rotates to a token
        // of its own and leaves the previous deployment's tokens alone, and that deployment,
        // finding a named instance in the marker, leaves the registry to it. One way only, so
        // the two never take it back and forth.
        (Some(_), Some(m)) if m.instance != binding.instance && m.instance.is_empty() => {
            Some(RotateReason::Adopt {
                binding: m.binding.clone(),
            })
        }
        _ => None,
    };
    if let (Some(r), Some(m)) = (&observed.registry, &marker)
        && m.instance != binding.instance
        && adopt.is_none()
    {
        // Another named deployment keeps this registry: rotating here would take it over, and
        // that deployment would take it back on its next pass.
        return blocked(format!(
            "Qovery registry {:?} is kept by {} (binding {:?}); one registry is kept by one \
             deployment: bind another qovery_registry here, or remove the binding from one of them",
            r.name,
            instance_label(&m.instance),
            m.binding
        ));
    }
    // A registry regwarden did not write (no marker) or a default deployment's, taken over:
    // only when it points at this GitLab's registry, or regwarden would rewrite a registry of
    // another service with a GitLab credential.
    if let (Some(r), Some(ours)) = (&observed.registry, &observed.gitlab_registry)
        && (marker.is_none() || adopt.is_some())
        && !r.points_at(ours)
    {
        return blocked(format!(
            "Qovery registry {:?} points at {}, not at this GitLab's registry {}: regwarden does not take it over; bind another qovery_registry, or point that registry at {} first",
            r.name,
            r.url_label(),
            ours.as_str().trim_end_matches('/'),
            ours.as_str().trim_end_matches('/'),
        ));
    }
    let held = observed.held();
    let rotate = if adopt.is_some() {
        adopt
    } else if observed.registry.is_none() {
        Some(RotateReason::RegistryMissing)
    } else if let Some(marker) = observed.marker() {
        match held {
            None => Some(RotateReason::HeldTokenGone {
                token_id: marker.token_id,
            }),
            Some(t) => match t.expires_at {
                // An expiry so early that the subtraction leaves chrono's range is due.
                Some(e)
                    if e.checked_sub_signed(to_chrono(binding.policy.rotate_before.0))
                        .is_none_or(|due| due <= now) =>
                {
                    Some(RotateReason::Expiring { expires_at: e })
                }
                _ => force.reason(t),
            },
        }
    } else {
        Some(RotateReason::TakeOver {
            username: observed.registry.as_ref().and_then(|r| r.username.clone()),
        })
    };
    // A registry without a marker: nothing tells which token Qovery holds, so none goes
    // before the rotation retires them all with their grace period. (Without a registry,
    // Qovery holds none of them.)
    let revoke = match (&observed.registry, observed.marker()) {
        (Some(_), None) => Vec::new(),
        (_, marker) => revocations(binding, &observed.tokens, held, marker, now),
    };
    Plan {
        revoke,
        rotate,
        blocked: None,
    }
}

/// The tokens to revoke when `held` is the token Qovery holds and `marker` lists the ones it
/// held before: a retired token once its grace period is over, and at once any token Qovery
/// never held.
pub fn revocations(
    binding: &Binding,
    tokens: &[OwnedToken],
    held: Option<&OwnedToken>,
    marker: Option<&Marker>,
    now: DateTime<Utc>,
) -> Vec<Revoke> {
    let grace = to_chrono(binding.policy.grace_period.0);
    tokens
        .iter()
        .filter(|t| Some(t.id) != held.map(|h| h.id))
        .filter_map(|t| {
            let retired = marker
                .and_then(|m| m.retired_at(t.id))
                .map(|since| retired_since(since, held, grace, now));
            let reason = match retired {
                Some(since) if in_grace(since, grace, now) => return None,
                Some(_) => RevokeReason::GraceOver,
                None => RevokeReason::NeverSwitched,
            };
            Some(Revoke {
                token: t.clone(),
                reason,
            })
        })
        .collect()
}

/// When a token the marker lists as retired at `since` really stopped being held, as far as
/// its grace period goes. The marker is text anyone with Qovery access can edit: a time in the
/// future is capped at now, and at the held token's creation plus one grace period (a real
/// switch happens moments after its token is made), so an edited marker can at most double a
/// grace period, never keep a token for ever.
pub fn retired_since(
    since: DateTime<Utc>,
    held: Option<&OwnedToken>,
    grace: chrono::Duration,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let cap = held
        .and_then(|h| h.created.checked_add_signed(grace))
        .map_or(now, |c| c.min(now));
    since.min(cap)
}

/// How an instance is named in messages.
pub fn instance_label(instance: &str) -> String {
    if instance.is_empty() {
        "the default regwarden instance".into()
    } else {
        format!("regwarden instance {instance:?}")
    }
}

/// A configured duration as chrono's, held at chrono's maximum.
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// When the grace period of a token retired at `since` ends; `None` past chrono's range
/// (`since` is read from the Qovery description, which anyone with access can edit).
pub fn grace_end(since: DateTime<Utc>, grace: chrono::Duration) -> Option<DateTime<Utc>> {
    since.checked_add_signed(grace)
}

/// Whether a token retired at `since` is still in its grace period: one whose end is past
/// chrono's range is.
pub fn in_grace(since: DateTime<Utc>, grace: chrono::Duration, now: DateTime<Utc>) -> bool {
    grace_end(since, grace).is_none_or(|end| now < end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qovery::{Registry, RegistryKind};
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn binding() -> Binding {
        Binding {
            name: "api".into(),
            instance: String::new(),
            namespace: Namespace::Project("acme/api".into()),
            repository: None,
            qovery_registry: "gitlab-acme-api".into(),
            policy: Policy::default(), // 30d lifetime, rotate 7d before, 1h grace
            pinned: None,
            from_rule: false,
            blocked: None,
        }
    }

    fn token(id: u64, created: DateTime<Utc>) -> OwnedToken {
        OwnedToken {
            id,
            name: token_name("api", "", created),
            created,
            expires_at: Some(created + chrono::Duration::days(30)),
        }
    }

    fn registry(marker_token: Option<u64>) -> Registry {
        registry_retiring(marker_token, "")
    }

    /// A registry whose marker names `marker_token` and lists `retired` (`id@stamp,...`).
    fn registry_retiring(marker_token: Option<u64>, retired: &str) -> Registry {
        let retired = if retired.is_empty() {
            String::new()
        } else {
            format!(" retired={retired}")
        };
        described(marker_token.map_or(String::new(), |id| {
            format!(
                "regwarden: binding=api token_id={id} fingerprint=sha256:0 expires=never{retired}"
            )
        }))
    }

    /// A registry with this description (and the marker in it, if any).
    fn described(description: String) -> Registry {
        Registry {
            id: "r".into(),
            name: "gitlab-acme-api".into(),
            kind: RegistryKind::GitlabCr,
            url: None,
            username: None,
            marker: Marker::find(&description),
            description,
            cluster: None,
            services: Some(1),
        }
    }

    fn observed(tokens: Vec<OwnedToken>, registry: Option<Registry>) -> Observed {
        Observed {
            tokens,
            registry,
            ..Observed::default()
        }
    }

    #[test]
    fn token_names_carry_their_binding_and_creation_time() {
        let name = token_name("api", "", at(24, 21));
        assert_eq!(name, "regwarden-api-20261124T210000Z");
        assert_eq!(created_at("api", "", &name), Some(at(24, 21)));
        // Another binding's token, or someone else's, is not ours.
        assert_eq!(
            created_at("api", "", &token_name("api-v2", "", at(24, 21))),
            None
        );
        assert_eq!(created_at("api", "", "regwarden-api"), None);
        assert_eq!(created_at("api", "", "gitlab-deploy-token"), None);
    }

    #[test]
    fn token_names_tell_deployments_apart() {
        let ci = token_name("api", "ci", at(24, 21));
        assert_eq!(ci, "regwarden-api-20261124T210000Z-ci");
        assert_eq!(created_at("api", "ci", &ci), Some(at(24, 21)));
        // The default deployment and another named one do not take it for theirs, nor the
        // other way round.
        assert_eq!(created_at("api", "", &ci), None);
        assert_eq!(created_at("api", "c", &ci), None);
        assert_eq!(created_at("api", "ci-2", &ci), None);
        let default = token_name("api", "", at(24, 21));
        assert_eq!(created_at("api", "ci", &default), None);
        // A binding whose name looks like another's name plus a timestamp stays apart.
        assert_eq!(
            created_at(
                "api",
                "",
                &token_name("api-20261124T210000Z", "", at(24, 21))
            ),
            None
        );
    }

    #[test]
    fn a_registry_kept_by_another_deployment_is_left_to_it() {
        let t = token(1, at(20, 0));
        let r = described(
            "regwarden: binding=api token_id=1 fingerprint=sha256:0 expires=never instance=ci"
                .into(),
        );
        let p = plan(
            &binding(),
            &observed(vec![t], Some(r)),
            at(24, 0),
            Force::Always,
        );
        let why = p.blocked.expect("blocked");
        assert!(why.contains("regwarden instance \"ci\""), "{why}");
        assert!(p.rotate.is_none() && p.revoke.is_empty());
    }

    #[test]
    fn a_named_deployment_takes_over_what_the_default_one_kept_and_not_the_reverse() {
        let mut ci = binding();
        ci.instance = "ci".into();
        // The default deployment's token, and its marker (no instance).
        let theirs = token(1, at(20, 0));
        let obs = observed(vec![], Some(registry(Some(theirs.id))));
        let p = plan(&ci, &obs, at(24, 0), Force::No);
        assert_eq!(
            p.rotate,
            Some(RotateReason::Adopt {
                binding: "api".into()
            })
        );
        assert!(p.revoke.is_empty() && p.blocked.is_none(), "{p:?}");
        // Once the named deployment's marker is there, the default one leaves it alone.
        let r = described(
            "regwarden: binding=api token_id=7 fingerprint=sha256:0 expires=never instance=ci"
                .into(),
        );
        let back = plan(
            &binding(),
            &observed(vec![theirs], Some(r)),
            at(24, 0),
            Force::No,
        );
        assert!(back.blocked.is_some() && back.rotate.is_none() && back.revoke.is_empty());
    }

    #[test]
    fn an_announced_expiry_rotates_only_while_qovery_holds_that_token() {
        let held = token(2, at(24, 10));
        let obs = observed(vec![held], Some(registry(Some(2))));
        let announced = |token_id| Force::IfHolding { token_id };
        assert_eq!(
            plan(&binding(), &obs, at(24, 11), announced(2)).rotate,
            Some(RotateReason::ExpiryAnnounced { token_id: 2 })
        );
        // Another rotation already replaced token 1: its announcement is old news.
        assert_eq!(
            plan(&binding(), &obs, at(24, 11), announced(1)).rotate,
            None
        );
    }

    #[test]
    fn a_move_rotates_only_a_token_made_before_it() {
        let held = token(2, at(24, 10));
        let obs = observed(vec![held], Some(registry(Some(2))));
        let moved = |at| Force::IfMadeBefore { at };
        assert_eq!(
            plan(&binding(), &obs, at(24, 11), moved(at(24, 11))).rotate,
            Some(RotateReason::ProjectMoved)
        );
        assert_eq!(
            plan(&binding(), &obs, at(24, 11), moved(at(24, 10))).rotate,
            None,
            "made within the second of the move"
        );
        assert_eq!(
            plan(&binding(), &obs, at(24, 11), moved(at(24, 9))).rotate,
            None
        );
    }

    #[test]
    fn a_fresh_held_token_needs_nothing() {
        let t = token(1, at(20, 0));
        let p = plan(
            &binding(),
            &observed(vec![t], Some(registry(Some(1)))),
            at(24, 0),
            Force::No,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn a_token_expiring_within_rotate_before_is_rotated() {
        let t = token(1, at(1, 0)); // expires Dec 1
        let p = plan(
            &binding(),
            &observed(vec![t.clone()], Some(registry(Some(1)))),
            at(24, 1),
            Force::No,
        );
        assert_eq!(
            p.rotate,
            Some(RotateReason::Expiring {
                expires_at: t.expires_at.unwrap()
            })
        );
        assert!(
            p.revoke.is_empty(),
            "the held token is never revoked before its successor"
        );
    }

    #[test]
    fn times_at_the_ends_of_the_calendar_are_planned_not_overflowed() {
        let mut ancient = token(1, at(1, 0));
        ancient.expires_at = Some(DateTime::<Utc>::MIN_UTC);
        let p = plan(
            &binding(),
            &observed(vec![ancient], Some(registry(Some(1)))),
            at(24, 0),
            Force::No,
        );
        assert_eq!(
            p.rotate,
            Some(RotateReason::Expiring {
                expires_at: DateTime::<Utc>::MIN_UTC
            })
        );

        // A marker edited to retire a token at the end of its calendar is read as retired no
        // later than the held token's creation plus one grace period: no overflow, no token
        // kept for ever.
        let held = token(2, at(20, 0));
        let retired = token(1, at(1, 0));
        let registry = registry_retiring(Some(2), "1@99991231T235959Z");
        let marker = registry.marker.clone().unwrap();
        assert!(marker.retired_at(1).is_some(), "{marker:?}");
        let p = plan(
            &binding(),
            &observed(vec![held, retired], Some(registry)),
            at(24, 0),
            Force::No,
        );
        assert_eq!(p.revoke.len(), 1, "{p:?}");
        assert!(in_grace(
            DateTime::<Utc>::MAX_UTC,
            chrono::Duration::hours(1),
            at(24, 0)
        ));
    }

    #[test]
    fn a_missing_registry_a_missing_marker_and_a_dead_token_all_rotate() {
        let b = binding();
        let now = at(24, 0);
        assert_eq!(
            plan(&b, &observed(vec![], None), now, Force::No).rotate,
            Some(RotateReason::RegistryMissing)
        );
        assert_eq!(
            plan(&b, &observed(vec![], Some(registry(None))), now, Force::No).rotate,
            Some(RotateReason::TakeOver { username: None })
        );
        assert_eq!(
            plan(
                &b,
                &observed(vec![], Some(registry(Some(9)))),
                now,
                Force::No
            )
            .rotate,
            Some(RotateReason::HeldTokenGone { token_id: 9 })
        );
    }

    #[test]
    fn force_rotates_a_healthy_binding() {
        let t = token(1, at(20, 0));
        let p = plan(
            &binding(),
            &observed(vec![t], Some(registry(Some(1)))),
            at(24, 0),
            Force::Always,
        );
        assert_eq!(p.rotate, Some(RotateReason::Forced));
    }

    #[test]
    fn a_previous_token_is_kept_for_the_grace_period_then_revoked() {
        let old = token(1, at(20, 0));
        let new = token(2, at(24, 10));
        let obs = observed(
            vec![old.clone(), new],
            Some(registry_retiring(Some(2), "1@20261124T100000Z")),
        );

        let within = plan(
            &binding(),
            &obs,
            at(24, 10) + chrono::Duration::minutes(59),
            Force::No,
        );
        let after = plan(&binding(), &obs, at(24, 11), Force::No);

        assert!(within.revoke.is_empty(), "{within:?}");
        assert_eq!(
            after.revoke,
            vec![Revoke {
                token: old,
                reason: RevokeReason::GraceOver
            }]
        );
    }

    #[test]
    fn a_token_qovery_never_held_is_revoked_at_once() {
        let held = token(1, at(20, 0));
        let orphan = token(2, at(24, 10)); // made after the held one, never switched
        let p = plan(
            &binding(),
            &observed(vec![held, orphan.clone()], Some(registry(Some(1)))),
            at(24, 10),
            Force::No,
        );
        assert_eq!(
            p.revoke,
            vec![Revoke {
                token: orphan,
                reason: RevokeReason::NeverSwitched
            }]
        );
        assert!(p.rotate.is_none());
    }

    #[test]
    fn an_older_token_qovery_never_held_is_an_orphan_not_a_previous_token() {
        // A rotation died after creating token 2; a later one made token 3 and switched to it
        // from token 1. Token 2 is older than the held token, yet Qovery never held it.
        let first = token(1, at(20, 0));
        let orphan = token(2, at(24, 9));
        let held = token(3, at(24, 10));
        let obs = observed(
            vec![first, orphan.clone(), held],
            Some(registry_retiring(Some(3), "1@20261124T100000Z")),
        );
        let p = plan(&binding(), &obs, at(24, 10), Force::No);
        assert_eq!(
            p.revoke,
            vec![Revoke {
                token: orphan,
                reason: RevokeReason::NeverSwitched
            }]
        );
    }

    /// A registry whose marker names token `marker_token`, and which holds `username`.
    fn holding(marker_token: u64, username: &str) -> Registry {
        let mut r = registry(Some(marker_token));
        r.username = Some(username.into());
        r
    }

    #[test]
    fn a_marker_the_username_contradicts_is_set_aside_and_nothing_is_revoked_on_its_word() {
        // Qovery holds deploy token 1; someone edited the marker to name token 2, another of
        // this binding's tokens.
        let held = token(1, at(20, 0));
        let other = token(2, at(24, 10));
        let mut obs = observed(
            vec![held.clone(), other.clone()],
            Some(holding(2, "gitlab+deploy-token-1")),
        );
        obs.distrust_inconsistent_marker(&binding());
        assert!(
            obs.distrusted
                .as_deref()
                .unwrap()
                .contains("gitlab+deploy-token-1")
        );
        let p = plan(&binding(), &obs, at(24, 11), Force::No);
        assert_eq!(
            p.rotate,
            Some(RotateReason::TakeOver {
                username: Some("gitlab+deploy-token-1".into())
            })
        );
        assert!(
            p.revoke.is_empty(),
            "the token Qovery holds is not revoked: {p:?}"
        );

        // A marker that agrees with the username is believed.
        let mut fine = observed(vec![held], Some(holding(1, "gitlab+deploy-token-1")));
        fine.distrust_inconsistent_marker(&binding());
        assert!(fine.distrusted.is_none() && fine.marker().is_some());
    }

    #[test]
    fn an_access_token_marker_is_checked_against_the_token_name_qovery_holds() {
        let mut b = binding();
        b.policy.credential = CredentialKind::AccessToken;
        let held = token(1, at(20, 0));
        let other = token(2, at(24, 10));
        let mut obs = observed(
            vec![held.clone(), other.clone()],
            Some(holding(2, &held.name)),
        );
        obs.distrust_inconsistent_marker(&b);
        assert!(obs.distrusted.is_some());
        // The marker's token is gone, and the username names a live one: also set aside.
        let mut gone = observed(vec![held.clone()], Some(holding(9, &held.name)));
        gone.distrust_inconsistent_marker(&b);
        assert!(gone.distrusted.is_some());
        let mut ok = observed(vec![held.clone()], Some(holding(1, &held.name)));
        ok.distrust_inconsistent_marker(&b);
        assert!(ok.distrusted.is_none());
    }

    #[test]
    fn a_registry_that_is_not_this_gitlabs_is_never_taken_over() {
        let mut r = registry(None);
        r.kind = RegistryKind::GenericCr;
        r.url = Some("https://quay.io".into());
        let mut obs = observed(vec![], Some(r.clone()));
        obs.gitlab_registry =
            Some(reqwest::Url::parse("https://registry.example.com:5050").unwrap());
        let p = plan(&binding(), &obs, at(24, 0), Force::No);
        let why = p.blocked.expect("blocked");
        assert!(
            why.contains("https://quay.io") && why.contains("registry.example.com:5050"),
            "{why}"
        );
        assert!(p.rotate.is_none() && p.revoke.is_empty());
        // The same registry pointing at this GitLab's registry is taken over.
        r.url = Some("https://registry.example.com:5050".into());
        obs.registry = Some(r);
        assert!(matches!(
            plan(&binding(), &obs, at(24, 0), Force::No).rotate,
            Some(RotateReason::TakeOver { .. })
        ));
    }

    #[test]
    fn a_retired_time_in_the_future_buys_at_most_one_more_grace_period() {
        let held = token(2, at(20, 0));
        let retired = token(1, at(1, 0));
        let obs = observed(
            vec![held, retired.clone()],
            Some(registry_retiring(Some(2), "1@99991231T235959Z")),
        );
        // Within the held token's first hour (plus one grace period), kept; later, revoked.
        assert!(
            plan(&binding(), &obs, at(20, 1), Force::No)
                .revoke
                .is_empty()
        );
        assert_eq!(
            plan(&binding(), &obs, at(20, 3), Force::No).revoke,
            vec![Revoke {
                token: retired,
                reason: RevokeReason::GraceOver
            }]
        );
    }

    #[test]
    fn a_cluster_registry_blocks_everything() {
        let mut r = registry(None);
        r.cluster = Some("c".into());
        let p = plan(
            &binding(),
            &observed(vec![token(1, at(1, 0))], Some(r)),
            at(24, 0),
            Force::Always,
        );
        assert!(p.blocked.is_some());
        assert!(p.rotate.is_none() && p.revoke.is_empty());
    }
}
