//! The REST API's common ground (`docs/reference/gitlab.md` §8): which API token may act
//! where, offset pagination, the project and group a route's `:id` designates, the project
//! and group look-ups, and the calling token's own record (§4).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{
    AccessToken, App, GitlabState, Owner, Project, RegistryAccess, bad_request, not_found,
};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/api/v4/personal_access_tokens/self", get(token_self))
        .route("/api/v4/user", get(current_user))
        .route("/api/v4/projects/{id}", get(get_project))
        .route("/api/v4/groups/{id}", get(get_group))
        .route("/api/v4/groups/{id}/projects", get(group_projects))
}

/// Whether a route's `:id` is a project's or a group's.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Project,
    Group,
}

impl Kind {
    /// `project` or `group`, as GitLab's messages name a resource.
    pub(super) fn resource_type(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Group => "group",
        }
    }
}

/// Roles (`Gitlab::Access`): what an endpoint asks of its caller.
pub(super) const GUEST: u8 = 10;
pub(super) const MAINTAINER: u8 = 40;
pub(super) const OWNER: u8 = 50;

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401 Unauthorized"})),
    )
        .into_response()
}

pub(super) fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"message": "403 Forbidden"})),
    )
        .into_response()
}

/// What GitLab answers for a project or group that does not exist or that the caller cannot
/// see.
fn hidden(kind: Kind) -> Response {
    match kind {
        Kind::Project => not_found("404 Project Not Found"),
        Kind::Group => not_found("404 Group Not Found"),
    }
}

impl GitlabState {
    /// The owner a URL's `:id` designates, or the 404 GitLab answers.
    fn owner(&self, kind: Kind, id: &str) -> Result<Owner, Response> {
        match kind {
            Kind::Project => self.project(id).map(|p| Owner::Project(p.id)),
            Kind::Group => self.group(id).map(|g| Owner::Group(g.id)),
        }
        .ok_or_else(|| hidden(kind))
    }

    /// The calling token (`PRIVATE-TOKEN`): an active token, or 401; without the `api` scope,
    /// 403 (`lib/api/api_guard.rb`, "insufficient_scope").
    pub(super) fn caller(&self, headers: &HeaderMap) -> Result<AccessToken, Response> {
        let presented = headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = self
            .access_tokens
            .iter()
            .find(|t| t.token == presented && t.active())
            .cloned()
            .ok_or_else(unauthorized)?;
        if token.scopes.iter().any(|s| s == "api") {
            Ok(token)
        } else {
            Err((
                StatusCode::FORBIDDEN,
                Json(json!({"error": "insufficient_scope"})),
            )
                .into_response())
        }
    }

    /// The caller's role on a project or group: an administrator is Owner everywhere; a
    /// project or group access token's bot user has its token's role in its project or group
    /// (and, for a group, its subgroups and their projects); a service account has the role its
    /// memberships give it, inherited down the group tree.
    pub(super) fn role(&self, caller: &AccessToken, target: &Owner) -> u8 {
        let target_path = self.owner_path(target);
        match (&caller.owner, target) {
            (Owner::User, _) => OWNER,
            (Owner::Project(own), Owner::Project(t)) if own == t => caller.access_level,
            (own @ Owner::Group(_), _) => {
                let group = self.owner_path(own);
                let below = target_path == group || target_path.starts_with(&format!("{group}/"));
                if below && !group.is_empty() {
                    caller.access_level
                } else {
                    0
                }
            }
            (Owner::Account(user), Owner::Project(_)) => self.member_level(*user, &target_path),
            (Owner::Account(user), Owner::Group(_)) => {
                self.member_level(*user, &format!("{target_path}/"))
            }
            _ => 0,
        }
    }

    /// The owner a route's `:id` designates, once the API token may act there with at least
    /// `min` (Maintainer for the token endpoints): 404 for an unknown project or group or one
    /// the caller cannot see (GitLab hides what a user has no role in), 401 for a missing or
    /// inactive token, 403 for a lower role.
    pub(super) fn authorized_owner_at(
        &self,
        kind: Kind,
        id: &str,
        headers: &HeaderMap,
        min: u8,
    ) -> Result<(Owner, AccessToken), Response> {
        let caller = self.caller(headers)?;
        let owner = self.owner(kind, id)?;
        match self.role(&caller, &owner) {
            0 => Err(hidden(kind)),
            role if role < min => Err(forbidden()),
            _ => Ok((owner, caller)),
        }
    }

