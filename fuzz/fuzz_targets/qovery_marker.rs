//! The marker line in a Qovery registry's description (anyone with access to the registry can
//! edit it): finding it never panics, a marker found reads back the same once written, and
//! writing it into the description leaves exactly one marker line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regwarden::reconcile::Marker;

fuzz_target!(|data: &[u8]| {
    let description = String::from_utf8_lossy(data);
    if let Some(marker) = Marker::find(&description) {
        let line = marker.line();
        assert_eq!(Marker::find(&line).as_ref(), Some(&marker), "{line}");
        let written = marker.write_into(&description);
        assert_eq!(
            written
                .lines()
                .filter(|l| l.trim().starts_with("regwarden:"))
                .count(),
            1,
            "{written}"
        );
        assert_eq!(Marker::find(&written), Some(marker));
    }
});
