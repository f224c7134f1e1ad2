//! Scenario files: the model, YAML with locations, loading and validation.

pub mod load;
pub mod model;
pub mod template;
pub mod yaml;

pub use load::{Diagnostic, FileReport, LoadedScenario, discover, load_file, schema};
pub use model::*;
