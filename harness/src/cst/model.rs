//! The container-structure-test file format, as CST's Go types read it
//! (`pkg/types/v1`, `pkg/types/v2`, `pkg/types/unversioned`): the same keys,
//! the same defaults (`shouldExist: true`, `exitCode: 0`, unchecked uid/gid).
//! As CST's YAML reader (yaml.v2, strict) an unknown key is an error; a `.json`
//! config is read leniently (see `load.rs`). YAML 1.1 booleans (`yes`, `on`, ...)
//! are booleans where CST expects one, and a null is the field's default.

use serde::{Deserialize, Deserializer};

/// A boolean as yaml.v2 resolves one: YAML 1.2's `true`/`false` and YAML 1.1's
/// `y`, `yes`, `on` (and their capitalisations), which the spanned reader keeps as text.
pub fn yaml11_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Bool(bool),
        Text(String),
    }
    match Text::deserialize(deserializer)? {
        Text::Bool(value) => Ok(value),
        Text::Text(text) => match text.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
                Ok(true)
            }
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
            | "FALSE" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "invalid type: string `{other}`, expected a boolean (true/false, yes/no, on/off)"
            ))),
        },
    }
}

/// `schemaVersion` 1.0.0 (command as a list) or 2.0.0 (command plus args).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVersion {
    V1,
    V2,
}

/// One CST file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CstConfig {
    pub schema_version: Option<String>,
    pub global_env_vars: Vec<EnvVar>,
    pub command_tests: Vec<CommandTest>,
    pub file_existence_tests: Vec<FileExistenceTest>,
    pub file_content_tests: Vec<FileContentTest>,
    pub metadata_test: Option<MetadataTest>,
    pub license_tests: Vec<LicenseTest>,
    pub container_run_options: Option<ContainerRunOptions>,
}

/// `key`/`value` (and `isRegex` in metadata tests).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
    #[serde(deserialize_with = "yaml11_bool")]
    pub is_regex: bool,
}

/// `command` is a string in 2.0.0 and a list in 1.0.0.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Program(String),
    Argv(Vec<String>),
}

impl Default for Command {
    fn default() -> Self {
        Command::Program(String::new())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct CommandTest {
    pub name: String,
    pub setup: Vec<Vec<String>>,
    pub teardown: Vec<Vec<String>>,
    pub env_vars: Vec<EnvVar>,
    pub exit_code: i64,
    pub command: Option<Command>,
    pub args: Option<Vec<String>>,
    pub expected_output: Vec<String>,
    pub excluded_output: Vec<String>,
    pub expected_error: Vec<String>,
    pub excluded_error: Vec<String>,
}

impl CommandTest {
    /// The argv: `command` then `args` (2.0.0), or the list (1.0.0).
    pub fn argv(&self) -> Vec<String> {
        match &self.command {
            Some(Command::Program(program)) => std::iter::once(program.clone())
                .chain(self.args.iter().flatten().cloned())
                .collect(),
            Some(Command::Argv(argv)) => argv.clone(),
            None => Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileExistenceTest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default = "default_true", deserialize_with = "yaml11_bool")]
    pub should_exist: bool,
    #[serde(default)]
    pub permissions: String,
    /// `None` is CST's -1: not checked.
    #[serde(default)]
    pub uid: Option<i64>,
    #[serde(default)]
    pub gid: Option<i64>,
    #[serde(default)]
    pub is_executable_by: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct FileContentTest {
    pub name: String,
    pub path: String,
    pub expected_contents: Vec<String>,
    pub excluded_contents: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct MetadataTest {
    pub env_vars: Vec<EnvVar>,
    pub unbound_env_vars: Vec<EnvVar>,
    pub exposed_ports: Vec<String>,
    pub unexposed_ports: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: String,
    pub volumes: Vec<String>,
    pub unmounted_volumes: Vec<String>,
    pub labels: Vec<EnvVar>,
    pub user: String,
}

impl MetadataTest {
    /// CST skips an empty metadata test.
    pub fn is_empty(&self) -> bool {
        self.env_vars.is_empty()
            && self.unbound_env_vars.is_empty()
            && self.exposed_ports.is_empty()
            && self.unexposed_ports.is_empty()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.workdir.is_empty()
            && self.user.is_empty()
            && self.volumes.is_empty()
            && self.unmounted_volumes.is_empty()
            && self.labels.is_empty()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LicenseTest {
    #[serde(deserialize_with = "yaml11_bool")]
    pub debian: bool,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ContainerRunOptions {
    pub user: String,
    #[serde(deserialize_with = "yaml11_bool")]
    pub privileged: bool,
    #[serde(deserialize_with = "yaml11_bool")]
    pub allocate_tty: bool,
    /// Names of host variables passed through (unset or empty ones are not).
    pub env_vars: Vec<String>,
    pub env_file: String,
    pub capabilities: Vec<String>,
    pub bind_mounts: Vec<String>,
}

impl ContainerRunOptions {
    /// CST's `IsSet`: only then do the options apply.
    pub fn is_set(&self) -> bool {
        !self.user.is_empty()
            || self.privileged
            || self.allocate_tty
            || !self.env_file.is_empty()
            || !self.env_vars.is_empty()
            || !self.capabilities.is_empty()
            || !self.bind_mounts.is_empty()
    }
}
/// `HOST:CONTAINER[:ro|:rw]` with an absolute host path.
pub fn parse_bind_mount(text: &str) -> Result<crate::backend::Mount, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [host, container] => (*host, *container, false),
        [host, container, "ro"] => (*host, *container, true),
        [host, container, "rw"] => (*host, *container, false),
        _ => return Err(format!("`{text}` is not a bind mount")),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(format!("`{text}`: both paths must be absolute"));
    }
    Ok(crate::backend::Mount {
        source: crate::backend::MountSource::Bind(host.into()),
        container: container.to_owned(),
        read_only,
    })
}
