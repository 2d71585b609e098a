//! `regwarden reconcile`: one pass over the bindings, and its report.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::{Failure, OutputFormat, engine, load_config, print_json};
use crate::reconcile::{Force, PassOptions, bindings};

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub selection: super::BindingSelection,

    /// Print the plan and write nothing anywhere (GitLab, Qovery, the store).
    #[arg(long, env = "REGWARDEN_DRY_RUN")]
    pub dry_run: bool,

    /// Rotate even bindings whose token is not due.
    #[arg(long, env = "REGWARDEN_FORCE")]
    pub force: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(path: Option<&Path>, args: ReconcileArgs) -> Result<(), Failure> {
    let config = load_config(path)?;
    let engine = engine(&config, args.dry_run).await?;
    // The API token first: a rotated one is in its file before anything else uses GitLab.
    let own = crate::own_token::keep_alive(
        &config.gitlab,
        &engine.gitlab,
        engine.store.as_ref(),
        config.reconcile.lease_ttl.0,
    )
    .await;
    let api_token = crate::own_token::Report::of(&own);
    api_token.record(engine.store.as_ref()).await;
    match &own {
        Err(e) if e.is_fatal() => {
            tracing::error!(status = api_token.status, "{e}");
            return Err(Failure::failed(anyhow::Error::new(own.unwrap_err())));
        }
        Err(e) => {
            tracing::error!(status = api_token.status, "{e}");
            eprintln!("error: {}", crate::outbound::error_chain(e));
        }
        Ok(crate::own_token::OwnToken::Expiring { .. }) => {
            let message = api_token.message.as_deref().unwrap_or_default();
            tracing::warn!("{message}");
            eprintln!("warning: {message}");
        }
        Ok(crate::own_token::OwnToken::Rotated { .. }) => {
            let message = api_token.message.as_deref().unwrap_or_default();
            tracing::info!("{message}");
            eprintln!("regwarden: {message}");
        }
        Ok(_) => {}
    }
    let resolved = if args.selection.bindings.is_empty() {
        bindings::resolve(&config, &engine.gitlab).await
    } else {
        let resolved =
            bindings::resolve_named(&config, &engine.gitlab, &args.selection.bindings).await;
        let unknown: Vec<&String> = args
            .selection
            .bindings
            .iter()
            .filter(|n| !resolved.bindings.iter().any(|b| &&b.name == n))
            .collect();
        if !unknown.is_empty() {
            let names = unknown
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            if !resolved.failed_rules.is_empty() {
                // The name may belong to a rule that could not be expanded: not a usage error.
                for rule in &resolved.failed_rules {
                    eprintln!("error: [[auto_bind]] group {}: {}", rule.group, rule.error);
                }
                return Err(Failure::failed(anyhow::anyhow!(
                    "no binding named {names} was found, and the [[auto_bind]] rules above could not be expanded"
                )));
            }
            let all = bindings::resolve(&config, &engine.gitlab).await;
            let known: Vec<&str> = all.bindings.iter().map(|b| b.name.as_str()).collect();
            return Err(Failure::usage(format!(
                "no binding named {names}: the configuration has {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        resolved
    };
    let options = PassOptions {
        dry_run: args.dry_run,
        force: if args.force { Force::Always } else { Force::No },
        // Every binding the configuration makes, so a registry none names is stranded.
        complete: args.selection.bindings.is_empty() && resolved.failed_rules.is_empty(),
        checklist: true,
    };
    let pass = engine.pass(&resolved.bindings, options).await;
    let reports = pass.bindings;
    let failed = reports.iter().filter(|r| r.outcome.is_failure()).count()
        + resolved.failed_rules.len()
        + usize::from(api_token.failed());
    match args.output {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Pass<'a> {
                dry_run: bool,
                ok: bool,
                bindings: &'a [crate::reconcile::BindingReport],
                /// `[[auto_bind]]` rules that could not be expanded.
                failed_rules: &'a [bindings::RuleFailure],
                /// regwarden's own GitLab API token.
                api_token: &'a crate::own_token::Report,
                /// The self-managed GitLab checklist of the registry (a report: it does not
                /// change the exit code).
                checklist: &'a Option<crate::checklist::Outcome>,
            }
            print_json(&Pass {
                checklist: &pass.checklist,
                api_token: &api_token,
                dry_run: args.dry_run,
                ok: failed == 0,
                bindings: &reports,
                failed_rules: &resolved.failed_rules,
            });
        }
        OutputFormat::Text => {
            for r in &reports {
                let outcome = serde_json::to_value(r.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let held = r
                    .held
                    .as_ref()
                    .map(|h| {
                        let expires = h
                            .expires
                            .map(|d| format!(", expires {d}"))
                            .unwrap_or_default();
                        format!(
                            " (Qovery holds token {} {}{expires})",
                            h.token_id, h.fingerprint
                        )
                    })
                    .unwrap_or_default();
                println!("{}: {outcome}{held}", r.binding);
                for action in &r.actions {
                    println!("  {action}");
                }
                if let Some(e) = &r.error {
                    println!("  error: {e}");
                }
            }
            for rule in &resolved.failed_rules {
                println!("auto_bind {}: failed", rule.group);
                println!("  error: {}", rule.error);
            }
            if reports.is_empty() && resolved.failed_rules.is_empty() {
                println!("no bindings to reconcile");
            }
            if let Some(checklist) = &pass.checklist {
                print_checklist(checklist);
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

/// The checklist in a pass's text output: one line when every item holds, else the items that
/// do not (a warning holds, with a remark).
fn print_checklist(checklist: &crate::checklist::Outcome) {
    use crate::checklist::Status;
    let host = checklist.host().unwrap_or_else(|| "unknown".into());
    let remarks: Vec<_> = checklist
        .findings
        .iter()
        .filter(|f| f.status != Status::Ok)
        .collect();
    if remarks.is_empty() {
        println!(
            "registry {host}: the self-managed GitLab checklist holds ({} item(s))",
            checklist.findings.len()
        );
        return;
    }
    println!("registry {host}: the self-managed GitLab checklist (config check --online):");
    for f in remarks {
        let label = if f.status == Status::Fail {
            "FAIL"
        } else {
            "warn"
        };
        println!(
            "  {label} {} {}: {}",
            f.check.as_str(),
            f.subject,
            f.message
        );
    }
}
