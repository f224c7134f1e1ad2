//! Hostile input files through the real binary (issue 13, item 2): YAML alias
//! bombs and deep nesting, numbers that overflow, FIFOs where a file is named,
//! a sparse fixture far over the workspace limit. Each must be an exit-2 load
//! error naming the file and place, quickly and in bounded memory; none may hang
//! (every child runs under a deadline and is killed, failing the test, past it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// What one child did: exit code, output, wall time and peak resident memory.
struct Measured {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    max_rss_bytes: u64,
}

impl Measured {
    fn describe(&self) -> String {
        format!(
            "exit {:?} after {:?}, peak RSS {} KiB\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed,
            self.max_rss_bytes / 1024,
            self.stdout,
            self.stderr
        )
    }
}

/// The child's peak resident memory so far (`VmHWM`), while it runs.
fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Run `command` to completion within `deadline`, measuring its peak RSS from
/// `/proc/PID/status` `VmHWM`, polled every millisecond (the high-water mark of the
/// child's own memory after exec; `wait4`'s `ru_maxrss` would also count this test
/// process's memory, which the child shares until it execs). Only growth in the last
/// millisecond before exit could be missed; an alias bomb takes far longer to expand.
/// Past the deadline the child is killed and the test fails: a hang is a regression.
fn measure(mut command: Command, deadline: Duration) -> Measured {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dockproof starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let mut max_rss_bytes = 0;
    let status = loop {
        if let Some(peak) = peak_rss_bytes(child.id()) {
            max_rss_bytes = max_rss_bytes.max(peak);
        }
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    Measured {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
        max_rss_bytes,
    }
}

fn dockproof(args: &[&std::ffi::OsStr]) -> Command {
    let mut command = Command::new(support::dockproof());
    command.current_dir(support::root()).args(args);
    command
}

fn check(path: &Path) -> Command {
    dockproof(&["check".as_ref(), path.as_os_str()])
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// An exit-2 load error whose stderr names `path` with a line and column and says `needle`.
fn assert_located(measured: &Measured, path: &Path, needle: &str) {
    assert_located_exit(measured, path, needle, 2);
}

/// The same with exit `code` (`dockproof cst` exits 1 for a config error, as CST does).
fn assert_located_exit(measured: &Measured, path: &Path, needle: &str, code: i32) {
    assert_eq!(measured.code, Some(code), "{}", measured.describe());
    let located = regex::Regex::new(&format!(
        r"{}:\d+:\d+",
        regex::escape(&path.display().to_string())
    ))
    .unwrap();
    assert!(
        located.is_match(&measured.stderr),
        "no `{}:LINE:COL` in stderr\n{}",
        path.display(),
        measured.describe()
    );
    assert!(
        measured.stderr.contains(needle),
        "no `{needle}` in stderr\n{}",
        measured.describe()
    );
}

/// Nine (or `levels`) anchors, each a list of nine aliases of the one before: 9^levels
/// strings once expanded. Padded with a comment to exactly `size` bytes.
fn alias_bomb(levels: usize, size: usize) -> String {
    let names: Vec<char> = ('a'..='z').take(levels).collect();
    let mut text = String::from("name: alias-bomb\nsteps: []\n");
    text.push_str(&format!(
        "{}: &{} [{}]\n",
        names[0],
        names[0],
        ["\"lol\""; 9].join(",")
    ));
    for pair in names.windows(2) {
        let aliases = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
    }
    let padding = size
        .checked_sub(text.len() + 3)
        .expect("the bomb fits the size");
    text.push_str(&format!("# {}\n", "x".repeat(padding)));
    assert_eq!(text.len(), size);
    text
}

const SECOND: Duration = Duration::from_secs(1);
const MIB_64: u64 = 64 * 1024 * 1024;

#[test]
fn alias_bombs_are_located_exit_2_load_errors_in_under_a_second_and_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    // 416 bytes, 9 levels (9^9 = 387,420,489 strings expanded); 515 bytes, 12 levels.
    for (levels, size) in [(9, 416), (12, 515)] {
        let path = write(
            dir.path(),
            &format!("bomb-{size}.yaml"),
            &alias_bomb(levels, size),
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size as u64);
        // Warm the binary's pages once so the timing is the load, not the first exec.
        let _ = measure(dockproof(&["--version".as_ref()]), Duration::from_secs(60));
        let measured = measure(check(&path), Duration::from_secs(60));
        assert_located(&measured, &path, "larger than 100000 nodes");
        assert!(measured.elapsed < SECOND, "{}", measured.describe());
        assert!(measured.max_rss_bytes < MIB_64, "{}", measured.describe());
    }
}

#[test]
fn four_kib_of_nested_lists_is_a_located_error_in_check_run_and_lint() {
    let dir = tempfile::tempdir().unwrap();
    let nested = format!("{}z\n", "- ".repeat(2048));
    let scenario = write(
        dir.path(),
        "nested.yaml",
        &format!("name: nested\nsteps:\n{nested}"),
    );
    let measured = measure(check(&scenario), Duration::from_secs(60));
    assert_located(&measured, &scenario, "deeper than 64 levels");
    assert!(measured.max_rss_bytes < MIB_64, "{}", measured.describe());

    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut run = support::dockproof_fake(&work);
    run.arg(&scenario);
    let measured = measure(run, Duration::from_secs(120));
    assert_located(&measured, &scenario, "deeper than 64 levels");

    // A compose file (lint knows one by its `services:` line) and a CST config.
    let compose = write(
        dir.path(),
        "compose.yaml",
        &format!("services:\n  web:\n    image: x\n    command:\n      {nested}"),
    );
    let measured = measure(
        dockproof(&["lint".as_ref(), compose.as_os_str()]),
        Duration::from_secs(60),
    );
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured.stderr.contains(":5:") && measured.stderr.contains("deeper than 64 levels"),
        "{}",
        measured.describe()
    );
    let cst = write(
        dir.path(),
        "cst.yaml",
        &format!("schemaVersion: 2.0.0\ncommandTests:\n{nested}"),
    );
    let measured = measure(
        dockproof(&[
            "cst".as_ref(),
            "--image".as_ref(),
            "x".as_ref(),
            cst.as_os_str(),
        ]),
        Duration::from_secs(60),
    );
    assert_located_exit(&measured, &cst, "deeper than 64 levels", 1);
}

