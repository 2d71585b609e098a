//! `regwarden init`: a first configuration from what GitLab and Qovery already hold. It finds
//! the Qovery organization, the registries that point at this GitLab's registry, the images
//! their services deploy, and the project that holds them (or the smallest group that holds
//! them all), and writes one binding per registry with the reason in a comment. A registry a
//! person set up by hand is bound by its name: the first pass takes it over.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;

use super::Failure;
use crate::config::{HttpUrl, SecretSource};
use crate::gitlab::{GitlabClient, Project};
use crate::outbound::ApiError;
use crate::qovery::QoveryClient;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The GitLab instance.
    #[arg(long, env = "REGWARDEN_GITLAB_URL", default_value = "https://gitlab.com", value_parser = HttpUrl::parse)]
    pub gitlab_url: HttpUrl,

    /// The container registry's URL, when GitLab's projects do not tell it (written as
    /// gitlab.registry_url).
    #[arg(long, env = "REGWARDEN_REGISTRY_URL", value_parser = HttpUrl::parse)]
    pub registry_url: Option<HttpUrl>,

    /// Qovery's API.
    #[arg(long, env = "REGWARDEN_QOVERY_URL", default_value = "https://api.qovery.com", value_parser = HttpUrl::parse)]
    pub qovery_url: HttpUrl,

    /// The Qovery organization; needed when the token sees more than one.
    #[arg(long, value_name = "ID")]
    pub organization: Option<String>,

    /// A CA bundle for a self-managed GitLab and its registry (written as gitlab.ca_file).
    #[arg(long, env = "REGWARDEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// The configuration file to write; an existing file is never overwritten.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

/// A Qovery registry bound to a project or group, and why.
struct Proposal {
    binding: String,
    registry: String,
    target: Target,
    why: String,
}

enum Target {
    Project {
        id: u64,
        path: String,
    },
    Group {
        id: u64,
        path: String,
        repository: String,
    },
}

pub async fn run(args: InitArgs) -> Result<(), Failure> {
    if args.output.exists() {
        return Err(Failure::usage(format!(
            "{} exists: init never overwrites a file; give another --output, or edit that one",
            args.output.display()
        )));
    }
    let token = |env: &'static str| -> Result<SecretString, Failure> {
        SecretSource {
            key: env,
            env,
            file: None,
        }
        .read()
        .map_err(|_| {
            Failure::usage(format!(
                "init reads the API token from ${env}: export it (GITLAB_TOKEN: a personal access token with the api scope; QOVERY_API_TOKEN: an organization API token)"
            ))
        })
    };
    let gitlab_token = token("GITLAB_TOKEN")?;
    let qovery_token = token("QOVERY_API_TOKEN")?;
    let http = crate::outbound::client(args.ca_file.as_deref(), std::time::Duration::from_secs(30))
        .map_err(Failure::usage)?;
    let gitlab = GitlabClient::new(http.clone(), &args.gitlab_url.0, gitlab_token);
    let qovery = QoveryClient::new(http, &args.qovery_url.0, qovery_token);

    let org = organization(&qovery, args.organization.as_deref()).await?;
    let registries = qovery
        .registries(&org.id)
        .await
        .context("Qovery's registries")
        .map_err(Failure::failed)?;
    let mut proposals: Vec<Proposal> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for registry in registries {
        if registry.cluster.is_some() {
            skipped.push((
                registry.name,
                "Qovery made it for a cluster of its own".into(),
            ));
            continue;
        }
        match propose(
            &gitlab,
            &qovery,
            &org.id,
            &registry,
            args.registry_url.as_ref(),
        )
        .await
        {
            Ok(Ok(mut p)) => {
                p.binding = unique_name(&proposals, &p.binding);
                proposals.push(p);
            }
            Ok(Err(why)) => skipped.push((registry.name, why)),
            Err(e) => {
                return Err(Failure::failed(
                    anyhow::Error::new(e).context(format!("Qovery registry {:?}", registry.name)),
                ));
            }
        }
    }
    if proposals.is_empty() {
        for (name, why) in &skipped {
            println!("skipped Qovery registry {name:?}: {}", printable(why));
        }
        return Err(Failure::failed(anyhow::anyhow!(
            "no Qovery registry of organization {:?} deploys images from {}: nothing to bind, no file written",
            org.name,
            args.gitlab_url
        )));
    }
    let text = render(&args, &org, &proposals, &skipped);
    write_new(&args.output, &text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::usage(format!(
                "{} exists: init never overwrites a file",
                args.output.display()
            ))
        } else {
            Failure::failed(anyhow::anyhow!(
                "cannot write {}: {e}",
                args.output.display()
            ))
        }
    })?;
    for p in &proposals {
        let target = match &p.target {
            Target::Project { path, .. } => format!("project {path}"),
            Target::Group { path, .. } => format!("group {path}"),
        };
        println!(
            "bound Qovery registry {:?} to {target}: {}",
            p.registry, p.why
        );
    }
    for (name, why) in &skipped {
        println!("skipped Qovery registry {name:?}: {}", printable(why));
    }
    let file = args.output.display();
    println!("wrote {file}; next:");
    println!("  regwarden config check --online --config {file}");
    println!("  regwarden reconcile --dry-run --config {file}");
    println!("  regwarden reconcile --config {file}");
    Ok(())
}

