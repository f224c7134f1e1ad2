//! dockproof: end-to-end validation of Docker jobs.
//!
//! Data flows one way: [`scenario`] files are loaded and validated, the
//! [`engine`] executes them through a [`backend`] and the [`filestore`],
//! [`check`] turns observations into verdicts, and [`report`] renders the
//! events the [`runner`] emits. [`Run`] is the whole of it behind one call, as the
//! `dockproof` command line uses it.

pub mod backend;
pub mod blocking;
pub mod builtin;
pub mod canary;
pub mod cancel;
pub mod category;
pub mod check;
pub mod clean;
pub mod compose;
pub mod cst;
pub mod engine;
pub mod events;
pub mod filestore;
pub mod fixtures;
pub mod history;
pub mod hostports;
pub mod input_file;
pub mod lint;
pub mod partition;
pub mod paths;
pub mod process;
pub mod project;
pub mod record;
pub mod recordings;
pub mod report;
pub mod run;
pub mod run_id;
pub mod runner;
pub mod scenario;
pub mod secrets;
pub mod suggest;
pub mod transport;
pub mod workspace;

pub use run::{Exit, Run};
