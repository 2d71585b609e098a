//! Snapshots of what a person reads (`reconcile`, `history`, `config check`, the component's
//! jobs), with what changes from run to run hidden: token ids, fingerprints, times, ports,
//! temporary directories.

/// Settings under which a snapshot of a command's output is stable.
pub fn stable() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in [
        (r"sha256:[0-9a-f]{12}", "sha256:[fingerprint]"),
        (r"\d{8}T\d{6}Z", "[stamp]"),
        (
            r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?( UTC)?)?",
            "[date]",
        ),
        (r"section_(start|end):\d+:", "section_$1:[time]:"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"/tmp/\.tmp\w+", "[dir]"),
        (r"gitlab\+deploy-token-\d+", "gitlab+deploy-token-[id]"),
        (r"\b(token|tokens) \d+", "$1 [id]"),
        (r"\(\d+\)", "([id])"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(true);
    settings
}
