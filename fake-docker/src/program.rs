//! The program model of fake images: a list of one-key operations, and its interpreter.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::expand::{Scope, expand};
use crate::paths::ContainerFs;

pub use crate::conditions::{Scalar, When, when_holds};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    pub path: String,
    pub content: Scalar,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestSpec {
    pub dir: String,
    pub to: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub count_var: Option<String>,
}

/// What a program does with SIGTERM (and, with `int:`, SIGINT).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// `trap '' TERM`: the signal is ignored.
    Ignore,
    /// No handler: the signal's default action, which for a container's main process
    /// (PID 1 in its namespace) is to ignore it; an `exec`'d process dies of it.
    Default,
    /// A handler (`trap 'exit 143' TERM`): the program ends at once with `code`
    /// (default 143), after printing `stdout` if given.
    Exit,
}

/// `signal: { term: ignore | default | exit, int: ..., code: 143, stdout: "stopping" }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    pub term: Disposition,
    /// SIGINT's disposition; left as it is when absent.
    #[serde(default)]
    pub int: Option<Disposition>,
    /// The exit code of an `exit` handler (expanded; default 143).
    #[serde(default)]
    pub code: Option<Scalar>,
    /// A line the `exit` handler prints on stdout before ending.
    #[serde(default)]
    pub stdout: Option<Scalar>,
}

/// One list item as written in YAML: exactly one operation key, plus optional `when`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(default)]
    when: Option<When>,
    stdout: Option<Scalar>,
    stderr: Option<Scalar>,
    cat: Option<String>,
    cat_args: Option<bool>,
    mkdir: Option<String>,
    write: Option<WriteSpec>,
    append: Option<WriteSpec>,
    copy: Option<CopySpec>,
    sha256_manifest: Option<ManifestSpec>,
    set: Option<BTreeMap<String, Scalar>>,
    sleep: Option<Scalar>,
    signal: Option<SignalSpec>,
    exit: Option<Scalar>,
    on_error: Option<Vec<RawStep>>,
    alloc: Option<Scalar>,
    chmod: Option<ChmodSpec>,
    run: Option<String>,
    stdin_to_stdout: Option<bool>,
    http_get: Option<HttpGetSpec>,
}

/// `http_get: URL` or `http_get: { url, quiet }` (quiet: like `wget -O /dev/null`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HttpGetSpec {
    Url(String),
    Full {
        url: String,
        #[serde(default)]
        quiet: bool,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChmodSpec {
    pub path: String,
    /// Octal, e.g. `"644"`.
    pub mode: Scalar,
}

/// A validated operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Stdout(Scalar),
    Stderr(Scalar),
    Cat(String),
    CatArgs,
    Mkdir(String),
    Write(WriteSpec),
    Append(WriteSpec),
    Copy(CopySpec),
    Sha256Manifest(ManifestSpec),
    Set(BTreeMap<String, Scalar>),
    Sleep(Scalar),
    Signal(SignalSpec),
    Exit(Scalar),
    /// Installs the handler run when a later operation fails.
    OnError(Vec<Step>),
    /// Allocates memory (counted, not really taken); over `--memory` → OOM kill.
    Alloc(Scalar),
    Chmod(ChmodSpec),
    /// Runs a path or command name as a shell would (`/app/x.sh args`).
    Run(String),
    /// Copies stdin to stdout until EOF.
    StdinToStdout,
    /// `wget -qO- URL` against the image's own routes (a self-probe).
    HttpGet(HttpGetSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub when: Option<When>,
    pub op: Op,
}

/// A fake command: its steps in order.
pub type Program = Vec<Step>;

/// A step that does not name exactly one operation.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("step {index}: {reason}")]
pub struct StepError {
    pub index: usize,
    pub reason: String,
}

/// Validates raw YAML steps into a program.
pub fn compile(raw: Vec<RawStep>) -> Result<Program, StepError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, step)| compile_step(index + 1, step))
        .collect()
}

