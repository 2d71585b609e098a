//! The marker line in a Qovery registry's description. Qovery never returns passwords, so
//! this line is how any process (a fresh one, a CI job with no store) knows which token
//! Qovery holds:
//!
//! `regwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab expires=2027-01-01 retired=41@20261124T103000Z`
//!
//! A named deployment (`reconcile.instance`) adds `instance=<name>`: a registry is kept by one
//! deployment, and another one leaves it alone.
//!
//! `project=<id>` (or `group=<id>`) pins the registry to the GitLab project or group the token
//! belongs to, and `path=<full path>` is that project's path when the token was checked: paths
//! move (renames, transfers, a new project at a freed path), ids do not.
//!
//! `retired` lists the tokens Qovery held before, with the time each was replaced: they stay
//! valid for the grace period from then. Any other regwarden token was never held by Qovery
//! (a rotation that stopped half-way) and can go at once. So the marker alone tells a
//! previous token from an orphan, whatever their creation times.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::credential::Fingerprint;

const PREFIX: &str = "regwarden:";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub binding: String,
    /// The deployment that keeps the registry; empty for the default one.
    pub instance: String,
    pub token_id: u64,
    pub fingerprint: String,
    pub expires: Option<NaiveDate>,
    /// Tokens Qovery held before, and when each was replaced.
    pub retired: Vec<(u64, DateTime<Utc>)>,
    /// The GitLab project or group the token belongs to (absent in markers written before
    /// regwarden pinned them).
    pub pin: Option<Pin>,
    /// The full path of that project or group when the token was checked.
    pub path: Option<String>,
}

/// A GitLab project or group, by id: what a binding is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    Project(u64),
    Group(u64),
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pin::Project(id) => write!(f, "project {id}"),
            Pin::Group(id) => write!(f, "group {id}"),
        }
    }
}

const STAMP: &str = "%Y%m%dT%H%M%SZ";

impl Marker {
    pub fn new(
        binding: &str,
        instance: &str,
        token_id: u64,
        fingerprint: &Fingerprint,
        expires: Option<NaiveDate>,
    ) -> Self {
        Self {
            binding: binding.to_string(),
            instance: instance.to_string(),
            token_id,
            fingerprint: fingerprint.as_str().to_string(),
            expires,
            retired: Vec::new(),
            pin: None,
            path: None,
        }
    }

