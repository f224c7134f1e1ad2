//! Replaying recorded containers (`FAKE_DOCKER_RECORDINGS`).
//!
//! A container whose command the image does not model as a program is looked up in
//! the recordings named by `FAKE_DOCKER_RECORDINGS` (`:`-separated recording
//! directories, as `dockproof record` writes them). `start` matches the container's
//! call (image, argv, env, user, workdir, limits, workspace fingerprint) against them:
//! a match is remembered on the container and played by its program process (streams,
//! workspace changes, exit code; see docs/recordings.md); no match refuses the start,
//! naming what differs from the nearest recorded container. Hand-written programs
//! always win: a command the image models is never replayed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dockproof_recording::{self as recording, Call, Ended, Recording};

use crate::logfile::{LogWriter, Stream};
use crate::recordings::{ReplayRef, configured};
use crate::state::Container;

/// The message prefix of a start refused because no recording matches (dockproof reads
/// it as `config_invalid`).
pub const NO_MATCH: &str = "no recording matches this container";

/// The HTTP exchanges recorded for the container `replay` plays.
pub fn recorded_http(replay: &ReplayRef) -> Option<Vec<recording::Exchange>> {
    let recording = Recording::load(&replay.dir).ok()?;
    Some(recording.containers.get(replay.index)?.http.clone())
}

/// Plays a replayed service's recorded health timeline: its first status is set when
/// it starts (`starting`, as docker does), then one more status per health-check
/// interval; the last one stays. A timeline that was recorded empty leaves health
/// alone (no health check ran).
pub fn play_health(state: &crate::state::StateDir, container: &Container, replay: &ReplayRef) {
    let Some(timeline) = Recording::load(&replay.dir)
        .ok()
        .and_then(|recording| {
            recording
                .containers
                .get(replay.index)
                .map(|c| c.health.clone())
        })
        .filter(|timeline| !timeline.is_empty())
    else {
        return;
    };
    let interval = container
        .healthcheck
        .as_ref()
        .map_or(std::time::Duration::from_secs(1), |config| {
            config.interval()
        });
    let state = state.clone();
    let id = container.id.clone();
    std::thread::spawn(move || {
        for (index, status) in timeline.iter().enumerate() {
            if index > 0 {
                std::thread::sleep(interval);
            }
            let Ok(_lock) = state.lock() else { return };
            let Ok(Some(mut current)) = state.load(&id) else {
                return;
            };
            if current.state.status != crate::state::Status::Running {
                return;
            }
            let health = current
                .state
                .health
                .get_or_insert_with(crate::health::HealthState::starting);
            health.status = status.clone();
            health.failing_streak = i64::from(status == "unhealthy");
            if state.save(&current).is_err() {
                return;
            }
        }
    });
}

/// What `start` decides for a container without a program.
pub enum Selection {
    /// Replay it.
    Play(ReplayRef),
    /// Refuse it: no recorded container matches (the message names the differences).
    Refuse(String),
    /// No recording is configured, or none holds this image: the fake's usual answers.
    NotRecorded,
}

/// The workspace mounted at `mount` in `container`, fingerprinted (none when not mounted).
fn workspace_at(
    container: &Container,
    mount: Option<&str>,
) -> Result<Option<recording::WorkspaceInput>, String> {
    Ok(match mount {
        Some(destination) => match container
            .mounts
            .iter()
            .find(|m| m.destination == destination)
        {
            Some(found) => {
                let entries = recording::walk(&found.source).map_err(|e| e.to_string())?;
                Some(recording::workspace_input(destination, &entries))
            }
            None => None,
        },
        None => None,
    })
}

/// Where `commit` notes that an image was committed from a replayed container.
fn commit_note(state: &crate::state::StateDir, image_id: &str) -> PathBuf {
    let hex = image_id.trim_start_matches("sha256:");
    state.committed_dir().join(format!("{hex}.replayed-step"))
}

/// `commit` of a replayed container: the new image remembers the recorded container's
/// step, so a container started from it is matched as the recording names such an
/// image (`committed:STEP`, format version 4) — its ID is the fake's own, like any.
pub fn note_commit(state: &crate::state::StateDir, image_id: &str, container: &Container) {
    let Some(replay) = &container.replay else {
        return;
    };
    let Ok(recording) = Recording::load(&replay.dir) else {
        return;
    };
    if let Some(recorded) = recording.containers.get(replay.index) {
        let _ = std::fs::write(commit_note(state, image_id), recorded.step.as_bytes());
    }
}

