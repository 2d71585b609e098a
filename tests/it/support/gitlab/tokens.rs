//! Deploy tokens (`docs/reference/gitlab.md` §3) and access tokens (§4) of projects and
//! groups alike: list, create, get, delete or revoke, and rotate.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::api::{Kind, MAINTAINER, paginate};
use super::{AccessToken, App, DeployToken, bad_request, bad_request_message, not_found};

/// The same routes under `/projects/:id` and `/groups/:id`.
pub(super) fn routes() -> Router<App> {
    let mut router = Router::new();
    for (prefix, kind) in [("projects", Kind::Project), ("groups", Kind::Group)] {
        let tokens = format!("/api/v4/{prefix}/{{id}}/deploy_tokens");
        let access = format!("/api/v4/{prefix}/{{id}}/access_tokens");
        router = router
            .route(
                &tokens,
                get(move |a, p, q, h| list_deploy_tokens(kind, a, p, q, h))
                    .post(move |a, p, h, b| create_deploy_token(kind, a, p, h, b)),
            )
            .route(
                &format!("{tokens}/{{token_id}}"),
                get(move |a, p, h| get_deploy_token(kind, a, p, h))
                    .delete(move |a, p, h| delete_deploy_token(kind, a, p, h)),
            )
            .route(
                &access,
                get(move |a, p, q, h| list_access_tokens(kind, a, p, q, h))
                    .post(move |a, p, h, b| create_access_token(kind, a, p, h, b)),
            )
            .route(
                &format!("{access}/{{token_id}}"),
                delete(move |a, p, h| revoke_access_token(kind, a, p, h)),
            )
            .route(
                &format!("{access}/{{token_id}}/rotate"),
                post(move |a, p, h, b| rotate_access_token(kind, a, p, h, b)),
            );
    }
    router
}

async fn list_deploy_tokens(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let active_only = query.get("active").is_some_and(|v| v == "true");
    let items = s
        .deploy_tokens
        .iter()
        .filter(|t| t.owner == owner && (!active_only || t.active()))
        .map(DeployToken::json)
        .collect();
    paginate(items, &query, "/deploy_tokens")
}

fn scopes_of(body: &Value) -> Option<Vec<String>> {
    match body.get("scopes")? {
        Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        // "A comma-separated string is also accepted" (reference §3).
        Value::String(s) => Some(s.split(',').map(|x| x.trim().to_string()).collect()),
        _ => None,
    }
}

const DEPLOY_SCOPES: &[&str] = &[
    "read_repository",
    "read_registry",
    "write_registry",
    "read_package_registry",
    "write_package_registry",
    "read_virtual_registry",
    "write_virtual_registry",
];

async fn create_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("name is missing");
    };
    let Some(scopes) = scopes_of(&body).filter(|s| !s.is_empty()) else {
        return bad_request("scopes is missing");
    };
    if scopes.iter().any(|s| !DEPLOY_SCOPES.contains(&s.as_str())) {
        return bad_request("scopes does not have a valid value");
    }
    let expires_at = match body.get("expires_at").and_then(Value::as_str) {
        None => None,
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => return bad_request("expires_at is invalid"),
        },
    };
    let (token_id, secret) = s.new_deploy_secret();
    let token = DeployToken {
        id: token_id,
        name,
        username: body
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("gitlab+deploy-token-{token_id}")),
        token: secret.clone(),
        scopes,
        owner,
        expires_at,
        revoked: false,
    };
    let mut json = token.json();
    json["token"] = Value::String(secret);
    s.deploy_tokens.push(token);
    (StatusCode::CREATED, Json(json)).into_response()
}

async fn get_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match s
        .deploy_tokens
        .iter()
        .find(|t| t.id == token_id && t.owner == owner)
    {
        Some(t) => Json(t.json()).into_response(),
        None => not_found("404 Not found"),
    }
}

