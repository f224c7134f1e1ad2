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
    let Some(image) = definition_for(&definitions, &dockerfile_path, &file) else {
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
    if let Some(failure) = crate::faults::build_failure(&keywords) {
        spec.fail = Some(failure);
    }
    // `--build-arg NAME` takes the value from the CLI's environment (left out when unset there).
    let build_args = crate::supervisor::env_vars(
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
    let scope = crate::expand::Scope {
        vars: &build_args,
        args: &[],
    };
    for (index, instruction) in file.instructions.iter().take(total).enumerate() {
        let step = index + 1;
        let failure = spec.fail.as_ref().filter(|f| f.step == step);
        let shown = failure
            .and_then(|f| f.instruction.clone())
            .unwrap_or_else(|| instruction.text.clone());
        sink.print(&format!("Step {step}/{total} : {shown}\n"));
        let layer = if step == total {
            image.short_id().to_string()
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
    let tags: Vec<String> = parsed
        .all("tag")
        .iter()
        .map(|t| normalize_reference(t))
        .collect();
    {
        let _lock = state.lock()?;
        for tag in &tags {
            imagestore::tag(&state, tag, &image.id)?;
        }
    }
    if sink.quiet {
        out(&format!("{}\n", image.id));
    } else {
        out(&format!("Successfully built {}\n", image.short_id()));
        for tag in &tags {
            out(&format!("Successfully tagged {tag}\n"));
        }
    }
    Ok(0)
}
