//! `docker build` as the legacy builder prints it (no buildx here); the result comes
//! from the fake image definition built from that Dockerfile.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Outcome, daemon_error, err, load_definitions, out};
use crate::dockerfile::{self, Dockerfile};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::image::{Image, normalize_reference};
use crate::imagestore;
use crate::size::human_size;
use crate::state::StateDir;

const fn flag(long: &'static str, short: Option<char>, kind: Kind, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        kind,
        help,
    }
}

/// `docker build`.
pub const BUILD: CommandSpec = CommandSpec {
    name: "build",
    usage: "build [OPTIONS] PATH | URL | -",
    about: "Build an image from a Dockerfile",
    flags: &[
        flag(
            "tag",
            Some('t'),
            Kind::Value("list"),
            "Name and optionally a tag in the \"name:tag\" format",
        ),
        flag(
            "file",
            Some('f'),
            Kind::Value("string"),
            "Name of the Dockerfile (Default is \"PATH/Dockerfile\")",
        ),
        flag(
            "build-arg",
            None,
            Kind::Value("list"),
            "Set build-time variables",
        ),
        flag(
            "target",
            None,
            Kind::Value("string"),
            "Set the target build stage to build.",
        ),
        flag(
            "quiet",
            Some('q'),
            Kind::Bool,
            "Suppress the build output and print image ID on success",
        ),
        flag(
            "no-cache",
            None,
            Kind::Bool,
            "Do not use cache when building the image",
        ),
        flag(
            "pull",
            None,
            Kind::Bool,
            "Always attempt to pull a newer version of the image",
        ),
        flag(
            "rm",
            None,
            Kind::Bool,
            "Remove intermediate containers after a successful build (default true)",
        ),
        flag(
            "force-rm",
            None,
            Kind::Bool,
            "Always remove intermediate containers",
        ),
        flag(
            "label",
            None,
            Kind::Value("list"),
            "Set metadata for an image",
        ),
        flag(
            "network",
            None,
            Kind::Value("string"),
            "Set the networking mode for the RUN instructions during build",
        ),
        flag(
            "platform",
            None,
            Kind::Value("string"),
            "Set platform if server is multi-platform capable",
        ),
    ],
    interspersed: true,
    arity: Arity::Exactly(1),
};

/// `docker image build`.
pub const IMAGE_BUILD: CommandSpec = CommandSpec {
    name: "image build",
    usage: "image build [OPTIONS] PATH | URL | -",
    ..BUILD
};

/// Printed on stderr by every legacy build (measured).
const DEPRECATED: &str = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\n";

fn absolute(path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The size of the context as the tar stream the CLI sends (512-byte headers, padded
/// contents, two trailing blocks), which is what docker reports.
fn context_size(dir: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => 512 + walk(&entry.path()),
                Ok(meta) => 512 + meta.len().div_ceil(512) * 512,
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) + 1024
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The definition a Dockerfile builds: its `# dockproof-image:` header, else a
/// definition whose `build.dockerfile` is this file.
fn definition_for<'i>(images: &'i [Image], path: &Path, file: &Dockerfile) -> Option<&'i Image> {
    if let Some(name) = &file.image_header {
        let reference = normalize_reference(name);
        return images.iter().find(|i| i.reference == reference);
    }
    images.iter().find(|image| {
        image
            .build
            .as_ref()
            .and_then(|b| b.dockerfile.as_deref())
            .is_some_and(|declared| {
                let beside = image
                    .source
                    .parent()
                    .map(|dir| dir.join(declared))
                    .unwrap_or_else(|| PathBuf::from(declared));
                same_file(&beside, path) || same_file(&absolute(declared), path)
            })
    })
}

fn short_hash(parts: &[&str]) -> String {
    let digest = hex::encode(Sha256::digest(parts.join("/").as_bytes()));
    digest[..12].to_string()
}

/// Where build output goes: stdout, or stderr with `-q`.
struct Sink {
    quiet: bool,
}

impl Sink {
    fn print(&self, text: &str) {
        if self.quiet {
            err(text);
        } else {
            out(text);
        }
    }
}