/// `dockproof canary` on one canary-tagged scenario of `dir`, with `args`.
fn canary(dir: &Path, args: &[&std::ffi::OsStr]) -> Command {
    let scenario = write(
        dir,
        "canary.yaml",
        "name: canary
tags: [canary]
steps:
  - run: { image: dockproof/job-runner:1, cmd: [true] }
",
    );
    let mut command = dockproof(&["canary".as_ref(), scenario.as_os_str()]);
    command.args(args);
    command
}

#[test]
fn hosts_and_gates_files_are_bounded_too() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = write(dir.path(), "hosts.yaml", &alias_bomb(9, 416));
    let measured = measure(
        canary(dir.path(), &["--hosts-file".as_ref(), hosts.as_os_str()]),
        Duration::from_secs(60),
    );
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured.stderr.contains(&format!("{}:", hosts.display()))
            && measured.stderr.contains("larger than 100000 nodes"),
        "{}",
        measured.describe()
    );
    let gates = write(
        dir.path(),
        "gates.yaml",
        &format!("{}z\n", "- ".repeat(2048)),
    );
    let measured = measure(
        canary(dir.path(), &["--gates".as_ref(), gates.as_os_str()]),
        Duration::from_secs(60),
    );
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured.stderr.contains(&format!("{}:1:", gates.display()))
            && measured.stderr.contains("deeper than 64 levels"),
        "{}",
        measured.describe()
    );
}