    /// When token `id` stopped being the one Qovery holds, if it ever was.
    pub fn retired_at(&self, id: u64) -> Option<DateTime<Utc>> {
        self.retired
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, at)| *at)
    }

    pub fn line(&self) -> String {
        let expires = self
            .expires
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "never".into());
        let mut line = format!(
            "{PREFIX} binding={} token_id={} fingerprint={} expires={expires}",
            self.binding, self.token_id, self.fingerprint
        );
        if !self.retired.is_empty() {
            let list: Vec<String> = self
                .retired
                .iter()
                .map(|(id, at)| format!("{id}@{}", at.format(STAMP)))
                .collect();
            line.push_str(&format!(" retired={}", list.join(",")));
        }
        match self.pin {
            Some(Pin::Project(id)) => line.push_str(&format!(" project={id}")),
            Some(Pin::Group(id)) => line.push_str(&format!(" group={id}")),
            None => {}
        }
        if let Some(path) = &self.path {
            line.push_str(&format!(" path={path}"));
        }
        if !self.instance.is_empty() {
            line.push_str(&format!(" instance={}", self.instance));
        }
        line
    }

    /// The marker in a description, if a well-formed one is there.
    pub fn find(description: &str) -> Option<Marker> {
        description
            .lines()
            .find_map(|line| Self::parse(line.trim()))
    }

    fn parse(line: &str) -> Option<Marker> {
        let rest = line.strip_prefix(PREFIX)?;
        let mut binding = None;
        let mut instance = String::new();
        let mut token_id = None;
        let mut fingerprint = None;
        let mut expires = None;
        let mut retired = Vec::new();
        let mut pin = None;
        let mut path = None;
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=')?;
            match k {
                "binding" => binding = Some(v.to_string()),
                "instance" => instance = v.to_string(),
                "token_id" => token_id = v.parse().ok(),
                "fingerprint" => fingerprint = Some(v.to_string()),
                "expires" => expires = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok(),
                "project" => pin = Some(Pin::Project(v.parse().ok()?)),
                "group" => pin = Some(Pin::Group(v.parse().ok()?)),
                "path" if !v.is_empty() => path = Some(v.to_string()),
                "retired" => {
                    retired = v
                        .split(',')
                        .filter_map(|entry| {
                            let (id, at) = entry.split_once('@')?;
                            let at = NaiveDateTime::parse_from_str(at, STAMP).ok()?.and_utc();
                            Some((id.parse().ok()?, at))
                        })
                        .collect();
                }
                _ => {}
            }
        }
        Some(Marker {
            binding: binding?,
            instance,
            token_id: token_id?,
            fingerprint: fingerprint?,
            expires,
            retired,
            pin,
            path,
        })
    }

    /// `description` with its marker line replaced by this one (or added); other lines kept.
    pub fn write_into(&self, description: &str) -> String {
        let mut lines: Vec<String> = description
            .lines()
            .filter(|l| !l.trim().starts_with(PREFIX))
            .map(str::to_string)
            .collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines.push(self.line());
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker {
            binding: "api".into(),
            instance: String::new(),
            token_id: 42,
            fingerprint: "sha256:0123456789ab".into(),
            expires: NaiveDate::from_ymd_opt(2027, 1, 1),
            retired: Vec::new(),
            pin: None,
            path: None,
        }
    }

    #[test]
    fn the_pinned_project_and_its_path_read_back() {
        let m = Marker {
            pin: Some(Pin::Project(12)),
            path: Some("acme/api".into()),
            instance: "ci".into(),
            ..marker()
        };
        assert!(
            m.line().ends_with(" project=12 path=acme/api instance=ci"),
            "{}",
            m.line()
        );
        assert_eq!(Marker::find(&m.line()), Some(m));
        let g = Marker {
            pin: Some(Pin::Group(3)),
            ..marker()
        };
        assert_eq!(Marker::find(&g.line()).unwrap().pin, Some(Pin::Group(3)));
    }

    #[test]
    fn retired_tokens_read_back_with_their_time() {
        let at = NaiveDateTime::parse_from_str("20261124T103000Z", STAMP)
            .unwrap()
            .and_utc();
        let m = Marker {
            retired: vec![(41, at), (40, at)],
            ..marker()
        };
        assert!(
            m.line()
                .ends_with(" retired=41@20261124T103000Z,40@20261124T103000Z")
        );
        let back = Marker::find(&m.line()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.retired_at(40), Some(at));
        assert_eq!(back.retired_at(42), None);
    }

    #[test]
    fn the_line_reads_back() {
        let m = marker();
        assert_eq!(
            m.line(),
            "regwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab expires=2027-01-01"
        );
        assert_eq!(Marker::find(&m.line()), Some(m));
    }

    #[test]
    fn a_named_instance_reads_back() {
        let m = Marker {
            instance: "ci".into(),
            ..marker()
        };
        assert!(m.line().ends_with(" instance=ci"), "{}", m.line());
        assert_eq!(Marker::find(&m.line()), Some(m));
    }

    #[test]
    fn other_lines_of_the_description_are_kept() {
        let written = marker().write_into(
            "Pulls for acme.\nregwarden: binding=api token_id=1 fingerprint=x expires=never\n",
        );
        assert_eq!(
            written,
            "Pulls for acme.\nregwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab expires=2027-01-01"
        );
        assert_eq!(Marker::find(&written).unwrap().token_id, 42);
    }

    #[test]
    fn a_damaged_marker_is_no_marker() {
        assert_eq!(
            Marker::find("regwarden: binding=api token_id=x fingerprint=y"),
            None
        );
        assert_eq!(Marker::find("regwarden: token_id=3"), None);
        assert_eq!(Marker::find("managed by hand"), None);
        assert_eq!(Marker::find(""), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_marker() -> impl Strategy<Value = Marker> {
        let word = "[a-z0-9][a-z0-9_-]{0,20}";
        let time = (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap());
        (
            word,
            prop_oneof![Just(String::new()), "[a-z0-9]{1,8}"],
            any::<u64>(),
            "sha256:[0-9a-f]{12}",
            proptest::option::of((2000i32..2100, 1u32..13, 1u32..29)),
            proptest::collection::vec((any::<u64>(), time), 0..4),
            proptest::option::of(prop_oneof![
                any::<u64>().prop_map(Pin::Project),
                any::<u64>().prop_map(Pin::Group)
            ]),
            proptest::option::of("[a-z0-9][a-z0-9_./-]{0,30}"),
        )
            .prop_map(
                |(binding, instance, token_id, fingerprint, expires, retired, pin, path)| Marker {
                    binding,
                    instance,
                    token_id,
                    fingerprint,
                    expires: expires.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
                    retired,
                    pin,
                    path,
                },
            )
    }

    proptest! {
        #[test]
        fn a_marker_reads_back_from_its_line(m in any_marker()) {
            prop_assert_eq!(Marker::find(&m.line()), Some(m));
        }

        #[test]
        fn writing_a_marker_keeps_other_lines_and_one_marker(
            m in any_marker(),
            other in proptest::collection::vec("[^\r\n]{0,30}", 0..4),
        ) {
            let description = other.join("\n");
            let written = m.write_into(&description);
            prop_assert_eq!(Marker::find(&written), Some(m.clone()));
            let markers = written.lines().filter(|l| l.trim().starts_with(PREFIX)).count();
            prop_assert_eq!(markers, 1);
            for line in other.iter().filter(|l| !l.trim().starts_with(PREFIX) && !l.trim().is_empty()) {
                prop_assert!(written.lines().any(|w| w == line), "{:?} lost", line);
            }
        }
    }
}
