//! One rotation per binding at a time (invariant I3), with a lock that dies with its holder:
//!
//! - PostgreSQL: a session advisory lock on a connection of its own. The server drops it the
//!   moment the holding session ends: the process exits or is killed, or the connection is
//!   lost. Replicas on one database exclude each other, and so do the workers of one process,
//!   since each lock has its own session.
//! - SQLite (one host): `flock(2)` on a file per binding in `<database>.locks/`. The kernel
//!   drops it when the holder's process ends, however it ends; two descriptors of one process
//!   exclude each other too.
//! - `sqlite::memory:` (a CI job's own pass, with no store to share): a set inside the process.
//!
//! A lock is taken without waiting: a binding whose lock is held is busy, and its holder, alive
//! by construction, finishes the work.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection, Row};

use super::StoreError;

/// How long taking or checking a PostgreSQL lock may wait for the server.
const PG_DEADLINE: Duration = Duration::from_secs(10);

/// Where the locks of a store live.
#[derive(Clone)]
pub(super) enum LockSpace {
    /// Advisory locks, each on a connection opened from this URL.
    Postgres { url: String },
    /// Lock files in this directory.
    Files { dir: PathBuf },
    /// Within this process only: each binding held, since when.
    Memory(Arc<Mutex<HashMap<String, SystemTime>>>),
}

impl std::fmt::Debug for LockSpace {
    /// Without the PostgreSQL URL, which may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockSpace::Postgres { .. } => f.write_str("Postgres"),
            LockSpace::Files { dir } => f.debug_struct("Files").field("dir", dir).finish(),
            LockSpace::Memory(_) => f.write_str("Memory"),
        }
    }
}

/// A binding's lock, held until [`BindingLock::release`] or the end of the process.
pub struct BindingLock {
    binding: String,
    held: Held,
    taken: std::time::Instant,
}

enum Held {
    /// `None` once released.
    Postgres(Option<AnyConnection>),
    /// Closing the file releases its flock; the path is where it must still be.
    File(File, PathBuf),
    Memory(Arc<Mutex<HashMap<String, SystemTime>>>),
}

impl std::fmt::Debug for BindingLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingLock")
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

/// The advisory-lock key of a binding: 64 bits of a hash, so that any name maps to a key and
/// regwarden's keys stay apart from other users of the database.
pub fn advisory_key(binding: &str) -> i64 {
    let digest = Sha256::digest(format!("regwarden binding lock\0{binding}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The lock directory of a SQLite database URL, or `None` for an in-memory database.
pub(super) fn lock_dir(sqlite_url: &str) -> Option<PathBuf> {
    let (path, _) = crate::config::sqlite_file(sqlite_url)?;
    Some(PathBuf::from(format!("{path}.locks")))
}

impl LockSpace {
    /// Takes `binding`'s lock, or `None` when someone holds it.
    pub(super) async fn try_lock(&self, binding: &str) -> Result<Option<BindingLock>, StoreError> {
        let held = match self {
            LockSpace::Postgres { url } => {
                let connect = AnyConnection::connect(url);
                let mut conn = tokio::time::timeout(PG_DEADLINE, connect)
                    .await
                    .map_err(|_| StoreError::Lock("PostgreSQL did not answer in time".into()))?
                    .map_err(|e| StoreError::Lock(e.to_string()))?;
                let query = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(advisory_key(binding))
                    .fetch_one(&mut conn);
                let taken: bool = tokio::time::timeout(PG_DEADLINE, query)
                    .await
                    .map_err(|_| StoreError::Lock("PostgreSQL did not answer in time".into()))?
                    .and_then(|row| row.try_get(0))
                    .map_err(|e| StoreError::Lock(e.to_string()))?;
                if !taken {
                    let _ = conn.close().await;
                    return Ok(None);
                }
                Held::Postgres(Some(conn))
            }
            LockSpace::Files { dir } => {
                let path = dir.join(format!("{}.lock", file_name(binding)));
                let mut file = open_lock_file(dir, &path)?;
                match file.try_lock() {
                    Ok(()) => {
                        // Who holds it since when, for whoever finds it busy.
                        let stamp =
                            format!("pid={} since_ms={}\n", std::process::id(), super::now_ms());
                        let _ = file
                            .set_len(0)
                            .and_then(|()| file.rewind())
                            .and_then(|()| file.write_all(stamp.as_bytes()));
                        Held::File(file, path)
                    }
                    Err(TryLockError::WouldBlock) => return Ok(None),
                    Err(TryLockError::Error(e)) => {
                        return Err(StoreError::Lock(format!("{}: {e}", path.display())));
                    }
                }
            }
            LockSpace::Memory(set) => {
                let mut held = set.lock().expect("the lock set is never poisoned");
                if held.contains_key(binding) {
                    return Ok(None);
                }
                held.insert(binding.to_string(), SystemTime::now());
                Held::Memory(set.clone())
            }
        };
        Ok(Some(BindingLock {
            binding: binding.to_string(),
            held,
            taken: std::time::Instant::now(),
        }))
    }
}

impl LockSpace {
    /// Since when the current holder of `binding`'s lock has held it, when that can be told
    /// (a PostgreSQL lock's session start, what a lock file's holder wrote in it, the memory
    /// set's record). Asked when the lock was found busy.
    pub(super) async fn holder_since(&self, binding: &str) -> Option<SystemTime> {
        match self {
            LockSpace::Postgres { url } => {
                let mut conn = tokio::time::timeout(PG_DEADLINE, AnyConnection::connect(url))
                    .await
                    .ok()?
                    .ok()?;
                // The lock's connection is opened for it: its session started when it was taken.
                let query = sqlx::query(
                    "SELECT CAST(EXTRACT(EPOCH FROM a.backend_start) * 1000 AS BIGINT)
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
                       AND l.objid = ($1::bigint & 4294967295)::oid",
                )
                .bind(advisory_key(binding))
                .fetch_optional(&mut conn);
                let ms: Option<i64> = tokio::time::timeout(PG_DEADLINE, query)
                    .await
                    .ok()?
                    .ok()?
                    .and_then(|row| row.try_get(0).ok());
                let _ = conn.close().await;
                Some(SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms?).ok()?))
            }
            LockSpace::Files { dir } => {
                let path = dir.join(format!("{}.lock", file_name(binding)));
                let mut text = String::new();
                File::open(&path)
                    .ok()?
                    .take(256)
                    .read_to_string(&mut text)
                    .ok()?;
                let ms: u64 = text
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("since_ms="))?
                    .parse()
                    .ok()?;
                Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
            }
            LockSpace::Memory(set) => set.lock().ok()?.get(binding).copied(),
        }
    }
}

