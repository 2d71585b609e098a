use super::*;

const MINIMAL: &str = r#"
[gitlab]
url = "https://gitlab.com"

[qovery]
organization_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml")
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(_) => panic!("the configuration was accepted:\n{text}"),
        Err(e) => e.problems,
    }
}

#[test]
fn the_shipped_example_parses() {
    let text = include_str!("../../regwarden.example.toml");
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.bindings.len(), 3);
    assert_eq!(config.bindings[0].name, "api");
    assert_eq!(
        config.auto_binds[0].qovery_registry,
        "gitlab-{project_path_slug}"
    );
    let platform = config.bindings[1].policy.apply_to(&config.defaults);
    assert_eq!(
        platform.scopes,
        vec![Scope::ReadRegistry, Scope::WriteRegistry]
    );
    assert_eq!(platform.lifetime, "90d".parse().unwrap());
    assert_eq!(platform.grace_period, config.defaults.grace_period);
    let billing = config.bindings[2].policy.apply_to(&config.defaults);
    assert_eq!(billing.credential, CredentialKind::ServiceAccount);
    assert_eq!(billing.service_account.as_deref(), Some("regwarden-pull"));
}

#[test]
fn a_minimal_file_takes_documented_defaults() {
    let config = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.gitlab.token_env, "GITLAB_TOKEN");
    assert_eq!(config.qovery.token_env, "QOVERY_API_TOKEN");
    assert_eq!(config.qovery.url.to_string(), "https://api.qovery.com");
    assert_eq!(
        config.configured_registry_url().unwrap().as_str(),
        "https://registry.gitlab.com/"
    );
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.max_body, ByteSize(1 << 20));
    assert!(config.store.url.is_none());
    use secrecy::ExposeSecret;
    assert_eq!(
        config.store.resolve().unwrap().expose_secret(),
        "sqlite://regwarden.db"
    );
    assert_eq!(config.defaults, Policy::default());
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let text = MINIMAL.replace("[qovery]", "[qovery]\norganisation = \"x\"");
    let p = &problems(&text)[0];
    assert!(p.message.contains("unknown field `organisation`"), "{p:?}");
    assert_eq!(p.line, Some(6), "{p:?}");
    assert!(p.key.starts_with("qovery"), "{p:?}");
}

#[test]
fn a_bad_duration_is_named_with_its_key_and_line() {
    let text = format!("{MINIMAL}\n[defaults]\nlifetime = \"thirty days\"\n");
    let p = &problems(&text)[0];
    assert_eq!(p.key, "defaults.lifetime");
    assert_eq!(p.line, Some(9));
    assert!(
        p.message.contains("invalid duration \"thirty days\""),
        "{p:?}"
    );
}

#[test]
fn a_wrong_type_names_the_key() {
    let text = format!("{MINIMAL}\n[server]\nrequire_signature = \"yes\"\n");
    let p = &problems(&text)[0];
    assert_eq!(p.key, "server.require_signature");
    assert_eq!(p.line, Some(9));
}

#[test]
fn broken_toml_reports_the_line() {
    let p = &problems("[gitlab]\nurl = \"https://gitlab.com\n")[0];
    assert!(p.message.starts_with("not valid TOML"), "{p:?}");
    assert_eq!(p.line, Some(2));
}

#[test]
fn duplicate_binding_names_are_refused_at_the_second() {
    let text = format!(
        r#"{MINIMAL}
[[binding]]
name = "api"
project = "acme/api"
qovery_registry = "one"

[[binding]]
name = "api"
project = "acme/web"
qovery_registry = "two"
"#
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "binding[1].name");
    assert_eq!(p[0].line, Some(14));
    assert!(
        p[0].message.contains("duplicate binding name \"api\""),
        "{p:?}"
    );
}

