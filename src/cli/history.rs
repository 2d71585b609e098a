//! `regwarden history`: the journal, newest first.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::{Failure, OutputFormat, load_config, open_store, print_json};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this binding.
    #[arg(long, env = "REGWARDEN_BINDING", value_name = "NAME")]
    pub binding: Option<String>,

    /// How many entries, newest first.
    #[arg(long, env = "REGWARDEN_LIMIT", default_value_t = 50)]
    pub limit: u32,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(path: Option<&Path>, args: HistoryArgs) -> Result<(), Failure> {
    let config = load_config(path)?;
    let store = open_store(&config).await?;
    let entries = store
        .history(args.binding.as_deref(), i64::from(args.limit))
        .await
        .context("cannot read the journal")
        .map_err(Failure::failed)?;
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct History<'a> {
                entries: &'a [crate::store::JournalEntry],
            }
            print_json(&History { entries: &entries })
        }
        OutputFormat::Text => {
            for e in &entries {
                let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let token = e
                    .token_id
                    .map(|t| format!(" token {t}"))
                    .unwrap_or_default();
                let fp = e
                    .fingerprint
                    .as_deref()
                    .map(|f| format!(" {f}"))
                    .unwrap_or_default();
                let reason = if e.reason.is_empty() {
                    String::new()
                } else {
                    format!(" {}", e.reason)
                };
                println!(
                    "{at} {} {} {}{token}{fp}{reason}",
                    e.binding, e.step, e.outcome
                );
            }
        }
    }
    Ok(())
}
