//! The store: SQLite (a file, WAL) as the embedded default, PostgreSQL by URL. It holds the
//! audit journal, webhook deliveries and the job queue, and hands out the per-binding locks
//! (`lock.rs`). Truth about tokens lives in GitLab and Qovery: losing the store loses
//! history, never correctness.
//!
//! One SQL dialect serves both backends through sqlx's `Any` driver (`$1` placeholders, `ON
//! CONFLICT`, `RETURNING`); only the schema differs, in `migrations/<backend>/`.

use std::borrow::Cow;
use std::time::Duration;

mod lock;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row, SqlSafeStr};

/// Why the store could not do something. Messages never carry a password from the URL: the
/// URL shown is redacted, and sqlx's errors do not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL {url}: use sqlite://path or postgres://...")]
    Unsupported { url: String },
    #[error("cannot open the store at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the store's schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the store did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("the delivery writer stopped")]
    WriterStopped,
    /// The failure of a group commit, told to every delivery in the group.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
    #[error("cannot take or keep a binding's lock: {0}")]
    Lock(String),
}

pub use lock::BindingLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub at_ms: i64,
    pub binding: String,
    /// Groups the steps of one rotation.
    pub rotation: Option<String>,
    pub step: String,
    pub outcome: String,
    pub reason: String,
    pub token_id: Option<i64>,
    pub fingerprint: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
    locks: lock::LockSpace,
}

