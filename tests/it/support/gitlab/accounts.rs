//! Service accounts, their personal access tokens, and memberships
//! (`docs/reference/gitlab.md`, "Personal access tokens, service accounts and rotation" §1 and
//! §3): group, project and instance service accounts; their tokens listed (filters `state`
//! and `expires_before`), created, deleted and rotated (rotate revokes at once; rotating a
//! revoked token revokes its whole family); members of projects and groups, inherited down
//! the group tree. A service account's token reaches a registry only through its role
//! (`realm.rs`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{Duration as Days, NaiveDate, Utc};
use serde_json::{Value, json};

use super::api::{GUEST, Kind, MAINTAINER, OWNER, paginate};
use super::{AccessToken, App, FakeGitlab, GitlabState, Owner, bad_request, not_found};

/// Where a service account lives: a group or project by id, or the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountHome {
    Group(u64),
    Project(u64),
    Instance,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: u64,
    pub username: String,
    pub home: AccountHome,
}

impl ServiceAccount {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "name": self.username,
            "email": format!("{}@noreply.gitlab.example.com", self.username),
        })
    }
}

/// A direct membership of a user in a project or group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_id: u64,
    /// `Owner::Project` or `Owner::Group`.
    pub source: Owner,
    pub access_level: u8,
}

impl GitlabState {
    /// The highest role user `user` has on the project that holds repository `path`, directly
    /// or through one of its groups (0: none).
    pub(super) fn member_level(&self, user: u64, path: &str) -> u8 {
        self.members
            .iter()
            .filter(|m| m.user_id == user)
            .filter(|m| {
                let source = self.owner_path(&m.source);
                match &m.source {
                    _ if source.is_empty() => false,
                    Owner::Project(_) => path == source || path.starts_with(&format!("{source}/")),
                    Owner::Group(_) => path.starts_with(&format!("{source}/")),
                    _ => false,
                }
            })
            .map(|m| m.access_level)
            .max()
            .unwrap_or(0)
    }

    /// A service account of `home` by id, or GitLab's 404.
    fn account(&self, home: &AccountHome, user: u64) -> Result<ServiceAccount, Response> {
        self.service_accounts
            .iter()
            .find(|a| a.id == user && a.home == *home)
            .cloned()
            .ok_or_else(|| not_found("404 User Not Found"))
    }
}

/// The JSON of a personal access token (`user_id` is its account's).
fn pat_json(t: &AccessToken) -> Value {
    let Owner::Account(user) = t.owner else {
        return t.json();
    };
    json!({
        "id": t.id,
        "name": t.name,
        "revoked": t.revoked,
        "created_at": "2026-01-01T00:00:00.000Z",
        "description": null,
        "scopes": t.scopes,
        "user_id": user,
        "last_used_at": null,
        "active": t.active(),
        "expires_at": t.expires_at.map(|d| d.format("%Y-%m-%d").to_string()),
    })
}

pub(super) fn routes() -> Router<App> {
    let mut router = Router::new();
    for (prefix, kind) in [("projects", Kind::Project), ("groups", Kind::Group)] {
        let accounts = format!("/api/v4/{prefix}/{{id}}/service_accounts");
        let tokens = format!("{accounts}/{{user_id}}/personal_access_tokens");
        let members = format!("/api/v4/{prefix}/{{id}}/members");
        router = router
            .route(
                &accounts,
                get(move |a, p, q, h| list_accounts(kind, a, p, q, h))
                    .post(move |a, p, h, b| create_account(kind, a, p, h, b)),
            )
            .route(
                &tokens,
                get(move |a, p, q, h| list_tokens(kind, a, p, q, h))
                    .post(move |a, p, h, b| create_token(kind, a, p, h, b)),
            )
            .route(
                &format!("{tokens}/{{token_id}}"),
                delete(move |a, p, h| delete_token(kind, a, p, h)),
            )
            .route(
                &format!("{tokens}/{{token_id}}/rotate"),
                post(move |a, p, h, b| rotate_token(kind, a, p, h, b)),
            )
            .route(
                &members,
                post(move |a, p, h, b| add_member(kind, a, p, h, b)),
            )
            .route(
                &format!("{members}/all/{{user_id}}"),
                get(move |a, p, h| get_member(kind, a, p, h)),
            )
            .route(
                &format!("{members}/{{user_id}}"),
                put(move |a, p, h, b| edit_member(kind, a, p, h, b)),
            );
    }
    router
        .route(
            "/api/v4/service_accounts",
            get(list_instance_accounts).post(create_instance_account),
        )
        .route(
            "/api/v4/users/{user_id}/personal_access_tokens",
            post(create_instance_token),
        )
        .route(
            "/api/v4/personal_access_tokens/self/rotate",
            post(rotate_self),
        )
        .route(
            "/api/v4/projects/{id}/access_tokens/self/rotate",
            post(move |a, p, h, b| rotate_self_resource(Kind::Project, a, p, h, b)),
        )
        .route(
            "/api/v4/groups/{id}/access_tokens/self/rotate",
            post(move |a, p, h, b| rotate_self_resource(Kind::Group, a, p, h, b)),
        )
        .route("/api/v4/personal_access_tokens", get(list_instance_tokens))
        .route(
            "/api/v4/personal_access_tokens/{token_id}",
            delete(delete_instance_token),
        )
}

