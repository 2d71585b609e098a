//! regwarden's own GitLab API token: its expiry watched every pass and, with
//! `gitlab.rotate_own_token`, rotated `own_token_rotate_before` its expiry.
//!
//! The rotation is the one step of regwarden that cannot be undone or retried: GitLab's
//! self-rotate revokes the token at once, and rotating a revoked token revokes the whole token
//! family (`docs/reference/gitlab.md`, "Personal access tokens, service accounts and
//! rotation" §1). So:
//!
//! 1. one rotation at a time, under the store's lock named [`LOCK`];
//! 2. before the request, a note `<token_file>.rotation-pending` records the fingerprint of
//!    the token being rotated; it goes once the new token is safely in the file;
//! 3. the new token is written to `token_file` (temporary file, fsync, rename, same
//!    permissions) before it is used or anything else happens;
//! 4. a note left behind (an answer lost, a process killed mid-rotation) while the file still
//!    holds that token means the rotation's outcome is unknown: regwarden never rotates that
//!    token again, and says so at every pass until a person puts a new token in the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use secrecy::ExposeSecret;

use crate::config::{GitlabConfig, OwnTokenKind};
use crate::credential::Fingerprint;
use crate::gitlab::GitlabClient;
use crate::outbound::ApiError;
use crate::store::Store;

/// The store lock that keeps two workers, processes or replicas from rotating the token at
/// once. No binding can have this name.
pub const LOCK: &str = "@api-token";

/// How the API token stands after a look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnToken {
    /// Not due; or without an expiry.
    Fine { expires_on: Option<NaiveDate> },
    /// Due, but regwarden may not rotate it (a token from an environment variable, or
    /// `rotate_own_token` off): a warning at every pass.
    Expiring { expires_on: NaiveDate },
    /// Rotated now; the new token is in the file and in use.
    Rotated { expires_on: NaiveDate },
    /// Another worker or process is rotating it.
    Busy,
}

/// Why the API token could not be kept alive.
#[derive(Debug, thiserror::Error)]
pub enum OwnTokenError {
    #[error("cannot read the API token's own record: {0}")]
    Read(#[source] ApiError),
    #[error("GitLab refused to rotate the API token in {file}: {source}. {hint}")]
    Refused {
        file: PathBuf,
        /// What the refusal means, and what to do.
        hint: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "the answer to the API token's rotation was lost ({source}): GitLab may have revoked the token in {file} and made one regwarden never received. regwarden does not try again (rotating a revoked token revokes its whole family): put a new API token in {file}"
    )]
    Lost {
        file: PathBuf,
        #[source]
        source: ApiError,
    },
    #[error(
        "the API token in {file} ({fingerprint}) was being rotated when an earlier run stopped or lost the answer: its rotation may have happened{leftovers}. regwarden does not rotate it again: check the token in GitLab, and put a working one in {file}"
    )]
    Unknown {
        file: PathBuf,
        fingerprint: String,
        leftovers: String,
    },
    #[error(
        "another worker or process has held the API token's lock since {since}, longer than reconcile.lease_ttl: its rotation of the token is stuck (a frozen process?); this is reported until its holder ends"
    )]
    Stuck { since: String },
    #[error(
        "the directory {dir} of gitlab.token_file is writable by others (mode {mode:o}): the token file could be replaced under regwarden, so it rotates nothing there; make the directory writable by its owner only (chmod go-w)"
    )]
    UnsafeDir { dir: PathBuf, mode: u32 },
    #[error(
        "cannot write {note}, which records a rotation of the API token before it is sent: {source}. Nothing was rotated; the directory of gitlab.token_file must be writable by regwarden"
    )]
    Note {
        note: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the API token was rotated, but the new one could not be written to {file}: {source}. The previous token is revoked; the new one lives in this process, which writes it again at every pass (a process that stops before then loses it: then put a new API token in {file})"
    )]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the API token file: {0}")]
    Secret(#[from] crate::config::SecretError),
    #[error("cannot take the API token's lock: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl OwnTokenError {
    /// The errors after which the API token may be dead: the pass should not run on it.
    pub fn is_fatal(&self) -> bool {
        // A failed write is not among them: the new token lives in this process, which goes
        // on with it (and writes it again at every pass).
        matches!(
            self,
            OwnTokenError::Lost { .. } | OwnTokenError::Unknown { .. }
        )
    }

    /// A short word for metrics and the journal.
    pub fn outcome(&self) -> &'static str {
        match self {
            OwnTokenError::Read(_) | OwnTokenError::Secret(_) | OwnTokenError::Store(_) => {
                "unreadable"
            }
            OwnTokenError::Refused { .. } => "refused",
            OwnTokenError::Lost { .. } => "lost",
            OwnTokenError::Unknown { .. } => "unknown",
            OwnTokenError::Write { .. } => "unwritten",
            OwnTokenError::Note { .. } => "unnoted",
            OwnTokenError::Stuck { .. } => "stuck",
            OwnTokenError::UnsafeDir { .. } => "unsafe",
        }
    }
}