fn migrator(backend: Backend) -> Migrator {
    let sqls: [(&'static str, &'static str); 3] = match backend {
        Backend::Sqlite => [
            (
                "journal and leases",
                include_str!("migrations/sqlite/0001_journal_and_leases.sql"),
            ),
            (
                "deliveries and jobs",
                include_str!("migrations/sqlite/0002_deliveries_and_jobs.sql"),
            ),
            (
                "binding locks replace leases",
                include_str!("migrations/sqlite/0003_drop_leases.sql"),
            ),
        ],
        Backend::Postgres => [
            (
                "journal and leases",
                include_str!("migrations/postgres/0001_journal_and_leases.sql"),
            ),
            (
                "deliveries and jobs",
                include_str!("migrations/postgres/0002_deliveries_and_jobs.sql"),
            ),
            (
                "binding locks replace leases",
                include_str!("migrations/postgres/0003_drop_leases.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        sqls.into_iter()
            .enumerate()
            .map(|(i, (description, sql))| {
                Migration::new(
                    i as i64 + 1,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// `($1, $2, $3), ($4, $5, $6), ...`: `rows` tuples of `width` numbered placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deliveries written in one transaction at the most.
const MAX_BATCH: usize = 256;

/// A delivery to record.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub dedupe_key: String,
    pub event: String,
    /// The job it queues, if any.
    pub payload: Option<String>,
}

struct Pending {
    delivery: NewDelivery,
    reply: tokio::sync::oneshot::Sender<Result<bool, std::sync::Arc<StoreError>>>,
}

/// The handle of [`Store::delivery_writer`].
#[derive(Clone)]
pub struct DeliveryWriter {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

impl DeliveryWriter {
    /// Records one delivery; `false` for a key seen before.
    pub async fn record(&self, delivery: NewDelivery) -> Result<bool, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer
            .await
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(StoreError::Shared)
    }
}

/// A job claimed by a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub payload: String,
    /// Tries so far, this one included.
    pub attempts: i64,
}

/// Jobs by status, for metrics and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `now_ms` plus `d`, held at the end of the range: a lease or lock of a thousand years is
/// "until further notice", not an overflow.
/// What the deliveries table keeps of a dedupe key: `sha256:<hex>`, one size whatever the key.
fn key_digest(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn deadline_ms(now_ms: i64, d: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let shown = crate::config::redact_url_password(url);
        let (backend, connect_url) = if url.starts_with("sqlite:") {
            let with_mode = if url.contains("mode=") || url.contains(":memory:") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, with_mode)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Unsupported { url: shown });
        };
        // Every connection to `sqlite::memory:` is a database of its own: keep one.
        let max = match backend {
            Backend::Sqlite if url.contains(":memory:") => 1,
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(if max == 1 { 1 } else { 0 })
            .idle_timeout(if max == 1 {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if max == 1 {
                None
            } else {
                Some(Duration::from_secs(1800))
            })
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; a busy writer is waited for,
                    // not failed on.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Open {
                url: shown.clone(),
                source,
            })?;
        let migrating = match (backend, lock::lock_dir(url)) {
            (Backend::Sqlite, Some(dir)) => Some(lock::migration_lock(&dir).await?),
            _ => None,
        };
        migrator(backend).run(&pool).await?;
        drop(migrating);
        let locks = match backend {
            Backend::Postgres => lock::LockSpace::Postgres {
                url: connect_url.clone(),
            },
            Backend::Sqlite => match lock::lock_dir(url) {
                Some(dir) => lock::LockSpace::Files { dir },
                None => lock::LockSpace::Memory(Default::default()),
            },
        };
        Ok(Store {
            pool,
            backend,
            locks,
        })
    }

    /// Takes the lock of `binding` without waiting: `None` when another holder, alive, has
    /// it. One rotation per binding at a time across workers, processes and replicas; the
    /// lock is freed when its holder releases it or dies.
    pub async fn try_lock_binding(&self, binding: &str) -> Result<Option<BindingLock>, StoreError> {
        self.locks.try_lock(binding).await
    }

    /// Since when the holder of `binding`'s lock (found busy) has held it, when that can be
    /// told.
    pub async fn lock_holder_since(&self, binding: &str) -> Option<std::time::SystemTime> {
        self.locks.holder_since(binding).await
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn record(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO journal (at_ms, binding, rotation, step, outcome, reason, token_id, fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(entry.at_ms)
        .bind(&entry.binding)
        .bind(&entry.rotation)
        .bind(&entry.step)
        .bind(&entry.outcome)
        .bind(&entry.reason)
        .bind(entry.token_id)
        .bind(&entry.fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` entries, newest first, of one binding or of all.
    pub async fn history(
        &self,
        binding: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let rows =
            match binding {
                Some(b) => sqlx::query(
                    "SELECT at_ms, binding, rotation, step, outcome, reason, token_id, fingerprint
                     FROM journal WHERE binding = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(b)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
                None => sqlx::query(
                    "SELECT at_ms, binding, rotation, step, outcome, reason, token_id, fingerprint
                     FROM journal ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
            };
        rows.iter()
            .map(|r| {
                Ok(JournalEntry {
                    at_ms: r.try_get(0)?,
                    binding: r.try_get(1)?,
                    rotation: r.try_get(2)?,
                    step: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    token_id: r.try_get(6)?,
                    fingerprint: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Records a delivery under `dedupe_key` and, when `payload` is given, queues a job for
    /// it, in one transaction. `false` when the key was seen before: nothing is queued again.
    pub async fn record_delivery(
        &self,
        dedupe_key: &str,
        event: &str,
        payload: Option<&str>,
    ) -> Result<bool, StoreError> {
        let one = [NewDelivery {
            dedupe_key: dedupe_key.to_string(),
            event: event.to_string(),
            payload: payload.map(str::to_string),
        }];
        Ok(self.record_deliveries(&one).await?[0])
    }

    /// [`Self::record_delivery`] for many deliveries in one transaction (one commit, one
    /// write to disk, two statements); a key repeated within the batch counts once.
    pub async fn record_deliveries(&self, batch: &[NewDelivery]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // Placeholders are numbered by hand: the Any driver passes SQL through, and `$n` is
        // what both PostgreSQL and SQLite read. Only placeholders are generated; every value
        // is bound.
        let sql = format!(
            "INSERT INTO deliveries (dedupe_key, received_at_ms, event) VALUES {} \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
            placeholders(batch.len(), 3)
        );
        // Keys are stored as digests: a `webhook-id` or `Idempotency-Key` comes from the
        // network and may be long (a PostgreSQL index entry has a size limit, and one long key
        // would fail a whole batch); a digest has one size, and the table holds no header.
        let hashed: Vec<String> = batch.iter().map(|d| key_digest(&d.dedupe_key)).collect();
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (d, key) in batch.iter().zip(&hashed) {
            insert = insert.bind(key.clone()).bind(now).bind(d.event.clone());
        }
        let keys = |rows: Vec<sqlx::any::AnyRow>| -> Result<std::collections::HashSet<String>, sqlx::Error> {
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
        };
        // Without jobs to queue, the one INSERT is atomic on its own: no BEGIN and COMMIT
        // round trips.
        let mut tx = None;
        let new_keys = if batch.iter().all(|d| d.payload.is_none()) {
            keys(insert.fetch_all(&self.pool).await?)?
        } else {
            let t = tx.insert(self.pool.begin().await?);
            keys(insert.fetch_all(&mut **t).await?)?
        };
        // The first occurrence of a new key is the new delivery; later ones are duplicates.
        let mut seen = std::collections::HashSet::new();
        let inserted: Vec<bool> = hashed
            .iter()
            .map(|key| new_keys.contains(key) && seen.insert(key.as_str()))
            .collect();
        let jobs: Vec<&String> = batch
            .iter()
            .zip(&inserted)
            .filter(|(_, new)| **new)
            .filter_map(|(d, _)| d.payload.as_ref())
            .collect();
        if !jobs.is_empty() {
            let sql = format!(
                "INSERT INTO jobs (payload, status, attempts, next_run_ms, created_ms, updated_ms) VALUES {}",
                placeholders(jobs.len(), 6)
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for payload in jobs {
                insert = insert
                    .bind(payload.clone())
                    .bind("queued")
                    .bind(0i64)
                    .bind(now)
                    .bind(now)
                    .bind(now);
            }
            let t = tx
                .as_mut()
                .expect("a batch with payloads runs in a transaction");
            insert.execute(&mut **t).await?;
        }
        if let Some(t) = tx {
            t.commit().await?;
        }
        Ok(inserted)
    }

    /// A writer that records deliveries in groups: each caller waits for the commit of the
    /// batch its delivery is in, and concurrent deliveries share one commit.
    pub fn delivery_writer(&self) -> DeliveryWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(4096);
        let store = self.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut pending = vec![first];
                while pending.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => pending.push(p),
                        Err(_) => break,
                    }
                }
                let batch: Vec<NewDelivery> = pending.iter().map(|p| p.delivery.clone()).collect();
                match store.record_deliveries(&batch).await {
                    Ok(flags) => {
                        for (p, new) in pending.into_iter().zip(flags) {
                            let _ = p.reply.send(Ok(new));
                        }
                    }
                    Err(e) => {
                        let shared = std::sync::Arc::new(e);
                        for p in pending {
                            let _ = p.reply.send(Err(shared.clone()));
                        }
                    }
                }
            }
        });
        DeliveryWriter { tx }
    }

    /// Claims a runnable job for `worker` until `lock_for` from now: the queued job whose time
    /// came first, else a running one whose worker died (its lock expired).
    pub async fn claim_job(
        &self,
        worker: &str,
        lock_for: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let until = deadline_ms(now, lock_for);
        // Two statements, each served by the (status, next_run_ms) index. The condition is
        // repeated outside the subquery: under PostgreSQL's READ COMMITTED a second claimer
        // re-checks it on the row the first one just changed, and gets nothing.
        let queued = sqlx::query(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until_ms = $2,
                    attempts = attempts + 1, updated_ms = $3
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND next_run_ms <= $3
                         ORDER BY next_run_ms, id LIMIT 1)
               AND status = 'queued'
             RETURNING id, payload, attempts",
        )
        .bind(worker)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let row = match queued {
            Some(row) => Some(row),
            None => {
                sqlx::query(
                    "UPDATE jobs SET locked_by = $1, locked_until_ms = $2,
                            attempts = attempts + 1, updated_ms = $3
                     WHERE id = (SELECT id FROM jobs WHERE status = 'running' AND locked_until_ms < $3
                                 ORDER BY id LIMIT 1)
                       AND status = 'running' AND locked_until_ms < $3
                     RETURNING id, payload, attempts",
                )
                .bind(worker)
                .bind(until)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|r| {
            Ok(Job {
                id: r.try_get(0)?,
                payload: r.try_get(1)?,
                attempts: r.try_get(2)?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| StoreError::from(e))
    }

    /// Ends a job: done, queued again at `retry_at_ms`, or dead.
    pub async fn settle_job(&self, id: i64, outcome: JobOutcome<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        let (status, next_run, error) = match outcome {
            JobOutcome::Done => ("done", now, None),
            JobOutcome::Retry { at_ms, error } => ("queued", at_ms, Some(error)),
            JobOutcome::Dead { error } => ("dead", now, Some(error)),
        };
        sqlx::query(
            "UPDATE jobs SET status = $1, next_run_ms = $2, last_error = $3,
                    locked_by = NULL, locked_until_ms = NULL, updated_ms = $4
             WHERE id = $5",
        )
        .bind(status)
        .bind(next_run)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets deliveries and finished jobs (done or dead) older than `keep`: a redelivery
    /// older than that is no longer recognised (GitLab resends within hours); a dead job's end
    /// stays in the journal, which `history` reads. Returns how many rows went.
    pub async fn prune(&self, keep: Duration) -> Result<u64, StoreError> {
        let before = now_ms() - keep.as_millis() as i64;
        let deliveries = sqlx::query("DELETE FROM deliveries WHERE received_at_ms < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let jobs =
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'dead') AND updated_ms < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(deliveries + jobs)
    }

    pub async fn job_counts(&self) -> Result<JobCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'dead') GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = JobCounts::default();
        for r in rows {
            let status: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            match status.as_str() {
                "queued" => counts.queued = n,
                "running" => counts.running = n,
                _ => counts.dead = n,
            }
        }
        Ok(counts)
    }
}

/// How a job ended.
#[derive(Clone, Copy, Debug)]
pub enum JobOutcome<'a> {
    Done,
    Retry { at_ms: i64, error: &'a str },
    Dead { error: &'a str },
}
