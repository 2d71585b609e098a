//! The tools some tests need beside the binary: Prism, gitlab-ci-local (both pinned in
//! `ci/package.json`, installed by `ci/test.sh` into `ci/node_modules`), and the built image.
//! (The container registry and PostgreSQL are found by `registry.rs` and `postgres.rs`, which
//! fail outright when they are missing.)
//!
//! A test whose tool is missing proves nothing, so it never passes quietly: with `CI` set it
//! fails, saying how to install the tool; otherwise it says it skipped, loudly, and records the
//! skip in [`skip_log`] for `ci/test.sh`'s summary.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where skipped tests are recorded, one line each: `REGWARDEN_SKIP_LOG`, else a file in the
/// integration tests' temporary directory.
pub fn skip_log() -> PathBuf {
    std::env::var_os("REGWARDEN_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("regwarden-skipped.log"))
}

/// Records that the running test skipped, and says so loudly; for a skip that is allowed
/// even under CI (a test that cannot run as this user), or after [`missing`] decided.
pub fn skip(what: &str, why: &str, install: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("\n*** SKIPPED {test}: it needs {what}, which is missing ({why}). {install} ***\n");
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
    {
        let _ = writeln!(log, "{test}: needs {what} ({why})");
    }
}

/// A test cannot run here because `what` is missing (`why`); `install` says how to get it.
/// Fails under CI; elsewhere, reports the skip and returns, for the test to return.
pub fn missing(what: &str, why: &str, install: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test} needs {what}, which is missing here ({why}): {install}");
    }
    skip(what, why, install);
}

/// The Node tool `name` from `$var`, else from `ci/node_modules/.bin`.
fn node_tool(var: &str, name: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("ci/node_modules/.bin/{name}"))
    });
    if path.exists() {
        return Some(path);
    }
    missing(
        name,
        &format!("{} does not exist", path.display()),
        &format!(
            "run ci/test.sh, which installs the Node tools pinned in ci/package.json (npm ci --prefix ci), or set {var} to the tool's path"
        ),
    );
    None
}

/// Prism (`@stoplight/prism-cli`), for the API contract tests.
pub fn prism() -> Option<PathBuf> {
    node_tool("REGWARDEN_PRISM", "prism")
}

/// `gitlab-ci-local`, which runs the component's templates.
pub fn gitlab_ci_local() -> Option<PathBuf> {
    node_tool("REGWARDEN_GITLAB_CI_LOCAL", "gitlab-ci-local")
}