/// The image `container` runs as a recording names it: `committed:STEP` for an image
/// committed from a replayed container, else the reference it was created with.
fn recorded_image_name(container: &Container) -> String {
    crate::state::StateDir::from_env()
        .ok()
        .and_then(|state| std::fs::read_to_string(commit_note(&state, &container.image_id)).ok())
        .map_or_else(
            || container.image_name.clone(),
            |step| recording::committed_image(&step),
        )
}

/// The call as the fake sees `container`, with the workspace fingerprinted at `mount`.
fn call_of(container: &Container, mount: Option<&str>) -> Result<Call, String> {
    let workspace = workspace_at(container, mount)?;
    let env: BTreeMap<String, String> = crate::expand::env_vars(&container.env)
        .into_iter()
        .collect();
    Ok(Call {
        image: recorded_image_name(container),
        image_id: container.image_id.clone(),
        image_config: BTreeMap::new(),
        argv: container.argv(),
        env,
        secret_env: Vec::new(),
        user: container.user.clone(),
        workdir: container.workdir.clone(),
        limits: recording::Limits {
            memory_bytes: (container.memory > 0).then_some(container.memory as u64),
            pids: container.pids_limit,
            read_only: container.read_only,
            network: (container.network_mode != "default" && !container.network_mode.is_empty())
                .then(|| container.network_mode.clone()),
        },
        workspace,
    })
}

/// Over every configured recording, the first of its `list` whose `differences` are
/// none (played), else a refusal naming the nearest one's (`nearest` says which, with
/// the differences, its position from 1 and its file); `NotRecorded` when none is
/// configured or none holds anything to compare.
fn select_among<T>(
    list: impl Fn(&Recording) -> &[T],
    mut differences: impl FnMut(&T) -> Result<Vec<String>, String>,
    no_match: &str,
    nearest: impl Fn(&str, usize, &std::path::Path) -> String,
) -> Selection {
    let dirs = configured();
    if dirs.is_empty() {
        return Selection::NotRecorded;
    }
    let mut closest: Option<(PathBuf, usize, Vec<String>)> = None;
    let mut problems = Vec::new();
    for dir in dirs {
        let recording = match Recording::load(&dir) {
            Ok(recording) => recording,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        for (index, item) in list(&recording).iter().enumerate() {
            let found = match differences(item) {
                Ok(found) => found,
                Err(error) => {
                    problems.push(error);
                    continue;
                }
            };
            if found.is_empty() {
                return Selection::Play(ReplayRef { dir, index });
            }
            if closest
                .as_ref()
                .is_none_or(|(_, _, fewest)| found.len() < fewest.len())
            {
                closest = Some((dir.clone(), index, found));
            }
        }
    }
    match closest {
        Some((dir, index, found)) => Selection::Refuse(format!(
            "{no_match}: {}",
            nearest(
                &found.join("; "),
                index + 1,
                &dir.join(recording::FILE_NAME)
            )
        )),
        None if !problems.is_empty() => {
            Selection::Refuse(format!("{no_match}: {}", problems.join("; ")))
        }
        None => Selection::NotRecorded,
    }
}

/// Finds the recorded container `container` replays, if recordings are configured.
pub fn select(container: &Container) -> Selection {
    // Fingerprint each mount a recorded container names once.
    let mut calls: BTreeMap<Option<String>, Result<Call, String>> = BTreeMap::new();
    select_among(
        |recording| &recording.containers,
        |recorded| {
            let mount = recorded.call.workspace.as_ref().map(|w| w.mount.clone());
            let call = calls
                .entry(mount.clone())
                .or_insert_with(|| call_of(container, mount.as_deref()))
                .clone()?;
            Ok(recording::differences(&recorded.call, &call))
        },
        NO_MATCH,
        |differences, position, file| {
            format!(
                "{differences} (nearest: container {position} of {}); the recording no longer describes this call: re-record it on a real daemon with `dockproof record SCENARIO` — see docs/recordings.md",
                file.display()
            )
        },
    )
}

/// Body of a replayed container's program process: writes the recorded streams and
/// workspace changes, then ends as recorded (at once, or when stopped if the recording
/// was stopped after its timeout).
pub fn play(container: &Container, replay: &ReplayRef, log: &mut LogWriter) -> i32 {
    let fail = |log: &mut LogWriter, message: String| {
        let _ = log.write(
            Stream::Stderr,
            format!("fake-docker: cannot replay: {message}\n").as_bytes(),
        );
        crate::handshake::program_ready_ended();
        127
    };
    let recording = match Recording::load(&replay.dir) {
        Ok(recording) => recording,
        Err(error) => return fail(log, error.to_string()),
    };
    let Some(recorded) = recording.containers.get(replay.index) else {
        return fail(log, "the recorded container is gone".into());
    };
    let outcome = &recorded.outcome;
    for (stream, recorded_stream) in [
        (Stream::Stdout, &outcome.stdout),
        (Stream::Stderr, &outcome.stderr),
    ] {
        match recorded_stream.kept.bytes(&replay.dir) {
            Ok(bytes) if !bytes.is_empty() => {
                let _ = log.write(stream, &bytes);
            }
            Ok(_) => {}
            Err(error) => return fail(log, error.to_string()),
        }
    }
    if let Some(workspace) = &recorded.call.workspace
        && let Some(mount) = container
            .mounts
            .iter()
            .find(|m| m.destination == workspace.mount)
        && let Err(error) = recording::apply(&mount.source, &replay.dir, &outcome.workspace)
    {
        return fail(log, error.to_string());
    }
    let code = i32::try_from(outcome.exit_code).unwrap_or(255);
    match outcome.ended {
        Ended::Exited => {
            if outcome.oom_killed
                && let Ok(state) = crate::state::StateDir::from_env()
            {
                let _ = std::fs::write(state.oom_marker(&container.id), b"oom");
            }
            crate::handshake::program_ready_ended();
            code
        }
        Ended::StoppedAfterTimeout => run_until_stopped(code),
        // Still running when the scenario ended: it runs until removed (or stopped, which
        // ends it as a SIGTERM would end a process that handles it).
        Ended::StillRunning => run_until_stopped(143),
    }
}

/// An `exec` as the fake sees it: the command and the exec's own flags.
pub struct ExecCall<'a> {
    pub argv: &'a [String],
    /// The exec's own variables (`--env`, `--env-file`), not the container's.
    pub env: BTreeMap<String, String>,
    /// `--user` and `--workdir` as given (empty when not).
    pub user: String,
    pub workdir: String,
}

