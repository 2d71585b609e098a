//! Project and group webhooks (`docs/reference/gitlab.md` §10): list, create, update and
//! delete, as `lib/api/project_hooks.rb`, `ee/lib/api/group_hooks.rb` and the entities
//! `API::Entities::{Hook,ProjectHook,GroupHook}` have them.
//!
//! - Project hooks take Maintainer (`admin_web_hook` from `admin_project`), GET included;
//!   group hooks take Owner (`admin_group`).
//! - On create, omitted flags take the `web_hooks` column defaults: `push_events` and
//!   `enable_ssl_verification` true, every other event false.
//! - Parameters a hook kind does not declare are dropped (`declared_params`): a group hook
//!   has no `resource_deploy_token_events`, a project hook no `project_events`.
//! - `token` and `signing_token` are write-only; the entity shows `token_present` and
//!   `signing_token_present` (GitLab 19.0+). As a GitLab before 19.0
//!   ([`super::FakeGitlab::hooks_as_before_gitlab_19`]): no such fields, and `signing_token`
//!   dropped without a word (an undeclared parameter).
//! - `confidential_note_events` has no column default: `null` until set. A PUT that changes `url` without `token` erases
//!   the secret token (`WebHooks::Hook#reset_token`); a PUT with no declared parameter is
//!   400 "No parameters provided".
//! - DELETE answers 204, and 404 for a hook that is not there.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::api::{Kind, MAINTAINER, OWNER, paginate};
use super::{App, Owner, bad_request, not_found};

/// The event flags every hook takes (`common_hook_parameters` / `group_hook_properties`).
const COMMON_EVENTS: &[&str] = &[
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "feature_flag_events",
    "releases_events",
    "emoji_events",
    "resource_access_token_events",
    "vulnerability_events",
];

/// Project hooks only: deploy-token expiry (18.10+); milestones (not in the stored group
/// hook parameters).
const PROJECT_ONLY_EVENTS: &[&str] = &["resource_deploy_token_events", "milestone_events"];

/// Group hooks only.
const GROUP_ONLY_EVENTS: &[&str] = &["project_events", "subgroup_events", "member_events"];

#[derive(Clone, Debug)]
pub struct Hook {
    pub id: u64,
    pub owner: Owner,
    pub url: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub token: Option<String>,
    pub signing_token: Option<String>,
    pub events: BTreeMap<String, bool>,
    pub enable_ssl_verification: bool,
    /// `executable`, `temporarily_disabled` or `disabled` (`WebHooks::AutoDisabling`).
    pub alert_status: String,
    pub disabled_until: Option<String>,
}

impl Hook {
    pub fn flag(&self, name: &str) -> bool {
        self.events.get(name).copied().unwrap_or(false)
    }

    /// The entity; `signing` is false for a GitLab before 19.0, whose entity has no
    /// `token_present` / `signing_token_present`.
    fn json(&self, signing: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "url": self.url,
            "name": self.name,
            "description": self.description,
            "created_at": "2026-11-01T07:57:25.123Z",
            "enable_ssl_verification": self.enable_ssl_verification,
            "alert_status": self.alert_status,
            "disabled_until": self.disabled_until,
            "push_events_branch_filter": null,
            "branch_filter_strategy": "wildcard",
            "custom_webhook_template": null,
            "repository_update_events": false,
        });
        if signing {
            v["token_present"] = json!(self.token.is_some());
            v["signing_token_present"] = json!(self.signing_token.is_some());
        }
        let (own, only) = match self.owner {
            Owner::Project(id) => (("project_id", id), PROJECT_ONLY_EVENTS),
            Owner::Group(id) => (("group_id", id), GROUP_ONLY_EVENTS),
            _ => unreachable!("hooks belong to projects and groups"),
        };
        v[own.0] = json!(own.1);
        for event in COMMON_EVENTS.iter().chain(only) {
            v[*event] = match self.events.get(*event) {
                Some(on) => json!(on),
                // The one column without a default (`confidential_note_events boolean`).
                None if *event == "confidential_note_events" => Value::Null,
                None => json!(false),
            };
        }
        v
    }
}

fn declared_events(kind: Kind) -> Vec<&'static str> {
    let only = match kind {
        Kind::Project => PROJECT_ONLY_EVENTS,
        Kind::Group => GROUP_ONLY_EVENTS,
    };
    COMMON_EVENTS.iter().chain(only).copied().collect()
}

/// The role a hook route asks: Maintainer of a project, Owner of a group.
fn min_role(kind: Kind) -> u8 {
    match kind {
        Kind::Project => MAINTAINER,
        Kind::Group => OWNER,
    }
}

pub(super) fn routes() -> Router<App> {
    let mut router = Router::new();
    for (prefix, kind) in [("projects", Kind::Project), ("groups", Kind::Group)] {
        let hooks = format!("/api/v4/{prefix}/{{id}}/hooks");
        router = router
            .route(
                &hooks,
                get(move |a, p, q, h| list(kind, a, p, q, h))
                    .post(move |a, p, h, b| create(kind, a, p, h, b)),
            )
            .route(
                &format!("{hooks}/{{hook_id}}"),
                get(move |a, p, h| show(kind, a, p, h))
                    .put(move |a, p, h, b| update(kind, a, p, h, b))
                    .delete(move |a, p, h| remove(kind, a, p, h)),
            );
    }
    router
}

