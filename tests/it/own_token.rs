//! regwarden's own GitLab API token, against a fake GitLab with GitLab's self-rotate and
//! reuse-detection semantics: rotated before its expiry and written to its file before use;
//! an answer that was lost (or a process killed mid-rotation) is never retried and says so
//! loudly; a token from an environment variable is only watched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::support::faults::Fault;
use crate::support::world::{Settings, World};

const ROTATE_SELF: &str = "POST /api/v4/personal_access_tokens/self/rotate";

/// A world whose API token lives in a file (mode 0640), expires in three days, and may be
/// rotated.
async fn world_with_token_file() -> (World, PathBuf) {
    // Outside the world's directory, which only exists once the world does.
    let secrets = tempfile::tempdir().unwrap().keep();
    let file = secrets.join("gitlab-token");
    let w = World::with(Settings {
        gitlab: format!(
            "token_file = \"{}\"\nrotate_own_token = true\nown_token_lifetime = \"90d\"\n",
            file.display()
        ),
        ..Settings::default()
    })
    .await;
    std::fs::write(&file, format!("{}\n", w.gitlab_token)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    w.gitlab.set_token_expiry(
        &w.gitlab_token,
        Utc::now().date_naive() + chrono::Days::new(3),
    );
    (w, file)
}

fn token_in(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

/// Where regwarden notes a rotation whose outcome is not known yet.
fn pending(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.rotation-pending", file.display()))
}

#[tokio::test]
async fn an_api_token_near_expiry_is_rotated_into_its_file_before_the_pass_uses_it() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    let new = token_in(&file);
    assert_ne!(new, old);
    let new_record = w.gitlab.token_by_secret(&new).expect("a token GitLab made");
    assert!(new_record.active());
    assert_eq!(
        new_record.expires_at,
        Some(Utc::now().date_naive() + chrono::Days::new(90)),
        "own_token_lifetime"
    );
    assert!(
        w.gitlab.token_by_secret(&old).unwrap().revoked,
        "rotate revokes the old one at once"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640,
        "the file keeps its permissions"
    );
    assert!(!pending(&file).exists());
    let json = run.json();
    assert_eq!(json["api_token"]["status"], "rotated", "{json}");
    assert_eq!(
        json["bindings"][0]["outcome"], "rotated",
        "the pass ran on the new token"
    );
    run.assert_never_shows(&new);
    run.assert_never_shows(&old);
    let history = w.regwarden(&["history", "--output", "json"]).await;
    let entry = history.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "rotate_api_token")
        .cloned()
        .expect("the journal has the rotation");
    assert_eq!(entry["outcome"], "ok");
    history.assert_never_shows(&new);

    // Not due any more: the next pass leaves it alone.
    let again = w.reconcile(&["--output", "json"]).await;
    assert_eq!(again.json()["api_token"]["status"], "fine");
    assert_eq!(token_in(&file), new);
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1);
}

