//! The marker line in a Qovery registry's description. Qovery never returns passwords, so
//! this line is how any process (a fresh one, a CI job with no store) knows which token
//! Qovery holds:
//!
//! `regwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab expires=2027-01-01`

use chrono::NaiveDate;

use crate::credential::Fingerprint;

const PREFIX: &str = "regwarden:";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub binding: String,
    pub token_id: u64,
    pub fingerprint: String,
    pub expires: Option<NaiveDate>,
}

impl Marker {
    pub fn new(
        binding: &str,
        token_id: u64,
        fingerprint: &Fingerprint,
        expires: Option<NaiveDate>,
    ) -> Self {
        Self {
            binding: binding.to_string(),
            token_id,
            fingerprint: fingerprint.as_str().to_string(),
            expires,
        }
    }

    pub fn line(&self) -> String {
        let expires = self
            .expires
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "never".into());
        format!(
            "{PREFIX} binding={} token_id={} fingerprint={} expires={expires}",
            self.binding, self.token_id, self.fingerprint
        )
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
        let mut token_id = None;
        let mut fingerprint = None;
        let mut expires = None;
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=')?;
            match k {
                "binding" => binding = Some(v.to_string()),
                "token_id" => token_id = v.parse().ok(),
                "fingerprint" => fingerprint = Some(v.to_string()),
                "expires" => expires = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok(),
                _ => {}
            }
        }
        Some(Marker {
            binding: binding?,
            token_id: token_id?,
            fingerprint: fingerprint?,
            expires,
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
            token_id: 42,
            fingerprint: "sha256:0123456789ab".into(),
            expires: NaiveDate::from_ymd_opt(2027, 1, 1),
        }
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
