//! Bindings from the configuration: `[[binding]]` as written, and `[[auto_bind]]` expanded
//! over the projects of its group (its own, not those shared into it) that have a container
//! registry.

use super::plan::Binding;
use crate::config::{AutoBindConfig, Config, TEMPLATE_PLACEHOLDERS, check_binding_name};
use crate::gitlab::{GitlabClient, Namespace, Project};
use crate::marker::Pin;
use crate::qovery::Registry;

pub use crate::config::slug;

fn fill(template: &str, project: &Project, group: &str) -> String {
    let mut out = template.to_string();
    for name in TEMPLATE_PLACEHOLDERS {
        let value = match *name {
            "project_path_slug" => slug(&project.path_with_namespace),
            "project_path" => project.path_with_namespace.clone(),
            "project_name" => project.name.clone(),
            "project_id" => project.id.to_string(),
            "group_path" => group.to_string(),
            _ => continue,
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

/// The explicit bindings; no network.
pub fn explicit(config: &Config) -> Vec<Binding> {
    config
        .bindings
        .iter()
        .map(|b| {
            let namespace = match (&b.project, &b.group) {
                (Some(p), _) => Namespace::Project(p.clone()),
                (None, Some(g)) => Namespace::Group(g.clone()),
                (None, None) => unreachable!("validated: a binding has a project or a group"),
            };
            Binding {
                name: b.name.clone(),
                instance: config.reconcile.instance.clone(),
                pinned: b.project.as_deref().and_then(|p| p.parse().ok()),
                namespace,
                repository: b.repository.clone(),
                qovery_registry: b.qovery_registry.clone(),
                policy: b.policy.apply_to(&config.defaults).for_binding(
                    &b.name,
                    b.project.as_deref().or(b.group.as_deref()).unwrap_or(""),
                ),
                from_rule: false,
                blocked: None,
            }
        })
        .collect()
}

/// An `[[auto_bind]]` rule whose group could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleFailure {
    /// The rule's group.
    pub group: String,
    pub error: String,
}

impl RuleFailure {
    /// Whether the rule could have bound the project at `path` (it is under the group).
    pub fn could_cover(&self, path: &str) -> bool {
        is_under(path, &self.group)
    }
}

/// The bindings of a configuration, and the rules that could not be expanded. A rule that
/// fails (its group renamed or gone, a 403, a timeout) is reported on its own; every other
/// binding still proceeds.
#[derive(Debug, Default)]
pub struct Resolved {
    pub bindings: Vec<Binding>,
    pub failed_rules: Vec<RuleFailure>,
}

/// Every binding: explicit ones, then one per project with a registry under each
/// `[[auto_bind]]` group. An automatic binding of a project an explicit binding already binds
/// under the same name or registry is left out; one whose name is not valid is skipped with a
/// warning; two projects that map to one binding name or one Qovery registry are both kept,
/// blocked, and neither is acted on ([`block_collisions`]).
pub async fn resolve(config: &Config, gitlab: &GitlabClient) -> Resolved {
    let mut resolved = Resolved {
        bindings: explicit(config),
        failed_rules: Vec::new(),
    };
    let mut automatic = Vec::new();
    for rule in &config.auto_binds {
        let listed = async {
            // A rule may name its group by id: its projects are checked against its path.
            let group_path = if rule.group.parse::<u64>().is_ok() {
                gitlab.group(&rule.group).await?.full_path
            } else {
                rule.group.clone()
            };
            let projects = gitlab.group_projects(&rule.group).await?;
            Ok::<_, crate::outbound::ApiError>((group_path, projects))
        };
        let (group_path, projects) = match listed.await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(group = %rule.group, error = %e, "cannot expand an [[auto_bind]] rule");
                resolved.failed_rules.push(RuleFailure {
                    group: rule.group.clone(),
                    error: format!("cannot list the projects of group {}: {e}", rule.group),
                });
                continue;
            }
        };
        for project in projects {
            // GitLab lists the projects shared into the group too unless told otherwise, and a
            // server that ignores `with_shared` would still list them: only the group's own
            // projects are ever bound.
            if !is_under(&project.path_with_namespace, &group_path) {
                tracing::debug!(project = %project.path_with_namespace, group = %group_path, "auto_bind skips a project of another namespace shared into the group");
                continue;
            }
            if let Some(b) = auto_binding(config, rule, &project)
                && !automatic.iter().any(|x: &Binding| x.pinned == b.pinned)
            {
                automatic.push(b);
            }
        }
    }
    resolved.bindings.extend(automatic);
    resolved.bindings = block_collisions(resolved.bindings);
    resolved
}