/// Opens (creating it and its directory if needed) the file a lock is taken on: the directory
/// readable by its owner only (0700), the file too (0600), and never through a symbolic link.
fn open_lock_file(dir: &Path, path: &Path) -> Result<File, StoreError> {
    let fail = |e: std::io::Error| StoreError::Lock(format!("{}: {e}", path.display()));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(fail)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(StoreError::Lock(format!(
            "{} is not a directory of its own (a symbolic link?): remove it, regwarden makes it",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // Others could remove or replace a lock file under its holder: tighten what is ours.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(fail)
}

/// Waits for, then holds, the lock that lets one process at a time migrate a SQLite
/// database: two processes opening a new database at once would both create its tables.
/// (sqlx's migrator locks PostgreSQL itself.) Released when the file is dropped.
pub(super) async fn migration_lock(dir: &std::path::Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join("@migrate.lock");
    let file = open_lock_file(dir, &path)?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < PG_DEADLINE * 6 => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Lock(format!(
                    "{}: another process has been migrating the database for too long",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Lock(format!("{}: {e}", path.display())));
            }
        }
    }
}

/// Binding names are plain (`check_binding_name`), but the store may be handed any string:
/// anything outside `[a-z0-9_-]` becomes its hex code, so a name never leaves the directory.
fn file_name(binding: &str) -> String {
    binding
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02x}"),
        })
        .collect()
}

impl BindingLock {
    /// How long the lock has been held.
    pub fn held_for(&self) -> std::time::Duration {
        self.taken.elapsed()
    }

    /// Proves the lock is still held, before a step that cannot be undone. A PostgreSQL lock
    /// is lost with its session; the session is asked whether it holds the lock, which also
    /// catches a pooler in transaction mode that handed the session to someone else.
    pub async fn confirm(&mut self) -> Result<(), StoreError> {
        match &mut self.held {
            Held::Postgres(None) => Err(StoreError::Lock("the lock was released".into())),
            Held::Postgres(Some(conn)) => {
                // A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid
                // (low 32 bits), with objsubid 1.
                let held = sqlx::query(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks
                     WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                       AND objsubid = 1
                       AND classid = (($1::bigint >> 32) & 4294967295)::oid
                       AND objid = ($1::bigint & 4294967295)::oid)",
                )
                .bind(advisory_key(&self.binding))
                .fetch_one(&mut *conn);
                let held: bool = tokio::time::timeout(PG_DEADLINE, held)
                    .await
                    .map_err(|_| StoreError::Lock("the lock's session did not answer".into()))?
                    .and_then(|row| row.try_get(0))
                    .map_err(|e| StoreError::Lock(format!("the lock's session is gone: {e}")))?;
                if held {
                    Ok(())
                } else {
                    Err(StoreError::Lock(
                        "this session no longer holds the binding's advisory lock (is a pooler in transaction mode between regwarden and PostgreSQL?)".into(),
                    ))
                }
            }
            Held::File(file, path) => {
                // Someone may have removed the lock file (and another process made a new one
                // and locked that): the lock held is then no lock at all.
                let held = file.metadata();
                let now = std::fs::symlink_metadata(path.as_path());
                match (held, now) {
                    (Ok(h), Ok(n)) if h.dev() == n.dev() && h.ino() == n.ino() => Ok(()),
                    _ => Err(StoreError::Lock(format!(
                        "the lock file {} was removed or replaced while held: another process may hold the binding now",
                        path.display()
                    ))),
                }
            }
            Held::Memory(_) => Ok(()),
        }
    }

    /// Gives the lock up. Ending the session (or closing the file) is the release itself, so
    /// a release that fails half-way still frees the binding.
    pub async fn release(mut self) {
        if let Held::Postgres(conn) = &mut self.held
            && let Some(conn) = conn.take()
        {
            let _ = tokio::time::timeout(PG_DEADLINE, conn.close()).await;
        }
        // The rest goes with `drop`.
    }
}