fn compile_step(index: usize, raw: RawStep) -> Result<Step, StepError> {
    let mut ops = Vec::new();
    if let Some(v) = raw.stdout {
        ops.push(("stdout", Op::Stdout(v)));
    }
    if let Some(v) = raw.stderr {
        ops.push(("stderr", Op::Stderr(v)));
    }
    if let Some(v) = raw.cat {
        ops.push(("cat", Op::Cat(v)));
    }
    if let Some(v) = raw.cat_args {
        // `cat_args: false` is a no-op kept only so the key is allowed.
        ops.push((
            "cat_args",
            if v {
                Op::CatArgs
            } else {
                Op::Set(BTreeMap::new())
            },
        ));
    }
    if let Some(v) = raw.mkdir {
        ops.push(("mkdir", Op::Mkdir(v)));
    }
    if let Some(v) = raw.write {
        ops.push(("write", Op::Write(v)));
    }
    if let Some(v) = raw.append {
        ops.push(("append", Op::Append(v)));
    }
    if let Some(v) = raw.copy {
        ops.push(("copy", Op::Copy(v)));
    }
    if let Some(v) = raw.sha256_manifest {
        ops.push(("sha256_manifest", Op::Sha256Manifest(v)));
    }
    if let Some(v) = raw.set {
        ops.push(("set", Op::Set(v)));
    }
    if let Some(v) = raw.sleep {
        ops.push(("sleep", Op::Sleep(v)));
    }
    if let Some(v) = raw.signal {
        ops.push(("signal", Op::Signal(v)));
    }
    if let Some(v) = raw.exit {
        ops.push(("exit", Op::Exit(v)));
    }
    if let Some(v) = raw.alloc {
        ops.push(("alloc", Op::Alloc(v)));
    }
    if let Some(v) = raw.chmod {
        ops.push(("chmod", Op::Chmod(v)));
    }
    if let Some(v) = raw.run {
        ops.push(("run", Op::Run(v)));
    }
    if let Some(v) = raw.stdin_to_stdout {
        ops.push((
            "stdin_to_stdout",
            if v {
                Op::StdinToStdout
            } else {
                Op::Set(BTreeMap::new())
            },
        ));
    }
    if let Some(v) = raw.http_get {
        ops.push(("http_get", Op::HttpGet(v)));
    }
    if let Some(v) = raw.on_error {
        let handler = compile(v).map_err(|e| StepError {
            index,
            reason: format!("on_error: {e}"),
        })?;
        ops.push(("on_error", Op::OnError(handler)));
    }
    if ops.len() != 1 {
        let names: Vec<&str> = ops.iter().map(|(name, _)| *name).collect();
        return Err(StepError {
            index,
            reason: if names.is_empty() {
                "no operation (expected one of stdout, stderr, cat, cat_args, mkdir, write, append, copy, sha256_manifest, set, sleep, signal, exit, on_error, alloc, chmod, run, stdin_to_stdout, http_get)".to_string()
            } else {
                format!("more than one operation: {}", names.join(", "))
            },
        });
    }
    let (_, op) = ops.remove(0);
    Ok(Step { when: raw.when, op })
}

/// Where a program's output goes (the CLI's stdio for `exec`, the log for containers).
pub trait Output {
    fn stdout(&mut self, bytes: &[u8]);
    fn stderr(&mut self, bytes: &[u8]);
}

/// Writes straight to this process's stdout/stderr.
pub struct StdOutput;

impl Output for StdOutput {
    fn stdout(&mut self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (reader went away) must not crash the program mid-run.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }
    fn stderr(&mut self, bytes: &[u8]) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes).and_then(|()| err.flush());
    }
}

/// A pseudo-TTY in front of an output (`-t`): stderr joins stdout, and the terminal's
/// output processing (`onlcr`) turns each `\n` into `\r\n` (measured: `docker run -t`
/// without a terminal prints `hi\r\n` on stdout, nothing on stderr).
pub struct TtyOutput<'o>(pub &'o mut dyn Output);

impl TtyOutput<'_> {
    fn write(&mut self, bytes: &[u8]) {
        let mut converted = Vec::with_capacity(bytes.len() + bytes.len() / 8);
        for &byte in bytes {
            if byte == b'\n' {
                converted.push(b'\r');
            }
            converted.push(byte);
        }
        self.0.stdout(&converted);
    }
}