#[test]
fn numbers_past_their_maximum_are_load_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for (name, step, needle) in [
        (
            "timeout",
            "  - run: { image: dockproof/job-runner:1, cmd: [true], timeout: 18446744073709551615s }\n",
            "longer than 24h",
        ),
        (
            "size",
            "  - stage:\n      - { generate: { bytes: 18446744073709551615 }, to: x }\n",
            "at most 1099511627776",
        ),
        (
            "attempts",
            "  - run: { image: dockproof/web:1, detach: true, name: web }\n  - http: { container: web, port: 8080, path: /, attempts: 4294967295 }\n",
            "is too large",
        ),
    ] {
        let path = write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!("name: {name}\nsteps:\n{step}"),
        );
        let measured = measure(check(&path), Duration::from_secs(60));
        assert_located(&measured, &path, needle);
        assert!(
            !measured.stderr.contains("panicked"),
            "{}",
            measured.describe()
        );
    }
    // The run command refuses it the same way, before anything runs.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut run = support::dockproof_fake(&work);
    run.arg(dir.path().join("timeout.yaml"));
    let measured = measure(run, Duration::from_secs(120));
    assert_located(
        &measured,
        &dir.path().join("timeout.yaml"),
        "longer than 24h",
    );
    assert!(
        !measured.stdout.contains("cleanup_failed"),
        "{}",
        measured.describe()
    );
}

#[test]
fn fifos_named_as_files_are_refused_before_they_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let deadline = Duration::from_secs(60);

    // A `*.yaml` FIFO in a scenario directory.
    let suite = dir.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    write(
        &suite,
        "a.yaml",
        "name: a\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [true] }\n",
    );
    let fifo_scenario = suite.join("b.yaml");
    mkfifo(&fifo_scenario);
    let measured = measure(check(&suite), deadline);
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured
            .stderr
            .contains(&format!("{} is a FIFO", fifo_scenario.display())),
        "{}",
        measured.describe()
    );

    // A lint argument.
    let fifo_lint = dir.path().join("compose.yaml");
    mkfifo(&fifo_lint);
    let measured = measure(
        dockproof(&["lint".as_ref(), fifo_lint.as_os_str()]),
        deadline,
    );
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured.stderr.contains("is a FIFO"),
        "{}",
        measured.describe()
    );

    // A CST config, and a CST envFile.
    let fifo_cst = dir.path().join("cst.yaml");
    mkfifo(&fifo_cst);
    let measured = measure(
        dockproof(&[
            "cst".as_ref(),
            "--image".as_ref(),
            "x".as_ref(),
            fifo_cst.as_os_str(),
        ]),
        deadline,
    );
    // A config error is exit 1 in `dockproof cst`, as in CST; nothing waits on the FIFO.
    assert_eq!(measured.code, Some(1), "{}", measured.describe());
    assert!(
        measured.stderr.contains("is a FIFO"),
        "{}",
        measured.describe()
    );
    let fifo_env = dir.path().join("env.list");
    mkfifo(&fifo_env);
    let cst = write(
        dir.path(),
        "cst-env.yaml",
        &format!(
            "schemaVersion: 2.0.0\ncontainerRunOptions:\n  envFile: {}\ncommandTests:\n  - name: t\n    command: \"true\"\n",
            fifo_env.display()
        ),
    );
    let measured = measure(
        dockproof(&[
            "cst".as_ref(),
            "--image".as_ref(),
            "x".as_ref(),
            cst.as_os_str(),
        ]),
        deadline,
    );
    assert_located_exit(&measured, &cst, "is a FIFO", 1);

    // Hosts and gates files.
    let fifo_hosts = dir.path().join("hosts.yaml");
    mkfifo(&fifo_hosts);
    let measured = measure(
        canary(
            dir.path(),
            &["--hosts-file".as_ref(), fifo_hosts.as_os_str()],
        ),
        deadline,
    );
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured.stderr.contains("is a FIFO"),
        "{}",
        measured.describe()
    );

    // A FIFO inside a build context.
    let context = dir.path().join("context");
    std::fs::create_dir_all(context.join("sub")).unwrap();
    write(&context, "Dockerfile", "FROM scratch\nCOPY . /\n");
    let fifo_context = context.join("sub/pipe");
    mkfifo(&fifo_context);
    let scenario = write(
        dir.path(),
        "build.yaml",
        "name: build\nsteps:\n  - build: { context: context }\n",
    );
    let measured = measure(check(&scenario), deadline);
    assert_located(&measured, &scenario, "is a FIFO");
    assert!(
        measured
            .stderr
            .contains(&fifo_context.display().to_string()),
        "{}",
        measured.describe()
    );
}

