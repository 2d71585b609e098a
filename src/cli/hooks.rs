//! `regwarden hooks sync`: the webhooks regwarden keeps in GitLab (`crate::hooks`).

use std::path::Path;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Failure, OutputFormat, engine, load_config, print_json};
use crate::hooks::{self, Outcome, Secrets};

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Make sure each bound project has a project hook, and each group binding and
    /// [[auto_bind]] group a group hook, at <server.public_url>/webhooks/gitlab, with the
    /// events regwarden acts on and the secret it verifies. Hooks at other URLs are left
    /// alone; a second run changes nothing.
    ///
    /// Exit codes: 0 every hook is there and GitLab sends it deliveries; 1 a hook could not be
    /// made, GitLab disabled one after failures, or one has no secret regwarden verifies;
    /// 2 bad usage or configuration (no server.public_url, no webhook secret).
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Say what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Give every hook the current secrets (the first of server.signing_tokens_env and of
    /// server.secret_tokens_env) even where GitLab shows some present: the step of a secret
    /// rotation, since GitLab never shows which secret a hook holds.
    #[arg(long)]
    pub resend_secrets: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(path: Option<&Path>, command: HooksCommand) -> Result<(), Failure> {
    let HooksCommand::Sync(args) = command;
    let config = load_config(path)?;
    let url = hooks::hook_url(&config).map_err(Failure::usage)?;
    let secrets = Secrets::from_config(&config).map_err(Failure::usage)?;
    // No store: hooks are GitLab's state alone.
    let engine = engine(&config, true).await?;
    let targets = hooks::targets(&config);
    let options = hooks::Options {
        dry_run: args.dry_run,
        resend_secrets: args.resend_secrets,
    };
    let outcomes = hooks::sync(&engine.gitlab, &url, &secrets, &targets, options).await;
    let ok = !outcomes.iter().any(Outcome::failed);
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Report<'a> {
                ok: bool,
                url: &'a str,
                dry_run: bool,
                hooks: &'a [Outcome],
            }
            print_json(&Report {
                ok,
                url: &url,
                dry_run: args.dry_run,
                hooks: &outcomes,
            });
        }
        OutputFormat::Text => {
            if outcomes.is_empty() {
                println!("no binding or [[auto_bind]] rule: no hook to keep");
            }
            for o in &outcomes {
                println!("{}", line(o, args.dry_run));
            }
        }
    }
    if ok { Ok(()) } else { Err(Failure::Reported) }
}

/// `project acme/api (binding api): hook 12 created`.
fn line(o: &Outcome, dry_run: bool) -> String {
    let mut text = format!(
        "{} {} ({})",
        o.kind.as_str(),
        o.path,
        o.needed_by.join(", ")
    );
    let action = o.action.replace('_', " ");
    match o.hook_id {
        Some(id) => text.push_str(&format!(": hook {id} {action}")),
        None if o.action == "would_create" => text.push_str(": hook would be created"),
        None => text.push_str(&format!(": {action}")),
    }
    if !o.changed.is_empty() {
        text.push_str(&format!(" ({})", o.changed.join(", ")));
    }
    if !o.duplicates.is_empty() {
        let ids: Vec<String> = o.duplicates.iter().map(u64::to_string).collect();
        let done = if dry_run {
            "would be removed"
        } else {
            "removed"
        };
        text.push_str(&format!("; duplicate hooks {} {done}", ids.join(", ")));
    }
    if let Some(d) = &o.disabled {
        text.push_str(&format!("; {}", d.alert_status.replace('_', " ")));
        if let Some(until) = &d.disabled_until {
            text.push_str(&format!(" until {until}"));
        }
    }
    if let Some(problem) = &o.problem {
        text.push_str(&format!("\n  {problem}"));
    }
    text
}