impl Output for TtyOutput<'_> {
    fn stdout(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
    fn stderr(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
}

/// Where a program's stdin comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StdinSource {
    /// No `-i`: reads see end of file at once.
    #[default]
    Empty,
    /// This process's own stdin (`exec -i`).
    Inherit,
    /// A FIFO the attached CLI writes into (`run -i`).
    Fifo(std::path::PathBuf),
}

/// The container context of a run beyond its filesystem: limits, stdin, the image.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--memory` in bytes; 0 = unlimited.
    pub memory_limit: i64,
    /// Written before an OOM kill, so the supervisor can report `OOMKilled`.
    pub oom_marker: Option<std::path::PathBuf>,
    /// Where the bytes taken by `alloc` are published for `stats`.
    pub usage_file: Option<std::path::PathBuf>,
    pub stdin: StdinSource,
    /// The image's programs, for `run`.
    pub programs: BTreeMap<String, Program>,
    /// The image's HTTP services, for `http_get`.
    pub http: Vec<crate::http::HttpService>,
}

/// Everything a program run needs besides its steps.
pub struct Invocation {
    pub fs: ContainerFs,
    pub workdir: String,
    pub vars: BTreeMap<String, String>,
    pub args: Vec<String>,
    /// Called once, when the program first blocks (a `sleep`) or ends: a container is
    /// reported running only after its program has set up (e.g. ignored SIGTERM), and a
    /// program that ends without blocking is reported exited before `start` returns.
    pub on_ready: Option<Box<dyn FnOnce(Ready) + Send>>,
    pub context: Context,
    /// Bytes taken by `alloc` so far.
    pub allocated: i64,
    /// The handler installed by `signal: { term: exit }`, if any.
    pub trap: Option<Trap>,
}

/// Write `bytes` to `path` whole (a temporary file renamed over it), so `stats`
/// never reads half a number. Losing it only loses a statistic.
fn publish_usage(path: &std::path::Path, bytes: i64) {
    let temporary = path.with_extension("tmp");
    if std::fs::write(&temporary, bytes.max(0).to_string()).is_ok() {
        let _ = std::fs::rename(&temporary, path);
    }
}

/// Why a program reports itself ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// It blocks (sleeps, reads stdin) and keeps running.
    Blocked,
    /// It ran to its end without ever blocking.
    Ended,
}

impl Invocation {
    fn notify_ready(&mut self, why: Ready) {
        if let Some(ready) = self.on_ready.take() {
            ready(why);
        }
    }
}

/// Why an operation failed: the busybox-style message and the exit code it implies.
struct OpFailure {
    message: String,
    code: i32,
}

enum Flow {
    Continue,
    Exit(i32),
}

/// Runs a program to completion and returns its exit code.
pub fn run(program: &Program, invocation: &mut Invocation, output: &mut dyn Output) -> i32 {
    let code = run_steps(program, invocation, output);
    invocation.notify_ready(Ready::Ended);
    code
}

fn run_steps(program: &Program, invocation: &mut Invocation, output: &mut dyn Output) -> i32 {
    let mut on_error: Option<&Program> = None;
    for step in program {
        if let Some(code) = trapped_exit(invocation, output) {
            return code;
        }
        if !condition_holds(step.when.as_ref(), invocation) {
            continue;
        }
        if let Op::OnError(handler) = &step.op {
            on_error = Some(handler);
            continue;
        }
        match execute(&step.op, invocation, output) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit(code)) => return code,
            Err(failure) => {
                return match on_error {
                    // A handler that does not exit explicitly still fails the program.
                    Some(handler) => run_handler(handler, invocation, output).unwrap_or(1),
                    None => {
                        output.stderr(format!("{}\n", failure.message).as_bytes());
                        failure.code
                    }
                };
            }
        }
    }
    0
}

/// Runs an `on_error` handler; `Some(code)` if it exited explicitly or failed itself.
fn run_handler(
    handler: &Program,
    invocation: &mut Invocation,
    output: &mut dyn Output,
) -> Option<i32> {
    for step in handler {
        if !condition_holds(step.when.as_ref(), invocation) {
            continue;
        }
        match execute(&step.op, invocation, output) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit(code)) => return Some(code),
            Err(failure) => {
                output.stderr(format!("{}\n", failure.message).as_bytes());
                return Some(failure.code);
            }
        }
    }
    None
}