#[test]
fn a_binding_needs_exactly_one_of_project_and_group() {
    let both = format!(
        "{MINIMAL}\n[[binding]]\nname = \"a\"\nproject = \"x/y\"\ngroup = \"x\"\nqovery_registry = \"r\"\n"
    );
    let p = problems(&both);
    assert_eq!(p[0].key, "binding[0]");
    assert!(p[0].message.contains("both `project` and `group`"), "{p:?}");
    assert_eq!(p[0].line, Some(8));

    let neither = format!("{MINIMAL}\n[[binding]]\nname = \"a\"\nqovery_registry = \"r\"\n");
    let p = problems(&neither);
    assert!(
        p[0].message.contains("neither `project` nor `group`"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{MINIMAL}\n[defaults]\nrotate_before = \"40d\"\n\n[[binding]]\nname = \"Bad Name\"\ngroup = \"acme\"\nqovery_registry = \"r\"\n"
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert!(
        keys.contains(&"defaults.rotate_before".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"binding[0].name".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"binding[0]".to_string()),
        "group binding without repository: {keys:?}"
    );
}

#[test]
fn a_self_managed_registry_url_is_optional() {
    // Left out, it is the address GitLab reports for the bound projects (learnt at the first
    // pass: `reconcile::engine::RegistryAddress`).
    let text = MINIMAL.replace("https://gitlab.com", "https://gitlab.example.com");
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.configured_registry_url(), None);
    let given = text.replace(
        "url = \"https://gitlab.example.com\"",
        "url = \"https://gitlab.example.com\"\nregistry_url = \"https://gitlab.example.com:5050\"",
    );
    assert_eq!(
        parse(&given)
            .unwrap()
            .configured_registry_url()
            .unwrap()
            .as_str(),
        "https://gitlab.example.com:5050/"
    );
}

#[test]
fn auto_bind_templates_only_take_known_placeholders() {
    let text = format!(
        "{MINIMAL}\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{{project_slug}}\"\n"
    );
    let p = &problems(&text)[0];
    assert_eq!(p.key, "auto_bind[0].qovery_registry");
    assert!(
        p.message.contains("unknown placeholder {project_slug}"),
        "{p:?}"
    );
}

#[test]
fn scopes_are_checked_against_what_gitlab_offers() {
    let text = format!("{MINIMAL}\n[defaults]\nscopes = [\"read_registry\", \"api\"]\n");
    let p = &problems(&text)[0];
    assert_eq!(p.key, "defaults.scopes[1]");
    assert!(p.message.contains("read_registry"), "{p:?}");
}

#[test]
fn the_organization_id_must_be_a_uuid() {
    let text = MINIMAL.replace("3c90c3cc-0d44-4b50-8888-8dd25736052a", "acme");
    let p = &problems(&text)[0];
    assert_eq!(p.key, "qovery.organization_id");
    assert!(p.message.contains("expected a UUID"), "{p:?}");
}

#[test]
fn a_store_password_never_appears_in_an_error() {
    let text = format!("{MINIMAL}\n[store]\nurl = \"mysql://u:hunter2@db/x\"\n");
    let e = parse(&text).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("store.url"), "{e}");
}

#[test]
fn errors_render_as_file_line_key_message() {
    let text = format!("{MINIMAL}\n[defaults]\nlifetime = \"x\"\n");
    let e = parse(&text).unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml:9: defaults.lifetime: invalid duration"),
        "{e}"
    );
}

#[test]
fn a_missing_secret_names_the_variable_and_the_file_alternative() {
    let source = SecretSource {
        key: "gitlab.token_env",
        env: "REGWARDEN_TEST_SURELY_UNSET_VARIABLE",
        file: None,
    };
    let e = source.read().unwrap_err().to_string();
    assert!(e.contains("REGWARDEN_TEST_SURELY_UNSET_VARIABLE"), "{e}");
    assert!(e.contains("gitlab.token_file"), "{e}");
}

#[test]
fn a_secret_file_wins_and_is_trimmed() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "glpat-abc\n").unwrap();
    let source = SecretSource {
        key: "gitlab.token_env",
        env: "PATH",
        file: Some(&path),
    };
    assert_eq!(source.read().unwrap().expose_secret(), "glpat-abc");
}