/// How a look at the API token went, for the JSON report and the journal.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// `fine`, `expiring`, `rotated`, `busy`, or what went wrong (`refused`, `lost`,
    /// `unknown`, `unwritten`, `unreadable`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Report {
    pub fn of(result: &Result<OwnToken, OwnTokenError>) -> Self {
        let (status, expires_on, message) = match result {
            Ok(OwnToken::Fine { expires_on }) => ("fine", *expires_on, None),
            Ok(OwnToken::Expiring { expires_on }) => (
                "expiring",
                Some(*expires_on),
                Some(format!(
                    "the GitLab API token expires on {expires_on}: replace it, or give it with gitlab.token_file and set gitlab.rotate_own_token = true"
                )),
            ),
            Ok(OwnToken::Rotated { expires_on }) => (
                "rotated",
                Some(*expires_on),
                Some(format!(
                    "rotated the GitLab API token; the new one expires on {expires_on}"
                )),
            ),
            Ok(OwnToken::Busy) => ("busy", None, None),
            Err(e) => (e.outcome(), None, Some(crate::outbound::error_chain(e))),
        };
        Self {
            status,
            expires_on,
            message,
        }
    }

    /// Whether the pass should count it as a failure (exit 1).
    pub fn failed(&self) -> bool {
        !matches!(self.status, "fine" | "expiring" | "rotated" | "busy")
    }

    /// Writes a rotation, or a failure to keep the token alive, to the journal (under
    /// [`LOCK`]'s name); a look that changed nothing is not written.
    pub async fn record(&self, store: Option<&Store>) {
        let (Some(store), Some(message)) = (store, &self.message) else {
            return;
        };
        if self.status == "expiring" {
            return;
        }
        let entry = crate::store::JournalEntry {
            at_ms: crate::store::now_ms(),
            binding: LOCK.into(),
            rotation: None,
            step: "rotate_api_token".into(),
            outcome: if self.status == "rotated" {
                "ok"
            } else {
                self.status
            }
            .into(),
            reason: message.clone(),
            token_id: None,
            fingerprint: None,
        };
        if let Err(e) = store.record(&entry).await {
            tracing::warn!(error = %e, "cannot write the journal");
        }
    }
}

fn pending_note(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".rotation-pending");
    PathBuf::from(name)
}

/// Reads the token file again and sends what it holds from now on: another worker, process
/// or replica may have rotated the token since this one read it. A no-op for a token from an
/// environment variable.
pub fn refresh_from_file(
    config: &GitlabConfig,
    client: &GitlabClient,
) -> Result<(), OwnTokenError> {
    let Some(file) = &config.token_file else {
        return Ok(());
    };
    let in_file = config_source(config).read();
    // A token rotated here whose write failed lives in this process: written again now,
    // and the file's token, the one rotated away, is never taken back.
    let mut unwritten = UNWRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pending) = unwritten.get(file) {
        let replaced_by_hand = in_file
            .as_ref()
            .is_ok_and(|t| Fingerprint::of(t.expose_secret()).as_str() != pending.rotated_away);
        if !replaced_by_hand {
            let mut text = pending.token.expose_secret().to_string();
            text.push('\n');
            match write_atomically(file, text.as_bytes(), Some(file)) {
                Ok(()) => {
                    tracing::info!(file = %file.display(), "the rotated API token is in its file now")
                }
                Err(e) => {
                    tracing::error!(file = %file.display(), error = %e, "the rotated API token still cannot be written to its file; it lives in this process only")
                }
            }
            client.set_token(pending.token.clone());
            if std::fs::read_to_string(file)
                .is_ok_and(|t| t.trim() == pending.token.expose_secret())
            {
                unwritten.remove(file);
            }
            return Ok(());
        }
        // Someone put another token in the file: it is the one to use.
        unwritten.remove(file);
    }
    drop(unwritten);
    client.set_token(in_file?);
    Ok(())
}