async fn delete_deploy_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // GitLab deletes the record; the token is refused everywhere afterwards.
    let before = s.deploy_tokens.len();
    s.deploy_tokens
        .retain(|t| !(t.id == token_id && t.owner == owner));
    if s.deploy_tokens.len() == before {
        return not_found("404 Not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_access_tokens(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let state = query.get("state").map(String::as_str);
    let items = s
        .access_tokens
        .iter()
        .filter(|t| t.owner == owner)
        .filter(|t| match state {
            Some("active") => t.active(),
            Some("inactive") => !t.active(),
            _ => true,
        })
        .map(AccessToken::json)
        .collect();
    paginate(items, &query, "/access_tokens")
}

fn parse_date(body: &Value) -> Result<Option<NaiveDate>, Response> {
    match body.get("expires_at").and_then(Value::as_str) {
        None => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad_request("expires_at is invalid")),
    }
}

/// `POST /<projects|groups>/:id/access_tokens` (`lib/api/resource_access_tokens.rb`,
/// `ResourceAccessTokens::CreateService`): a bot user (a project or group access token) may not
/// create one (`ProjectPolicy`/`GroupPolicy`: `rule { can?(:project_bot_access) }` prevents
/// `create_resource_access_tokens`), and the service's refusal is a 400; the lifetime is
/// bounded (`PersonalAccessToken#expires_at_before_instance_max_expiry_date`).
async fn create_access_token(
    kind: Kind,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = app.lock();
    let (owner, caller) = match s.authorized_owner_at(kind, &id, &headers, MAINTAINER) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return bad_request("name is missing");
    };
    let Some(scopes) = scopes_of(&body).filter(|s| !s.is_empty()) else {
        return bad_request("scopes is missing");
    };
    // Since 16.0 project and group tokens need an expiry (reference §4).
    let expires_at = match parse_date(&body) {
        Ok(Some(d)) => d,
        Ok(None) => return bad_request("expires_at is missing"),
        Err(r) => return r,
    };
    if caller.is_bot() {
        return bad_request_message(&format!(
            "User does not have permission to create {} access token",
            kind.resource_type()
        ));
    }
    if let Err(r) = s.check_lifetime(expires_at) {
        return r;
    }
    let access_level = body
        .get("access_level")
        .and_then(Value::as_u64)
        .unwrap_or(40) as u8;
    let (token_id, secret) = s.new_pat_secret();
    let token = AccessToken {
        id: token_id,
        name,
        token: secret.clone(),
        scopes,
        owner,
        expires_at: Some(expires_at),
        revoked: false,
        access_level,
        rotated_to: None,
        bot_deletion_pending: false,
    };
    let mut json = token.json();
    json["token"] = Value::String(secret);
    s.access_tokens.push(token);
    (StatusCode::CREATED, Json(json)).into_response()
}

/// `DELETE /<projects|groups>/:id/access_tokens/:token_id` (`lib/api/resource_access_tokens.rb`,
/// `ResourceAccessTokens::RevokeService`): the token is found whatever its state while its bot
/// user exists; revoking deletes the bot user asynchronously, and a revoke in that window
/// answers 400 "Failed to find bot user"; afterwards the token is gone (404). A bot may not
/// revoke (`manage_resource_access_tokens` is prevented for bots).
async fn revoke_access_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let mut s = app.lock();
    let (owner, caller) = match s.authorized_owner_at(kind, &id, &headers, MAINTAINER) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let resource_type = kind.resource_type();
    let Some(t) = s
        .access_tokens
        .iter_mut()
        .find(|t| t.id == token_id && t.owner == owner)
    else {
        return not_found(&format!("404 {resource_type} Access Token Not Found"));
    };
    if caller.is_bot() {
        return bad_request_message(&format!("{} cannot delete {}", caller.name, t.name));
    }
    if t.revoked {
        return bad_request_message("Failed to find bot user");
    }
    t.revoked = true;
    t.bot_deletion_pending = true;
    StatusCode::NO_CONTENT.into_response()
}

/// Rotate revokes the old token at once and returns its successor. Rotating a token that
/// was already rotated is reuse: GitLab revokes the active token of the family too
/// (`GitlabState::rotate_family`, shared with personal access tokens).
async fn rotate_access_token(
    kind: Kind,
    State(app): State<App>,
    Path((id, token_id)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let mut s = app.lock();
    let owner = match s.authorized_owner(kind, &id, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    s.rotate_family(token_id, owner, &body)
}