#[test]
fn a_sparse_fixture_over_the_workspace_limit_is_refused_by_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("huge.bin");
    // 5 GiB that take no disk space: copying them would take minutes and the disk.
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(5 * 1024 * 1024 * 1024)
        .unwrap();
    let scenario = write(
        dir.path(),
        "sparse.yaml",
        "name: sparse\nworkspace: { max_bytes: 1MiB }\nsteps:\n  - stage:\n      - { from: huge.bin, to: inputs/huge.bin }\n  - run: { image: dockproof/job-runner:1, cmd: [true] }\n",
    );
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut run = support::dockproof_fake(&work);
    run.arg(&scenario);
    let measured = measure(run, Duration::from_secs(60));
    // A verdict, not a load error: the scenario is valid, its input does not fit.
    assert_eq!(measured.code, Some(1), "{}", measured.describe());
    let wanted = format!(
        "{}:5:31: workspace_limit_exceeded: staging 5368709120 bytes at `inputs/huge.bin` would exceed the limit, so nothing was copied",
        scenario.display()
    );
    assert!(
        measured.stdout.contains(&wanted),
        "no `{wanted}`\n{}",
        measured.describe()
    );
    assert!(
        measured.elapsed < Duration::from_secs(10),
        "{}",
        measured.describe()
    );
}

/// Property tests: random and mutated YAML through every loader in-process. None may
/// panic or overflow the stack, and each rejection is located. `PROPTEST_CASES` sets
/// the cases per loader (default 2,000; README "Development" records larger runs).
mod every_loader {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::support;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(2_000)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    /// Real files of every kind the loaders read, to mutate.
    fn seeds() -> Vec<String> {
        let root = support::root();
        let mut paths = support::shipped_scenarios();
        for dir in ["fixtures/cst", "fixtures/compose"] {
            paths.extend(files_under(&root.join(dir)));
        }
        let mut texts: Vec<String> = paths
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect();
        texts.push(
            "- name: a\n  docker_host: unix:///x\n- name: b\n  fake: { faults: \"\" }\n".into(),
        );
        texts.push(
            "min_success_rate: 0.9\nmax_p95_start_ms: 100\nmax_failures: { timeout: 1 }\n".into(),
        );
        texts
    }

