//! Every real GitLab payload in `shared/fixtures/gitlab-webhooks/` is parsed into regwarden's
//! own events and compared with a reviewed snapshot (`tests/snapshots/`), the ignored ones
//! included.

use std::path::PathBuf;

use regwarden::gitlab::events::parse;

/// Each fixture and the `X-Gitlab-Event` header GitLab sends with it (the fixtures' README).
const FIXTURES: &[(&str, &str)] = &[
    (
        "resource_access_token_project.json",
        "Resource Access Token Hook",
    ),
    (
        "resource_deploy_token_project.json",
        "Resource Deploy Token Hook",
    ),
    ("project_create_group_hook.json", "Project Hook"),
    ("project_destroy_group_hook.json", "Project Hook"),
    ("member_add_to_group_group_hook.json", "Member Hook"),
    ("member_remove_from_group_group_hook.json", "Member Hook"),
    ("project_create_system_hook.json", "System Hook"),
    ("project_destroy_system_hook.json", "System Hook"),
    ("project_rename_system_hook.json", "System Hook"),
    ("project_update_system_hook.json", "System Hook"),
    ("user_add_to_group_system_hook.json", "System Hook"),
    ("repository_update_system_hook.json", "System Hook"),
    ("push.json", "Push Hook"),
    ("pipeline.json", "Pipeline Hook"),
];

/// `../shared/fixtures/gitlab-webhooks`, or why it is not there.
pub fn fixtures_dir() -> Result<PathBuf, String> {
    let shared = std::env::var("REGWARDEN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("fixtures/gitlab-webhooks");
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("{} is absent", dir.display()))
    }
}

#[test]
fn every_fixture_parses_into_the_reviewed_event() {
    let dir = match fixtures_dir() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: the GitLab payload fixtures are not here: {why}");
            return;
        }
    };
    for (file, header) in FIXTURES {
        let body = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let event = parse(header, &body).unwrap_or_else(|e| panic!("{file}: {e}"));
        insta::assert_json_snapshot!(file.trim_end_matches(".json"), event);
    }
}