    /// [`Self::authorized_owner_at`] with Maintainer, what the token endpoints ask.
    pub(super) fn authorized_owner(
        &self,
        kind: Kind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<Owner, Response> {
        self.authorized_owner_at(kind, id, headers, MAINTAINER)
            .map(|(owner, _)| owner)
    }

    /// Instance-wide endpoints (instance service accounts, any user's tokens) take an
    /// administrator's token (`authenticated_as_admin!`): 403 for anyone else.
    pub(super) fn authorize_admin(&self, headers: &HeaderMap) -> Result<(), Response> {
        let caller = self.caller(headers)?;
        if caller.owner == Owner::User {
            Ok(())
        } else {
            Err(forbidden())
        }
    }
}

/// GitLab's offset pagination: `page`, `per_page` (default 20, max 100) and the `x-*` and
/// `Link` headers (reference §8).
pub(super) fn paginate(
    items: Vec<Value>,
    query: &HashMap<String, String>,
    url_path: &str,
) -> Response {
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut response = Json(slice).into_response();
    let h = response.headers_mut();
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let link = |p: usize, rel: &str| {
        format!("<http://gitlab.invalid{url_path}?page={p}&per_page={per_page}>; rel=\"{rel}\"")
    };
    let mut links = vec![link(1, "first"), link(pages, "last")];
    if page < pages {
        links.insert(0, link(page + 1, "next"));
    }
    if page > 1 {
        links.insert(0, link(page - 1, "prev"));
    }
    for (name, value) in [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
        ("link", links.join(", ")),
    ] {
        h.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
}

/// `API::Entities::Project` (`lib/api/entities/project.rb`): the image prefix is exposed for
/// every project whenever the instance registry is on; whether the project has a registry is
/// `container_registry_access_level` (and `container_registry_enabled`). `namespace` is
/// `NamespaceBasic`, whose `kind` is `group` or `user` (`app/models/namespace.rb#kind`).
fn project_json(s: &GitlabState, p: &Project) -> Value {
    let namespace_path = p.namespace_path();
    let mut project = json!({
        "id": p.id,
        "name": p.name,
        "path": p.name,
        "path_with_namespace": p.path,
        "container_registry_enabled": p.registry != RegistryAccess::Disabled,
        "container_registry_access_level": p.registry.as_str(),
        "namespace": {
            "id": p.namespace_id,
            "name": namespace_path.rsplit('/').next().unwrap_or(namespace_path),
            "path": namespace_path.rsplit('/').next().unwrap_or(namespace_path),
            "full_path": namespace_path,
            "kind": if p.in_user_namespace { "user" } else { "group" },
            "parent_id": s
                .group(namespace_path)
                .and_then(|g| g.path.rsplit_once('/').and_then(|(parent, _)| s.group(parent)))
                .map(|g| g.id),
        },
    });
    // `expose :container_registry_url, as: :container_registry_image_prefix, if: -> {
    // Gitlab.config.registry.enabled }`: `registry.host_port` and the project's full path,
    // lowercase (`Project#container_registry_url`, `full_path.downcase`).
    if let Some(host_port) = &s.registry_host_port {
        project["container_registry_image_prefix"] =
            json!(format!("{host_port}/{}", p.path.to_ascii_lowercase()));
    }
    project
}

/// `GET /projects/:id` (`lib/api/projects.rb`): a project the caller has a role in (an id, or a
/// path that may be an old one, redirected), else 404.
async fn get_project(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    match s.authorized_owner_at(Kind::Project, &id, &headers, GUEST) {
        Ok((Owner::Project(pid), _)) => {
            Json(project_json(&s, s.project_by_id(pid).unwrap())).into_response()
        }
        Ok(_) => unreachable!("a project route names a project"),
        Err(r) => r,
    }
}

/// `GET /groups/:id` (`lib/api/groups.rb`, `Entities::GroupDetail`): a group the caller has
/// a role in, by id or full path (no redirects), else 404.
async fn get_group(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let s = app.lock();
    match s.authorized_owner_at(Kind::Group, &id, &headers, GUEST) {
        Ok((Owner::Group(gid), _)) => {
            let g = s.group_by_id(gid).unwrap();
            let parent = g
                .path
                .rsplit_once('/')
                .and_then(|(parent, _)| s.group(parent))
                .map(|p| p.id);
            let name = g.path.rsplit('/').next().unwrap_or(&g.path);
            Json(json!({
                "id": g.id,
                "name": name,
                "path": name,
                "full_path": g.path,
                "full_name": g.path.replace('/', " / "),
                "parent_id": parent,
                "visibility": "private",
                "projects": [],
                "shared_projects": [],
            }))
            .into_response()
        }
        Ok(_) => unreachable!("a group route names a group"),
        Err(r) => r,
    }
}

/// `GET /groups/:id/projects` (`lib/api/groups.rb`, `GroupProjectsFinder`): the group's
/// projects (with `include_subgroups`, its subgroups' too) and, unless `with_shared=false`,
/// the projects of other namespaces shared into it (`with_shared` defaults to true). Ordered by
/// `order_by` (default `created_at`, which is id order) and `sort` (default `desc`), with `id`
/// as the tie-breaker (`order_options_with_tie_breaker`, `lib/api/helpers.rb`).
async fn group_projects(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let group = match s.authorized_owner_at(Kind::Group, &id, &headers, GUEST) {
        Ok((Owner::Group(gid), _)) => s.group_by_id(gid).unwrap().clone(),
        Ok(_) => unreachable!("a group route names a group"),
        Err(r) => return r,
    };
    let flag = |name: &str, default: bool| {
        query
            .get(name)
            .map(|v| v == "true" || v == "1")
            .unwrap_or(default)
    };
    let subgroups = flag("include_subgroups", false);
    let with_shared = flag("with_shared", true);
    let order_by = query
        .get("order_by")
        .map(String::as_str)
        .unwrap_or("created_at");
    let descending = query.get("sort").map(String::as_str).unwrap_or("desc") == "desc";
    let mut projects: Vec<&Project> = s
        .projects
        .iter()
        .filter(|p| {
            let ns = p.namespace_path();
            ns == group.path || (subgroups && ns.starts_with(&format!("{}/", group.path)))
        })
        .chain(
            s.shares
                .iter()
                .filter(|(_, g)| with_shared && *g == group.id)
                .filter_map(|(p, _)| s.project_by_id(*p)),
        )
        .collect();
    projects.dedup_by_key(|p| p.id);
    match order_by {
        "id" | "created_at" => projects.sort_by_key(|p| p.id),
        "path" | "name" => projects.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id))),
        other => return bad_request(&format!("order_by does not have a valid value: {other}")),
    }
    if descending {
        projects.reverse();
    }
    let items = projects.into_iter().map(|p| project_json(&s, p)).collect();
    let page = paginate(items, &query, &format!("/api/v4/groups/{id}/projects"));
    let first = query.get("page").is_none_or(|p| p == "1");
    let mut s = s;
    if first && let Some(action) = s.after_first_page.take() {
        action(&mut s);
    }
    page
}

