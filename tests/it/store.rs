//! The store's behaviour, the same suite against both backends: a SQLite file and a real
//! PostgreSQL cluster.

use std::time::Duration;

use crate::support::postgres::Postgres;
use regwarden::store::{JobOutcome, JournalEntry, Store, now_ms};

fn entry(binding: &str, step: &str) -> JournalEntry {
    JournalEntry {
        at_ms: now_ms(),
        binding: binding.into(),
        rotation: Some("r1".into()),
        step: step.into(),
        outcome: "ok".into(),
        reason: String::new(),
        token_id: Some(42),
        fingerprint: Some("sha256:0123456789ab".into()),
    }
}

async fn journal_is_kept_newest_first_and_filtered(store: &Store) {
    for (b, s) in [
        ("api", "create"),
        ("web", "create"),
        ("api", "test"),
        ("api", "switch"),
    ] {
        store.record(&entry(b, s)).await.unwrap();
    }

    let api = store.history(Some("api"), 10).await.unwrap();
    let steps: Vec<&str> = api.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(steps, ["switch", "test", "create"]);
    assert_eq!(api[0], entry("api", "switch").with_time(api[0].at_ms));
    assert_eq!(store.history(None, 2).await.unwrap().len(), 2);
    assert_eq!(store.history(Some("nope"), 10).await.unwrap(), vec![]);
}

async fn one_holder_of_a_binding_lock_at_a_time(store: &Store) {
    let before = std::time::SystemTime::now() - Duration::from_secs(5);
    let first = store.try_lock_binding("api").await.unwrap().expect("free");
    assert!(
        store.try_lock_binding("api").await.unwrap().is_none(),
        "a second holder, in the same process, must wait for the first"
    );
    // Whoever finds it busy can tell since when it is held (a stuck holder is reported).
    let since = store
        .lock_holder_since("api")
        .await
        .expect("a holder's start");
    assert!(
        since >= before && since <= std::time::SystemTime::now() + Duration::from_secs(5),
        "{since:?}"
    );
    let web = store.try_lock_binding("web").await.unwrap();
    assert!(web.is_some(), "locks are per binding");
    first.release().await;
    let again = store.try_lock_binding("api").await.unwrap();
    assert!(again.is_some(), "released");
    again.unwrap().release().await;
    web.unwrap().release().await;
}

async fn racing_holders_get_exactly_one_lock(store: &Store) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.try_lock_binding("race").await.unwrap()
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    assert_eq!(held.len(), 1);
    for lock in held {
        lock.release().await;
    }
}

trait WithTime {
    fn with_time(self, at_ms: i64) -> Self;
}

impl WithTime for JournalEntry {
    fn with_time(mut self, at_ms: i64) -> Self {
        self.at_ms = at_ms;
        self
    }
}

