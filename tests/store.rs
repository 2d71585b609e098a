//! The store's behaviour, the same suite against both backends: a SQLite file and a real
//! PostgreSQL cluster.

mod support;

use std::time::Duration;

use regwarden::store::{JobOutcome, JournalEntry, Store, now_ms};
use support::postgres::Postgres;

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

async fn one_lease_holder_at_a_time(store: &Store) {
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease("api", "a", ttl).await.unwrap());
    assert!(
        !store.acquire_lease("api", "b", ttl).await.unwrap(),
        "b must wait for a"
    );
    assert!(
        store.acquire_lease("api", "a", ttl).await.unwrap(),
        "a renews"
    );
    assert!(
        store.acquire_lease("web", "b", ttl).await.unwrap(),
        "leases are per binding"
    );
    assert!(store.holds_lease("api", "a").await.unwrap());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!store.holds_lease("api", "a").await.unwrap(), "expired");
    assert!(
        store.acquire_lease("api", "b", ttl).await.unwrap(),
        "a dead holder frees the lease"
    );

    store.release_lease("api", "b").await.unwrap();
    assert!(store.acquire_lease("api", "c", ttl).await.unwrap());
}

async fn a_lease_without_end_holds_until_released(store: &Store) {
    assert!(
        store
            .acquire_lease("forever", "a", Duration::MAX)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_lease("forever", "b", Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(store.holds_lease("forever", "a").await.unwrap());
    store.release_lease("forever", "a").await.unwrap();
    assert!(
        store
            .acquire_lease("forever", "b", Duration::from_secs(1))
            .await
            .unwrap()
    );
}

async fn racing_holders_get_exactly_one_lease(store: &Store) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .acquire_lease("race", &format!("holder-{i}"), Duration::from_secs(30))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
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

async fn suite(store: Store) {
    store.ping().await.unwrap();
    journal_is_kept_newest_first_and_filtered(&store).await;
    one_lease_holder_at_a_time(&store).await;
    a_lease_without_end_holds_until_released(&store).await;
    racing_holders_get_exactly_one_lease(&store).await;
    a_delivery_is_recorded_once_and_queues_one_job(&store).await;
    a_job_of_a_dead_worker_is_claimed_again(&store).await;
    racing_workers_claim_each_job_once(&store).await;
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

#[tokio::test]
async fn an_unreachable_postgres_is_reported_without_its_password() {
    let port = support::server::closed_port();
    let url = format!("postgres://regwarden:hunter2@127.0.0.1:{port}/regwarden");

    let err = Store::open(&url).await.unwrap_err().to_string();

    assert!(err.contains("cannot open the store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