fn condition_holds(when: Option<&When>, invocation: &Invocation) -> bool {
    when.is_none_or(|when| when_holds(when, &invocation.vars, &invocation.args))
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::NotFound => "No such file or directory".to_string(),
        ErrorKind::PermissionDenied => "Permission denied".to_string(),
        ErrorKind::ReadOnlyFilesystem => "Read-only file system".to_string(),
        ErrorKind::IsADirectory => "Is a directory".to_string(),
        ErrorKind::NotADirectory => "Not a directory".to_string(),
        ErrorKind::AlreadyExists => "File exists".to_string(),
        _ => {
            // Drop Rust's " (os error N)" so messages read like busybox.
            let text = error.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    }
}

fn read_only_error() -> std::io::Error {
    std::io::Error::from(ErrorKind::ReadOnlyFilesystem)
}

fn fail(message: String) -> OpFailure {
    OpFailure { message, code: 1 }
}

fn execute(
    op: &Op,
    invocation: &mut Invocation,
    output: &mut dyn Output,
) -> Result<Flow, OpFailure> {
    let scope = Scope {
        vars: &invocation.vars,
        args: &invocation.args,
    };
    let text = |value: &Scalar| expand(&value.text(), &scope);
    let resolve = |path: &str| invocation.fs.resolve(&invocation.workdir, path);
    match op {
        Op::Stdout(line) => output.stdout(format!("{}\n", text(line)).as_bytes()),
        Op::Stderr(line) => output.stderr(format!("{}\n", text(line)).as_bytes()),
        Op::Cat(path) => {
            let path = expand(path, &scope);
            cat_one(&path, &resolve(&path).host, output)?;
        }
        Op::CatArgs if invocation.args.is_empty() => {
            copy_stdin(invocation, output);
            if let Some(code) = trapped_exit(invocation, output) {
                return Ok(Flow::Exit(code));
            }
        }
        Op::CatArgs => {
            // busybox cat reports each missing file and goes on; the exit code says it failed.
            let mut failed = false;
            for path in invocation.args.clone() {
                if let Err(failure) = cat_one(&path, &resolve(&path).host, output) {
                    output.stderr(format!("{}\n", failure.message).as_bytes());
                    failed = true;
                }
            }
            if failed {
                return Ok(Flow::Exit(1));
            }
        }
        Op::Mkdir(path) => {
            let path = expand(path, &scope);
            let resolved = resolve(&path);
            if !resolved.host.is_dir() {
                let result = if resolved.read_only {
                    Err(read_only_error())
                } else {
                    std::fs::create_dir_all(&resolved.host)
                };
                result.map_err(|e| {
                    fail(format!(
                        "mkdir: can't create directory '{path}': {}",
                        io_reason(&e)
                    ))
                })?;
            }
        }
        Op::Write(spec) | Op::Append(spec) => {
            let path = expand(&spec.path, &scope);
            let content = text(&spec.content);
            let resolved = resolve(&path);
            let append = matches!(op, Op::Append(_));
            write_file(
                &resolved.host,
                resolved.read_only,
                content.as_bytes(),
                append,
            )
            .map_err(|e| fail(format!("sh: can't create {path}: {}", io_reason(&e))))?;
        }
        Op::Copy(spec) => {
            let from = expand(&spec.from, &scope);
            let to = expand(&spec.to, &scope);
            let bytes = std::fs::read(resolve(&from).host)
                .map_err(|e| fail(format!("cp: can't stat '{from}': {}", io_reason(&e))))?;
            let target = resolve(&to);
            write_file(&target.host, target.read_only, &bytes, false)
                .map_err(|e| fail(format!("cp: can't create '{to}': {}", io_reason(&e))))?;
        }
        Op::Sha256Manifest(spec) => {
            let dir = expand(&spec.dir, &scope);
            let to = expand(&spec.to, &scope);
            let prefix = expand(&spec.prefix, &scope);
            let (manifest, count) = sha256_manifest(&resolve(&dir).host, &prefix)
                .map_err(|e| fail(format!("sha256sum: {dir}: {}", io_reason(&e))))?;
            let target = resolve(&to);
            write_file(&target.host, target.read_only, manifest.as_bytes(), false)
                .map_err(|e| fail(format!("sh: can't create {to}: {}", io_reason(&e))))?;
            if let Some(name) = &spec.count_var {
                invocation.vars.insert(name.clone(), count.to_string());
            }
        }
        Op::Set(assignments) => {
            // Expand all against the old values first, so the order of keys never matters.
            let expanded: Vec<(String, String)> = assignments
                .iter()
                .map(|(name, value)| (name.clone(), text(value)))
                .collect();
            invocation.vars.extend(expanded);
        }
        Op::Sleep(seconds) => {
            let seconds_text = text(seconds);
            let seconds: f64 = seconds_text
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| fail(format!("sleep: invalid number '{seconds_text}'")))?;
            invocation.notify_ready(Ready::Blocked);
            sleep_unless_trapped(Duration::from_secs_f64(seconds));
            if let Some(code) = trapped_exit(invocation, output) {
                return Ok(Flow::Exit(code));
            }
        }
        Op::Signal(spec) => {
            let code = match &spec.code {
                Some(code) => {
                    let code_text = text(code);
                    code_text.trim().parse::<i64>().map_err(|_| OpFailure {
                        message: format!("trap: Illegal number: {code_text}"),
                        code: 2,
                    })?
                }
                None => 143,
            };
            let trap = Trap {
                code: code.rem_euclid(256) as i32,
                stdout: spec.stdout.as_ref().map(&text),
            };
            set_disposition(libc::SIGTERM, spec.term);
            if let Some(int) = spec.int {
                set_disposition(libc::SIGINT, int);
            }
            if spec.term == Disposition::Exit || spec.int == Some(Disposition::Exit) {
                invocation.trap = Some(trap);
            }
        }
        Op::Exit(code) => {
            let code_text = text(code);
            return match code_text.trim().parse::<i64>() {
                // Exit statuses wrap at 256 like a shell's.
                Ok(code) => Ok(Flow::Exit(code.rem_euclid(256) as i32)),
                Err(_) => Err(OpFailure {
                    message: format!("sh: exit: Illegal number: {code_text}"),
                    code: 2,
                }),
            };
        }
        Op::OnError(_) => {}
        Op::Alloc(amount) => {
            let amount_text = text(amount);
            let bytes = crate::size::parse_ram_size(amount_text.trim())
                .map_err(|e| fail(format!("alloc: invalid size '{amount_text}': {e}")))?;
            invocation.allocated = invocation.allocated.saturating_add(bytes);
            let limit = invocation.context.memory_limit;
            if limit > 0 && invocation.allocated > limit {
                oom_kill(invocation.context.oom_marker.as_deref());
            }
            if let Some(path) = &invocation.context.usage_file {
                publish_usage(path, invocation.allocated);
            }
        }
        Op::Chmod(spec) => {
            let path = expand(&spec.path, &scope);
            let mode_text = text(&spec.mode);
            let mode = u32::from_str_radix(mode_text.trim(), 8)
                .map_err(|_| fail(format!("chmod: invalid mode '{mode_text}'")))?;
            let resolved = resolve(&path);
            let result = if resolved.read_only {
                Err(read_only_error())
            } else {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&resolved.host, std::fs::Permissions::from_mode(mode))
            };
            result.map_err(|e| fail(format!("chmod: {path}: {}", io_reason(&e))))?;
        }
        Op::Run(command) => {
            let words: Vec<String> = expand(command, &scope)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let code = run_command(&words, invocation, output);
            if code != 0 {
                return Ok(Flow::Exit(code));
            }
        }
        Op::StdinToStdout => {
            copy_stdin(invocation, output);
            if let Some(code) = trapped_exit(invocation, output) {
                return Ok(Flow::Exit(code));
            }
        }
        Op::HttpGet(spec) => {
            let (url, quiet) = match spec {
                HttpGetSpec::Url(url) => (url, false),
                HttpGetSpec::Full { url, quiet } => (url, *quiet),
            };
            let url = expand(url, &scope);
            http_get(&url, quiet, invocation, output)?;
        }
    }
    Ok(Flow::Continue)
}

