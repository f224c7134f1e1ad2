//! container-structure-test (CST) configs, run unchanged: the file format
//! (`model`), loading with `file:line` errors (`load`), CST's verdicts as pure
//! functions (`check`), image files from tar archives (`files`: `docker cp`
//! and `docker save`), and the parallel runner (`run`).

pub mod check;
pub mod files;
pub mod host;
pub mod load;
pub mod model;
pub mod oci;
pub mod run;

pub use load::{CstFileReport, LoadedCst, load_file, remote_bind_problems};
pub mod report;

pub use run::{
    CstContext, CstObserver, CstOptions, CstResult, Driver, ObservedRun, file_failure, run_all,
    run_all_with_results, sweep,
};
