//! A Qovery container registry as regwarden sees it, and what a write puts in it.

use std::fmt;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::credential::Credential;
use crate::marker::Marker;

/// `ContainerRegistryKindEnum`. Qovery adds kinds over time: an unknown one is kept as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    GitlabCr,
    GenericCr,
    Other(String),
}

impl RegistryKind {
    /// `GITLAB_CR` only for gitlab.com's registry (Qovery's spec says its URL "must be
    /// https://registry.gitlab.com"); `GENERIC_CR` with the URL for a self-managed one.
    pub fn for_registry(url: &Url) -> Self {
        if url.host_str() == Some("registry.gitlab.com") {
            RegistryKind::GitlabCr
        } else {
            RegistryKind::GenericCr
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RegistryKind::GitlabCr => "GITLAB_CR",
            RegistryKind::GenericCr => "GENERIC_CR",
            RegistryKind::Other(s) => s,
        }
    }
}

impl fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RegistryKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RegistryKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "GITLAB_CR" => RegistryKind::GitlabCr,
            "GENERIC_CR" => RegistryKind::GenericCr,
            _ => RegistryKind::Other(s),
        })
    }
}

/// A Qovery container registry: never with its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub id: String,
    pub name: String,
    pub kind: RegistryKind,
    pub url: Option<String>,
    /// The username Qovery holds; the password never comes back.
    pub username: Option<String>,
    /// regwarden's marker line in the description: which token Qovery holds, for which
    /// binding and deployment (`src/marker.rs`).
    pub marker: Option<Marker>,
    /// The whole description. A write keeps what people wrote around the marker.
    pub description: String,
    /// The Qovery cluster that owns the registry, for one Qovery made for itself: regwarden
    /// never changes those.
    pub cluster: Option<String>,
    /// How many services deploy from it, when Qovery says.
    pub services: Option<u64>,
}

impl Registry {
    pub fn is_cluster_owned(&self) -> bool {
        self.cluster.is_some()
    }

    /// The registry's URL as Qovery uses it: a `GITLAB_CR` without one is gitlab.com's
    /// (Qovery's default for that kind).
    fn effective_url(&self) -> Option<Url> {
        match (&self.url, &self.kind) {
            (Some(u), _) => Url::parse(u.trim()).ok(),
            (None, RegistryKind::GitlabCr) => Url::parse("https://registry.gitlab.com").ok(),
            (None, _) => None,
        }
    }

    /// Whether this Qovery registry points at the registry at `url`: the same scheme, host and
    /// port (a path after them is ignored).
    pub fn points_at(&self, url: &Url) -> bool {
        self.effective_url().is_some_and(|u| {
            u.scheme() == url.scheme()
                && u.host_str().map(str::to_ascii_lowercase)
                    == url.host_str().map(str::to_ascii_lowercase)
                && u.port_or_known_default() == url.port_or_known_default()
        })
    }

    /// The registry's URL for messages.
    pub fn url_label(&self) -> String {
        match self.effective_url() {
            Some(u) => u.as_str().trim_end_matches('/').to_string(),
            None => "no URL".into(),
        }
    }
}

/// What one write of a registry puts there: the credential, and the marker naming it. The
/// rest of an existing description is kept.
#[derive(Clone, Copy)]
pub struct RegistryWrite<'a> {
    pub name: &'a str,
    pub kind: &'a RegistryKind,
    pub url: &'a Url,
    pub credential: &'a Credential,
    pub marker: &'a Marker,
}

impl fmt::Debug for RegistryWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryWrite")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_str())
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(kind: RegistryKind, url: Option<&str>) -> Registry {
        Registry {
            id: "r".into(),
            name: "r".into(),
            kind,
            url: url.map(str::to_string),
            username: None,
            marker: None,
            description: String::new(),
            cluster: None,
            services: None,
        }
    }

    #[test]
    fn a_registry_points_at_a_url_by_scheme_host_and_port() {
        let own = Url::parse("https://registry.example.com:5050").unwrap();
        let com = Url::parse("https://registry.gitlab.com").unwrap();
        let generic = |u| registry(RegistryKind::GenericCr, Some(u));
        assert!(generic("https://Registry.example.com:5050/").points_at(&own));
        assert!(
            !generic("https://registry.example.com").points_at(&own),
            "no port"
        );
        assert!(!generic("https://gitlab.example.com:5050").points_at(&own));
        assert!(!generic("http://registry.example.com:5050").points_at(&own));
        assert!(!generic("not a url").points_at(&own));
        assert!(registry(RegistryKind::GitlabCr, None).points_at(&com));
        assert!(!registry(RegistryKind::GenericCr, None).points_at(&own));
        assert!(
            !registry(
                RegistryKind::Other("DOCKER_HUB".into()),
                Some("https://docker.io")
            )
            .points_at(&com)
        );
    }

    #[test]
    fn gitlab_com_gets_gitlab_cr_and_self_managed_gets_generic_cr() {
        let com = Url::parse("https://registry.gitlab.com").unwrap();
        let own = Url::parse("https://registry.example.com:5050").unwrap();
        assert_eq!(RegistryKind::for_registry(&com), RegistryKind::GitlabCr);
        assert_eq!(RegistryKind::for_registry(&own), RegistryKind::GenericCr);
    }
}