/// Finds the recorded exec `exec` into `container` replays, if recordings are configured.
pub fn select_exec(container: &Container, exec: &ExecCall<'_>) -> Selection {
    let argv = serde_json::to_string(exec.argv).unwrap_or_default();
    select_among(
        |recording| &recording.execs,
        |recorded| {
            let mount = recorded.call.workspace.as_ref().map(|w| w.mount.as_str());
            let call = Call {
                image: container.image_name.clone(),
                image_id: container.image_id.clone(),
                image_config: BTreeMap::new(),
                argv: exec.argv.to_vec(),
                env: exec.env.clone(),
                secret_env: Vec::new(),
                user: exec.user.clone(),
                workdir: exec.workdir.clone(),
                limits: recording::Limits::default(),
                workspace: workspace_at(container, mount)?,
            };
            Ok(recording::differences(&recorded.call, &call))
        },
        NO_MATCH,
        |differences, position, file| {
            format!(
                "exec {argv}: {differences} (nearest: exec {position} of {}); the recording no longer describes this exec: re-record it on a real daemon with `dockproof record SCENARIO` — see docs/recordings.md",
                file.display()
            )
        },
    )
}

/// Plays a recorded exec: its stdout and stderr on the CLI's, its workspace changes
/// beneath the container's mount; returns its exit code.
pub fn play_exec(container: &Container, replay: &ReplayRef) -> i32 {
    use std::io::Write;
    let fail = |message: String| {
        crate::console::err(&format!("fake-docker: cannot replay: {message}\n"));
        127
    };
    let recording = match Recording::load(&replay.dir) {
        Ok(recording) => recording,
        Err(error) => return fail(error.to_string()),
    };
    let Some(recorded) = recording.execs.get(replay.index) else {
        return fail("the recorded exec is gone".into());
    };
    let outcome = &recorded.outcome;
    let streams = [&outcome.stdout, &outcome.stderr].map(|stream| stream.kept.bytes(&replay.dir));
    let [stdout, stderr] = streams;
    let (stdout, stderr) = match (stdout, stderr) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(error), _) | (_, Err(error)) => return fail(error.to_string()),
    };
    if let Some(workspace) = &recorded.call.workspace
        && let Some(mount) = container
            .mounts
            .iter()
            .find(|m| m.destination == workspace.mount)
        && let Err(error) = recording::apply(&mount.source, &replay.dir, &outcome.workspace)
    {
        return fail(error.to_string());
    }
    let _ = std::io::stdout().lock().write_all(&stdout);
    let _ = std::io::stdout().lock().flush();
    let _ = std::io::stderr().lock().write_all(&stderr);
    i32::try_from(outcome.exit_code).unwrap_or(255)
}

