//! The harness's data-driven suites (libtest-mimic trials: one per scenario, case,
//! backend or driver), in one binary: each file's `trials()` adds its own, and they run
//! on one pool of test threads (`--test-threads`, default one per core) as they did
//! one binary at a time before (issue 19 item 8). Filter as usual:
//! `cargo test -p dockproof --test suites -- fake::`, `-- docker-cli::job-basic`,
//! `-- cst_oracle`… (every trial's name is unique: checked below).
//!
//! Kept apart: `tests/remote.rs` (one trial at a time: each runs a whole suite against
//! a network namespace, and its timeouts measure the scenarios) and
//! `tests/conformance.rs` (prints its fidelity summary after the run; `cargo xtask
//! conformance` runs it alone).

#[path = "../support/mod.rs"]
mod support;

mod crosscheck;
mod cst;
mod cst_oracle;
mod exits;
mod faultmatrix;
mod fixture_rebuild;
mod hostile;
mod leftovers;
mod recordings;
mod scenarios;
mod secrets;
mod ssh;
mod symlink_race;
mod tls;
mod transport;

use std::collections::BTreeMap;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let trials: Vec<libtest_mimic::Trial> = [
        crosscheck::trials as fn() -> Vec<libtest_mimic::Trial>,
        cst::trials,
        cst_oracle::trials,
        exits::trials,
        faultmatrix::trials,
        fixture_rebuild::trials,
        hostile::trials,
        leftovers::trials,
        recordings::trials,
        scenarios::trials,
        secrets::trials,
        ssh::trials,
        symlink_race::trials,
        tls::trials,
        transport::trials,
    ]
    .into_iter()
    .flat_map(|trials| trials())
    .collect();
    // A filter names one trial only if names are unique across the files.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for trial in &trials {
        *seen.entry(trial.name()).or_default() += 1;
    }
    let twice: Vec<&str> = seen
        .into_iter()
        .filter_map(|(name, count)| (count > 1).then_some(name))
        .collect();
    assert!(twice.is_empty(), "trial names used twice: {twice:?}");
    libtest_mimic::run(&args, trials).exit();
}