#[tokio::test]
async fn a_rotation_whose_answer_was_lost_is_never_tried_again() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();
    // GitLab rotates, and the answer never arrives.
    w.gitlab.fail(ROTATE_SELF, Fault::ApplyThenFail, 1);

    let lost = w.reconcile(&[]).await;
    let after = w.reconcile(&[]).await;

    assert_eq!(lost.code, 1, "{lost:?}");
    assert!(
        lost.stderr
            .contains("the answer to the API token's rotation was lost"),
        "{}",
        lost.stderr
    );
    assert!(
        lost.stderr.contains("put a new API token in"),
        "{}",
        lost.stderr
    );
    assert_eq!(after.code, 1, "{after:?}");
    assert!(
        after.stderr.contains("regwarden does not rotate it again"),
        "{}",
        after.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1, "one rotate, never a second");
    assert_eq!(token_in(&file), old, "the file is as it was");
    let successor = w
        .gitlab
        .access_tokens()
        .into_iter()
        .find(|t| t.active() && t.name == "regwarden-admin")
        .expect("GitLab's successor survives: no reuse was detected");
    assert!(pending(&file).exists());
    let history = w.regwarden(&["history", "--output", "json"]).await;
    let outcomes: Vec<String> = history.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == "rotate_api_token")
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["unknown", "lost"], "newest first");

    // A person puts a working token in the file: regwarden goes on (the note, about a token
    // that is gone, is cleared at the next rotation, under the lock).
    std::fs::write(&file, format!("{}\n", successor.token)).unwrap();
    let fixed = w.reconcile(&[]).await;
    assert_eq!(fixed.code, 0, "{fixed:?}");
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_process_killed_mid_rotation_leaves_a_note_and_the_token_is_not_rotated_twice() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();

    let crashed = w
        .regwarden_env(
            &["reconcile"],
            &[("REGWARDEN_CRASH_AT", "after_api_token_rotate")],
        )
        .await;
    let next = w.reconcile(&[]).await;

    assert_ne!(crashed.code, 0, "{crashed:?}");
    assert_eq!(token_in(&file), old, "killed before writing the file");
    assert_eq!(next.code, 1, "{next:?}");
    assert!(
        next.stderr
            .contains("was being rotated when an earlier run stopped"),
        "{}",
        next.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1);
    assert!(
        w.gitlab
            .access_tokens()
            .iter()
            .any(|t| t.active() && t.name == "regwarden-admin"),
        "the successor is alive: a second rotate of the revoked token would have killed it"
    );
}

#[tokio::test]
async fn a_token_from_the_environment_is_only_watched() {
    let w = World::with(Settings {
        gitlab: "rotate_own_token = false\n".into(),
        ..Settings::default()
    })
    .await;
    let soon = Utc::now().date_naive() + chrono::Days::new(3);
    w.gitlab.set_token_expiry(&w.gitlab_token, soon);

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["api_token"]["status"], "expiring");
    assert!(
        run.stderr
            .contains(&format!("warning: the GitLab API token expires on {soon}")),
        "{}",
        run.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 0);
}

