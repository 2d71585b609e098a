//! GitLab webhook payloads turned into what happened, at the edge. Each payload has its own
//! private serde struct; the rest of regwarden only sees [`Event`]. An event regwarden does
//! not act on is a value ([`Event::Ignored`]), not an error. Facts: `docs/reference/gitlab.md`
//! §2; GitLab's own payloads in `tests/fixtures/gitlab-webhooks/`.

use serde::{Deserialize, Serialize};

/// A project as a payload names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    pub id: u64,
    pub path: String,
}

/// A group as a payload names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: u64,
    pub path: String,
}

/// Whose token is expiring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenOwner {
    Project(ProjectRef),
    Group(GroupRef),
}

/// Something that happened in GitLab that regwarden may act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Event {
    /// A project or group deploy token expires in 7, 30 or 60 days (`Resource Deploy Token
    /// Hook`). The payload names its owner under `project` or `group`
    /// (`lib/gitlab/data_builder/resource_deploy_token_payload.rb`), and so does the job.
    DeployTokenExpiring {
        #[serde(flatten)]
        owner: TokenOwner,
        token_id: u64,
        token_name: String,
        expires_at: String,
    },
    /// A project or group access token expires soon (`Resource Access Token Hook`).
    AccessTokenExpiring {
        owner: TokenOwner,
        token_id: u64,
        token_name: String,
        expires_at: String,
    },
    /// A project was created (group `Project Hook`, or system hook).
    ProjectCreated { project: ProjectRef },
    /// A project's path changed within its namespace (system hook).
    ProjectRenamed {
        project: ProjectRef,
        old_path: String,
    },
    /// A project moved to another namespace (system hook).
    ProjectTransferred {
        project: ProjectRef,
        old_path: String,
    },
    /// A project was deleted (group `Project Hook`, or system hook).
    ProjectDestroyed { project: ProjectRef },
    /// A well-formed event regwarden does not act on.
    Ignored { event: String },
}

impl Event {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::DeployTokenExpiring { .. } => "deploy_token_expiring",
            Event::AccessTokenExpiring { .. } => "access_token_expiring",
            Event::ProjectCreated { .. } => "project_created",
            Event::ProjectRenamed { .. } => "project_renamed",
            Event::ProjectTransferred { .. } => "project_transferred",
            Event::ProjectDestroyed { .. } => "project_destroyed",
            Event::Ignored { .. } => "ignored",
        }
    }

    /// The full paths of the projects and groups the event is about (a move's old path too):
    /// what a scoped webhook key must speak for.
    pub fn namespaces(&self) -> Vec<&str> {
        fn owner(o: &TokenOwner) -> &str {
            match o {
                TokenOwner::Project(p) => &p.path,
                TokenOwner::Group(g) => &g.path,
            }
        }
        match self {
            Event::DeployTokenExpiring { owner: o, .. }
            | Event::AccessTokenExpiring { owner: o, .. } => vec![owner(o)],
            Event::ProjectCreated { project } | Event::ProjectDestroyed { project } => {
                vec![&project.path]
            }
            Event::ProjectRenamed { project, old_path }
            | Event::ProjectTransferred { project, old_path } => vec![&project.path, old_path],
            Event::Ignored { .. } => Vec::new(),
        }
    }

    /// The path of the project the event is about, when it is about one project (a group
    /// token's expiry is not).
    pub fn project_path(&self) -> Option<&str> {
        match self {
            Event::DeployTokenExpiring {
                owner: TokenOwner::Project(project),
                ..
            }
            | Event::AccessTokenExpiring {
                owner: TokenOwner::Project(project),
                ..
            }
            | Event::ProjectCreated { project }
            | Event::ProjectRenamed { project, .. }
            | Event::ProjectTransferred { project, .. }
            | Event::ProjectDestroyed { project } => Some(&project.path),
            Event::DeployTokenExpiring { .. }
            | Event::AccessTokenExpiring { .. }
            | Event::Ignored { .. } => None,
        }
    }
}

/// A payload that cannot be read: the message names the problem (field, type).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Deserialize)]
struct Envelope {
    object_kind: Option<String>,
    event_name: Option<String>,
}

#[derive(Deserialize)]
struct PayloadProject {
    id: u64,
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct PayloadGroup {
    group_id: u64,
    #[serde(default)]
    full_path: Option<String>,
    group_path: String,
}

#[derive(Deserialize)]
struct ExpiringToken {
    id: u64,
    name: String,
    expires_at: String,
}

/// A token-expiry payload: the resource under the key of its model, `project` or `group`
/// (`Gitlab::DataBuilder::ResourceAccessTokenPayload`, `ResourceDeployTokenPayload`).
#[derive(Deserialize)]
struct TokenHook {
    project: Option<PayloadProject>,
    group: Option<PayloadGroup>,
    object_attributes: ExpiringToken,
}

impl TokenHook {
    fn owner(self, what: &str) -> Result<(TokenOwner, ExpiringToken), ParseError> {
        let owner = match (self.project, self.group) {
            (Some(p), _) => TokenOwner::Project(project(p)),
            (None, Some(g)) => TokenOwner::Group(GroupRef {
                id: g.group_id,
                path: g.full_path.unwrap_or(g.group_path),
            }),
            (None, None) => {
                return Err(ParseError(format!(
                    "a {what} payload names neither `project` nor `group`"
                )));
            }
        };
        Ok((owner, self.object_attributes))
    }
}

#[derive(Deserialize)]
struct ProjectEvent {
    project_id: u64,
    path_with_namespace: String,
    #[serde(default)]
    old_path_with_namespace: Option<String>,
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ParseError> {
    // The path of a bad field is only worth its cost when there is one: parse plainly first.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        ParseError(format!(
            "a {what} payload without the expected fields: {} at `{}`",
            e.inner(),
            e.path()
        ))
    })
}