    /// YAML-heavy noise: structure, anchors, aliases, tags, deep nests.
    fn noise() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            ":",
            " ",
            "- ",
            "\n",
            "  ",
            "[",
            "]",
            "{",
            "}",
            ",",
            "'",
            "\"",
            "#",
            "&a ",
            "*a",
            "&b ",
            "*b",
            "!!str ",
            "<<: ",
            "? ",
            "|",
            ">",
            "0",
            "1m",
            "99999999999999999999",
            "x",
            "\t",
            "é",
            "~",
            "---\n",
            "...\n",
            "- - - - ",
            "[[[[",
            "{a: {b: ",
        ]);
        prop::collection::vec(token, 0..200).prop_map(|tokens| tokens.concat())
    }

    /// A real file with a random cut, insertion or replacement.
    fn mutated() -> impl Strategy<Value = String> {
        (
            prop::sample::select(seeds()),
            any::<prop::sample::Index>(),
            0usize..60,
            noise(),
        )
            .prop_map(|(mut text, at, cut, inserted)| {
                let boundaries: Vec<usize> = (0..=text.len())
                    .filter(|index| text.is_char_boundary(*index))
                    .collect();
                let start = boundaries[at.index(boundaries.len())];
                let end = boundaries
                    .iter()
                    .copied()
                    .filter(|index| *index <= start + cut)
                    .max()
                    .unwrap_or(start);
                text.replace_range(start..end, &inserted);
                text
            })
    }

    fn input() -> impl Strategy<Value = String> {
        prop_oneof![noise(), mutated(), any::<String>()]
    }

    fn run(name: &str, property: impl Fn(&str) -> Result<(), TestCaseError>) {
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let started = std::time::Instant::now();
        if let Err(error) = runner.run(&input(), |text| property(&text)) {
            panic!("{name}: {error}");
        }
        // `cargo xtask fuzz` reads this line.
        println!(
            "{name}: {} inputs, no panic ({:.1} s)",
            cases(),
            started.elapsed().as_secs_f64()
        );
    }

    fn located(line: usize, text: &str) -> Result<(), TestCaseError> {
        let lines = text.lines().count().max(1) + 1;
        prop_assert!(
            line >= 1 && line <= lines,
            "line {line} outside {lines} lines"
        );
        Ok(())
    }

    #[test]
    fn scenario_loader() {
        run("scenario", |text| {
            let (_, diagnostics) =
                dockproof::scenario::load::load_str(text, Path::new("/nonexistent-base"));
            for diagnostic in &diagnostics {
                located(diagnostic.span.start.line, text)?;
            }
            Ok(())
        });
    }

    #[test]
    fn cst_loader() {
        run("cst", |text| {
            let (loaded, diagnostics) =
                dockproof::cst::load::load_str(text, Path::new("/nonexistent/cst.yaml"));
            // A file that loads may still hold invalid tests: each of their problems
            // is reported, and nothing else is.
            let invalid = loaded.as_ref().map_or(0, |loaded| {
                loaded.invalid.values().map(Vec::len).sum::<usize>()
            });
            match &loaded {
                Some(_) => prop_assert_eq!(diagnostics.len(), invalid),
                None => prop_assert!(!diagnostics.is_empty()),
            }
            for diagnostic in &diagnostics {
                // A problem with the file as a whole may sit at line 0.
                if diagnostic.span.start.line > 0 {
                    located(diagnostic.span.start.line, text)?;
                }
            }
            Ok(())
        });
    }

    #[test]
    fn compose_readers() {
        run("compose", |text| {
            if let Err(error) = dockproof::compose::parse(text) {
                located(error.line, text)?;
            }
            if let Err((line, column, _)) = dockproof::lint::compose::lint(text, None) {
                located(line, text)?;
                prop_assert!(column >= 1);
            }
            Ok(())
        });
    }

    #[test]
    fn hosts_and_gates_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.yaml");
        run("hosts and gates", |text| {
            std::fs::write(&path, text).unwrap();
            for message in [
                dockproof::canary::read_hosts(&path).err(),
                dockproof::canary::read_gates(&path).err(),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!(message.contains("input.yaml"), "{message}");
            }
            Ok(())
        });
    }

    #[test]
    fn lint_config_loader() {
        run("lint config", |text| {
            if let Err(error) = dockproof::lint::LintConfig::from_yaml("lint.yaml", text) {
                let message = error.to_string();
                let position = message
                    .strip_prefix("lint.yaml:")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|line| line.parse::<usize>().ok());
                prop_assert!(position.is_some(), "not located: {message}");
                located(position.unwrap_or_default(), text)?;
                prop_assert!(message.contains("hint:"), "{message}");
            }
            Ok(())
        });
    }

    #[test]
    fn the_yaml_reader_itself() {
        run("yaml", |text| {
            if let Err(error) = dockproof::scenario::yaml::parse(text)
                && error.span.start.line > 0
            {
                located(error.span.start.line, text)?;
            }
            Ok(())
        });
    }
}