#[tokio::test]
async fn rotate_own_token_needs_a_token_file() {
    let w = World::with(Settings {
        gitlab: "rotate_own_token = true\n".into(),
        ..Settings::default()
    })
    .await;

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("gitlab.rotate_own_token: needs gitlab.token_file"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn the_server_shows_the_api_tokens_days_left_and_rotates_it_on_its_timer() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();
    let s = w.serve(&[]).await;

    w.eventually("the timer's rotation of the API token", || {
        token_in(&file) != old
    })
    .await;
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = s.metrics().await.1;
        if metrics.contains("regwarden_api_token_days_until_expiry 90") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("regwarden_api_token_days_until_expiry 90"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regwarden_api_token_events_total{outcome=\"rotated\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(&token_in(&file)) && !metrics.contains(&old));
    s.terminate().await;
}

#[tokio::test]
async fn two_processes_due_at_once_rotate_the_api_token_once_and_both_use_the_new_one() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();
    // GitLab takes a while to rotate: the second process arrives while the first holds the
    // lock, and waits for it.
    w.gitlab
        .fail(ROTATE_SELF, Fault::Delay(Duration::from_millis(1500)), 1);

    let (a, b) = tokio::join!(
        w.reconcile(&["--output", "json"]),
        w.reconcile(&["--output", "json"])
    );

    assert_eq!((a.code, b.code), (0, 0), "{a:?}\n{b:?}");
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1, "one rotation between them");
    let statuses = [
        a.json()["api_token"]["status"]
            .as_str()
            .unwrap()
            .to_string(),
        b.json()["api_token"]["status"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    assert!(
        statuses.contains(&"rotated".to_string()) && statuses.contains(&"fine".to_string()),
        "one rotated, the other waited and found it fine: {statuses:?}"
    );
    let new = token_in(&file);
    assert_ne!(new, old);
    assert!(w.gitlab.token_by_secret(&new).unwrap().active());
}

#[tokio::test]
async fn a_rotation_that_cannot_be_noted_first_is_not_sent() {
    let (w, file) = world_with_token_file().await;
    // Where the note goes, a directory (root or not, no file replaces it).
    std::fs::create_dir_all(pending(&file).join("in-the-way")).unwrap();

    let run = w.reconcile(&[]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("Nothing was rotated; the directory of gitlab.token_file must be writable"),
        "{}",
        run.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 0);
    assert_eq!(token_in(&file), w.gitlab_token);
}

/// A world whose API token is a project access token of the bound project, in a file, three
/// days from expiry; `kind` is what the configuration says it is.
async fn world_with_a_project_token(kind: &str) -> (World, PathBuf, String) {
    let secrets = tempfile::tempdir().unwrap().keep();
    let file = secrets.join("gitlab-token");
    let w = World::with(Settings {
        gitlab: format!(
            "token_file = \"{}\"\nrotate_own_token = true\nown_token_kind = \"{kind}\"\nown_token_namespace = \"{}\"\n",
            file.display(),
            crate::support::world::PROJECT
        ),
        ..Settings::default()
    })
    .await;
    let token = w
        .gitlab
        .add_access_token(
            w.gitlab.project_owner(crate::support::world::PROJECT),
            "regwarden-bot",
            &["api"],
        )
        .token;
    std::fs::write(&file, format!("{token}\n")).unwrap();
    w.gitlab
        .set_token_expiry(&token, Utc::now().date_naive() + chrono::Days::new(3));
    (w, file, token)
}

#[tokio::test]
async fn a_project_access_token_rotates_itself_with_its_projects_endpoint() {
    let (w, file, old) = world_with_a_project_token("project").await;

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["api_token"]["status"], "rotated");
    assert_eq!(
        w.gitlab
            .calls("POST /api/v4/projects/{id}/access_tokens/self/rotate"),
        1
    );
    let new = token_in(&file);
    assert_ne!(new, old);
    assert!(w.gitlab.token_by_secret(&new).unwrap().active());
    assert_eq!(run.json()["bindings"][0]["outcome"], "rotated");
}

#[tokio::test]
async fn a_refused_rotation_changes_nothing_and_the_next_pass_tries_again() {
    let (w, file) = world_with_token_file().await;
    let old = w.gitlab_token.clone();
    // GitLab refuses before acting (a 400 says nothing was rotated).
    w.gitlab.fail(ROTATE_SELF, Fault::Status(400, None), 1);

    let refused = w.reconcile(&[]).await;
    let next = w.reconcile(&["--output", "json"]).await;

    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("GitLab refused to rotate the API token in"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("The token was not changed and works until it expires on"),
        "{}",
        refused.stderr
    );
    assert!(!pending(&file).exists(), "a refusal leaves no note");
    assert_eq!(next.code, 0, "{next:?}");
    assert_eq!(next.json()["api_token"]["status"], "rotated");
    assert_ne!(token_in(&file), old);
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 2);
}

#[tokio::test]
async fn a_rotation_answer_with_a_date_and_time_still_saves_the_new_token() {
    let (w, file) = world_with_token_file().await;
    w.gitlab.state.lock().unwrap().rotate_answers_datetime = true;
    let old = w.gitlab_token.clone();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["api_token"]["status"], "rotated");
    let new = token_in(&file);
    assert_ne!(new, old);
    assert!(w.gitlab.token_by_secret(&new).unwrap().active());
}

#[tokio::test]
async fn a_token_rotated_by_another_process_meanwhile_is_not_rotated_again() {
    let (w, file) = world_with_token_file().await;
    // Another process rotates the token while this one reads its expiry under the lock: the
    // second look at the token's record is slow, and the file changes meanwhile.
    w.gitlab.fail(
        "GET /api/v4/personal_access_tokens/self",
        Fault::Delay(Duration::ZERO),
        1,
    );
    w.gitlab.fail(
        "GET /api/v4/personal_access_tokens/self",
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let theirs = w
        .gitlab
        .add_access_token(
            crate::support::gitlab::Owner::User,
            "rotated-elsewhere",
            &["api"],
        )
        .token;
    let elsewhere = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        std::fs::write(&file, format!("{theirs}\n")).unwrap();
    };

    let (run, ()) = tokio::join!(w.reconcile(&[]), elsewhere);

    assert_eq!(w.gitlab.calls(ROTATE_SELF), 0, "{run:?}");
    assert_eq!(token_in(&file), theirs);
    assert!(!pending(&file).exists(), "its note removed");
    assert!(
        w.gitlab.token_by_secret(&w.gitlab_token).unwrap().active(),
        "no second rotation of the old token (nor of its family)"
    );
}

