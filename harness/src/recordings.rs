//! Recordings on dockproof's side: where a scenario's recording lives, what the engine
//! keeps of each container it runs while recording (`dockproof record`), and how a
//! fresh run is compared with the recording (`dockproof record --check`). The format,
//! the workspace fingerprint and the comparisons are in the `dockproof-recording`
//! crate, shared with fake-docker, which replays them. See docs/recordings.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dockproof_recording::{
    self as format, Blobs, Call, Content, Ended, Entry, Outcome, RecordedContainer, Recording,
    Stream,
};
use serde_json::Value;

use crate::backend::{Captured, ContainerSpec, ExecOutput, ExecRequest, Logs};
use crate::scenario::LoadedScenario;
use crate::secrets::Masker;

/// What a run does with recordings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecordingMode {
    /// Nothing (real backends under `dockproof run`).
    #[default]
    Off,
    /// On the fake: a scenario with a recording has it replayed (`FAKE_DOCKER_RECORDINGS`).
    Replay { root: Option<PathBuf> },
    /// `dockproof record`: write each passing scenario's recording.
    Record { root: Option<PathBuf> },
    /// `dockproof record --check`: compare each scenario with its recording; drift fails it.
    Check { root: Option<PathBuf> },
}

impl RecordingMode {
    /// Whether containers are observed for a recording (record or check).
    pub fn observes(&self) -> bool {
        matches!(
            self,
            RecordingMode::Record { .. } | RecordingMode::Check { .. }
        )
    }

    fn root(&self) -> Option<&Path> {
        match self {
            RecordingMode::Off => None,
            RecordingMode::Replay { root }
            | RecordingMode::Record { root }
            | RecordingMode::Check { root } => root.as_deref(),
        }
    }

    /// The recording directory of a scenario: `ROOT/SLUG`, by default
    /// `recordings/SLUG` next to the scenario file.
    pub fn dir_for(&self, loaded: &LoadedScenario) -> PathBuf {
        dir_for(loaded, self.root())
    }
}

/// `root/SLUG`, or `recordings/SLUG` beside the scenario file.
pub fn dir_for(loaded: &LoadedScenario, root: Option<&Path>) -> PathBuf {
    let slug = crate::run_id::slug(&loaded.scenario.name);
    match root {
        Some(root) => root.join(slug),
        None => loaded
            .path
            .parent()
            .unwrap_or(Path::new("."))
            .join("recordings")
            .join(slug),
    }
}

/// The image configuration fields a recording keeps (`docker image inspect`'s `Config`).
const IMAGE_CONFIG_FIELDS: [&str; 9] = [
    "Cmd",
    "Entrypoint",
    "Env",
    "User",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
];

/// What the engine observed of one finished container, for its recording.
pub struct Observed<'a> {
    pub step: &'a str,
    pub image: &'a str,
    pub spec: &'a ContainerSpec,
    /// `docker inspect` of the container.
    pub inspect: &'a Value,
    /// `docker image inspect` of its image.
    pub image_inspect: &'a Value,
    /// Where the workspace is mounted (none for a service without one).
    pub mount: Option<&'a str>,
    pub before: &'a [Entry],
    /// Workspace files an earlier container of the recording left holding a secret, by
    /// path: their masked size and sha256 (what a replay writes there).
    pub masked: &'a BTreeMap<String, (u64, String)>,
    pub after: &'a [Entry],
    pub exit_code: i64,
    pub oom_killed: bool,
    pub timed_out: bool,
    pub stdout: &'a Captured,
    pub stderr: &'a Captured,
}

/// A masked copy of a JSON value (secrets in an image's env or labels), keys sorted; an empty
/// object or list is `null`, as the CLI shows it (the Engine API through bollard gives
/// `{}` where `docker image inspect` prints `null`).
fn masked_json(value: &Value, masker: &Masker) -> Value {
    let empty = match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    };
    if empty {
        return Value::Null;
    }
    let text = value.to_string();
    let masked = masker.mask(&text);
    sorted(serde_json::from_str(&masked).unwrap_or(Value::Null))
}