impl Drop for BindingLock {
    /// A lock dropped without `release` (a task cancelled mid-rotation) frees its binding
    /// too: the file and the PostgreSQL connection by closing, the memory lock here.
    fn drop(&mut self) {
        match &self.held {
            Held::Memory(set) => {
                if let Ok(mut set) = set.lock() {
                    set.remove(&self.binding);
                }
            }
            // Its holder's stamp goes with it (a killed holder's stays, until the next one).
            Held::File(file, _) => {
                let _ = file.set_len(0);
            }
            Held::Postgres(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_sit_beside_the_database() {
        assert_eq!(
            lock_dir("sqlite:///var/lib/regwarden/regwarden.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/regwarden/regwarden.db.locks"))
        );
        assert_eq!(
            lock_dir("sqlite://regwarden.db"),
            Some(PathBuf::from("regwarden.db.locks"))
        );
        assert_eq!(lock_dir("sqlite::memory:"), None);
        assert_eq!(lock_dir("sqlite://x.db?mode=memory&cache=shared"), None);
    }

    #[test]
    fn a_lock_file_name_never_leaves_its_directory() {
        assert_eq!(file_name("api-v2_x"), "api-v2_x");
        assert_eq!(file_name("../etc"), "%2e%2e%2fetc");
    }

    #[test]
    fn advisory_keys_differ_per_binding() {
        assert_ne!(advisory_key("api"), advisory_key("web"));
        assert_eq!(advisory_key("api"), advisory_key("api"));
    }

    #[tokio::test]
    async fn a_file_lock_excludes_a_second_holder_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let space = LockSpace::Files {
            dir: dir.path().join("db.locks"),
        };
        let first = space.try_lock("api").await.unwrap().expect("free");
        assert!(space.try_lock("api").await.unwrap().is_none(), "held");
        assert!(
            space.try_lock("web").await.unwrap().is_some(),
            "per binding"
        );
        first.release().await;
        assert!(space.try_lock("api").await.unwrap().is_some(), "released");
    }

    #[tokio::test]
    async fn lock_files_are_private_and_say_since_when_they_are_held() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("db.locks");
        let space = LockSpace::Files { dir: locks.clone() };
        let before = SystemTime::now() - Duration::from_secs(1);
        let mut lock = space.try_lock("api").await.unwrap().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&locks), 0o700);
        assert_eq!(mode(&locks.join("api.lock")), 0o600);
        let since = space.holder_since("api").await.expect("the holder's stamp");
        assert!(since >= before && since <= SystemTime::now(), "{since:?}");
        assert!(lock.confirm().await.is_ok());

        // The file removed, and another made and locked at that path: the holder notices.
        std::fs::remove_file(locks.join("api.lock")).unwrap();
        let other = space
            .try_lock("api")
            .await
            .unwrap()
            .expect("a new file, a new lock");
        let e = lock.confirm().await.unwrap_err().to_string();
        assert!(e.contains("removed or replaced"), "{e}");
        drop(other);

        // A directory others may write is tightened.
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o777)).unwrap();
        let _again = space.try_lock("web").await.unwrap().unwrap();
        assert_eq!(mode(&locks), 0o700);
    }

    #[tokio::test]
    async fn a_memory_lock_is_freed_when_dropped_without_release() {
        let space = LockSpace::Memory(Arc::default());
        let first = space.try_lock("api").await.unwrap().expect("free");
        assert!(space.try_lock("api").await.unwrap().is_none());
        drop(first);
        assert!(space.try_lock("api").await.unwrap().is_some());
    }
}