/// The home a route's `:id` names, once the API token may act there: a group's service
/// accounts take the Owner role (`admin_service_accounts`, `ee/app/policies/ee/group_policy.rb`),
/// a project's the Maintainer role.
fn home_of(
    s: &GitlabState,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
) -> Result<AccountHome, Response> {
    let min = match kind {
        Kind::Group => OWNER,
        Kind::Project => MAINTAINER,
    };
    Ok(match s.authorized_owner_at(kind, id, headers, min)?.0 {
        Owner::Project(p) => AccountHome::Project(p),
        Owner::Group(g) => AccountHome::Group(g),
        _ => unreachable!("a route's :id is a project or a group"),
    })
}

/// Instance endpoints are for administrators: the fake's API tokens owned by a user are.
fn instance(s: &GitlabState, headers: &HeaderMap) -> Result<AccountHome, Response> {
    s.authorize_admin(headers)?;
    Ok(AccountHome::Instance)
}

async fn list_accounts(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    match home_of(&s, kind, &id, &headers) {
        Ok(home) => accounts_page(&s, &home, &query),
        Err(r) => r,
    }
}

async fn list_instance_accounts(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    match instance(&s, &headers) {
        Ok(home) => accounts_page(&s, &home, &query),
        Err(r) => r,
    }
}

fn accounts_page(s: &GitlabState, home: &AccountHome, query: &HashMap<String, String>) -> Response {
    let items = s
        .service_accounts
        .iter()
        .filter(|a| a.home == *home)
        .map(ServiceAccount::json)
        .collect();
    paginate(items, query, "/service_accounts")
}

async fn create_account(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let home = match home_of(&s, kind, &id, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    // "This endpoint only works on top-level groups."
    if let AccountHome::Group(g) = &home
        && s.owner_path(&Owner::Group(*g)).contains('/')
    {
        return bad_request("Service accounts can only be created for top-level groups");
    }
    new_account(&mut s, home, &body)
}

async fn create_instance_account(
    State(app): State<App>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    match instance(&s, &headers) {
        Ok(home) => new_account(&mut s, home, &body),
        Err(r) => r,
    }
}

fn new_account(s: &mut GitlabState, home: AccountHome, body: &Value) -> Response {
    let id = s.new_user_id();
    let username = body
        .get("username")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("service_account_{id}"));
    if s.service_accounts.iter().any(|a| a.username == username) {
        return bad_request("Username has already been taken");
    }
    let account = ServiceAccount { id, username, home };
    let json = account.json();
    s.service_accounts.push(account);
    (StatusCode::CREATED, Json(json)).into_response()
}

/// `state` (`active`/`inactive`), `expires_before` (a date) and `search` (in the name)
/// filter the list, as the personal access tokens API does.
fn tokens_page(
    s: &GitlabState,
    user: u64,
    query: &HashMap<String, String>,
    url_path: &str,
) -> Response {
    let before = query
        .get("expires_before")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let items = s
        .access_tokens
        .iter()
        .filter(|t| t.owner == Owner::Account(user))
        .filter(|t| match query.get("state").map(String::as_str) {
            Some("active") => t.active(),
            Some("inactive") => !t.active(),
            _ => true,
        })
        .filter(|t| before.is_none_or(|b| t.expires_at.is_some_and(|e| e < b)))
        // `search`: the token's name contains it.
        .filter(|t| {
            query
                .get("search")
                .is_none_or(|q| t.name.contains(q.as_str()))
        })
        .map(pat_json)
        .collect();
    paginate(items, query, url_path)
}