/// Objects with their keys sorted, at every level: the Engine API through bollard gives
/// maps (`Labels`, `ExposedPorts`) in hash order, which would change a re-recording.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted(value)))
                    .collect(),
            )
        }
        Value::Array(list) => Value::Array(list.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// The recorded container: the call as the daemon resolved it, masked, and its outcome,
/// with workspace results read through `read` (a file's bytes, up to the blob limit).
pub fn container(
    observed: &Observed<'_>,
    masker: &Masker,
    blobs: &mut Blobs,
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
) -> RecordedContainer {
    let config = &observed.inspect["Config"];
    let mut argv = Vec::new();
    if let Some(path) = observed.inspect["Path"].as_str() {
        argv.push(path.to_owned());
    }
    argv.extend(strings(&observed.inspect["Args"]));
    let mut env = BTreeMap::new();
    let mut secret_env = Vec::new();
    for entry in strings(&config["Env"]) {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        let masked = masker.mask(value);
        if masked != value {
            secret_env.push(name.to_owned());
        }
        env.insert(name.to_owned(), masked.into_owned());
    }
    let image_config = image_config(observed.image_inspect, masker);
    let call = Call {
        image: observed.image.to_owned(),
        image_id: observed.image_inspect["Id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        image_config,
        argv: argv
            .iter()
            .map(|arg| masker.mask(arg).into_owned())
            .collect(),
        env,
        secret_env,
        user: config["User"].as_str().unwrap_or_default().to_owned(),
        workdir: config["WorkingDir"].as_str().unwrap_or_default().to_owned(),
        limits: format::Limits {
            memory_bytes: observed.spec.memory_bytes,
            pids: observed.spec.pids_limit,
            read_only: observed.spec.read_only_rootfs,
            network: observed.spec.network.clone(),
        },
        workspace: observed.mount.map(|mount| {
            format::workspace_input(mount, &as_replayed(observed.before, observed.masked))
        }),
    };
    let stdout = stream(observed.stdout, masker, blobs);
    let stderr = stream(observed.stderr, masker, blobs);
    let workspace = format::diff(observed.before, observed.after, blobs, |path| {
        let bytes = read(path)?;
        let masked = masker.mask_bytes(&bytes);
        let changed = masked != bytes;
        Some((masked, changed))
    });
    RecordedContainer {
        step: observed.step.to_owned(),
        call,
        health: Vec::new(),
        http: Vec::new(),
        outcome: Outcome {
            exit_code: observed.exit_code,
            oom_killed: observed.oom_killed,
            ended: if observed.timed_out {
                Ended::StoppedAfterTimeout
            } else {
                Ended::Exited
            },
            stdout,
            stderr,
            workspace,
        },
    }
}

/// The image config without the run's own `dockproof.run` label, which differs every
/// run (a built image has it from the build, a committed one from its container).
fn without_run_label(image_config: &mut BTreeMap<String, Value>) {
    if let Some(Value::Object(labels)) = image_config.get_mut("Labels") {
        labels.shift_remove("dockproof.run");
        if labels.is_empty() {
            image_config.insert("Labels".to_owned(), Value::Null);
        }
    }
}

/// A container that ran on an image committed from a CST setup container: what differs
/// every run goes — the image's ID (blank: no fake image is made from it) and the
/// committed container's run label in the image's config.
pub fn forget_commit_identity(call: &mut format::Call) {
    call.image_id.clear();
    without_run_label(&mut call.image_config);
}

/// What a `build` step made, for the recording: the image's config (masked, empty as
/// `null`) without the run's own label, which differs every run.
pub fn build(
    step: &str,
    image_inspect: &Value,
    masker: &Masker,
    call: Option<format::BuildCall>,
) -> format::RecordedBuild {
    let mut image_config = image_config(image_inspect, masker);
    without_run_label(&mut image_config);
    format::RecordedBuild {
        step: step.to_owned(),
        image_config,
        call,
        size: image_inspect["Size"].as_u64(),
    }
}

fn image_config(image_inspect: &Value, masker: &Masker) -> BTreeMap<String, Value> {
    IMAGE_CONFIG_FIELDS
        .iter()
        .map(|field| {
            (
                (*field).to_owned(),
                masked_json(&image_inspect["Config"][*field], masker),
            )
        })
        .collect()
}

/// A scenario's recording, made from the containers, builds, execs and CST-tested
/// images observed.
pub fn recording(
    scenario: &str,
    containers: Vec<RecordedContainer>,
    builds: Vec<format::RecordedBuild>,
    execs: Vec<format::RecordedExec>,
    images: Vec<format::RecordedImage>,
) -> Recording {
    Recording {
        version: format::FORMAT_VERSION,
        scenario: scenario.to_owned(),
        containers,
        builds,
        execs,
        images,
    }
}

/// The files a CST config's checks read the contents of (file content tests, license
/// files, and with `debian: true` each package's copyright under `/usr/share/doc`, as
/// `dirs_in` lists them): the contents a recording keeps, and a replay must have.
pub fn cst_reads(
    config: &crate::cst::model::CstConfig,
    dirs_in: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let mut reads: Vec<String> = config
        .file_content_tests
        .iter()
        .map(|test| test.path.clone())
        .collect();
    for test in &config.license_tests {
        if test.debian {
            reads.extend(
                dirs_in("/usr/share/doc")
                    .into_iter()
                    .filter(|package| {
                        !crate::cst::check::LICENSE_ALLOWED_PACKAGES.contains(&package.as_str())
                    })
                    .map(|package| format!("/usr/share/doc/{package}/copyright")),
            );
        }
        reads.extend(test.files.iter().cloned());
    }
    reads.sort();
    reads.dedup();
    reads
}

/// With a recording in `dir` that holds `image`'s tree: each file `config`'s checks
/// read whose content it did not keep (`None` when there is nothing to refuse).
pub fn unrecorded_reads(
    dir: &Path,
    image: &str,
    config: &crate::cst::model::CstConfig,
) -> Option<Vec<String>> {
    if !dir.join(format::FILE_NAME).is_file() {
        return None;
    }
    let recording = Recording::load(dir).ok()?;
    let recorded = recording.images.iter().find(|known| known.image == image)?;
    let reads = cst_reads(config, |path| recorded.dirs_in(path));
    let unrecorded = recorded.unrecorded_reads(&reads);
    (!unrecorded.is_empty()).then_some(unrecorded)
}

/// An image's tree for the recording, from its `docker save` archive: every entry
/// (path, kind, mode, owner, size, sha256 or target; at most
/// [`format::MAX_TREE_ENTRIES`]) and, masked, the content of each file in `reads`
/// (symlinks followed; at most [`format::MAX_TREE_CONTENT_BYTES`] each).
pub fn image_tree(
    reference: &str,
    image_inspect: &Value,
    saved: &crate::cst::files::SavedImage,
    reads: &[String],
    masker: &Masker,
    blobs: &mut Blobs,
) -> Result<format::RecordedImage, String> {
    use crate::cst::files::Kind;
    let entries = saved.nodes.len();
    if entries > format::MAX_TREE_ENTRIES {
        return Err(format!(
            "image {reference} has {entries} files, more than the {} a recording keeps",
            format::MAX_TREE_ENTRIES
        ));
    }
    let mut tree = Vec::with_capacity(entries);
    for (path, node) in saved.nodes.iter().filter(|(path, _)| path.as_str() != "/") {
        let kind = match node.info.kind {
            Kind::File => format::EntryKind::File,
            Kind::Dir => format::EntryKind::Dir,
            Kind::Symlink => format::EntryKind::Symlink,
            Kind::CharDevice | Kind::BlockDevice | Kind::Fifo | Kind::Socket => {
                format::EntryKind::Other
            }
        };
        let (size, sha256) = match (&node.content, kind) {
            (Some(content), format::EntryKind::File) => {
                let bytes = content
                    .load()
                    .map_err(|error| format!("cannot read {path} of {reference}: {error}"))?;
                (
                    Some(bytes.len() as u64),
                    Some(format::sha256_hex(bytes.as_slice())),
                )
            }
            (None, format::EntryKind::File) => (Some(0), Some(format::sha256_hex(b""))),
            _ => (None, None),
        };
        tree.push(format::TreeEntry {
            path: path.clone(),
            kind,
            mode: format!("{:04o}", node.info.mode),
            uid: node.info.uid,
            gid: node.info.gid,
            size,
            sha256,
            target: (kind == format::EntryKind::Symlink).then(|| node.info.link.clone()),
            content: None,
        });
    }
    tree.sort_by(|a, b| a.path.cmp(&b.path));
    let mut image = format::RecordedImage {
        image: reference.to_owned(),
        image_id: image_inspect["Id"].as_str().unwrap_or_default().to_owned(),
        image_config: image_config(image_inspect, masker),
        size: image_inspect["Size"].as_u64(),
        tree,
    };
    let mut kept: Vec<String> = reads
        .iter()
        .filter_map(|path| image.resolve(path).ok())
        .filter(|entry| entry.kind == format::EntryKind::File)
        .map(|entry| entry.path.clone())
        .collect();
    kept.sort();
    kept.dedup();
    for path in kept {
        let Some(content) = saved
            .nodes
            .get(&path)
            .and_then(|node| node.content.as_ref())
        else {
            continue;
        };
        let bytes = content
            .load()
            .map_err(|error| format!("cannot read {path} of {reference}: {error}"))?;
        if bytes.len() as u64 > format::MAX_TREE_CONTENT_BYTES {
            return Err(format!(
                "{path} of {reference} is {} bytes: a recording keeps at most {} of a file a check reads",
                bytes.len(),
                format::MAX_TREE_CONTENT_BYTES
            ));
        }
        let masked = masker.mask_bytes(bytes.as_slice());
        if let Ok(index) = image.tree.binary_search_by(|entry| entry.path.cmp(&path)) {
            image.tree[index].content = Some(Content::of(&masked, blobs));
        }
    }
    Ok(image)
}

/// What the engine observed of one finished `exec`, for the recording.
pub struct ObservedExec<'a> {
    pub step: &'a str,
    /// The recorded container it ran in, from 1.
    pub container: usize,
    /// That container's image and workspace mount.
    pub image: &'a str,
    pub mount: &'a str,
    pub request: &'a ExecRequest,
    pub before: &'a [Entry],
    /// Workspace files an earlier container of the recording left holding a secret, by
    /// path: their masked size and sha256 (what a replay writes there).
    pub masked: &'a BTreeMap<String, (u64, String)>,
    pub after: &'a [Entry],
    pub output: &'a ExecOutput,
}

/// A masked stream for a recording.
fn stream(captured: &Captured, masker: &Masker, blobs: &mut Blobs) -> Stream {
    Stream {
        total_bytes: captured.total_bytes,
        kept: Content::of(masker.mask(&captured.text).as_bytes(), blobs),
    }
}

/// The recorded exec: the call as the fake will see it (the exec's own env, `--user`
/// and `--workdir` as given), masked, and what it did.
pub fn exec(
    observed: &ObservedExec<'_>,
    masker: &Masker,
    blobs: &mut Blobs,
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
) -> format::RecordedExec {
    let mut env = BTreeMap::new();
    let mut secret_env = Vec::new();
    // A later entry for a name wins, as with repeated `--env` flags.
    for (name, value) in &observed.request.env {
        let masked = masker.mask(value);
        secret_env.retain(|known: &String| known != name);
        if masked != *value {
            secret_env.push(name.clone());
        }
        env.insert(name.clone(), masked.into_owned());
    }
    secret_env.sort();
    let call = Call {
        image: observed.image.to_owned(),
        image_id: String::new(),
        image_config: BTreeMap::new(),
        argv: observed
            .request
            .cmd
            .iter()
            .map(|arg| masker.mask(arg).into_owned())
            .collect(),
        env,
        secret_env,
        user: observed.request.user.clone().unwrap_or_default(),
        workdir: observed.request.workdir.clone().unwrap_or_default(),
        limits: format::Limits::default(),
        workspace: Some(format::workspace_input(
            observed.mount,
            &as_replayed(observed.before, observed.masked),
        )),
    };
    let stdout = stream(&observed.output.stdout, masker, blobs);
    let stderr = stream(&observed.output.stderr, masker, blobs);
    let workspace = format::diff(observed.before, observed.after, blobs, |path| {
        let bytes = read(path)?;
        let masked = masker.mask_bytes(&bytes);
        let changed = masked != bytes;
        Some((masked, changed))
    });
    format::RecordedExec {
        step: observed.step.to_owned(),
        container: observed.container,
        call,
        outcome: Outcome {
            exit_code: observed.output.exit_code,
            oom_killed: false,
            ended: Ended::Exited,
            stdout,
            stderr,
            workspace,
        },
    }
}

/// A detached container's outcome as it stands before cleanup: its logs so far, and
/// its exit if it has exited (else it is still running).
pub fn detached_outcome(
    outcome: &mut Outcome,
    inspect: &Value,
    logs: &Logs,
    masker: &Masker,
    blobs: &mut Blobs,
) {
    outcome.stdout = stream(&logs.stdout, masker, blobs);
    outcome.stderr = stream(&logs.stderr, masker, blobs);
    let state = &inspect["State"];
    if state["Running"].as_bool() == Some(false) {
        outcome.ended = Ended::Exited;
        outcome.exit_code = state["ExitCode"].as_i64().unwrap_or_default();
        outcome.oom_killed = state["OOMKilled"].as_bool().unwrap_or_default();
    } else {
        outcome.ended = Ended::StillRunning;
        outcome.exit_code = 0;
    }
}

/// The drift between the recording in `dir` and a fresh one, or why it cannot be read.
pub fn check(dir: &Path, fresh: &Recording, blobs: &Blobs) -> Result<Vec<String>, String> {
    if !dir.join(format::FILE_NAME).is_file() {
        return Err(format!(
            "no recording at {}: record it on a real daemon with `dockproof record`",
            dir.display()
        ));
    }
    let recorded = Recording::load(dir).map_err(|error| error.to_string())?;
    Ok(format::drift(&recorded, dir, fresh, blobs))
}

/// Response headers a recording keeps: `Content-Type` and those the scenario checks;
/// never the ones the fake writes itself or that describe the connection.
pub fn kept_header(name: &str, checked: &[String]) -> bool {
    let name = name.to_ascii_lowercase();
    if matches!(
        name.as_str(),
        "content-length" | "connection" | "transfer-encoding" | "keep-alive"
    ) {
        return false;
    }
    name == "content-type" || checked.iter().any(|c| c.eq_ignore_ascii_case(&name))
}

/// One HTTP exchange for the recording: the answer masked, its body bounded.
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    port: u16,
    method: &str,
    path: &str,
    request_body: Option<&[u8]>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    masker: &Masker,
    blobs: &mut Blobs,
) -> format::Exchange {
    let body = &body[..body.len().min(format::MAX_HTTP_BODY)];
    format::Exchange {
        port,
        method: method.to_ascii_uppercase(),
        path: masker.mask(path).into_owned(),
        request_sha256: request_body
            .filter(|body| !body.is_empty())
            .map(format::sha256_hex),
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), masker.mask(value).into_owned()))
            .collect(),
        body: Content::of(&masker.mask_bytes(body), blobs),
    }
}

