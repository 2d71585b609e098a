//! An inventory of the tokens that matter to the bindings: every active deploy token and
//! project or group access token of the bound projects and groups, the personal access tokens
//! of the service accounts they use, regwarden's own API token, and which one each Qovery
//! registry holds. `regwarden tokens` prints it; the server's timer keeps a gauge of it.
//! Never a secret: GitLab does not return them once made.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::CredentialKind;
use crate::gitlab::{Home, Namespace, start_of};
use crate::qovery::Registry;
use crate::reconcile::{Binding, Engine};

/// What kind of token an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    DeployToken,
    ProjectAccessToken,
    GroupAccessToken,
    ServiceAccountToken,
    /// regwarden's own GitLab API token.
    ApiToken,
    /// A credential Qovery holds that regwarden cannot list (a person's personal access token,
    /// say): only its username is known.
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeployToken => "deploy_token",
            Kind::ProjectAccessToken => "project_access_token",
            Kind::GroupAccessToken => "group_access_token",
            Kind::ServiceAccountToken => "service_account_token",
            Kind::ApiToken => "api_token",
            Kind::Unknown => "unknown",
        }
    }
}

/// One token.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The binding it was found for (empty for the API token).
    pub binding: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub name: String,
    /// The username the registry takes with it, when GitLab says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub scopes: Vec<String>,
    /// `None`: never, or unknown for `unknown`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Made by this deployment of regwarden for this binding (and so rotated by it).
    pub managed: bool,
    /// The Qovery registry that holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// A part of the inventory that could not be read.
#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    pub binding: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Inventory {
    pub tokens: Vec<Entry>,
    pub gaps: Vec<Gap>,
    /// Registries this deployment keeps for bindings the configuration no longer makes (only
    /// when the inventory covers them all).
    pub stranded: Vec<crate::reconcile::engine::Stranded>,
}

/// Reads the inventory of `bindings`, with the engine's clients, several bindings at a time.
/// `complete`: they are every binding the configuration makes, so a registry none of them
/// keeps is stranded.
pub async fn collect(engine: &Engine, bindings: &[Binding], complete: bool) -> Inventory {
    let mut inventory = Inventory::default();
    match engine.gitlab.current_token().await {
        Ok(info) => inventory.tokens.push(Entry {
            binding: String::new(),
            kind: Kind::ApiToken,
            id: None,
            expires_at: info.expires_on().map(start_of),
            name: info.name,
            username: None,
            scopes: info.scopes,
            managed: false,
            held_by: None,
        }),
        Err(e) => inventory.gaps.push(Gap {
            binding: String::new(),
            message: format!("cannot read regwarden's own API token: {e}"),
        }),
    }
    let registries = match engine.qovery.registries(&engine.organization).await {
        Ok(r) => r,
        Err(e) => {
            inventory.gaps.push(Gap {
                binding: String::new(),
                message: format!(
                    "cannot list Qovery registries: which token each holds is unknown: {e}"
                ),
            });
            Vec::new()
        }
    };
    // An auto-bound project that moved is found under the binding its registry names.
    let bindings = &crate::reconcile::bindings::block_collisions(
        crate::reconcile::bindings::follow_moves(bindings.to_vec(), &registries),
    );
    if complete {
        inventory.stranded =
            crate::reconcile::engine::stranded(bindings, &registries, &engine.settings.instance);
    }
    // One service account often serves many bindings: its tokens are listed once.
    let mut accounts: HashMap<(Home, String), AccountTokens> = HashMap::new();
    let mut homes: HashMap<String, Result<Home, String>> = HashMap::new();
    for b in bindings {
        if b.policy.credential != CredentialKind::ServiceAccount {
            continue;
        }
        let username = b.policy.service_account.clone().unwrap_or_default();
        let home = match engine
            .gitlab
            .account_home(b.policy.service_account_home, &b.namespace)
            .await
        {
            Ok(home) => home,
            Err(e) => {
                homes.insert(b.name.clone(), Err(e.to_string()));
                continue;
            }
        };
        homes.insert(b.name.clone(), Ok(home.clone()));
        if accounts.contains_key(&(home.clone(), username.clone())) {
            continue;
        }
        let listed = match engine.gitlab.service_account(&home, &username).await {
            Ok(Some(account)) => match engine.gitlab.account_tokens(&home, account.id, "").await {
                Ok(list) => AccountTokens::Listed(list),
                Err(e) => AccountTokens::Unreadable(e.to_string()),
            },
            Ok(None) => AccountTokens::Missing,
            Err(e) => AccountTokens::Unreadable(e.to_string()),
        };
        accounts.insert((home, username), listed);
    }
    let accounts = &accounts;
    let homes = &homes;
    let permits = tokio::sync::Semaphore::new(engine.settings.concurrency.max(1));
    let per_binding = futures_util::future::join_all(bindings.iter().map(|b| {
        let registry = registries
            .iter()
            .find(|r| r.name == b.qovery_registry)
            .cloned();
        let permits = &permits;
        async move {
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            of_binding(engine, b, registry, accounts, homes).await
        }
    }))
    .await;
    // Bindings of one namespace see the same tokens: each is listed once, under the first.
    let mut seen = HashSet::new();
    for (tokens, gaps) in per_binding {
        for t in tokens {
            if t.id.is_none() || seen.insert((t.kind, t.id)) {
                inventory.tokens.push(t);
            } else if t.held_by.is_some() || t.managed {
                // A later binding knows more about it: keep what it says.
                if let Some(first) = inventory
                    .tokens
                    .iter_mut()
                    .find(|e| e.kind == t.kind && e.id == t.id)
                {
                    // The binding that made it, or whose registry holds it, owns the entry.
                    if (t.managed && !first.managed) || t.held_by.is_some() {
                        first.binding = t.binding.clone();
                    }
                    first.managed |= t.managed;
                    if t.held_by.is_some() {
                        first.held_by = t.held_by.clone();
                    }
                }
            }
        }
        inventory.gaps.extend(gaps);
    }
    inventory
}

