//! Bindings from the configuration: `[[binding]]` as written, and `[[auto_bind]]` expanded
//! over the projects of its group that have a container registry.

use super::plan::Binding;
use crate::config::{Config, TEMPLATE_PLACEHOLDERS, check_binding_name};
use crate::gitlab::{GitlabClient, Namespace, Project};
use crate::http::ApiError;

/// `acme/Platform_API` -> `acme-platform-api`.
pub fn slug(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

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
            let repository = b
                .repository
                .clone()
                .or_else(|| b.project.clone())
                .unwrap_or_default();
            Binding {
                name: b.name.clone(),
                namespace,
                repository,
                qovery_registry: b.qovery_registry.clone(),
                policy: b.policy.apply_to(&config.defaults),
            }
        })
        .collect()
}

/// Every binding: explicit ones, then one per project with a registry under each
/// `[[auto_bind]]` group. An explicit binding wins over an automatic one of the same name or
/// registry; an automatic name that is not valid is skipped with a warning.
pub async fn resolve(config: &Config, gitlab: &GitlabClient) -> Result<Vec<Binding>, ApiError> {
    let mut bindings = explicit(config);
    for rule in &config.auto_binds {
        for project in gitlab.group_projects(&rule.group).await? {
            if project.container_registry_image_prefix.is_none() {
                continue;
            }
            let name = fill(&rule.name, &project, &rule.group);
            let registry = fill(&rule.qovery_registry, &project, &rule.group);
            if let Err(why) = check_binding_name(&name) {
                tracing::warn!(project = %project.path_with_namespace, "auto_bind skips a project: {why}");
                continue;
            }
            if bindings
                .iter()
                .any(|b| b.name == name || b.qovery_registry == registry)
            {
                continue;
            }
            bindings.push(Binding {
                name,
                namespace: Namespace::Project(project.path_with_namespace.clone()),
                repository: project.path_with_namespace.clone(),
                qovery_registry: registry,
                policy: rule.policy.apply_to(&config.defaults),
            });
        }
    }
    Ok(bindings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        assert_eq!(slug("acme/Platform_API"), "acme-platform-api");
        assert_eq!(slug("a//b..c"), "a-b-c");
    }

    #[test]
    fn templates_are_filled_from_the_project() {
        let p = Project {
            id: 7,
            name: "api".into(),
            path_with_namespace: "acme/services/api".into(),
            container_registry_image_prefix: None,
            namespace: None,
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