async fn organization(
    qovery: &QoveryClient,
    named: Option<&str>,
) -> Result<crate::qovery::Organization, Failure> {
    if let Some(id) = named {
        return qovery
            .organization(id)
            .await
            .with_context(|| format!("Qovery organization {id}"))
            .map_err(Failure::failed);
    }
    let mut orgs = qovery
        .organizations()
        .await
        .context("Qovery's organizations")
        .map_err(Failure::failed)?;
    match orgs.len() {
        1 => Ok(orgs.remove(0)),
        0 => Err(Failure::failed(anyhow::anyhow!(
            "the Qovery token sees no organization"
        ))),
        _ => {
            let listed: Vec<String> = orgs
                .iter()
                .map(|o| format!("{} ({})", o.name, o.id))
                .collect();
            Err(Failure::usage(format!(
                "the Qovery token sees {} organizations: {}; pass --organization ID",
                orgs.len(),
                listed.join(", ")
            )))
        }
    }
}

fn printable(text: &str) -> String {
    crate::outbound::printable(text).into_owned()
}

/// `host[:port]` of a URL or of an image prefix (`registry.example.com:5050/group/project`),
/// without the scheme's default port.
fn host_port(s: &str) -> String {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    host.strip_suffix(":443")
        .map(str::to_string)
        .unwrap_or(host)
}