/// Ends this process the way the kernel's OOM killer does: SIGKILL (exit 137).
fn oom_kill(marker: Option<&Path>) -> ! {
    if let Some(marker) = marker {
        let _ = std::fs::write(marker, b"oom");
    }
    // SIGKILL cannot be caught: this does not return (the exit is a fallback).
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    std::process::exit(137)
}

/// Why a path cannot be executed, as the OCI runtime and busybox sh see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecCheck {
    /// A file without execute permission (or a directory).
    PermissionDenied,
    /// Nothing there, and no program of that name either.
    NotFound,
    Runnable,
}

/// Checks a command path against the container's files: an existing file that is not
/// executable is refused (126); otherwise the image program of its base name runs.
pub fn check_exec(
    fs: &ContainerFs,
    workdir: &str,
    command: &str,
    programs: &BTreeMap<String, Program>,
) -> ExecCheck {
    use std::os::unix::fs::PermissionsExt;
    let base = command.rsplit('/').next().unwrap_or(command);
    if command.contains('/')
        && let Ok(meta) = std::fs::metadata(fs.resolve(workdir, command).host)
        && (meta.is_dir() || meta.permissions().mode() & 0o111 == 0)
    {
        return ExecCheck::PermissionDenied;
    }
    if programs.contains_key(command) || programs.contains_key(base) {
        ExecCheck::Runnable
    } else {
        ExecCheck::NotFound
    }
}