#[tokio::test]
async fn a_token_file_in_a_directory_others_may_write_is_never_rotated_into() {
    let (w, file) = world_with_token_file().await;
    let dir = file.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    let run = w.reconcile(&[]).await;

    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("is writable by others") && run.stderr.contains("chmod go-w"),
        "{}",
        run.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 0);
}

#[tokio::test]
async fn a_note_regwarden_did_not_write_is_an_error_not_a_busy_holder() {
    let (w, file) = world_with_token_file().await;
    std::fs::write(pending(&file), "whatever someone left here\n").unwrap();

    let run = w.reconcile(&["--output", "json"]).await;

    assert_eq!(run.code, 1, "{run:?}");
    assert_ne!(run.json()["api_token"]["status"], "busy");
    assert!(
        run.stderr.contains("is not a note regwarden wrote"),
        "{}",
        run.stderr
    );
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 0);
}

#[tokio::test]
async fn a_rotated_token_that_cannot_be_written_lives_on_in_the_server_and_is_written_later() {
    let secrets = tempfile::tempdir().unwrap().keep();
    let file = secrets.join("gitlab-token");
    let w = World::with(Settings {
        gitlab: format!(
            "token_file = \"{}\"\nrotate_own_token = true\nown_token_lifetime = \"90d\"\n",
            file.display()
        ),
        extra: "\n[server]\nreconcile_interval = \"2s\"\n".into(),
        ..Settings::default()
    })
    .await;
    std::fs::write(&file, format!("{}\n", w.gitlab_token)).unwrap();
    w.gitlab.set_token_expiry(
        &w.gitlab_token,
        Utc::now().date_naive() + chrono::Days::new(3),
    );
    let old = w.gitlab_token.clone();
    // While GitLab rotates the token, something takes the file's place: the new token cannot
    // be written there.
    w.gitlab
        .fail(ROTATE_SELF, Fault::Delay(Duration::from_millis(1500)), 1);
    let s = w.serve(&[]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    w.eventually("the rotation", || {
        w.gitlab.token_by_secret(&old).is_some_and(|t| !t.active())
    })
    .await;
    let new = {
        let s = w.gitlab.state.lock().unwrap();
        let old = s.access_tokens.iter().find(|t| t.token == old).unwrap();
        let next = old.rotated_to.unwrap();
        s.access_tokens
            .iter()
            .find(|t| t.id == next)
            .unwrap()
            .token
            .clone()
    };
    // Timer passes go on with the new token, held in memory: the server keeps working.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1, "rotated once, never again");

    // The way is clear again: a later pass writes the token where it belongs.
    std::fs::remove_dir(&file).unwrap();
    w.eventually("the token written to its file", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.trim() == new)
    })
    .await;
    assert!(w.gitlab.token_by_secret(&new).unwrap().active());
    assert_eq!(w.gitlab.calls(ROTATE_SELF), 1);
    s.terminate().await;
}

#[tokio::test]
async fn an_api_token_that_never_expires_has_no_days_left_on_metrics() {
    // The world's API token has no expiry: a 0 there would page someone for nothing.
    let (w, s) = World::served(Settings::default(), "reconcile_interval = \"1h\"", &[]).await;
    // The timer's first pass reads the API token, then runs the registry checklist.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.metrics().await.1;
        if metrics.contains("regwarden_registry_checklist{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains("regwarden_registry_checklist{"),
        "{metrics}"
    );
    assert!(w.gitlab.calls("GET /api/v4/personal_access_tokens/self") >= 1);

    // No sample (an empty family has no HELP or TYPE line either): what was a plain gauge
    // showed `regwarden_api_token_days_until_expiry 0`.
    assert!(
        !metrics.contains("regwarden_api_token_days_until_expiry"),
        "{metrics}"
    );
    s.kill().await;
}