/// Two bindings of different projects under one binding name or one Qovery registry would
/// take turns writing it, each with a credential for its own project: neither may act. An
/// automatic binding that collides with an explicit one of another project is blocked (the
/// explicit one goes on); one of the very project an explicit binding binds there is the
/// same binding twice, and is left out. Two automatic ones are both blocked, each naming the
/// other.
pub fn block_collisions(bindings: Vec<Binding>) -> Vec<Binding> {
    let identity = |b: &Binding| match (&b.namespace, b.pinned) {
        (Namespace::Project(_), Some(id)) => format!("project {id}"),
        (Namespace::Project(p), None) => format!("project {p}"),
        (Namespace::Group(g), _) => format!("group {g}"),
    };
    let label = |b: &Binding| match &b.namespace {
        Namespace::Project(p) => match b.pinned {
            Some(id) if *p != id.to_string() => format!("project {p} (id {id})"),
            _ => format!("project {p}"),
        },
        Namespace::Group(g) => format!("group {g}"),
    };
    let clash =
        |a: &Binding, b: &Binding| a.name == b.name || a.qovery_registry == b.qovery_registry;
    let same_project = |a: &Binding, b: &Binding| {
        identity(a) == identity(b)
            || matches!((&a.namespace, &b.namespace), (Namespace::Project(x), Namespace::Project(y)) if x == y)
    };
    let mut out: Vec<Binding> = Vec::new();
    for b in &bindings {
        if !b.from_rule {
            out.push(b.clone());
            continue;
        }
        if bindings
            .iter()
            .any(|x| !x.from_rule && clash(x, b) && same_project(x, b))
        {
            continue;
        }
        let others: Vec<&Binding> = bindings
            .iter()
            .filter(|x| !std::ptr::eq(*x, b) && clash(x, b) && !same_project(x, b))
            .collect();
        let mut b = b.clone();
        if let Some(first) = others.first() {
            let what = if first.name == b.name {
                format!("binding name {:?}", b.name)
            } else {
                format!("Qovery registry {:?}", b.qovery_registry)
            };
            let with: Vec<String> = others.iter().map(|x| label(x)).collect();
            b.blocked = Some(format!(
                "{} and {} both map to {what}: neither is acted on, since each would hand that registry a credential for its own project. Use {{project_id}} in the [[auto_bind]] templates (ids never collide), or bind one of them explicitly",
                label(&b),
                with.join(", "),
            ));
        }
        out.push(b);
    }
    out
}