async fn list_tokens(
    kind: Kind,
    State(app): State<App>,
    Path((id, user)): Path<(String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let home = match home_of(&s, kind, &id, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    if let Err(r) = s.account(&home, user) {
        return r;
    }
    tokens_page(&s, user, &query, "/personal_access_tokens")
}

async fn list_instance_tokens(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    if let Err(r) = s.authorize_admin(&headers) {
        return r;
    }
    let Some(user) = query.get("user_id").and_then(|u| u.parse().ok()) else {
        return bad_request("user_id is missing");
    };
    tokens_page(&s, user, &query, "/personal_access_tokens")
}

async fn create_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, user)): Path<(String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let home = match home_of(&s, kind, &id, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    if let Err(r) = s.account(&home, user) {
        return r;
    }
    new_token(&mut s, user, &body)
}

async fn create_instance_token(
    State(app): State<App>,
    Path(user): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    if let Err(r) = s.authorize_admin(&headers) {
        return r;
    }
    if let Err(r) = s.account(&AccountHome::Instance, user) {
        return r;
    }
    new_token(&mut s, user, &body)
}

const PAT_SCOPES: &[&str] = &[
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "self_rotate",
];

fn new_token(s: &mut GitlabState, user: u64, body: &Value) -> Response {
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("name is missing");
    };
    let scopes: Option<Vec<String>> = body.get("scopes").and_then(Value::as_array).and_then(|a| {
        a.iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
    });
    let Some(scopes) = scopes.filter(|s| !s.is_empty()) else {
        return bad_request("scopes is missing");
    };
    if scopes.iter().any(|s| !PAT_SCOPES.contains(&s.as_str())) {
        return bad_request("scopes does not have a valid value");
    }
    let expires_at = match body.get("expires_at").and_then(Value::as_str) {
        // The default is the longest lifetime allowed.
        None => s.today() + Days::days(s.max_lifetime_days),
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) if d > Utc::now().date_naive() => d,
            _ => return bad_request("expires_at is invalid"),
        },
    };
    if let Err(r) = s.check_lifetime(expires_at) {
        return r;
    }
    let (token_id, secret) = s.new_pat_secret();
    let token = AccessToken {
        id: token_id,
        name,
        token: secret.clone(),
        scopes,
        owner: Owner::Account(user),
        expires_at: Some(expires_at),
        revoked: false,
        access_level: 0,
        rotated_to: None,
        bot_deletion_pending: false,
    };
    let mut json = pat_json(&token);
    json["token"] = Value::String(secret);
    s.access_tokens.push(token);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn delete_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, user, token_id)): Path<(String, u64, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let home = match home_of(&s, kind, &id, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    if let Err(r) = s.account(&home, user) {
        return r;
    }
    revoke(&mut s, user, token_id)
}

async fn delete_instance_token(
    State(app): State<App>,
    Path(token_id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    if let Err(r) = s.authorize_admin(&headers) {
        return r;
    }
    let Some(user) = s.access_tokens.iter().find_map(|t| match t.owner {
        Owner::Account(u) if t.id == token_id => Some(u),
        _ => None,
    }) else {
        return not_found("404 Not found");
    };
    revoke(&mut s, user, token_id)
}

/// Deleting a service account's personal access token (`PersonalAccessTokens::RevokeService`):
/// a revoked token is still found, and revoking it again succeeds (204).
fn revoke(s: &mut GitlabState, user: u64, token_id: u64) -> Response {
    match s
        .access_tokens
        .iter_mut()
        .find(|t| t.id == token_id && t.owner == Owner::Account(user))
    {
        Some(t) => {
            t.revoked = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("404 Not found"),
    }
}

/// Rotate revokes the token at once and returns its successor (same name and scopes, one
/// week unless `expires_at` says otherwise). Rotating a revoked token is reuse: every token
/// of its family is revoked.
async fn rotate_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, user, token_id)): Path<(String, u64, u64)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut s = app.lock();
    let home = match home_of(&s, kind, &id, &headers) {
        Ok(h) => h,
        Err(r) => return r,
    };
    if let Err(r) = s.account(&home, user) {
        return r;
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    s.rotate_family(token_id, Owner::Account(user), &body)
}

impl GitlabState {
    /// GitLab's rotate with reuse detection, for any token of `owner`.
    pub(super) fn rotate_family(&mut self, token_id: u64, owner: Owner, body: &Value) -> Response {
        // Without `expires_at`, one week (`PersonalAccessTokens::RotateService`).
        let expires_at = match body.get("expires_at").and_then(Value::as_str) {
            None => Utc::now().date_naive() + Days::days(7),
            Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(d) => d,
                Err(_) => return bad_request("expires_at is invalid"),
            },
        };
        if let Err(r) = self.check_lifetime(expires_at) {
            return r;
        }
        let Some(old) = self
            .access_tokens
            .iter()
            .find(|t| t.id == token_id && t.owner == owner)
            .cloned()
        else {
            return not_found("404 Not found");
        };
        if old.revoked {
            let mut next = old.rotated_to;
            while let Some(successor) = next {
                let t = self
                    .access_tokens
                    .iter_mut()
                    .find(|t| t.id == successor)
                    .unwrap();
                t.revoked = true;
                next = t.rotated_to;
            }
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "401 Unauthorized"})),
            )
                .into_response();
        }
        let (new_id, secret) = self.new_pat_secret();
        let successor = AccessToken {
            id: new_id,
            token: secret.clone(),
            expires_at: Some(expires_at),
            revoked: false,
            rotated_to: None,
            bot_deletion_pending: false,
            ..old.clone()
        };
        let t = self
            .access_tokens
            .iter_mut()
            .find(|t| t.id == token_id)
            .unwrap();
        t.revoked = true;
        t.rotated_to = Some(new_id);
        let mut json = pat_json(&successor);
        json["token"] = Value::String(secret);
        if self.rotate_answers_datetime {
            json["expires_at"] = json!(format!("{}T00:00:00.000Z", expires_at.format("%Y-%m-%d")));
        }
        self.access_tokens.push(successor);
        Json(json).into_response()
    }
}