/// `docker build`.
pub fn build(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    // Measured (CLI 28.2.2 without buildx): BuildKit asked for and not there.
    if std::env::var("DOCKER_BUILDKIT").is_ok_and(|v| v == "1" || v == "true") {
        err(
            "ERROR: BuildKit is enabled but the buildx component is missing or broken.\n       Install the buildx component to build images with BuildKit:\n       https://docs.docker.com/go/buildx/\n",
        );
        return Ok(1);
    }
    err(DEPRECATED);
    let context = &parsed.positionals[0];
    let context_dir = absolute(context);
    if !context_dir.is_dir() {
        err(&format!(
            "unable to prepare context: path \"{context}\" not found\n"
        ));
        return Ok(1);
    }
    let dockerfile_path = match parsed.last("file") {
        Some(file) => absolute(file),
        None => context_dir.join("Dockerfile"),
    };
    let Ok(text) = std::fs::read_to_string(&dockerfile_path) else {
        err(&format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory\n",
            dockerfile_path.display()
        ));
        return Ok(1);
    };
    let file = dockerfile::parse(&text);
    let definitions = load_definitions()?;
    let found = definition_for(&definitions, &dockerfile_path, &file);
    // A Dockerfile no definition models may have been built on a real daemon and
    // recorded: a matching recorded build makes the recorded image.
    if found.is_none()
        && let Some(code) = replay_build(parsed, &context_dir, &dockerfile_path)?
    {
        return Ok(code);
    }
    let Some(image) = found else {
        err(&format!(
            "fake-docker: no fake image definition is built from {} (add a `# dockproof-image: NAME` line to it, or `build: {{ dockerfile: ... }}` to a definition)\n",
            dockerfile_path.display()
        ));
        return Ok(1);
    };
    let sink = Sink {
        quiet: parsed.bool("quiet"),
    };
    sink.print(&format!(
        "Sending build context to Docker daemon  {}\r\r\n",
        human_size(context_size(&context_dir), 4)
    ));
    let Some(total) = file.steps_for(parsed.last("target")) else {
        daemon_error(&format!(
            "failed to reach build target {} in Dockerfile",
            parsed.last("target").unwrap_or_default()
        ));
        return Ok(1);
    };
    let mut spec = image.build.clone().unwrap_or_default();
    let keywords: Vec<String> = file
        .instructions
        .iter()
        .take(total)
        .map(|i| i.keyword.clone())
        .collect();
    // `--build-arg NAME` takes the value from the CLI's environment (left out when unset there).
    let build_args = crate::expand::env_vars(
        &parsed
            .all("build-arg")
            .iter()
            .filter_map(|entry| match entry.contains('=') {
                true => Some(entry.to_string()),
                false => std::env::var(entry)
                    .ok()
                    .map(|value| format!("{entry}={value}")),
            })
            .collect::<Vec<_>>(),
    );
    // Every image fact comes from the Dockerfile; the definition only adds behaviour.
    let derived = match dockerfile::derive(&file, total, &build_args, &|base| {
        definitions
            .iter()
            .find(|i| i.matches(base))
            .map(|i| i.config.clone())
    }) {
        Ok(derived) => derived,
        Err(error) => {
            daemon_error(&format!(
                "dockerfile parse error line {}: {}",
                error.line, error.message
            ));
            return Ok(1);
        }
    };
    // The definition describes the whole Dockerfile's image, whatever `--target` builds.
    let whole = if total == file.instructions.len() {
        Ok(derived.clone())
    } else {
        dockerfile::derive(&file, file.instructions.len(), &build_args, &|base| {
            definitions
                .iter()
                .find(|i| i.matches(base))
                .map(|i| i.config.clone())
        })
    };
    if let Some(contradiction) = whole
        .ok()
        .and_then(|whole| contradiction(image, &file, &dockerfile_path, &whole, spec.fail.as_ref()))
    {
        err(&format!("fake-docker: {contradiction}\n"));
        return Ok(1);
    }
    if let Some(failure) = crate::faults::build_failure(&keywords) {
        spec.fail = Some(failure);
    }
    let scope = crate::expand::Scope {
        vars: &build_args,
        args: &[],
    };
    let tags: Vec<String> = parsed
        .all("tag")
        .iter()
        .map(|t| normalize_reference(t))
        .collect();
    let built = built_definition(image, &tags, &derived);
    let built_short = built.id.trim_start_matches("sha256:")[..12].to_string();
    for (index, instruction) in file.instructions.iter().take(total).enumerate() {
        let step = index + 1;
        let failure = spec.fail.as_ref().filter(|f| f.step == step);
        let shown = failure
            .and_then(|f| f.instruction.clone())
            .unwrap_or_else(|| instruction.text.clone());
        sink.print(&format!("Step {step}/{total} : {shown}\n"));
        let layer = if step == total {
            built_short.clone()
        } else {
            short_hash(&[&image.id, "layer", &step.to_string()])
        };
        let container = short_hash(&[&image.id, "container", &step.to_string()]);
        if let Some(failure) = failure {
            sink.print(&format!(" ---> Running in {container}\n"));
            for line in &failure.stdout {
                sink.print(&format!("{}\n", crate::expand::expand(line, &scope)));
            }
            for line in &failure.stderr {
                sink.print(&format!(
                    "\x1b[91m{}\n\x1b[0m",
                    crate::expand::expand(line, &scope)
                ));
            }
            let args = shown
                .split_once(char::is_whitespace)
                .map_or("", |(_, rest)| rest);
            err(&format!(
                "The command '{}' returned a non-zero code: {}\n",
                dockerfile::run_command(args),
                failure.exit_code
            ));
            return Ok(failure.exit_code);
        }
        // A COPY/ADD of a file the context lacks fails at that step, as the builder's does
        // (measured: nothing more on stdout, this line on stderr, exit 1).
        if let Some(missing) = dockerfile::context_sources(instruction)
            .into_iter()
            .find(|source| {
                !source.contains(['*', '?', '['])
                    && !file.context_extras.contains(source)
                    && !context_dir.join(source).exists()
            })
        {
            err(&format!(
                "{} failed: file not found in build context or excluded by .dockerignore: stat {missing}: file does not exist\n",
                instruction.keyword
            ));
            return Ok(1);
        }
        match instruction.keyword.as_str() {
            "FROM" => {
                let base = instruction
                    .args
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                let base_id = definitions
                    .iter()
                    .find(|i| i.matches(base))
                    .map(|i| i.short_id().to_string())
                    .unwrap_or_else(|| short_hash(&["base", base]));
                // Measured: `FROM scratch` prints an empty ID.
                let id = if step == total {
                    layer.clone()
                } else if base == "scratch" {
                    String::new()
                } else {
                    base_id
                };
                sink.print(&format!(" ---> {id}\n"));
            }
            "COPY" | "ADD" => sink.print(&format!(" ---> {layer}\n")),
            _ => {
                sink.print(&format!(" ---> Running in {container}\n"));
                for line in spec.output.get(&step).into_iter().flatten() {
                    sink.print(&format!("{}\n", crate::expand::expand(line, &scope)));
                }
                sink.print(&format!(
                    "Removing intermediate container {container}\n ---> {layer}\n"
                ));
            }
        }
    }
    let state = StateDir::from_env()?;
    {
        let _lock = state.lock()?;
        write_built(&state, &built)?;
        for tag in &tags {
            imagestore::tag(&state, tag, &built.id)?;
        }
    }
    if sink.quiet {
        out(&format!("{}\n", built.id));
    } else {
        out(&format!("Successfully built {built_short}\n"));
        for tag in &tags {
            out(&format!("Successfully tagged {tag}\n"));
        }
    }
    Ok(0)
}