fn project(p: PayloadProject) -> ProjectRef {
    ProjectRef {
        id: p.id,
        path: p.path_with_namespace,
    }
}

/// Reads a delivery: `event` is the `X-Gitlab-Event` header (system hooks always say
/// `System Hook`, so the payload's `event_name` decides there).
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| ParseError(format!("the body is not a JSON object: {e}")))?;
    let kind = envelope.object_kind.as_deref();
    let name = envelope.event_name.as_deref();
    let ignored = || Event::Ignored {
        event: match name.or(kind) {
            Some(n) => format!("{event}: {n}"),
            None => event.to_string(),
        },
    };
    Ok(match (event, kind, name) {
        (_, Some("deploy_token"), Some("expiring_deploy_token")) => {
            let hook: TokenHook = decode(body, "deploy token")?;
            let (owner, token) = hook.owner("deploy token")?;
            Event::DeployTokenExpiring {
                owner,
                token_id: token.id,
                token_name: token.name,
                expires_at: token.expires_at,
            }
        }
        (_, Some("access_token"), Some("expiring_access_token")) => {
            let hook: TokenHook = decode(body, "access token")?;
            let (owner, token) = hook.owner("access token")?;
            Event::AccessTokenExpiring {
                owner,
                token_id: token.id,
                token_name: token.name,
                expires_at: token.expires_at,
            }
        }
        (
            "Project Hook" | "System Hook",
            _,
            Some(
                n @ ("project_create" | "project_destroy" | "project_rename" | "project_transfer"),
            ),
        ) => {
            let e: ProjectEvent = decode(body, n)?;
            let project = ProjectRef {
                id: e.project_id,
                path: e.path_with_namespace,
            };
            let old = || {
                e.old_path_with_namespace.clone().ok_or_else(|| {
                    ParseError(format!("a {n} payload without `old_path_with_namespace`"))
                })
            };
            match n {
                "project_create" => Event::ProjectCreated { project },
                "project_destroy" => Event::ProjectDestroyed { project },
                "project_rename" => Event::ProjectRenamed {
                    old_path: old()?,
                    project,
                },
                _ => Event::ProjectTransferred {
                    old_path: old()?,
                    project,
                },
            }
        }
        _ => ignored(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_access_token_payload_names_the_group() {
        let body = br#"{"object_kind":"access_token","event_name":"expiring_access_token",
            "group":{"group_name":"Twitter","group_path":"twitter","group_id":35,"full_path":"acme/twitter"},
            "object_attributes":{"user_id":90,"created_at":"2024-01-24 16:27:40 UTC","id":25,"name":"acd","expires_at":"2024-01-26"}}"#;
        let e = parse("Resource Access Token Hook", body).unwrap();
        assert_eq!(
            e,
            Event::AccessTokenExpiring {
                owner: TokenOwner::Group(GroupRef {
                    id: 35,
                    path: "acme/twitter".into()
                }),
                token_id: 25,
                token_name: "acd".into(),
                expires_at: "2024-01-26".into(),
            }
        );
    }

    #[test]
    fn a_group_deploy_token_payload_names_the_group() {
        let body = br#"{"object_kind":"deploy_token","event_name":"expiring_deploy_token",
            "group":{"group_name":"Platform","group_path":"platform","group_id":35,"full_path":"acme/platform"},
            "object_attributes":{"id":81,"name":"regwarden-platform-20260801T000000Z","expires_at":"2026-12-10 00:00:00 UTC"}}"#;
        let e = parse("Resource Deploy Token Hook", body).unwrap();
        assert_eq!(
            e,
            Event::DeployTokenExpiring {
                owner: TokenOwner::Group(GroupRef {
                    id: 35,
                    path: "acme/platform".into()
                }),
                token_id: 81,
                token_name: "regwarden-platform-20260801T000000Z".into(),
                expires_at: "2026-12-10 00:00:00 UTC".into(),
            }
        );
        assert_eq!(e.project_path(), None);
    }

    #[test]
    fn a_deploy_token_job_queued_by_an_earlier_version_still_reads() {
        // Jobs queued before group deploy tokens named their project at the top level.
        let queued = r#"{"type":"deploy_token_expiring","project":{"id":2,"path":"acme/api"},"token_id":79,"token_name":"regwarden-api-20260101T000000Z","expires_at":"2026-12-10"}"#;
        let e: Event = serde_json::from_str(queued).unwrap();
        assert_eq!(e.project_path(), Some("acme/api"));
        let again: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let e = parse("Push Hook", b"{not json").unwrap_err();
        assert!(e.0.starts_with("the body is not a JSON object"), "{e}");
        let e = parse(
            "Resource Deploy Token Hook",
            br#"{"object_kind":"deploy_token","event_name":"expiring_deploy_token","project":{"id":"x"}}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("project.id"), "{e}");
        let e = parse(
            "System Hook",
            br#"{"event_name":"project_rename","project_id":1,"path_with_namespace":"a/b"}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("old_path_with_namespace"), "{e}");
    }

    #[test]
    fn an_unknown_event_is_ignored_not_an_error() {
        let e = parse("Wiki Page Hook", br#"{"object_kind":"wiki_page"}"#).unwrap();
        assert_eq!(
            e,
            Event::Ignored {
                event: "Wiki Page Hook: wiki_page".into()
            }
        );
        let e = parse("System Hook", br#"{"event_name":"user_create"}"#).unwrap();
        assert_eq!(e.kind(), "ignored");
    }
}
