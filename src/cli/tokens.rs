//! `regwarden tokens`: the inventory of the tokens the bindings depend on, and a page for
//! a person when a token Qovery holds, which regwarden does not manage, is about to expire.

use std::path::Path;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::{Failure, OutputFormat, engine, load_config, print_json};
use crate::config::HumanDuration;
use crate::inventory::{self, Entry};
use crate::reconcile::bindings;

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub selection: super::BindingSelection,

    /// Only tokens that expire within this (e.g. 30d). Exit 1 when one of them is held by
    /// Qovery and not managed by regwarden: nobody will renew it.
    #[arg(long, env = "REGWARDEN_WITHIN", value_name = "DURATION")]
    pub within: Option<HumanDuration>,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(path: Option<&Path>, args: TokensArgs) -> Result<(), Failure> {
    let config = load_config(path)?;
    // Read-only: no store needed.
    let engine = engine(&config, true).await?;
    let resolved = if args.selection.bindings.is_empty() {
        bindings::resolve(&config, &engine.gitlab).await
    } else {
        bindings::resolve_named(&config, &engine.gitlab, &args.selection.bindings).await
    };
    let complete = args.selection.bindings.is_empty() && resolved.failed_rules.is_empty();
    let mut inventory = inventory::collect(&engine, &resolved.bindings, complete).await;
    for rule in &resolved.failed_rules {
        inventory.gaps.push(inventory::Gap {
            binding: format!("auto_bind {}", rule.group),
            message: rule.error.clone(),
        });
    }
    let now = Utc::now();
    let horizon = args
        .within
        .map(|w| now + chrono::Duration::seconds(w.0.as_secs().min(i64::MAX as u64) as i64));
    if let Some(h) = horizon {
        // A credential Qovery holds whose expiry regwarden cannot see stays: it may expire
        // any day.
        inventory
            .tokens
            .retain(|t| t.expires_at.is_some_and(|e| e <= h) || t.kind == inventory::Kind::Unknown);
    }
    // Whose expiry pages a person: Qovery depends on it and nothing will renew it.
    let unattended: Vec<&Entry> = if horizon.is_some() {
        inventory
            .tokens
            .iter()
            .filter(|t| t.held_by.is_some() && !t.managed)
            .collect()
    } else {
        Vec::new()
    };
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Report<'a> {
                ok: bool,
                tokens: &'a [Entry],
                gaps: &'a [inventory::Gap],
                stranded: &'a [crate::reconcile::engine::Stranded],
            }
            print_json(&Report {
                ok: unattended.is_empty()
                    && inventory.gaps.is_empty()
                    && inventory.stranded.is_empty(),
                tokens: &inventory.tokens,
                gaps: &inventory.gaps,
                stranded: &inventory.stranded,
            });
        }
        OutputFormat::Text => {
            for t in &inventory.tokens {
                println!("{}", line(t));
            }
            if inventory.tokens.is_empty() {
                println!("no tokens");
            }
            for g in &inventory.gaps {
                let who = if g.binding.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", g.binding)
                };
                println!("gap: {who}{}", g.message);
            }
            for s in &inventory.stranded {
                println!("stranded: {}", s.message());
            }
        }
    }
    for t in &unattended {
        eprintln!(
            "error: Qovery registry {:?} holds {} {}, which regwarden does not manage, and it expires {}: the next reconcile pass takes the registry over with a token of regwarden's own, or renew it by hand",
            t.held_by.as_deref().unwrap_or_default(),
            t.kind.as_str(),
            t.name,
            t.expires_at
                .map(|e| e.format("on %Y-%m-%d").to_string())
                .unwrap_or_else(|| "at a time regwarden cannot see".into())
        );
    }
    if unattended.is_empty() && inventory.gaps.is_empty() && inventory.stranded.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

/// One token, as a person reads it.
fn line(t: &Entry) -> String {
    let binding = if t.binding.is_empty() {
        "(regwarden)"
    } else {
        &t.binding
    };
    let id = t.id.map(|i| format!(" {i}")).unwrap_or_default();
    // Names and usernames are what GitLab and Qovery hold: anyone with access there chose them.
    let user = t
        .username
        .as_deref()
        .map(|u| format!(" user {}", crate::outbound::printable(u)))
        .unwrap_or_default();
    let expires = match (t.expires_at, t.kind) {
        (Some(e), _) => e.format("%Y-%m-%d").to_string(),
        (None, inventory::Kind::Unknown) => "unknown".into(),
        (None, _) => "never".into(),
    };
    let managed = if t.managed { "managed" } else { "not managed" };
    let held = t
        .held_by
        .as_deref()
        .map(|r| format!(", held by Qovery registry {r:?}"))
        .unwrap_or_default();
    format!(
        "{binding}: {}{id} {:?}{user} [{}] expires {expires}, {managed}{held}",
        t.kind.as_str(),
        t.name,
        t.scopes.join(", ")
    )
}
