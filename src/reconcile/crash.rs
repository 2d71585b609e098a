//! Crash points for the crash-safety tests (invariant I4). Built only with the
//! `fault-injection` feature; otherwise every point compiles to nothing.

/// Aborts the process at `point` when `REGWARDEN_CRASH_AT` names it: no destructor runs, no
/// buffer is flushed, as with `kill -9`.
#[cfg(feature = "fault-injection")]
pub fn point(point: &str) {
    if std::env::var("REGWARDEN_CRASH_AT").as_deref() == Ok(point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_point: &str) {}