/// A token this process rotated but could not write to its file yet.
struct Unwritten {
    token: secrecy::SecretString,
    /// The fingerprint of the token it replaced, which the file still holds.
    rotated_away: String,
}

/// Per token file: what a failed write left in this process.
static UNWRITTEN: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<PathBuf, Unwritten>>,
> = std::sync::LazyLock::new(Default::default);

/// How long a pass waits for another holder's rotation of the API token to finish.
const WAIT_FOR_HOLDER: std::time::Duration = std::time::Duration::from_secs(30);

/// Looks at the API token and, when it is due and regwarden may, rotates it.
pub async fn keep_alive(
    config: &GitlabConfig,
    client: &GitlabClient,
    store: Option<&Store>,
    lease_ttl: std::time::Duration,
) -> Result<OwnToken, OwnTokenError> {
    let rotatable = config.rotate_own_token && config.token_file.is_some();
    refresh_from_file(config, client)?;
    let expires_on = match expiry(client).await {
        Ok(e) => e,
        // A token refused outright may be one a rotation just revoked: another holder's,
        // about to write its successor (wait for it, under the lock, and read the file
        // again), or one that never finished (say so). Notes are judged under the lock only.
        Err(OwnTokenError::Read(e @ ApiError::Unauthorized { .. })) if rotatable => {
            let file = config.token_file.as_deref().expect("rotatable");
            let Some(store) = store else {
                let current = Fingerprint::of(config_source(config).read()?.expose_secret());
                return match read_note(file) {
                    Some(n) if n.fingerprint == current.as_str() => Err(OwnTokenError::Unknown {
                        file: file.to_path_buf(),
                        fingerprint: n.fingerprint,
                        leftovers: leftovers(file),
                    }),
                    _ => Err(OwnTokenError::Read(e)),
                };
            };
            return locked(config, client, store, file, lease_ttl).await;
        }
        Err(e) => return Err(e),
    };
    let today = Utc::now().date_naive();
    let due = expires_on.filter(|e| is_due(config, *e, today));
    let Some(expires_on) = due else {
        return Ok(OwnToken::Fine { expires_on });
    };
    let (true, Some(file)) = (rotatable, &config.token_file) else {
        return Ok(OwnToken::Expiring { expires_on });
    };
    let Some(store) = store else {
        // No store, no lock: a dry run only says it is due.
        return Ok(OwnToken::Expiring { expires_on });
    };
    locked(config, client, store, file, lease_ttl).await
}

/// Takes the API token's lock, waiting a while for another holder's rotation to finish,
/// then looks again and rotates if still due.
async fn locked(
    config: &GitlabConfig,
    client: &GitlabClient,
    store: &Store,
    file: &Path,
    lease_ttl: std::time::Duration,
) -> Result<OwnToken, OwnTokenError> {
    let started = std::time::Instant::now();
    let mut lock = loop {
        match store.try_lock_binding(LOCK).await? {
            Some(lock) => break lock,
            None if started.elapsed() < WAIT_FOR_HOLDER => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            None => {
                if let Some(since) = store.lock_holder_since(LOCK).await
                    && std::time::SystemTime::now()
                        .duration_since(since)
                        .is_ok_and(|age| age > lease_ttl)
                {
                    return Err(OwnTokenError::Stuck {
                        since: chrono::DateTime::<Utc>::from(since)
                            .format("%Y-%m-%d %H:%M:%S UTC")
                            .to_string(),
                    });
                }
                refresh_from_file(config, client)?;
                return Ok(OwnToken::Busy);
            }
        }
    };
    let result = rotate_locked(config, client, file, &mut lock).await;
    lock.release().await;
    result
}

