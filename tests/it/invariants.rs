//! Invariants I3 and I4 (docs/architecture.md), with real processes: two reconcilers racing on one
//! PostgreSQL, and reconcilers that die half-way through a rotation.

use std::time::Duration;

use crate::support::postgres::Postgres;
use crate::support::rng::Lcg;
use crate::support::world::{Settings, World};

const CREATE_TOKEN: &str = "POST /api/v4/projects/{id}/deploy_tokens";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i3_two_reconcilers_sharing_postgres_rotate_a_binding_once() {
    let pg = Postgres::start();
    let w = World::with(Settings {
        store_url: Some(pg.url.clone()),
        ..Settings::default()
    })
    .await;
    // Slow GitLab down so the two passes overlap.
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(40);

    let (a, b) = tokio::join!(w.reconcile(&[]), w.reconcile(&[]));

    assert_eq!(a.code, 0, "{a:?}");
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(
        w.gitlab.calls(CREATE_TOKEN),
        1,
        "one rotation:\n{}\n{}",
        a.stdout,
        b.stdout
    );
    let outcomes = format!("{}{}", a.stdout, b.stdout);
    assert_eq!(outcomes.matches("api: rotated").count(), 1, "{outcomes}");
    assert!(
        outcomes.contains("api: busy") || outcomes.contains("api: healthy"),
        "{outcomes}"
    );
    assert_eq!(w.qovery.registries().len(), 1);
    w.assert_converged().await;
    w.assert_no_orphans();
}

/// A pass that dies at `point` of a forced rotation, then at once a normal pass, with the
/// configuration users run (the default lease_ttl): the dead holder's lock is already free.
#[cfg(feature = "fault-injection")]
async fn crash_then_converge(point: &str) -> World {
    let w = World::start().await;
    assert_eq!(w.reconcile(&[]).await.code, 0);
    // Token names have a one-second grain.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let crashed = w
        .regwarden_env(&["reconcile", "--force"], &[("REGWARDEN_CRASH_AT", point)])
        .await;
    assert_ne!(crashed.code, 0, "the pass died at {point}: {crashed:?}");
    assert!(
        crashed.stderr.contains(&format!("aborting at {point}")),
        "{crashed:?}"
    );

    let (code, outcomes) = w.outcomes(&[]).await;
    assert_eq!(code, 0, "{outcomes:?}");
    assert_ne!(outcomes["api"], "busy", "the dead holder's lock is free");
    w.assert_converged().await;
    w.assert_no_orphans();
    w
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn i4_a_crash_after_create_revokes_the_unswitched_token_next_pass() {
    let w = crash_then_converge("after_create").await;
    assert_eq!(
        w.active_tokens().len(),
        1,
        "only the token Qovery held before"
    );
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn i4_a_crash_after_test_revokes_the_unswitched_token_next_pass() {
    let w = crash_then_converge("after_test").await;
    assert_eq!(w.active_tokens().len(), 1);
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn i4_a_crash_after_switch_keeps_the_new_token_and_the_old_for_its_grace() {
    let w = crash_then_converge("after_switch").await;
    assert_eq!(
        w.active_tokens().len(),
        2,
        "the new one, and the previous within grace"
    );
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn i4_a_crash_after_finish_changes_nothing() {
    let w = crash_then_converge("after_finish").await;
    assert_eq!(w.active_tokens().len(), 2);
}

/// `reconcile --force` killed with SIGKILL at random moments, each time followed at once by
/// one ordinary pass, with the default lease_ttl and no grace period: that one pass leaves
/// exactly one live regwarden token, held by Qovery, and it pulls.
#[tokio::test]
async fn i4_after_a_kill_at_any_moment_the_very_next_pass_converges() {
    kill_loop(
        World::with(Settings {
            grace_period: "0s",
            ..Settings::default()
        })
        .await,
    )
    .await;
}

/// The same on PostgreSQL, where the killed holder's lock is its database session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i4_after_a_kill_at_any_moment_the_very_next_pass_converges_on_postgres() {
    let pg = Postgres::start();
    kill_loop(
        World::with(Settings {
            grace_period: "0s",
            store_url: Some(pg.url.clone()),
            ..Settings::default()
        })
        .await,
    )
    .await;
}

async fn kill_loop(w: World) {
    // Spread each rotation over a few hundred milliseconds, so kills land in every step.
    w.gitlab.faults.lock().unwrap().latency = Duration::from_millis(25);
    let mut rng = Lcg::from_env("REGWARDEN_KILL_SEED", "kill loop");

    for round in 0..20 {
        let mut child = w.spawn(&["reconcile", "--force"]);
        let after = Duration::from_millis(rng.next_below(600));
        tokio::time::sleep(after).await;
        let _ = child.start_kill();
        let status = child.wait().await.unwrap();
        eprintln!("round {round}: killed after {after:?}: {status}");

        let (code, outcomes) = w.outcomes(&[]).await;
        assert_eq!(code, 0, "round {round}: {outcomes:?}");
        assert_ne!(
            outcomes["api"], "busy",
            "round {round}: a dead holder blocked the pass"
        );
        let held = w.held_token().expect("Qovery holds a GitLab token");
        assert_eq!(
            w.active_tokens().iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![held.id],
            "round {round}: one live regwarden token, the one Qovery holds: {outcomes:?}"
        );
        assert!(w.qovery_can_pull().await, "round {round}");
    }
}
