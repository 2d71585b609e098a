//! `regwarden check`: whether a credential really pulls (or pushes) a repository, through the
//! registry's own token authentication.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;
use serde::Serialize;

use super::{Failure, OutputFormat, print_json};
use crate::config::{HumanDuration, Url};
use crate::credential::Credential;
use crate::registry::{self, Access, CredentialCheck, Outcome};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Registry URL, e.g. https://registry.gitlab.com (https:// is assumed without a scheme).
    #[arg(long, env = "REGWARDEN_REGISTRY", value_name = "URL")]
    pub registry: String,

    /// Repository path inside the registry, e.g. acme/api.
    #[arg(long, env = "REGWARDEN_REPOSITORY", value_name = "PATH")]
    pub repository: String,

    /// Username of the credential, e.g. gitlab+deploy-token-42.
    #[arg(long, env = "REGWARDEN_USERNAME", value_name = "USER")]
    pub username: String,

    /// Read the password (token) from standard input. Without this flag it comes from the
    /// REGWARDEN_PASSWORD environment variable; it is never taken as a flag value.
    #[arg(long, env = "REGWARDEN_PASSWORD_STDIN")]
    pub password_stdin: bool,

    /// What the credential must allow.
    #[arg(long, env = "REGWARDEN_ACCESS", value_enum, default_value_t = Access::Pull)]
    pub access: Access,

    /// PEM file of extra CA certificates to trust (a registry behind a private CA).
    #[arg(long, env = "REGWARDEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Allow an http:// registry on a host other than loopback (the token crosses the
    /// network in clear).
    #[arg(long, env = "REGWARDEN_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// How to print the result.
    #[arg(long, env = "REGWARDEN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Time allowed for each HTTP request.
    #[arg(
        long,
        env = "REGWARDEN_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub timeout: HumanDuration,
}

fn parse_registry_url(raw: &str, allow_insecure_http: bool) -> Result<Url, Failure> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| Failure::usage(format!("--registry {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Failure::usage(format!(
            "--registry {raw:?}: expected an http:// or https:// URL with a host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Failure::usage(
            "--registry must not carry credentials: give the user with --username and the token on standard input",
        ));
    }
    if !allow_insecure_http && let Err(why) = crate::outbound::refuse_cleartext(&url) {
        return Err(Failure::usage(format!(
            "--registry {why}: use https://, or pass --allow-insecure-http"
        )));
    }
    Ok(url)
}

fn read_password(from_stdin: bool) -> Result<SecretString, Failure> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(|e| {
            Failure::usage(format!("cannot read the password from standard input: {e}"))
        })?;
        let password = input.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            return Err(Failure::usage(
                "--password-stdin: standard input held no password",
            ));
        }
        return Ok(SecretString::from(password.to_string()));
    }
    match std::env::var("REGWARDEN_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(SecretString::from(p)),
        _ => Err(Failure::usage(
            "no password: pipe it to --password-stdin or set REGWARDEN_PASSWORD (it is never taken as a flag value)",
        )),
    }
}

pub async fn run(args: CheckArgs) -> Result<(), Failure> {
    let registry = parse_registry_url(&args.registry, args.allow_insecure_http)?;
    let repository = args.repository.trim_matches('/');
    if repository.is_empty() || repository.contains(char::is_whitespace) {
        return Err(Failure::usage(format!(
            "--repository {:?}: give the image path, e.g. acme/api",
            args.repository
        )));
    }
    let password = read_password(args.password_stdin)?;
    let http =
        crate::outbound::client(args.ca_file.as_deref(), args.timeout.0).map_err(Failure::usage)?;
    let credential = Credential::new(args.username, password);
    let report = registry::check(&http, &registry, repository, args.access, &credential).await;
    print_check(&report, args.output);
    match report.outcome {
        Outcome::Ok => Ok(()),
        // The report above says why.
        outcome => Err(Failure::Check {
            outcome,
            message: String::new(),
        }),
    }
}

fn print_check(report: &CredentialCheck, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct WithCode<'a> {
                #[serde(flatten)]
                report: &'a CredentialCheck,
                exit_code: u8,
            }
            print_json(&WithCode {
                report,
                exit_code: report.outcome.exit_code(),
            });
        }
        OutputFormat::Text => {
            println!("{}: {}", report.outcome, report.explanation);
            if let Some(detail) = &report.detail {
                println!("  said: {detail}");
            }
            println!(
                "  registry {} repository {} user {} token {}",
                report.registry, report.repository, report.username, report.fingerprint
            );
        }
    }
}
