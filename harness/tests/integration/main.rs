//! The harness's integration tests that use libtest's `#[test]`: the dockproof binary
//! end to end (exit codes, diagnostics, reports, CI output, canary, lint, hostile
//! paths and YAML). One binary instead of one per file: each of them linked the whole
//! library again (issue 19 item 8; the numbers are in the README's development notes).
//! Trials that need their own harness (libtest-mimic: per-backend and per-case
//! trials) are in `suites/`.

#[path = "../support/mod.rs"]
mod support;

mod blocking_work;
mod canary;
mod ci_output;
mod cli;
mod faults;
mod hostile_paths;
mod hostile_yaml;
mod layout;
mod lint;
mod sweep;
mod unmodelled;
