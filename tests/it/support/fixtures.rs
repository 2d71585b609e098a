//! The one reader of `tests/fixtures/`: GitLab's recorded webhook payloads (with the
//! `X-Gitlab-Event` each is delivered with, from the table in their README) and the API
//! descriptions the contract tests serve with Prism. They are part of the repository: a missing
//! one is a broken checkout, and fails.

use std::path::{Path, PathBuf};

/// A file of `tests/fixtures/`.
pub fn path(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    assert!(
        path.exists(),
        "the fixture {} is missing from the repository",
        path.display()
    );
    path
}

/// Qovery's OpenAPI description, the part regwarden calls.
pub fn qovery_openapi() -> PathBuf {
    path("qovery-openapi-container-registry.yaml")
}

/// GitLab's OpenAPI v2 description, the part regwarden calls.
pub fn gitlab_openapi() -> PathBuf {
    path("gitlab-openapi-v2-subset.yaml")
}

/// One recorded GitLab delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The payload's file name, e.g. `push.json`.
    pub file: String,
    /// The `X-Gitlab-Event` header GitLab sends with it.
    pub event: String,
    pub body: String,
}

/// Every payload of `tests/fixtures/gitlab-webhooks/`, in the order of its README's table.
pub fn gitlab_deliveries() -> Vec<Delivery> {
    let dir = path("gitlab-webhooks");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("the fixtures' README");
    let deliveries: Vec<Delivery> = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains(".json`"))
        .map(|line| {
            let cells: Vec<&str> = line
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .collect();
            let body = std::fs::read_to_string(dir.join(cells[1]))
                .unwrap_or_else(|e| panic!("{}: {e}", cells[1]));
            Delivery {
                file: cells[1].to_string(),
                event: cells[2].to_string(),
                body,
            }
        })
        .collect();
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count();
    assert_eq!(
        deliveries.len(),
        on_disk,
        "every payload in {} has a row in its README",
        dir.display()
    );
    deliveries
}
