//! Scenario files: the model, YAML with locations, loading and validation.

pub mod diagnostic;
pub mod include;
pub mod load;
pub mod model;
pub mod template;
pub mod vars;
pub mod yaml;

pub use load::{
    Diagnostic, FileReport, LoadOptions, LoadedScenario, discover, load_file, load_file_with,
    schema,
};
pub use model::*;
pub use vars::VarSources;
