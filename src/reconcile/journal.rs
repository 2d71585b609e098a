//! The audit journal of one binding's work in a pass: a line per step, with the token's id and
//! fingerprint, never its secret (invariant I5). The store is not the truth: a line that cannot
//! be written is logged, and the work goes on.

use crate::store::{JournalEntry, Store, now_ms};

/// Where one binding's steps are written, grouped under one rotation id.
pub(super) struct Journal<'a> {
    pub store: Option<&'a Store>,
    pub binding: &'a str,
    pub rotation: String,
}

impl<'a> Journal<'a> {
    pub fn new(store: Option<&'a Store>, binding: &'a str) -> Self {
        Self {
            store,
            binding,
            rotation: format!("{binding}-{}", now_ms()),
        }
    }

    /// One step: its name, outcome and reason, and the token it concerns as its id and
    /// fingerprint (empty when unknown).
    pub async fn step(&self, step: &str, outcome: &str, reason: &str, token: Option<(u64, &str)>) {
        let token_id = token.map(|(id, _)| id);
        let fingerprint = token.map(|(_, fp)| fp).filter(|fp| !fp.is_empty());
        tracing::info!(step, outcome, token_id, reason, "rotation step");
        let Some(store) = self.store else { return };
        let entry = JournalEntry {
            at_ms: now_ms(),
            binding: self.binding.to_string(),
            rotation: Some(self.rotation.clone()),
            step: step.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            token_id: token_id.map(|t| t as i64),
            fingerprint: fingerprint.map(str::to_string),
        };
        if let Err(e) = store.record(&entry).await {
            tracing::warn!(error = %e, "cannot write the journal");
        }
    }
}