/// The binding for one registry, or why there is none (`Ok(Err)`).
async fn propose(
    gitlab: &GitlabClient,
    qovery: &QoveryClient,
    org: &str,
    registry: &crate::qovery::Registry,
    registry_url: Option<&HttpUrl>,
) -> Result<Result<Proposal, String>, ApiError> {
    let Some(url) = registry.url.as_deref() else {
        return Ok(Err("it has no URL".into()));
    };
    // With the registry's URL given, another registry is told apart before any call.
    if let Some(given) = registry_url
        && host_port(url) != host_port(given.0.as_str())
    {
        return Ok(Err(format!(
            "its URL {} is not this GitLab's registry ({})",
            printable(url),
            host_port(given.0.as_str())
        )));
    }
    let images = qovery.deployed_images(org, &registry.id).await?;
    if images.is_empty() {
        return Ok(Err(
            "no service deploys an image from it: bind it by hand if it should be kept".into(),
        ));
    }
    let mut names: Vec<String> = images.iter().map(|(_, i)| i.image_name.clone()).collect();
    if let Some(odd) = names.iter().find(|n| printable(n) != **n) {
        return Ok(Err(format!(
            "it deploys an image whose name {} is no repository path",
            printable(odd)
        )));
    }
    names.sort();
    names.dedup();
    let mut projects: Vec<Project> = Vec::new();
    for name in &names {
        let Some(project) = project_of(gitlab, name).await? else {
            return Ok(Err(format!(
                "image {name} is in no project of this GitLab that the API token can see"
            )));
        };
        if !projects.iter().any(|p| p.id == project.id) {
            projects.push(project);
        }
    }
    // The registry must be this GitLab's: the host its projects' images live on.
    let expected = match registry_url {
        Some(u) => host_port(u.0.as_str()),
        None => projects[0]
            .registry_address()
            .map(host_port)
            .unwrap_or_default(),
    };
    if host_port(url) != expected {
        return Ok(Err(format!(
            "its URL {} is not this GitLab's registry ({expected})",
            printable(url)
        )));
    }
    // Qovery's and GitLab's words go into comments and onto a terminal: printable only.
    let services: Vec<String> = images
        .iter()
        .map(|(s, _)| printable(&s.service_name))
        .collect();
    let binding = slug(&registry.name);
    if let [project] = projects.as_slice() {
        return Ok(Ok(Proposal {
            binding,
            registry: registry.name.clone(),
            why: format!(
                "its services ({}) deploy {} from project {}",
                services.join(", "),
                names.join(", "),
                project.path_with_namespace
            ),
            target: Target::Project {
                id: project.id,
                path: project.path_with_namespace.clone(),
            },
        }));
    }
    // The smallest group that holds every project.
    let paths: Vec<&str> = projects
        .iter()
        .map(|p| p.path_with_namespace.as_str())
        .collect();
    let Some(common) = common_namespace(&paths) else {
        return Ok(Err(format!(
            "its images are in projects of different top-level groups ({}): bind them by hand",
            paths.join(", ")
        )));
    };
    let group = match gitlab.group(&common).await {
        Ok(g) => g,
        // A user's namespace is no group; a group the token cannot see is no binding either.
        Err(e @ (ApiError::NotFound { .. } | ApiError::Forbidden { .. })) => {
            return Ok(Err(format!(
                "its images are in projects of {common} ({}), which is no group the API token can read ({}): bind them by hand",
                paths.join(", "),
                crate::outbound::error_chain(&e)
            )));
        }
        Err(e) => return Err(e),
    };
    Ok(Ok(Proposal {
        binding,
        registry: registry.name.clone(),
        why: format!(
            "its services ({}) deploy {} from projects {}, all in group {}",
            services.join(", "),
            names.join(", "),
            paths.join(", "),
            group.full_path
        ),
        target: Target::Group {
            id: group.id,
            path: group.full_path,
            repository: names[0].clone(),
        },
    }))
}