/// `run:` — a command as `sh` runs it; returns its exit code.
fn run_command(words: &[String], invocation: &mut Invocation, output: &mut dyn Output) -> i32 {
    let Some(command) = words.first() else {
        return 0;
    };
    let check = check_exec(
        &invocation.fs,
        &invocation.workdir,
        command,
        &invocation.context.programs,
    );
    match check {
        ExecCheck::PermissionDenied => {
            output.stderr(format!("sh: {command}: Permission denied\n").as_bytes());
            126
        }
        ExecCheck::NotFound => {
            output.stderr(format!("sh: {command}: not found\n").as_bytes());
            127
        }
        ExecCheck::Runnable => {
            let base = command.rsplit('/').next().unwrap_or(command);
            let program = invocation
                .context
                .programs
                .get(command.as_str())
                .or_else(|| invocation.context.programs.get(base))
                .cloned()
                .unwrap_or_default();
            // A child shell: its own arguments and variables.
            let saved_args = std::mem::replace(&mut invocation.args, words[1..].to_vec());
            let saved_vars = invocation.vars.clone();
            let code = run_steps(&program, invocation, output);
            invocation.args = saved_args;
            invocation.vars = saved_vars;
            code
        }
    }
}

/// Copies stdin (per `Context::stdin`) to stdout until end of file.
fn copy_stdin(invocation: &mut Invocation, output: &mut dyn Output) {
    // Reading may block: the container counts as running from here on.
    invocation.notify_ready(Ready::Blocked);
    let mut reader: Box<dyn std::io::Read> = match &invocation.context.stdin {
        StdinSource::Empty => return,
        StdinSource::Inherit => Box::new(std::io::stdin()),
        StdinSource::Fifo(path) => match std::fs::File::open(path) {
            Ok(file) => Box::new(file),
            Err(_) => return,
        },
    };
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer) {
            Err(e) if e.kind() == ErrorKind::Interrupted && !TRAPPED.load(Ordering::SeqCst) => {}
            Ok(0) | Err(_) => break,
            Ok(n) => output.stdout(&buffer[..n]),
        }
    }
}

/// `http_get:` — answers from the image's own routes, printing like `wget -qO-`.
fn http_get(
    url: &str,
    quiet: bool,
    invocation: &mut Invocation,
    output: &mut dyn Output,
) -> Result<(), OpFailure> {
    let (port, path) =
        crate::http::parse_url(url).ok_or_else(|| fail(format!("wget: bad address '{url}'")))?;
    let vars = &invocation.vars;
    let Some(service) = invocation
        .context
        .http
        .iter()
        .find(|s| s.port(vars) == Some(port))
    else {
        return Err(fail(
            "wget: can't connect to remote host (127.0.0.1): Connection refused".to_string(),
        ));
    };
    let response = crate::http::respond(&service.routes, "GET", &path, &invocation.vars);
    std::thread::sleep(response.delay);
    if response.status >= 400 {
        return Err(fail(format!(
            "wget: server returned error: HTTP/1.1 {} {}",
            response.status,
            crate::http::reason(response.status)
        )));
    }
    if !quiet {
        output.stdout(&response.body);
    }
    Ok(())
}