fn is_due(config: &GitlabConfig, expires_on: NaiveDate, today: NaiveDate) -> bool {
    expires_on
        .checked_sub_signed(to_days(config.own_token_rotate_before.0))
        .is_none_or(|d| d <= today)
}

/// Under the API token's lock only: the fingerprint of the token in `file` when a rotation
/// of that very token was started and never finished (its answer lost, its process killed).
/// A note about another token (a person replaced it since) is stale, and goes.
fn unfinished(config: &GitlabConfig, file: &Path) -> Result<Option<String>, OwnTokenError> {
    let Some(noted) = read_note(file) else {
        return Ok(None);
    };
    let current = Fingerprint::of(config_source(config).read()?.expose_secret());
    if current.as_str() == noted.fingerprint {
        Ok(Some(noted.fingerprint))
    } else {
        remove_note(file, &noted.attempt);
        Ok(None)
    }
}

/// A note: the fingerprint of the token being rotated, and the attempt that wrote it (so that
/// a holder only ever removes its own).
struct Note {
    fingerprint: String,
    attempt: String,
}

/// The note beside `file`, when one is there and reads as regwarden writes them
/// (`sha256:<12 hex> <attempt>`).
fn read_note(file: &Path) -> Option<Note> {
    let text = std::fs::read_to_string(pending_note(file)).ok()?;
    let mut words = text.split_whitespace();
    let fingerprint = words.next()?.to_string();
    let attempt = words.next()?.to_string();
    let hex = fingerprint.strip_prefix("sha256:")?;
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || words.next().is_some() {
        return None;
    }
    Some(Note {
        fingerprint,
        attempt,
    })
}

/// A name nobody can guess ahead: process, time and a per-process random key hashed.
fn unpredictable() -> String {
    use std::hash::{BuildHasher, RandomState};
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let a = RandomState::new().hash_one((std::process::id(), nanos));
    let b = RandomState::new().hash_one(a);
    format!("{a:016x}{b:016x}")
}