#[test]
fn the_qovery_registry_kind_follows_the_registry_unless_set() {
    use crate::qovery::RegistryKind;
    let kind = |c: &Config| {
        c.qovery
            .registry_kind
            .resolve(&c.configured_registry_url().unwrap())
    };
    let com = parse(MINIMAL).unwrap();
    assert_eq!(kind(&com), RegistryKind::GitlabCr);
    let own = MINIMAL.replace(
        "url = \"https://gitlab.com\"",
        "url = \"https://gitlab.example.com\"\nregistry_url = \"https://registry.example.com\"",
    );
    assert_eq!(kind(&parse(&own).unwrap()), RegistryKind::GenericCr);
    let forced = own.replace("[qovery]", "[qovery]\nregistry_kind = \"GITLAB_CR\"");
    assert_eq!(kind(&parse(&forced).unwrap()), RegistryKind::GitlabCr);
    let bad = own.replace("[qovery]", "[qovery]\nregistry_kind = \"ECR\"");
    let p = &problems(&bad)[0];
    assert_eq!(p.key, "qovery.registry_kind");
    assert!(p.message.contains("GENERIC_CR"), "{p:?}");
}

#[test]
fn plain_http_to_another_host_needs_allow_insecure_http() {
    let text = r#"
[gitlab]
url = "http://gitlab.example.com"
registry_url = "https://registry.example.com"

[qovery]
organization_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
"#;
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "gitlab.url");
    assert!(
        p[0].message.contains("gitlab.allow_insecure_http = true"),
        "{}",
        p[0].message
    );

    let allowed = text.replace("[gitlab]\n", "[gitlab]\nallow_insecure_http = true\n");
    parse(&allowed).unwrap_or_else(|e| panic!("{e}"));

    // Loopback needs no permission (a local proxy, the tests' fakes).
    let local = text
        .replace("http://gitlab.example.com", "http://127.0.0.1:8929")
        .replace("https://registry.example.com", "http://[::1]:5000");
    parse(&local).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_instance_name_is_short_and_plain() {
    let with = |instance: &str| {
        MINIMAL.to_string() + &format!("\n[reconcile]\ninstance = \"{instance}\"\n")
    };
    parse(&with("ci-prod")).unwrap_or_else(|e| panic!("{e}"));
    parse(&with("")).unwrap_or_else(|e| panic!("{e}"));
    for bad in ["CI", "-ci", "ci_prod", "a-very-long-instance-name-of-33-c"] {
        let p = problems(&with(bad));
        assert_eq!(p[0].key, "reconcile.instance", "{bad}");
    }
}

#[test]
fn a_service_account_binding_names_its_account_and_where_it_lives() {
    let ok = format!(
        "{MINIMAL}\n[[binding]]\nname = \"api\"\nproject = \"acme/api\"\nqovery_registry = \"gitlab-acme-api\"\ncredential = \"service_account\"\nservice_account = \"regwarden-pull\"\nservice_account_home = \"project\"\ncreate_service_account = true\n"
    );
    let config = parse(&ok).unwrap_or_else(|e| panic!("{e}"));
    let policy = config.bindings[0].policy.apply_to(&config.defaults);
    assert_eq!(policy.credential, CredentialKind::ServiceAccount);
    assert_eq!(policy.service_account.as_deref(), Some("regwarden-pull"));
    assert_eq!(policy.service_account_home, AccountHome::Project);
    assert!(policy.create_service_account);

    // Without the account's name.
    let nameless = format!("{MINIMAL}\n[defaults]\ncredential = \"service_account\"\n");
    let p = problems(&nameless);
    assert_eq!(p[0].key, "defaults.service_account", "{p:?}");
    assert!(p[0].message.contains("is required"), "{p:?}");

    // A project account for a group binding, and a name that is no GitLab username.
    let wrong = format!(
        "{MINIMAL}\n[[binding]]\nname = \"platform\"\ngroup = \"acme/platform\"\nrepository = \"acme/platform/api\"\nqovery_registry = \"gitlab-platform\"\ncredential = \"service_account\"\nservice_account = \"-bad name\"\nservice_account_home = \"project\"\n"
    );
    let keys: Vec<String> = problems(&wrong).into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "binding[0].service_account_home",
            "binding[0].service_account"
        ]
    );

    // An account named for a deploy-token policy is a mistake worth naming.
    let stray = format!("{MINIMAL}\n[defaults]\nservice_account = \"regwarden-pull\"\n");
    assert_eq!(problems(&stray)[0].key, "defaults.service_account");
}