/// The project whose path starts image `name` (`acme/api/worker` is in `acme/api` or in
/// `acme`...): the longest path that is a project.
async fn project_of(gitlab: &GitlabClient, name: &str) -> Result<Option<Project>, ApiError> {
    let parts: Vec<&str> = name.split('/').collect();
    for n in (2..=parts.len()).rev() {
        let path = parts[..n].join("/");
        match gitlab.project(&path).await {
            // A path may redirect to a renamed project: only its own path counts (image paths
            // are lowercase; a project's path keeps its case).
            Ok(p) if p.path_with_namespace.eq_ignore_ascii_case(&path) => return Ok(Some(p)),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The deepest namespace above every project path, if they share one.
fn common_namespace(paths: &[&str]) -> Option<String> {
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| {
            let mut parts: Vec<&str> = p.split('/').collect();
            parts.pop();
            parts
        })
        .collect();
    let first = split.first()?;
    let mut n = first.len();
    for other in &split[1..] {
        n = n.min(first.iter().zip(other).take_while(|(a, b)| a == b).count());
    }
    (n > 0).then(|| first[..n].join("/"))
}

/// A binding name from a registry's name: lowercase letters, digits and dashes (as
/// `{project_path_slug}`).
fn slug(name: &str) -> String {
    let out = crate::config::slug(name);
    if out.is_empty() {
        "registry".into()
    } else {
        out
    }
}

fn unique_name(proposals: &[Proposal], name: &str) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while proposals.iter().any(|p| p.binding == candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `text` as `# ` comment lines of at most about 96 columns.
fn comment(out: &mut String, text: &str) {
    let text = printable(text);
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > 96 && line.len() > 1 {
            let _ = writeln!(out, "{line}");
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    let _ = writeln!(out, "{line}");
}

fn render(
    args: &InitArgs,
    org: &crate::qovery::Organization,
    proposals: &[Proposal],
    skipped: &[(String, String)],
) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        &format!(
            "regwarden's configuration, written by `regwarden init` on {} from {} and the Qovery organization {:?}. Check it with `regwarden config check --online --config <this file>`, then `regwarden reconcile --dry-run`. Every key: regwarden.example.toml and the README's configuration reference.",
            chrono::Utc::now().format("%Y-%m-%d"),
            args.gitlab_url,
            org.name
        ),
    );
    let _ = writeln!(out, "\n[gitlab]");
    let _ = writeln!(out, "url = {}", quoted(&args.gitlab_url.to_string()));
    match &args.registry_url {
        Some(u) => {
            let _ = writeln!(out, "registry_url = {}", quoted(&u.to_string()));
        }
        None => comment(
            &mut out,
            "registry_url: read from GitLab (each project's container_registry_image_prefix)",
        ),
    }
    if let Some(ca) = &args.ca_file {
        let _ = writeln!(out, "ca_file = {}", quoted(&ca.display().to_string()));
    }
    comment(
        &mut out,
        "The API token is read from $GITLAB_TOKEN (token_env), or a file (token_file).",
    );
    let _ = writeln!(out, "\n[qovery]");
    let _ = writeln!(out, "url = {}", quoted(&args.qovery_url.to_string()));
    let _ = writeln!(out, "organization_id = {}", quoted(&org.id));
    comment(
        &mut out,
        "The API token is read from $QOVERY_API_TOKEN (token_env), or a file (token_file).",
    );
    for p in proposals {
        let _ = writeln!(out);
        comment(
            &mut out,
            &format!(
                "Qovery registry {:?}: {}. A deploy token (the default credential; minting one takes the Maintainer role in a project, Owner in a group) replaces the credential it holds at the first pass, which takes the registry over and leaves a credential set by hand alone.",
                p.registry, p.why
            ),
        );
        let _ = writeln!(out, "[[binding]]");
        let _ = writeln!(out, "name = {}", quoted(&p.binding));
        match &p.target {
            Target::Project { id, path } => {
                let _ = writeln!(out, "project = {id}  # {path} (an id: paths move)");
            }
            Target::Group {
                id,
                path,
                repository,
            } => {
                let _ = writeln!(out, "group = {id}  # {path} (an id: paths move)");
                let _ = writeln!(
                    out,
                    "repository = {}  # the image the check pulls",
                    quoted(repository)
                );
            }
        }
        let _ = writeln!(out, "qovery_registry = {}", quoted(&p.registry));
    }
    if !skipped.is_empty() {
        let _ = writeln!(out);
        for (name, why) in skipped {
            comment(
                &mut out,
                &format!("Not bound: Qovery registry {name:?}: {why}."),
            );
        }
    }
    out
}

/// Writes `text` to `path`, which must not exist: written whole to a temporary file beside it,
/// then linked in place (`link(2)` fails if the name exists), so that no reader ever sees
/// half a file, a failure leaves none, and two runs never both write.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temp, path)
    })();
    let _ = std::fs::remove_file(&temp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_group_holds_every_project() {
        assert_eq!(
            common_namespace(&["acme/platform/web", "acme/platform/worker"]).as_deref(),
            Some("acme/platform")
        );
        assert_eq!(
            common_namespace(&["acme/platform/web", "acme/api"]).as_deref(),
            Some("acme")
        );
        assert_eq!(common_namespace(&["acme/api", "other/api"]), None);
    }

    #[test]
    fn binding_names_are_slugs_and_unique() {
        assert_eq!(slug("GitLab (acme) API"), "gitlab-acme-api");
        assert_eq!(slug("***"), "registry");
        assert_eq!(
            host_port("https://Registry.example.com:443"),
            "registry.example.com"
        );
        assert_eq!(
            host_port("registry.example.com:5050/acme/api"),
            "registry.example.com:5050"
        );
    }
}