/// `docker build` of a recorded build (`FAKE_DOCKER_RECORDINGS`): the recorded image,
/// tagged as asked, or the refusal naming what differs; `None` when nothing is recorded.
fn replay_build(
    parsed: &Parsed,
    context_dir: &Path,
    dockerfile_path: &Path,
) -> Result<Option<i32>, super::CommandError> {
    let entries = match dockproof_recording::walk(context_dir) {
        Ok(entries) => entries,
        Err(_) => return Ok(None),
    };
    let dockerfile = dockerfile_path
        .strip_prefix(context_dir)
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| dockerfile_path.display().to_string());
    let args = crate::expand::env_vars(
        &parsed
            .all("build-arg")
            .iter()
            .filter_map(|entry| match entry.contains('=') {
                true => Some(entry.to_string()),
                false => std::env::var(entry)
                    .ok()
                    .map(|value| format!("{entry}={value}")),
            })
            .collect::<Vec<_>>(),
    );
    let call = dockproof_recording::BuildCall {
        dockerfile,
        args,
        target: parsed.last("target").map(str::to_owned),
        context: dockproof_recording::workspace_input(".", &entries),
    };
    let replay = match crate::replay::select_build(&call) {
        crate::replay::Selection::Play(replay) => replay,
        crate::replay::Selection::Refuse(reason) => {
            err(&format!("{reason}\n"));
            return Ok(Some(1));
        }
        crate::replay::Selection::NotRecorded => return Ok(None),
    };
    let tags: Vec<String> = parsed
        .all("tag")
        .iter()
        .map(|t| normalize_reference(t))
        .collect();
    let labels: std::collections::BTreeMap<String, String> = parsed
        .all("label")
        .iter()
        .map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((*entry, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect();
    let name = tags
        .first()
        .cloned()
        .unwrap_or_else(|| "recorded-build".to_owned());
    let text = match crate::replay::built_definition(&replay, &name, &labels) {
        Ok(text) => text,
        Err(message) => {
            err(&format!(
                "fake-docker: cannot replay the build: {message}\n"
            ));
            return Ok(Some(1));
        }
    };
    let built = Built {
        id: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
        text,
    };
    let state = StateDir::from_env()?;
    {
        let _lock = state.lock()?;
        write_built(&state, &built)?;
        for tag in &tags {
            imagestore::tag(&state, tag, &built.id)?;
        }
    }
    let short = built.id.trim_start_matches("sha256:")[..12].to_string();
    if parsed.bool("quiet") {
        out(&format!("{}\n", built.id));
    } else {
        out(&format!("Successfully built {short}\n"));
        for tag in &tags {
            out(&format!("Successfully tagged {tag}\n"));
        }
    }
    Ok(Some(0))
}

/// A built image's definition: the Dockerfile's facts over the fake definition's behaviour.
struct Built {
    text: String,
    id: String,
}

fn built_definition(image: &Image, tags: &[String], derived: &dockerfile::Derived) -> Built {
    let definition = serde_json::json!({
        "name": tags.first().cloned().unwrap_or_else(|| image.reference.clone()),
        "base": image.source,
        "built": true,
        "config": derived.config,
    });
    // JSON is YAML: the definition is read back like any other.
    let text = serde_json::to_string_pretty(&definition).unwrap_or_default();
    let id = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
    Built { text, id }
}

/// Writes a built image's definition into the state directory (where `commit`'s go).
fn write_built(state: &StateDir, built: &Built) -> Result<(), super::CommandError> {
    let dir = state.committed_dir();
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| {
            super::CommandError::State(crate::state::StateError::Io {
                action,
                path,
                source,
            })
        }
    };
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let hex = built.id.trim_start_matches("sha256:");
    let path = dir.join(format!("built-{}.yaml", &hex[..16]));
    // Written beside the definitions other processes are listing: never half a file.
    crate::state::write_atomic(&path, built.text.as_bytes())?;
    Ok(())
}