/// A build's call for the recording: the Dockerfile, the build args (masked), the
/// target, and the context directory fingerprinted (it is dockproof's own copy).
pub fn build_call(
    context: &Path,
    dockerfile: Option<&str>,
    args: &BTreeMap<String, String>,
    target: Option<&str>,
    masker: &Masker,
) -> Result<format::BuildCall, String> {
    let entries = format::walk(context).map_err(|error| error.to_string())?;
    Ok(format::BuildCall {
        dockerfile: dockerfile.unwrap_or("Dockerfile").to_owned(),
        args: args
            .iter()
            .map(|(name, value)| (name.clone(), masker.mask(value).into_owned()))
            .collect(),
        target: target.map(str::to_owned),
        context: format::workspace_input(".", &entries),
    })
}

/// The workspace entries as a replay will have them: a file an earlier container left
/// holding a secret is replayed with its masked bytes, so its fingerprint is theirs.
fn as_replayed(before: &[Entry], masked: &BTreeMap<String, (u64, String)>) -> Vec<Entry> {
    before
        .iter()
        .map(|entry| match masked.get(&entry.path) {
            Some((size, sha256)) if entry.kind == format::EntryKind::File => Entry {
                size: *size,
                digest: sha256.clone(),
                ..entry.clone()
            },
            _ => entry.clone(),
        })
        .collect()
}

/// Keep `masked` up to date with a recorded container's or exec's workspace changes.
pub fn note_masked(masked: &mut BTreeMap<String, (u64, String)>, changes: &[format::Change]) {
    for change in changes {
        match (change.masked, change.size, &change.sha256) {
            (true, Some(size), Some(sha256)) => {
                masked.insert(change.path.clone(), (size, sha256.clone()));
            }
            _ => {
                masked.remove(&change.path);
            }
        }
    }
}