/// An automatic binding follows its project across renames and transfers: the Qovery registry
/// whose marker pins the project's id (this deployment's) keeps serving it, under the binding
/// name that marker gives, whatever the templates make of the new path. So a rename neither
/// strands the registry the services use nor makes a second one; `{project_id}` in the
/// templates gives names that never move in the first place.
pub fn follow_moves(bindings: Vec<Binding>, registries: &[Registry]) -> Vec<Binding> {
    let names: Vec<String> = bindings.iter().map(|b| b.name.clone()).collect();
    bindings
        .into_iter()
        .map(|mut b| {
            let (true, None, Some(id)) = (b.from_rule, &b.blocked, b.pinned) else {
                return b;
            };
            let ours = |r: &&Registry| {
                r.marker
                    .as_ref()
                    .is_some_and(|m| m.instance == b.instance && m.pin == Some(Pin::Project(id)))
            };
            // Its own registry, under the template's names: nothing moved.
            if registries
                .iter()
                .filter(ours)
                .any(|r| r.marker.as_ref().is_some_and(|m| m.binding == b.name))
            {
                return b;
            }
            // A registry of the same project kept for another binding of the configuration
            // (an explicit one of that project, say) is that binding's, not a moved one.
            let moved = registries.iter().filter(ours).find(|r| {
                r.marker
                    .as_ref()
                    .is_some_and(|m| !names.contains(&m.binding))
            });
            if let Some(r) = moved
                && let Some(m) = &r.marker
            {
                tracing::info!(
                    project = id,
                    path = %crate::reconcile::engine::namespace_label(&b.namespace),
                    binding = %m.binding,
                    registry = %r.name,
                    "an auto-bound project moved: it keeps its binding and Qovery registry"
                );
                b.name = m.binding.clone();
                b.qovery_registry = r.name.clone();
            }
            b
        })
        .collect()
}

/// The bindings named `names`: the explicit ones without any network call, and the
/// `[[auto_bind]]` rules expanded only when a name is not explicit. So `--binding api` never
/// depends on an unrelated rule.
pub async fn resolve_named(config: &Config, gitlab: &GitlabClient, names: &[String]) -> Resolved {
    let explicit = explicit(config);
    if names.iter().all(|n| explicit.iter().any(|b| &b.name == n)) {
        return Resolved {
            bindings: explicit
                .into_iter()
                .filter(|b| names.contains(&b.name))
                .collect(),
            failed_rules: Vec::new(),
        };
    }
    let mut resolved = resolve(config, gitlab).await;
    resolved.bindings.retain(|b| names.contains(&b.name));
    resolved
}

/// The bindings that cover `project`, from the configuration and the project alone (one
/// project, no group listing): explicit bindings of the project or of a group above it, then
/// the automatic binding of each `[[auto_bind]]` rule whose group holds it.
pub fn for_project(config: &Config, project: &Project) -> Vec<Binding> {
    let path = &project.path_with_namespace;
    let id = project.id.to_string();
    let all_explicit = explicit(config);
    let mut bindings: Vec<Binding> = all_explicit
        .iter()
        .filter(|b| covers(b, path, &id))
        .cloned()
        .collect();
    for rule in config
        .auto_binds
        .iter()
        .filter(|r| is_under(path, &r.group))
    {
        if let Some(b) = auto_binding(config, rule, project)
            && !all_explicit
                .iter()
                .chain(bindings.iter())
                .any(|x| x.name == b.name || x.qovery_registry == b.qovery_registry)
        {
            bindings.push(b);
        }
    }
    bindings
}

/// Whether the configuration may bind a project at `path` (or with this id): an explicit
/// binding names it or a group above it, or an `[[auto_bind]]` group holds it. No network.
pub fn may_bind(config: &Config, path: &str, id: &str) -> bool {
    explicit(config).iter().any(|b| covers(b, path, id))
        || config.auto_binds.iter().any(|r| is_under(path, &r.group))
}

/// Whether binding `b` is about the project at `path` (or with this id).
fn covers(b: &Binding, path: &str, id: &str) -> bool {
    match &b.namespace {
        Namespace::Project(p) => p == path || p == id,
        Namespace::Group(g) => is_under(path, g),
    }
}