fn cat_one(path: &str, host: &Path, output: &mut dyn Output) -> Result<(), OpFailure> {
    use std::io::Read;
    let can_not_open =
        |e: std::io::Error| fail(format!("cat: can't open '{path}': {}", io_reason(&e)));
    let mut file = std::fs::File::open(host).map_err(can_not_open)?;
    // In chunks, so a file of any size streams through in little memory.
    let mut chunk = vec![0u8; 1 << 20];
    let mut first = true;
    loop {
        let read = match file.read(&mut chunk) {
            Ok(read) => read,
            // A directory opens but cannot be read: the same message as a failed open.
            Err(e) if first => return Err(can_not_open(e)),
            Err(e) => return Err(fail(format!("cat: read error: {}", io_reason(&e)))),
        };
        if read == 0 {
            return Ok(());
        }
        first = false;
        output.stdout(&chunk[..read]);
    }
}

fn write_file(host: &Path, read_only: bool, bytes: &[u8], append: bool) -> std::io::Result<()> {
    if read_only {
        return Err(read_only_error());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(host)?;
    file.write_all(bytes)
}

/// `sha256sum`-format lines for the regular files directly in `dir`, sorted
/// bytewise; hidden files are skipped, as a shell's `dir/*` glob skips them.
fn sha256_manifest(dir: &Path, prefix: &str) -> std::io::Result<(String, usize)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No inputs directory means no inputs, not an error.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((String::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        // Follow symlinks like `[ -f ]` does.
        if std::fs::metadata(entry.path())
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            files.push(entry.file_name());
        }
    }
    files.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    let mut manifest = String::new();
    for name in &files {
        let bytes = std::fs::read(dir.join(name))?;
        let digest = Sha256::digest(&bytes);
        manifest.push_str(&format!(
            "{}  {prefix}{}\n",
            hex::encode(digest),
            name.to_string_lossy()
        ));
    }
    Ok((manifest, files.len()))
}

/// Whether this process stands for a container's main process (PID 1 in its namespace).
static PID_ONE: AtomicBool = AtomicBool::new(false);
/// Set by the `exit` handler; read at the program's blocking points.
static TRAPPED: AtomicBool = AtomicBool::new(false);

/// What an `exit` handler does once its signal has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    pub code: i32,
    pub stdout: Option<String>,
}

/// Signals whose default action ends a process, and that a container's PID 1 therefore
/// never receives unless it installs a handler (the kernel drops them; only SIGKILL and
/// SIGSTOP are forced on a namespace's init).
const PID_ONE_IGNORED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Makes this process behave as a container's main process: a signal without a handler
/// is ignored, as the kernel does for PID 1 of a PID namespace. So `docker stop` of a
/// program without a TERM handler waits out the grace and ends it with SIGKILL (137).
pub fn become_pid_one() {
    PID_ONE.store(true, Ordering::SeqCst);
    for signal in PID_ONE_IGNORED {
        // SAFETY: installing SIG_IGN runs no handler code.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
}

extern "C" fn on_trapped_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TRAPPED.store(true, Ordering::SeqCst);
}

