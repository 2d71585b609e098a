//! Every recorded GitLab payload in `tests/fixtures/gitlab-webhooks/` is parsed into
//! regwarden's own events and compared with a reviewed snapshot (`tests/it/snapshots/`), the
//! ignored ones included.

use regwarden::gitlab::events::parse;

#[test]
fn every_fixture_parses_into_the_reviewed_event() {
    let deliveries = crate::support::fixtures::gitlab_deliveries();
    assert_eq!(deliveries.len(), 15);
    for d in deliveries {
        let event =
            parse(&d.event, d.body.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", d.file));
        insta::assert_json_snapshot!(d.file.trim_end_matches(".json"), event);
    }
}