/// Creates `path`, which must not exist (`O_EXCL`) and is never a symbolic link followed
/// (`O_NOFOLLOW`), readable by its owner only (or `mode`).
fn create_new_private(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A token file in a directory others may write can be replaced under regwarden (a file of
/// theirs, a link elsewhere): regwarden does not rotate a token into such a place.
fn refuse_unsafe_dir(file: &Path) -> Result<(), OwnTokenError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = std::fs::metadata(dir)
        .map_err(|source| OwnTokenError::Note {
            note: pending_note(file),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(OwnTokenError::UnsafeDir {
            dir: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Removes the note if attempt `attempt` wrote it.
fn remove_note(file: &Path, attempt: &str) {
    if read_note(file).is_some_and(|n| n.attempt == attempt) {
        let _ = std::fs::remove_file(pending_note(file));
    }
}

/// Writes the note of a new attempt, never over another one: `false` when a note appeared
/// meanwhile (another holder is rotating).
fn write_note(file: &Path, fingerprint: &str, attempt: &str) -> std::io::Result<bool> {
    let note = pending_note(file);
    let tmp = PathBuf::from(format!("{}.{attempt}", note.display()));
    {
        let mut f = create_new_private(&tmp, 0o600)?;
        f.write_all(format!("{fingerprint} {attempt}\n").as_bytes())?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, &note);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        // Another holder's note, or something else in the way.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_note(file) {
            Some(_) => Ok(false),
            None => Err(std::io::Error::other(format!(
                "{} exists and is not a note regwarden wrote: remove it",
                note.display()
            ))),
        },
        Err(e) => Err(e),
    }
}

/// Temporary files a write of the token file left behind (a process killed between writing
/// and renaming): they may hold the token GitLab returned.
fn leftovers(file: &Path) -> String {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}.regwarden-",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    let found: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        String::new()
    } else {
        format!(
            " (a write of the new token was interrupted: {} may hold it)",
            found.join(", ")
        )
    }
}

/// Under the lock, proven held: the note, the file and the token's record read again
/// (another holder may just have rotated it, or lost a rotation's answer), then one rotate.
async fn rotate_locked(
    config: &GitlabConfig,
    client: &GitlabClient,
    file: &Path,
    lock: &mut crate::store::BindingLock,
) -> Result<OwnToken, OwnTokenError> {
    if let Some(fingerprint) = unfinished(config, file)? {
        return Err(OwnTokenError::Unknown {
            file: file.to_path_buf(),
            fingerprint,
            leftovers: leftovers(file),
        });
    }
    let token = config_source(config).read()?;
    client.set_token(token.clone());
    let today = Utc::now().date_naive();
    let Some(expires_on) = expiry(client).await? else {
        return Ok(OwnToken::Fine { expires_on: None });
    };
    if !is_due(config, expires_on, today) {
        return Ok(OwnToken::Fine {
            expires_on: Some(expires_on),
        });
    }
    refuse_unsafe_dir(file)?;
    let fingerprint = Fingerprint::of(token.expose_secret());
    let note = pending_note(file);
    let attempt = unpredictable();
    match write_note(file, fingerprint.as_str(), &attempt) {
        Ok(true) => {}
        // Under the lock no other holder writes a note: one that appeared is another process
        // rotating this token without the lock (a store it does not share), or not ours.
        Ok(false) => {
            return Err(OwnTokenError::Note {
                note,
                source: std::io::Error::other(
                    "another process wrote a rotation note while this one held the lock: every process sharing this token file must share the store (the same database, an absolute path for SQLite)",
                ),
            });
        }
        Err(source) => return Err(OwnTokenError::Note { note, source }),
    }
    // The file read again now that the note is there: a process that read the token before
    // another rotated it must not rotate it a second time (GitLab would revoke the family).
    let now_in_file = config_source(config).read()?;
    if Fingerprint::of(now_in_file.expose_secret()) != fingerprint {
        remove_note(file, &attempt);
        client.set_token(now_in_file);
        return Ok(OwnToken::Busy);
    }
    // The last moment to stop: a holder whose lock ended (its PostgreSQL session) must not
    // rotate, since another may be doing it.
    if let Err(e) = lock.confirm().await {
        remove_note(file, &attempt);
        return Err(OwnTokenError::Store(e));
    }
    // Inside GitLab's lifetime limit wherever the instance's time zone is.
    let new_expiry = (today + to_days(config.own_token_lifetime.0))
        .min(today + chrono::Duration::days(crate::gitlab::MAX_ACCESS_TOKEN_DAYS));
    // The token that was noted is the one presented, whatever the shared client holds now.
    let rotated = client
        .rotate_own_token(
            &token,
            config.own_token_kind,
            config.own_token_namespace.as_deref(),
            new_expiry,
        )
        .await;
    let created = match rotated {
        Ok(created) => created,
        Err(e) if e.certainly_not_applied() => {
            remove_note(file, &attempt);
            return Err(OwnTokenError::Refused {
                file: file.to_path_buf(),
                hint: refusal_hint(&e, config, expires_on),
                source: e,
            });
        }
        // The note stays: the outcome is unknown.
        Err(e) => {
            return Err(OwnTokenError::Lost {
                file: file.to_path_buf(),
                source: e,
            });
        }
    };
    crate::reconcile::crash::point("after_api_token_rotate");
    // The new token reaches the file before anything uses it.
    let mut text = created.secret.expose_secret().to_string();
    text.push('\n');
    let written = write_atomically(file, text.as_bytes(), Some(file));
    client.set_token(created.secret.clone());
    if let Err(source) = written {
        // Kept in this process, written again at every pass; the note stays, so no process
        // rotates the token in the file (already revoked) again.
        UNWRITTEN.lock().unwrap_or_else(|e| e.into_inner()).insert(
            file.to_path_buf(),
            Unwritten {
                token: created.secret,
                rotated_away: fingerprint.as_str().to_string(),
            },
        );
        return Err(OwnTokenError::Write {
            file: file.to_path_buf(),
            source,
        });
    }
    remove_note(file, &attempt);
    Ok(OwnToken::Rotated {
        expires_on: created.expires_on.unwrap_or(new_expiry),
    })
}

/// What a refusal of the self-rotate means (`lib/api/personal_access_tokens/self_rotation.rb`,
/// `lib/api/resource_access_tokens/self_rotation.rb`).
fn refusal_hint(e: &ApiError, config: &GitlabConfig, expires_on: NaiveDate) -> String {
    let namespace = config.own_token_namespace.as_deref().unwrap_or("");
    match (e, config.own_token_kind) {
        // The project or group endpoint answers 401 when the token is not an access token of
        // that project or group; the token itself was just read, so it is alive.
        (ApiError::Unauthorized { .. }, OwnTokenKind::Project | OwnTokenKind::Group) => format!(
            "GitLab answered 401 to the self-rotate of {kind} {namespace:?}: the API token is not an access token of that {kind}. The token was not changed and works until it expires on {expires_on}: set gitlab.own_token_namespace to the full path (or id) of the {kind} the token belongs to, or own_token_kind = \"personal\" for a personal access token",
            kind = match config.own_token_kind {
                OwnTokenKind::Group => "group",
                _ => "project",
            },
        ),
        (ApiError::Unauthorized { .. }, _) => {
            "GitLab no longer accepts the token (revoked or expired): put a new API token in the file".into()
        }
        (ApiError::Permanent { status: 405, .. } | ApiError::NotFound { .. }, _) => {
            "gitlab.own_token_kind (and own_token_namespace) must name the token's kind: personal, or the project or group of an access token".into()
        }
        (ApiError::Forbidden { .. }, _) => format!(
            "The token was not changed and works until it expires on {expires_on}: give it the api or self_rotate scope, or rotate it by hand"
        ),
        (ApiError::Permanent { status: 400, message, .. }, _)
            if message.contains("Expires at must be before") =>
        {
            format!(
                "The token was not changed and works until it expires on {expires_on}: GitLab refuses a lifetime that long; lower gitlab.own_token_lifetime below the instance's maximum lifetime of access tokens"
            )
        }
        _ => format!(
            "The token was not changed and works until it expires on {expires_on}; regwarden tries again at the next pass"
        ),
    }
}

/// When the API token expires, from its own record.
async fn expiry(client: &GitlabClient) -> Result<Option<NaiveDate>, OwnTokenError> {
    let info = client.current_token().await.map_err(OwnTokenError::Read)?;
    Ok(info.expires_on())
}

fn config_source(config: &GitlabConfig) -> crate::config::SecretSource<'_> {
    crate::config::SecretSource {
        key: "gitlab.token_env",
        env: &config.token_env,
        file: config.token_file.as_deref(),
    }
}

fn to_days(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::days((d.as_secs() / 86_400) as i64)
}

/// Replaces `path` with `bytes`: a temporary file in the same directory, written and synced,
/// renamed over it, and the directory synced, so that a crash leaves the old content or the
/// new one, never a mix. The new file gets the permissions of `like` (the file it replaces),
/// else owner-only.
fn write_atomically(path: &Path, bytes: &[u8], like: Option<&Path>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mode = like
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.regwarden-{}", unpredictable()));
    let result = (|| {
        let mut f = create_new_private(&tmp, mode)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_is_replaced_whole_with_the_permissions_it_had() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gitlab-token");
        std::fs::write(&file, "glpat-old\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();

        write_atomically(&file, b"glpat-new\n", Some(&file)).unwrap();

        assert_eq!(std::fs::read_to_string(&file).unwrap(), "glpat-new\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn the_pending_note_sits_beside_the_token_file() {
        assert_eq!(
            pending_note(Path::new("/run/secrets/gitlab-token")),
            PathBuf::from("/run/secrets/gitlab-token.rotation-pending")
        );
    }
}