fn set_disposition(signal: libc::c_int, disposition: Disposition) {
    let handler = match disposition {
        Disposition::Ignore => libc::SIG_IGN,
        Disposition::Default if PID_ONE.load(Ordering::SeqCst) => libc::SIG_IGN,
        Disposition::Default => libc::SIG_DFL,
        Disposition::Exit => on_trapped_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
    };
    // SAFETY: the handlers are SIG_IGN, SIG_DFL or `on_trapped_signal`, which only stores
    // an atomic; no SA_RESTART, so a blocking read returns EINTR and the flag is seen.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = 0;
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// Sleeps `total`, waking early when a trapped signal arrives.
fn sleep_unless_trapped(total: Duration) {
    let deadline = std::time::Instant::now() + total;
    loop {
        if TRAPPED.load(Ordering::SeqCst) {
            return;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// The exit code to end with when a trapped signal has arrived (printing the handler's line).
fn trapped_exit(invocation: &Invocation, output: &mut dyn Output) -> Option<i32> {
    if !TRAPPED.load(Ordering::SeqCst) {
        return None;
    }
    let trap = invocation.trap.as_ref()?;
    if let Some(line) = &trap.stdout {
        output.stdout(format!("{line}\n").as_bytes());
    }
    Some(trap.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Mount;

    #[derive(Default)]
    struct Captured {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }

    impl Output for Captured {
        fn stdout(&mut self, bytes: &[u8]) {
            self.stdout.extend_from_slice(bytes);
        }
        fn stderr(&mut self, bytes: &[u8]) {
            self.stderr.extend_from_slice(bytes);
        }
    }

    fn program(yaml: &str) -> Program {
        let raw: Vec<RawStep> = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    fn invocation(root: &Path, read_only: bool) -> Invocation {
        Invocation {
            fs: ContainerFs {
                root: root.join("root"),
                root_read_only: false,
                mounts: vec![Mount {
                    source: root.join("ws"),
                    destination: "/workspace".into(),
                    read_only,
                }],
            },
            workdir: "/workspace".into(),
            vars: BTreeMap::new(),
            args: vec!["a".into(), "b".into()],
            on_ready: None,
            context: Context::default(),
            allocated: 0,
            trap: None,
        }
    }

    #[test]
    fn prints_sets_and_exits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let program = program(
            "- stdout: \"${@}\"\n- set: { X: \"${1}1\" }\n- stderr: \"x=${X}\"\n- exit: 3\n- stdout: never\n",
        );
        let mut out = Captured::default();
        let code = run(&program, &mut invocation(dir.path(), false), &mut out);
        assert_eq!(code, 3);
        assert_eq!(out.stdout, b"a b\n");
        assert_eq!(out.stderr, b"x=a1\n");
    }

    #[test]
    fn when_conditions() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let program = program(
            "- stdout: eq\n  when: { var: V, equals: \"1\" }\n- stdout: ne\n  when: { var: V, not_equals: \"1\" }\n- stdout: gt\n  when: { var: V, greater_than: 0 }\n",
        );
        let mut inv = invocation(dir.path(), false);
        inv.vars.insert("V".into(), "1".into());
        let mut out = Captured::default();
        run(&program, &mut inv, &mut out);
        assert_eq!(out.stdout, b"eq\ngt\n");
    }

    #[test]
    fn read_only_write_runs_on_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("ws")).unwrap_or_else(|e| panic!("{e}"));
        let program = program(
            "- on_error:\n    - stderr: cannot write\n- write: { path: out.txt, content: x }\n- stdout: never\n",
        );
        let mut out = Captured::default();
        let code = run(&program, &mut invocation(dir.path(), true), &mut out);
        assert_eq!(code, 1);
        assert_eq!(out.stderr, b"cannot write\n");
        assert!(!dir.path().join("ws/out.txt").exists());
    }

    #[test]
    fn failing_op_without_handler_prints_busybox_message() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let program = program("- cat: /nope\n");
        let mut out = Captured::default();
        let code = run(&program, &mut invocation(dir.path(), false), &mut out);
        assert_eq!(code, 1);
        assert_eq!(
            out.stderr,
            b"cat: can't open '/nope': No such file or directory\n"
        );
    }

    #[test]
    fn manifest_is_sorted_and_counted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let inputs = dir.path().join("ws/in");
        std::fs::create_dir_all(inputs.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(inputs.join("b"), "b").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(inputs.join("B"), "").unwrap_or_else(|e| panic!("{e}"));
        let program = program(
            "- sha256_manifest: { dir: in, to: m, prefix: \"in/\", count_var: N }\n- stdout: \"${N}\"\n",
        );
        let mut out = Captured::default();
        assert_eq!(
            run(&program, &mut invocation(dir.path(), false), &mut out),
            0
        );
        assert_eq!(out.stdout, b"2\n");
        let manifest = std::fs::read_to_string(dir.path().join("ws/m")).unwrap_or_default();
        assert_eq!(
            manifest,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  in/B\n\
             3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  in/b\n"
        );
    }

    #[test]
    fn steps_need_exactly_one_operation() {
        let raw: Vec<RawStep> =
            serde_saphyr::from_str("- stdout: a\n  stderr: b\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            compile(raw).unwrap_err().to_string(),
            "step 1: more than one operation: stdout, stderr"
        );
    }
}