/// The token a request presents, if it names one, whatever its state.
fn presented(s: &GitlabState, headers: &HeaderMap) -> Option<AccessToken> {
    let value = headers.get("private-token")?.to_str().ok()?;
    s.access_tokens.iter().find(|t| t.token == value).cloned()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401 Unauthorized"})),
    )
        .into_response()
}

/// Self-rotation: the token rotates itself (`api` or `self_rotate`). A revoked token that
/// tries is reuse: its family is revoked.
fn rotate_presented(s: &mut GitlabState, token: AccessToken, body: &Value) -> Response {
    if token.revoked {
        return s.rotate_family(token.id, token.owner, body);
    }
    if !token.active() {
        return unauthorized();
    }
    if !token
        .scopes
        .iter()
        .any(|x| x == "api" || x == "self_rotate")
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden - Insufficient scope"})),
        )
            .into_response();
    }
    s.rotate_family(token.id, token.owner, body)
}

/// `POST /personal_access_tokens/self/rotate` (`lib/api/personal_access_tokens/self_rotation.rb`):
/// any row of `personal_access_tokens` rotates itself, a project or group access token's
/// included (405 only for other kinds of token, which the fake does not have).
async fn rotate_self(
    State(app): State<App>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut s = app.lock();
    let Some(token) = presented(&s, &headers) else {
        return unauthorized();
    };
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    rotate_presented(&mut s, token, &body)
}

/// `POST /<projects|groups>/:id/access_tokens/self/rotate`
/// (`lib/api/resource_access_tokens/self_rotation.rb`): 405 unless the caller is a bot
/// (`not_allowed! unless current_user.project_bot?`), 401 when the token is not an access token
/// of that project or group (`unauthorized! unless token`).
async fn rotate_self_resource(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut s = app.lock();
    let Some(token) = presented(&s, &headers) else {
        return unauthorized();
    };
    if !token.is_bot() {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({"message": "405 Method Not Allowed"})),
        )
            .into_response();
    }
    let owner = match kind {
        Kind::Project => s.project(&id).map(|p| Owner::Project(p.id)),
        Kind::Group => s.group(&id).map(|g| Owner::Group(g.id)),
    };
    if owner.as_ref() != Some(&token.owner) {
        return unauthorized();
    }
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    rotate_presented(&mut s, token, &body)
}

fn member_json(user: u64, level: u8) -> Value {
    json!({"id": user, "username": format!("user_{user}"), "access_level": level, "state": "active"})
}