#[test]
fn one_service_account_username_lives_in_one_home() {
    let binding = |name: &str, project: &str, home: &str| {
        format!(
            "\n[[binding]]\nname = \"{name}\"\nproject = \"{project}\"\nqovery_registry = \"gitlab-{name}\"\ncredential = \"service_account\"\nservice_account = \"regwarden-pull\"\nservice_account_home = \"{home}\"\n"
        )
    };
    // One group account for two projects of one top-level group: fine.
    let shared = format!(
        "{MINIMAL}{}{}",
        binding("api", "acme/api", "group"),
        binding("web", "acme/web", "group")
    );
    parse(&shared).unwrap_or_else(|e| panic!("{e}"));

    // Two top-level groups, or two projects, cannot share a username.
    for (a, b) in [
        (
            binding("api", "acme/api", "group"),
            binding("ops", "other/ops", "group"),
        ),
        (
            binding("api", "acme/api", "project"),
            binding("web", "acme/web", "project"),
        ),
    ] {
        let p = problems(&format!("{MINIMAL}{a}{b}"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "binding[1].service_account");
        assert!(
            p[0].message.contains("a GitLab username is unique"),
            "{p:?}"
        );
    }

    // A rule would need an account per project.
    let rule = format!(
        "{MINIMAL}\n[[auto_bind]]\ngroup = \"acme/services\"\nqovery_registry = \"gitlab-{{project_path_slug}}\"\ncredential = \"service_account\"\nservice_account = \"regwarden-pull\"\nservice_account_home = \"project\"\n"
    );
    let p = problems(&rule);
    assert_eq!(p[0].key, "auto_bind[0].service_account_home", "{p:?}");
}

const TWO_PROJECTS_ONE_ACCOUNT: &str = r#"
[defaults]
credential = "service_account"
service_account = "regwarden-pull"

[[binding]]
name = "api"
project = "acme/api"
qovery_registry = "gitlab-acme-api"

[[binding]]
name = "web"
project = "acme/web"
qovery_registry = "gitlab-acme-web"
"#;

#[test]
fn one_account_for_bindings_of_different_projects_is_warned_about_by_name() {
    let config = parse(&format!("{MINIMAL}{TWO_PROJECTS_ONE_ACCOUNT}")).unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let (key, text) = &warnings[0];
    assert_eq!(key, "binding[0].service_account");
    assert!(
        text.contains("\"api\" (acme/api)")
            && text.contains("\"web\" (acme/web)")
            && text.contains("interchangeable"),
        "{text}"
    );
    // A template gives each binding an account of its own: nothing to warn about.
    let own = TWO_PROJECTS_ONE_ACCOUNT.replace("\"regwarden-pull\"", "\"regwarden-{binding}\"");
    let config = parse(&format!("{MINIMAL}{own}")).unwrap();
    assert!(config.warnings().is_empty());
    let api = crate::reconcile::bindings::explicit(&config);
    assert_eq!(
        api[0].policy.service_account.as_deref(),
        Some("regwarden-api")
    );
    assert_eq!(
        api[1].policy.service_account.as_deref(),
        Some("regwarden-web")
    );
    // So is a rule whose account is one name for all its projects.
    let rule = format!(
        "{MINIMAL}\n[[auto_bind]]\ngroup = \"acme\"\nqovery_registry = \"gitlab-{{project_path_slug}}\"\ncredential = \"service_account\"\nservice_account = \"regwarden-pull\"\n"
    );
    let warnings = parse(&rule).unwrap().warnings();
    assert!(
        warnings[0]
            .1
            .contains("every project of [[auto_bind]] group acme"),
        "{warnings:?}"
    );
}

#[test]
fn write_registry_through_a_shared_account_is_refused_unless_allowed() {
    let pushing = TWO_PROJECTS_ONE_ACCOUNT.replace(
        "name = \"web\"",
        "name = \"web\"\nscopes = [\"read_registry\", \"write_registry\"]",
    );
    let p = problems(&format!("{MINIMAL}{pushing}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "binding[1].scopes");
    assert!(
        p[0].message.contains("allow_shared_write") && p[0].message.contains("{binding}"),
        "{}",
        p[0].message
    );
    let allowed = pushing.replace(
        "name = \"web\"",
        "name = \"web\"\nallow_shared_write = true",
    );
    assert!(parse(&format!("{MINIMAL}{allowed}")).is_ok());
}

#[test]
fn an_account_template_may_only_use_its_placeholders() {
    let p = problems(&format!(
        "{MINIMAL}\n[defaults]\ncredential = \"service_account\"\nservice_account = \"rw-{{project_id}}\"\n"
    ));
    assert_eq!(p[0].key, "defaults.service_account", "{p:?}");
    assert!(
        p[0].message.contains("{binding} or {project_path_slug}"),
        "{}",
        p[0].message
    );
}

#[test]
fn an_api_token_rotated_less_than_a_day_before_expiry_is_refused() {
    let p = problems(&MINIMAL.replace(
        "url = \"https://gitlab.com\"",
        "url = \"https://gitlab.com\"\nown_token_rotate_before = \"12h\"",
    ));
    assert_eq!(p[0].key, "gitlab.own_token_rotate_before", "{p:?}");
    assert!(p[0].message.contains("under a day"), "{}", p[0].message);
}

#[test]
fn the_store_url_may_come_from_a_file_and_a_remote_postgres_without_tls_is_warned_about() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store-url");
    std::fs::write(
        &file,
        "postgres://regwarden:hunter2@db.internal/regwarden\n",
    )
    .unwrap();
    let config = parse(&format!(
        "{MINIMAL}\n[store]\nurl_file = \"{}\"\n",
        file.display()
    ))
    .unwrap();
    let url = config.store.resolve().unwrap();
    assert_eq!(
        url.expose_secret(),
        "postgres://regwarden:hunter2@db.internal/regwarden"
    );
    let warning = StoreConfig::warning(url.expose_secret()).unwrap();
    assert!(
        warning.contains("sslmode=verify-full") && !warning.contains("hunter2"),
        "{warning}"
    );
    assert!(StoreConfig::warning("postgres://u@db.internal/r?sslmode=verify-full").is_none());
    assert!(StoreConfig::warning("postgres://u@127.0.0.1/r").is_none());
    assert!(StoreConfig::warning("sqlite://regwarden.db").is_none());
    // One source only, and what a file holds is checked as store.url is.
    let p = problems(&format!(
        "{MINIMAL}\n[store]\nurl = \"sqlite://x.db\"\nurl_env = \"STORE_URL\"\n"
    ));
    assert_eq!(p[0].key, "store.url", "{p:?}");
    std::fs::write(&file, "mysql://u:hunter2@db/x").unwrap();
    let e = config.store.resolve().unwrap_err().to_string();
    assert!(
        e.contains("unsupported store URL") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn a_relative_sqlite_path_is_anchored_and_nothing_else_is() {
    let base = Path::new("/etc/regwarden");
    let anchor = |url: &str| super::anchor_sqlite(url, base);
    assert_eq!(
        anchor("sqlite://regwarden.db").as_deref(),
        Some("sqlite:///etc/regwarden/regwarden.db")
    );
    assert_eq!(
        anchor("sqlite:state/r.db?mode=rwc").as_deref(),
        Some("sqlite:///etc/regwarden/state/r.db?mode=rwc")
    );
    for kept in [
        "sqlite:///var/lib/regwarden/r.db",
        "sqlite::memory:",
        "sqlite://x.db?mode=memory",
        "postgres://regwarden@db/regwarden",
    ] {
        assert_eq!(anchor(kept), None, "{kept}");
    }
}