/// What listing a service account's tokens gave.
#[derive(Clone)]
enum AccountTokens {
    Listed(Vec<crate::gitlab::PersonalAccessToken>),
    /// The account does not exist (yet).
    Missing,
    /// Why they could not be listed.
    Unreadable(String),
}

async fn of_binding(
    engine: &Engine,
    b: &Binding,
    registry: Option<Registry>,
    accounts: &HashMap<(Home, String), AccountTokens>,
    homes: &HashMap<String, Result<Home, String>>,
) -> (Vec<Entry>, Vec<Gap>) {
    let mut tokens = Vec::new();
    let mut gaps = Vec::new();
    let gap = |what: &str, e: &dyn std::fmt::Display| Gap {
        binding: b.name.clone(),
        message: format!("cannot list {what}: {e}"),
    };
    let ours =
        |kind: CredentialKind, name: &str| b.policy.credential == kind && b.made_at(name).is_some();
    match engine.gitlab.deploy_tokens(&b.namespace, true).await {
        Ok(list) => tokens.extend(list.into_iter().map(|t| Entry {
            binding: b.name.clone(),
            kind: Kind::DeployToken,
            id: Some(t.id),
            managed: ours(CredentialKind::DeployToken, &t.name),
            name: t.name,
            username: Some(t.username),
            scopes: t.scopes,
            expires_at: t.expires_at,
            held_by: None,
        })),
        Err(e) => gaps.push(gap("deploy tokens", &e)),
    }
    let access_kind = match b.namespace {
        Namespace::Project(_) => Kind::ProjectAccessToken,
        Namespace::Group(_) => Kind::GroupAccessToken,
    };
    match engine.gitlab.access_tokens(&b.namespace, true).await {
        Ok(list) => tokens.extend(list.into_iter().map(|t| Entry {
            binding: b.name.clone(),
            kind: access_kind,
            id: Some(t.id),
            managed: ours(CredentialKind::AccessToken, &t.name),
            name: t.name,
            username: None,
            scopes: t.scopes,
            expires_at: t.expires_at.map(start_of),
            held_by: None,
        })),
        // Project and group access tokens need Premium on GitLab.com: not a failure.
        Err(e) if b.policy.credential != CredentialKind::AccessToken => {
            tracing::debug!(binding = %b.name, error = %e, "no access tokens listed");
        }
        Err(e) => gaps.push(gap("access tokens", &e)),
    }
    if b.policy.credential == CredentialKind::ServiceAccount {
        let username = b.policy.service_account.clone().unwrap_or_default();
        let (home, listed) = match homes.get(&b.name) {
            Some(Ok(home)) => (
                home.clone(),
                accounts
                    .get(&(home.clone(), username.clone()))
                    .cloned()
                    .unwrap_or(AccountTokens::Missing),
            ),
            Some(Err(e)) => (Home::Instance, AccountTokens::Unreadable(e.clone())),
            None => (Home::Instance, AccountTokens::Missing),
        };
        match listed {
            AccountTokens::Listed(list) => tokens.extend(list.into_iter().map(|t| Entry {
                binding: b.name.clone(),
                kind: Kind::ServiceAccountToken,
                id: Some(t.id),
                managed: ours(CredentialKind::ServiceAccount, &t.name),
                name: t.name,
                username: Some(username.clone()),
                scopes: t.scopes,
                expires_at: t.expires_at.map(start_of),
                held_by: None,
            })),
            AccountTokens::Missing => gaps.push(Gap {
                binding: b.name.clone(),
                message: format!("service account {username:?} does not exist in {home} yet"),
            }),
            AccountTokens::Unreadable(e) => gaps.push(gap(
                &format!("the tokens of service account {username:?}"),
                &e,
            )),
        }
    }
    if let Some(r) = registry {
        mark_held(&mut tokens, b, &r);
    }
    (tokens, gaps)
}