async fn get_member(
    kind: Kind,
    State(app): State<App>,
    Path((id, user)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let source = match s.authorized_owner_at(kind, &id, &headers, GUEST) {
        Ok((o, _)) => o,
        Err(r) => return r,
    };
    // `members/all` counts memberships inherited from the groups above.
    let path = match &source {
        Owner::Project(_) => s.owner_path(&source),
        Owner::Group(_) => format!("{}/", s.owner_path(&source)),
        _ => unreachable!(),
    };
    let direct = s
        .members
        .iter()
        .filter(|m| m.user_id == user && m.source == source)
        .map(|m| m.access_level)
        .max()
        .unwrap_or(0);
    match s.member_level(user, &path).max(direct) {
        0 => not_found("404 Not found"),
        level => Json(member_json(user, level)).into_response(),
    }
}

async fn add_member(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let source = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (Some(user), Some(level)) = (
        body.get("user_id").and_then(Value::as_u64),
        body.get("access_level").and_then(Value::as_u64),
    ) else {
        return bad_request("user_id, access_level are missing");
    };
    if !s.service_accounts.iter().any(|a| a.id == user) {
        return not_found("404 User Not Found");
    }
    if s.members
        .iter()
        .any(|m| m.user_id == user && m.source == source)
    {
        return (
            StatusCode::CONFLICT,
            Json(json!({"message": "Member already exists"})),
        )
            .into_response();
    }
    s.members.push(Member {
        user_id: user,
        source,
        access_level: level as u8,
    });
    (StatusCode::CREATED, Json(member_json(user, level as u8))).into_response()
}

async fn edit_member(
    kind: Kind,
    State(app): State<App>,
    Path((id, user)): Path<(String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let source = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(level) = body.get("access_level").and_then(Value::as_u64) else {
        return bad_request("access_level is missing");
    };
    match s
        .members
        .iter_mut()
        .find(|m| m.user_id == user && m.source == source)
    {
        Some(m) => {
            m.access_level = level as u8;
            Json(member_json(user, level as u8)).into_response()
        }
        None => not_found("404 Not found"),
    }
}

impl FakeGitlab {
    /// The home of group `path`'s service accounts.
    pub fn group_home(&self, path: &str) -> AccountHome {
        match self.group_owner(path) {
            Owner::Group(id) => AccountHome::Group(id),
            _ => unreachable!(),
        }
    }

    /// The home of project `path`'s service accounts.
    pub fn project_home(&self, path: &str) -> AccountHome {
        AccountHome::Project(self.project_id(path))
    }

    /// A service account made in GitLab beforehand (by a person, with GitLab's UI or API).
    pub fn add_service_account(&self, home: AccountHome, username: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = s.new_user_id();
        s.service_accounts.push(ServiceAccount {
            id,
            username: username.into(),
            home,
        });
        id
    }

    pub fn service_accounts(&self) -> Vec<ServiceAccount> {
        self.state.lock().unwrap().service_accounts.clone()
    }

    pub fn members(&self) -> Vec<Member> {
        self.state.lock().unwrap().members.clone()
    }

    /// Makes a user a direct member of a project or group.
    pub fn add_member(&self, user: u64, source: Owner, access_level: u8) {
        self.state.lock().unwrap().members.push(Member {
            user_id: user,
            source,
            access_level,
        });
    }

    /// A personal access token of service account `user`, made in GitLab by hand.
    pub fn add_account_token(&self, user: u64, scopes: &[&str]) -> super::Issued {
        let mut s = self.state.lock().unwrap();
        let username = s
            .service_accounts
            .iter()
            .find(|a| a.id == user)
            .map(|a| a.username.clone())
            .expect("a service account");
        let (id, token) = s.new_pat_secret();
        s.access_tokens.push(AccessToken {
            id,
            name: format!("by-hand-{id}"),
            token: token.clone(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner: Owner::Account(user),
            expires_at: Some(Utc::now().date_naive() + Days::days(30)),
            revoked: false,
            access_level: 0,
            rotated_to: None,
            bot_deletion_pending: false,
        });
        super::Issued {
            id,
            username,
            token,
        }
    }

    /// Makes the access or personal token whose secret is `token` expire on `day`.
    pub fn set_token_expiry(&self, token: &str, day: NaiveDate) {
        let mut s = self.state.lock().unwrap();
        for t in s.access_tokens.iter_mut().filter(|t| t.token == token) {
            t.expires_at = Some(day);
        }
    }

    /// The access or personal token whose secret is `token`, whatever its state.
    pub fn token_by_secret(&self, token: &str) -> Option<AccessToken> {
        let s = self.state.lock().unwrap();
        s.access_tokens.iter().find(|t| t.token == token).cloned()
    }

    /// The personal access tokens of service accounts, revoked ones included.
    pub fn account_tokens(&self) -> Vec<AccessToken> {
        self.state
            .lock()
            .unwrap()
            .access_tokens
            .iter()
            .filter(|t| matches!(t.owner, Owner::Account(_)))
            .cloned()
            .collect()
    }
}