/// `GET /api/v4/personal_access_tokens/self` (reference §4, §8): the calling token's record.
async fn token_self(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = app.lock();
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match s
        .access_tokens
        .iter()
        .find(|t| t.token == presented && t.active())
    {
        Some(t) => Json(t.json()).into_response(),
        None => unauthorized(),
    }
}

/// `GET /api/v4/user` (`lib/api/users.rb`, `Entities::UserPublic` < `Entities::User`, which
/// exposes `bot?` as `bot`; `is_admin` for administrators, `Entities::UserWithAdmin`). A
/// project or group access token's user is a bot named `project_<id>_bot_<suffix>` or
/// `group_<id>_bot_<suffix>` (`ResourceAccessTokens::CreateService`,
/// `username_prefix: "#{resource_type}_#{resource.id}_bot"`); a service account is a bot too
/// (`service_account` is in `HasUserType::BOT_USER_TYPES`).
async fn current_user(State(app): State<App>, headers: HeaderMap) -> Response {
    let s = app.lock();
    let presented = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(t) = s
        .access_tokens
        .iter()
        .find(|t| t.token == presented && t.active())
    else {
        return unauthorized();
    };
    let user_id = 1000 + t.id;
    let body = match &t.owner {
        Owner::User => json!({"id": 1, "username": "root", "bot": false, "is_admin": true}),
        Owner::Project(id) => json!({
            "id": user_id,
            "username": format!("project_{id}_bot_{:x}", t.id),
            "bot": true,
        }),
        Owner::Group(id) => json!({
            "id": user_id,
            "username": format!("group_{id}_bot_{:x}", t.id),
            "bot": true,
        }),
        Owner::Account(user) => {
            let username = s
                .service_accounts
                .iter()
                .find(|a| a.id == *user)
                .map(|a| a.username.clone())
                .unwrap_or_default();
            json!({"id": user, "username": username, "bot": true})
        }
    };
    Json(body).into_response()
}