/// The first fact the fake definition states that its Dockerfile contradicts, naming
/// both lines: a definition may add behaviour, never restate an image fact differently.
fn contradiction(
    image: &Image,
    file: &Dockerfile,
    dockerfile_path: &Path,
    derived: &dockerfile::Derived,
    fail: Option<&crate::image::BuildFailure>,
) -> Option<String> {
    let twin = &image.config;
    let text = std::fs::read_to_string(&image.source).unwrap_or_default();
    let twin_line = |key: &str| -> usize {
        text.lines()
            .position(|line| line.trim_start().starts_with(&format!("{key}:")))
            .map_or(0, |index| index + 1)
    };
    let dockerfile_says = |fact: &str| -> String {
        match derived.lines.get(fact) {
            Some(line) => {
                let instruction = file
                    .instructions
                    .iter()
                    .find(|i| i.line == *line)
                    .map_or(String::new(), |i| i.text.clone());
                format!("{}:{line} says `{instruction}`", dockerfile_path.display())
            }
            None => format!("{} does not set it", dockerfile_path.display()),
        }
    };
    let sorted = |items: &[String]| {
        let mut items = items.to_vec();
        items.sort();
        items
    };
    let ports = |items: &[String]| {
        sorted(
            &items
                .iter()
                .map(|p| crate::ports::normalize_port(p))
                .collect::<Vec<_>>(),
        )
    };
    let mut facts: Vec<(&str, &str, bool)> = vec![
        (
            "user",
            "user",
            !twin.user.is_empty() && twin.user != derived.config.user,
        ),
        (
            "workdir",
            "workdir",
            !twin.workdir.is_empty() && twin.workdir != derived.config.workdir,
        ),
        (
            "cmd",
            "cmd",
            !twin.cmd.is_empty() && twin.cmd != derived.config.cmd,
        ),
        (
            "entrypoint",
            "entrypoint",
            !twin.entrypoint.is_empty() && twin.entrypoint != derived.config.entrypoint,
        ),
        (
            "env",
            "env",
            !twin.env.is_empty() && sorted(&twin.env) != sorted(&derived.config.env),
        ),
        (
            "labels",
            "labels",
            !twin.labels.is_empty() && twin.labels != derived.config.labels,
        ),
        (
            "exposed_ports",
            "exposed_ports",
            !twin.exposed_ports.is_empty()
                && ports(&twin.exposed_ports) != ports(&derived.config.exposed_ports),
        ),
        (
            "volumes",
            "volumes",
            !twin.volumes.is_empty() && sorted(&twin.volumes) != sorted(&derived.config.volumes),
        ),
    ];
    let health_differs = match (&twin.healthcheck, &derived.config.healthcheck) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(a), Some(b)) => {
            let go = |d: &Option<String>| {
                d.as_deref()
                    .map(|d| crate::health::parse_duration(d).unwrap_or(-1))
                    .unwrap_or(0)
            };
            a.test != b.test
                || go(&a.interval) != go(&b.interval)
                || go(&a.timeout) != go(&b.timeout)
                || go(&a.start_period) != go(&b.start_period)
                || a.retries.unwrap_or(0) != b.retries.unwrap_or(0)
        }
    };
    facts.push(("healthcheck", "healthcheck", health_differs));
    if let Some((key, fact, _)) = facts.into_iter().find(|(_, _, differs)| *differs) {
        return Some(format!(
            "fake image definition {}:{} sets `{key}`, but {}: the Dockerfile decides the image's facts (remove `{key}` from the definition's config, or change the Dockerfile)",
            image.source.display(),
            twin_line(key),
            dockerfile_says(fact),
        ));
    }
    let fail = fail?;
    let instruction = file.instructions.get(fail.step.checked_sub(1)?);
    match instruction {
        Some(instruction) if instruction.keyword == "RUN" => None,
        Some(instruction) => Some(format!(
            "fake image definition {}:{} makes step {} fail like a RUN, but {}:{} says `{}`: only a RUN runs a command (a COPY of a missing file fails by itself)",
            image.source.display(),
            twin_line("fail"),
            fail.step,
            dockerfile_path.display(),
            instruction.line,
            instruction.text
        )),
        None => Some(format!(
            "fake image definition {}:{} makes step {} fail, but {} has only {} instructions",
            image.source.display(),
            twin_line("fail"),
            fail.step,
            dockerfile_path.display(),
            file.instructions.len()
        )),
    }
}