async fn list(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner_at(kind, &id, &headers, min_role(kind)) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    let mut hooks: Vec<&Hook> = s.hooks.iter().filter(|h| h.owner == owner).collect();
    hooks.sort_by_key(|h| h.id);
    let signing = !s.hooks_before_19;
    paginate(
        hooks.into_iter().map(|h| h.json(signing)).collect(),
        &query,
        "/hooks",
    )
}

async fn show(
    kind: Kind,
    State(app): State<App>,
    Path((id, hook_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner_at(kind, &id, &headers, min_role(kind)) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    match s.hooks.iter().find(|h| h.owner == owner && h.id == hook_id) {
        Some(h) => Json(h.json(!s.hooks_before_19)).into_response(),
        None => not_found("404 Not found"),
    }
}

/// A `whsec_` value encoding 32 bytes, as the parameter's description asks.
fn valid_signing_token(s: &str) -> bool {
    use base64::Engine;
    s.strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|k| k.len() == 32)
}

/// Applies the declared parameters of `body` to `hook`; the number applied.
fn apply(kind: Kind, hook: &mut Hook, body: &Value, signing: bool) -> Result<usize, Response> {
    let mut applied = 0;
    let url_before = hook.url.clone();
    if let Some(url) = body.get("url").and_then(Value::as_str) {
        if reqwest::Url::parse(url).is_err() {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"message": "Invalid url given"})),
            )
                .into_response());
        }
        hook.url = url.to_string();
        applied += 1;
    }
    for (field, target) in [
        ("name", &mut hook.name),
        ("description", &mut hook.description),
    ] {
        if let Some(v) = body.get(field).and_then(Value::as_str) {
            *target = Some(v.to_string());
            applied += 1;
        }
    }
    for event in declared_events(kind) {
        if let Some(v) = body.get(event).and_then(Value::as_bool) {
            hook.events.insert(event.to_string(), v);
            applied += 1;
        }
    }
    if let Some(v) = body.get("enable_ssl_verification").and_then(Value::as_bool) {
        hook.enable_ssl_verification = v;
        applied += 1;
    }
    let token = body.get("token").and_then(Value::as_str);
    if let Some(t) = token {
        hook.token = (!t.is_empty()).then(|| t.to_string());
        applied += 1;
    } else if hook.url != url_before && !url_before.is_empty() {
        // `reset_token`: a new URL without a token in the same request loses the secret.
        hook.token = None;
    }
    // Before 19.0 the parameter is not declared: dropped without a word.
    if let Some(t) = body
        .get("signing_token")
        .and_then(Value::as_str)
        .filter(|_| signing)
    {
        if !valid_signing_token(t) {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"message": {"signing_token": ["must be a whsec_ value encoding 32 bytes"]}})),
            )
                .into_response());
        }
        hook.signing_token = Some(t.to_string());
        applied += 1;
    }
    Ok(applied)
}

async fn create(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner_at(kind, &id, &headers, min_role(kind)) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    if body.get("url").and_then(Value::as_str).is_none() {
        return bad_request("url is missing");
    }
    let mut hook = Hook {
        id: 0,
        owner,
        url: String::new(),
        name: None,
        description: None,
        token: None,
        signing_token: None,
        // The `web_hooks` column defaults.
        events: BTreeMap::from([("push_events".to_string(), true)]),
        enable_ssl_verification: true,
        alert_status: "executable".into(),
        disabled_until: None,
    };
    let signing = !s.hooks_before_19;
    if let Err(r) = apply(kind, &mut hook, &body, signing) {
        return r;
    }
    hook.id = s.new_hook_id();
    let json = hook.json(signing);
    s.hooks.push(hook);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn update(
    kind: Kind,
    State(app): State<App>,
    Path((id, hook_id)): Path<(String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner_at(kind, &id, &headers, min_role(kind)) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    let signing = !s.hooks_before_19;
    let Some(hook) = s
        .hooks
        .iter_mut()
        .find(|h| h.owner == owner && h.id == hook_id)
    else {
        return not_found("404 Not found");
    };
    let mut changed = hook.clone();
    match apply(kind, &mut changed, &body, signing) {
        Err(r) => r,
        Ok(0) => bad_request("No parameters provided"),
        Ok(_) => {
            // An update does not reset the failure state (only `enable!` after a 2xx does).
            *hook = changed;
            Json(hook.json(signing)).into_response()
        }
    }
}

async fn remove(
    kind: Kind,
    State(app): State<App>,
    Path((id, hook_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner_at(kind, &id, &headers, min_role(kind)) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    let before = s.hooks.len();
    s.hooks.retain(|h| !(h.owner == owner && h.id == hook_id));
    if s.hooks.len() == before {
        return not_found("404 Not found");
    }
    StatusCode::NO_CONTENT.into_response()
}