/// Whether `path` is below `group`.
fn is_under(path: &str, group: &str) -> bool {
    path.strip_prefix(group)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The binding a rule makes for `project`, if the project has a registry (its
/// `container_registry_access_level` is not `disabled`) and the name the template gives is
/// valid.
fn auto_binding(config: &Config, rule: &AutoBindConfig, project: &Project) -> Option<Binding> {
    if !project.has_registry() {
        tracing::debug!(project = %project.path_with_namespace, "auto_bind skips a project whose container registry is disabled");
        return None;
    }
    let name = fill(&rule.name, project, &rule.group);
    if let Err(why) = check_binding_name(&name) {
        tracing::warn!(project = %project.path_with_namespace, "auto_bind skips a project: {why}");
        return None;
    }
    Some(Binding {
        instance: config.reconcile.instance.clone(),
        namespace: Namespace::Project(project.path_with_namespace.clone()),
        repository: None,
        qovery_registry: fill(&rule.qovery_registry, project, &rule.group),
        policy: rule
            .policy
            .apply_to(&config.defaults)
            .for_binding(&name, &project.path_with_namespace),
        name,
        pinned: Some(project.id),
        from_rule: true,
        blocked: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(name: &str, path: &str, id: u64) -> Binding {
        Binding {
            name: name.into(),
            instance: String::new(),
            namespace: Namespace::Project(path.into()),
            repository: None,
            qovery_registry: format!("gitlab-{name}"),
            policy: Default::default(),
            pinned: Some(id),
            from_rule: true,
            blocked: None,
        }
    }

    fn kept(registry: &str, binding: &str, id: u64) -> Registry {
        let description = format!(
            "regwarden: binding={binding} token_id=1 fingerprint=sha256:0 expires=never project={id}"
        );
        Registry {
            id: registry.into(),
            name: registry.into(),
            kind: crate::qovery::RegistryKind::GenericCr,
            url: None,
            username: None,
            marker: crate::marker::Marker::find(&description),
            description,
            cluster: None,
            services: None,
        }
    }

    #[test]
    fn a_moved_project_keeps_its_registry_but_never_takes_another_bindings() {
        // acme/web (id 7) renamed acme/shop: the template now says "shop".
        let moved = follow_moves(
            vec![auto("shop", "acme/shop", 7)],
            &[kept("gitlab-web", "web", 7)],
        );
        assert_eq!(
            (moved[0].name.as_str(), moved[0].qovery_registry.as_str()),
            ("web", "gitlab-web")
        );
        // A project an explicit binding also binds: its registry is the explicit one's.
        let mut explicit = auto("api", "acme/api", 1);
        explicit.from_rule = false;
        let both = follow_moves(
            vec![explicit, auto("auto-api", "acme/api", 1)],
            &[
                kept("gitlab-api", "api", 1),
                kept("gitlab-auto-api", "auto-api", 1),
            ],
        );
        assert_eq!(both[1].name, "auto-api");
        let first_pass = follow_moves(
            vec![auto("auto-api", "acme/api", 1)],
            &[kept("gitlab-api", "api", 1)],
        );
        assert_eq!(
            first_pass[0].name, "api",
            "no other binding keeps it: followed"
        );
        let with_explicit = {
            let mut explicit = auto("api", "acme/api", 1);
            explicit.from_rule = false;
            follow_moves(
                vec![explicit, auto("auto-api", "acme/api", 1)],
                &[kept("gitlab-api", "api", 1)],
            )
        };
        assert_eq!(
            with_explicit[1].name, "auto-api",
            "the explicit binding's registry stays its own"
        );
    }

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        assert_eq!(slug("acme/Platform_API"), "acme-platform-api");
        assert_eq!(slug("a//b..c"), "a-b-c");
    }

    #[test]
    fn a_failed_rule_could_cover_only_projects_under_its_group() {
        let f = RuleFailure {
            group: "acme/gone".into(),
            error: String::new(),
        };
        assert!(f.could_cover("acme/gone/api"));
        assert!(!f.could_cover("acme/gone2/api"));
        assert!(!f.could_cover("acme/api"));
    }

    #[test]
    fn templates_are_filled_from_the_project() {
        let p = Project {
            id: 7,
            name: "api".into(),
            path_with_namespace: "acme/services/api".into(),
            ..Default::default()
        };
        assert_eq!(
            fill(
                "gitlab-{project_path_slug}-{project_id}",
                &p,
                "acme/services"
            ),
            "gitlab-acme-services-api-7"
        );
        assert_eq!(
            fill("{group_path}:{project_name}", &p, "acme/services"),
            "acme/services:api"
        );
    }
}