async fn a_delivery_is_recorded_once_and_queues_one_job(store: &Store) {
    assert!(
        store
            .record_delivery("webhook-id:a", "deploy_token_expiring", Some("{\"job\":1}"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_delivery("webhook-id:a", "deploy_token_expiring", Some("{\"job\":1}"))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_delivery("webhook-id:b", "ignored", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.job_counts().await.unwrap().queued,
        1,
        "a redelivery and an ignored event queue nothing"
    );

    let job = store
        .claim_job("w1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(job.payload, "{\"job\":1}");
    assert_eq!(job.attempts, 1);
    assert_eq!(
        store
            .claim_job("w2", Duration::from_secs(30))
            .await
            .unwrap(),
        None,
        "claimed once"
    );

    store
        .settle_job(
            job.id,
            JobOutcome::Retry {
                at_ms: now_ms() + 300,
                error: "GitLab 503",
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_job("w2", Duration::from_secs(30))
            .await
            .unwrap(),
        None,
        "not before its time"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = store
        .claim_job("w2", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (job.id, 2));

    store
        .settle_job(again.id, JobOutcome::Dead { error: "gave up" })
        .await
        .unwrap();
    let counts = store.job_counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.dead), (0, 0, 1));
}

async fn a_job_of_a_dead_worker_is_claimed_again(store: &Store) {
    store
        .record_delivery("webhook-id:c", "x", Some("c"))
        .await
        .unwrap();
    let first = store
        .claim_job("dies", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = store
        .claim_job("lives", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, first.id);
    store.settle_job(second.id, JobOutcome::Done).await.unwrap();
}

async fn racing_workers_claim_each_job_once(store: &Store) {
    for i in 0..12 {
        store
            .record_delivery(&format!("race-{i}"), "x", Some("race"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("w{w}"), Duration::from_secs(30))
                .await
                .unwrap()
            {
                mine.push(job.id);
                store.settle_job(job.id, JobOutcome::Done).await.unwrap();
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!((count, all.len()), (12, 12), "every job once, none twice");
}

/// A webhook id as long as a header can carry (64 KiB of headers) is a key like any other,
/// in a batch with short ones; dead jobs are pruned like done ones.
async fn long_keys_are_recorded_and_finished_jobs_pruned(store: &Store) {
    let long = format!("id:{}", "k".repeat(60_000));
    let batch = [
        regwarden::store::NewDelivery {
            dedupe_key: long.clone(),
            event: "deploy_token_expiring".into(),
            payload: Some("{\"job\":\"long\"}".into()),
        },
        regwarden::store::NewDelivery {
            dedupe_key: "id:short".into(),
            event: "ignored".into(),
            payload: None,
        },
    ];
    assert_eq!(store.record_deliveries(&batch).await.unwrap(), [true, true]);
    assert_eq!(
        store.record_deliveries(&batch).await.unwrap(),
        [false, false],
        "redeliveries of both are recognised"
    );
    let job = store
        .claim_job("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    store
        .settle_job(job.id, JobOutcome::Dead { error: "gave up" })
        .await
        .unwrap();
    let before = store.job_counts().await.unwrap().dead;
    assert!(before >= 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.prune(Duration::from_millis(1)).await.unwrap();
    assert_eq!(
        store.job_counts().await.unwrap().dead,
        0,
        "dead jobs pruned too"
    );
    assert!(
        store
            .record_delivery(&long, "deploy_token_expiring", None)
            .await
            .unwrap(),
        "a pruned key is new again"
    );
}

async fn suite(store: Store) {
    store.ping().await.unwrap();
    journal_is_kept_newest_first_and_filtered(&store).await;
    one_holder_of_a_binding_lock_at_a_time(&store).await;
    racing_holders_get_exactly_one_lock(&store).await;
    a_delivery_is_recorded_once_and_queues_one_job(&store).await;
    a_job_of_a_dead_worker_is_claimed_again(&store).await;
    racing_workers_claim_each_job_once(&store).await;
    long_keys_are_recorded_and_finished_jobs_pruned(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_passes_the_suite_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("regwarden.db").display());

    suite(Store::open(&url).await.unwrap()).await;

    // Opening again migrates nothing twice and finds the journal.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.history(Some("api"), 10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_passes_the_suite_and_keeps_its_data() {
    let pg = Postgres::start();

    suite(Store::open(&pg.url).await.unwrap()).await;

    let again = Store::open(&pg.url).await.unwrap();
    assert_eq!(again.history(Some("api"), 10).await.unwrap().len(), 3);
}

/// Ends every session holding an advisory lock, as PostgreSQL does when a holder's connection
/// is lost; returns how many.
async fn end_advisory_lock_sessions(url: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    row.try_get(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_lock_dies_with_its_session_and_its_holder_notices() {
    let pg = Postgres::start();
    let store = Store::open(&pg.url).await.unwrap();
    let mut lock = store.try_lock_binding("api").await.unwrap().expect("free");
    lock.confirm().await.expect("held while the session lives");

    // The holder's connection is lost (the server ends its session, as after a network cut
    // or an OOM kill on the holder's side): the lock is free at once, not after a TTL.
    let ended = end_advisory_lock_sessions(&pg.url).await;
    assert_eq!(ended, 1);
    let other = Store::open(&pg.url).await.unwrap();
    let taken = other.try_lock_binding("api").await.unwrap();
    assert!(taken.is_some(), "free once the holder's session is gone");

    // The first holder finds out before it does anything irreversible.
    let lost = lock.confirm().await.expect_err("the session is gone");
    assert!(lost.to_string().contains("lock"), "{lost}");
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_without_its_password() {
    let closed = crate::support::server::closed_port();
    let port = closed.port();
    let url = format!("postgres://regwarden:hunter2@127.0.0.1:{port}/regwarden");

    let err = Store::open(&url).await.unwrap_err().to_string();

    assert!(err.contains("cannot open the store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