/// A replayed container that was still running at its timeout: it runs until stopped.
/// Recorded 137: it ignored SIGTERM (PID 1 without a handler), so only SIGKILL ends it;
/// any other code: a SIGTERM handler ends it with that code.
fn run_until_stopped(code: i32) -> ! {
    static TERMINATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn on_term(_signal: libc::c_int) {
        TERMINATED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    if code != 137 {
        // SAFETY: the handler only stores an atomic (async-signal-safe).
        unsafe {
            libc::signal(
                libc::SIGTERM,
                on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    crate::handshake::program_ready_blocked();
    loop {
        if TERMINATED.load(std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(code);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Finds the recorded build a `docker build` of `call` replays, if recordings are
/// configured: the recording directory and the build's index.
pub fn select_build(call: &recording::BuildCall) -> Selection {
    select_among(
        |recording| &recording.builds,
        // A build recorded without its call (version 1) is never replayed.
        |build| {
            Ok(build.call.as_ref().map_or_else(
                || vec!["recorded without its call (format version 1)".to_owned()],
                |recorded| recording::build_differences(recorded, call),
            ))
        },
        "no recording matches this build",
        |differences, position, file| {
            format!(
                "{differences} (nearest: build {position} of {}); re-record it on a real daemon with `dockproof record SCENARIO` — see docs/recordings.md",
                file.display()
            )
        },
    )
}

/// The fake image definition (JSON, which the definition loader reads as YAML) of a
/// replayed build: named `name`, with the recorded config and size and `labels` (the
/// build's `--label`s) added.
pub fn built_definition(
    replay: &ReplayRef,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, String> {
    let recording = Recording::load(&replay.dir).map_err(|error| error.to_string())?;
    let build = recording
        .builds
        .get(replay.index)
        .ok_or_else(|| "the recorded build is gone".to_owned())?;
    let config = &build.image_config;
    let strings = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect()
    };
    let keys = |key: &str| -> Vec<String> {
        config
            .get(key)
            .and_then(serde_json::Value::as_object)
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    };
    let text = |key: &str| {
        config
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut all_labels: BTreeMap<String, String> = config
        .get("Labels")
        .and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    all_labels.extend(labels.clone());
    let healthcheck = config
        .get("Healthcheck")
        .filter(|value| value.is_object())
        .map(|check| {
            let duration = |key: &str| {
                check[key]
                    .as_i64()
                    .filter(|ns| *ns > 0)
                    .map(|ns| format!("{ns}ns"))
            };
            serde_json::json!({
                "test": check["Test"],
                "interval": duration("Interval"),
                "timeout": duration("Timeout"),
                "start_period": duration("StartPeriod"),
                "retries": check["Retries"].as_i64(),
            })
        });
    // A tree a `cst:` step recorded of this very image gives it its files.
    let recorded_tree = recording
        .images
        .iter()
        .find(|image| crate::image::normalize_reference(&image.image) == name)
        .map(|image| serde_json::json!({ "dir": replay.dir, "image": image.image }));
    let definition = serde_json::json!({
        "recorded_tree": recorded_tree,
        "name": name,
        "size": build.size.unwrap_or(0),
        "config": {
            "user": text("User"),
            "env": strings("Env"),
            "workdir": text("WorkingDir"),
            "entrypoint": strings("Entrypoint"),
            "cmd": strings("Cmd"),
            "labels": all_labels,
            "exposed_ports": keys("ExposedPorts"),
            "volumes": keys("Volumes"),
            "healthcheck": healthcheck,
        },
    });
    Ok(serde_json::to_string_pretty(&definition).unwrap_or_default())
}