/// Marks the token registry `r` holds: the one its marker names, for this binding and
/// deployment; else, for a registry set up by hand, the deploy token whose username it holds;
/// else an `unknown` entry with the username.
fn mark_held(tokens: &mut Vec<Entry>, b: &Binding, r: &Registry) {
    let kind_of_binding = match b.policy.credential {
        CredentialKind::DeployToken => Kind::DeployToken,
        CredentialKind::AccessToken => match b.namespace {
            Namespace::Project(_) => Kind::ProjectAccessToken,
            Namespace::Group(_) => Kind::GroupAccessToken,
        },
        CredentialKind::ServiceAccount => Kind::ServiceAccountToken,
    };
    let held = match &r.marker {
        Some(m) if m.binding == b.name && m.instance == b.instance => {
            let found = tokens
                .iter()
                .position(|t| t.kind == kind_of_binding && t.id == Some(m.token_id));
            if found.is_none() {
                // The marker names a token that is no longer active: the next pass rotates.
                tokens.push(Entry {
                    binding: b.name.clone(),
                    kind: kind_of_binding,
                    id: Some(m.token_id),
                    name: "(revoked, expired or gone)".into(),
                    username: r.username.clone(),
                    scopes: Vec::new(),
                    expires_at: m.expires.map(start_of),
                    managed: true,
                    held_by: None,
                });
            }
            let at = found.unwrap_or(tokens.len() - 1);
            tokens.get_mut(at)
        }
        _ => tokens.iter_mut().find(|t| {
            t.kind == Kind::DeployToken && t.username.is_some() && t.username == r.username
        }),
    };
    match held {
        Some(t) => t.held_by = Some(r.name.clone()),
        None => tokens.push(Entry {
            binding: b.name.clone(),
            kind: Kind::Unknown,
            id: None,
            name: "a credential regwarden cannot list".into(),
            username: r.username.clone(),
            scopes: Vec::new(),
            expires_at: None,
            managed: false,
            held_by: Some(r.name.clone()),
        }),
    }
}
