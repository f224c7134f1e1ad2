//! `cargo xtask fuzz`: the loaders' properties driven for a chosen number of
//! executions, counted per loader.
//!
//! Every YAML loader of the harness has a property in `harness/tests/integration/hostile_yaml.rs`
//! (`every_loader`: random and mutated YAML, no panic, every rejection located), and
//! fake-docker's readers one in `fake-docker/src/yaml.rs`. `cargo test` runs them with
//! the small default (2,000 inputs each, so `cargo xtask ci` stays fast); this task
//! spreads `--executions` over them, in release mode by default, and prints what each
//! ran. `cargo fuzz` is not used: see docs/limits.md, "Fuzzing".

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, root, target_dir};

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Executions in all, spread evenly over the loaders' properties.
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// Build the tests in debug mode (about ten times slower per input).
    #[arg(long)]
    debug: bool,
    /// Properties run at once (each is single-threaded).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// The properties: `(package, test target arguments, test filter, loader names it runs)`.
const PROPERTIES: &[(&str, &[&str], &str, &[&str])] = &[
    (
        "dockproof",
        &["--test", "integration"],
        "every_loader::",
        &[
            "scenario",
            "cst",
            "compose",
            "hosts and gates",
            "lint config",
            "yaml",
        ],
    ),
    (
        "fake-docker",
        &["--lib"],
        "yaml::tests::random_yaml_never_panics",
        &["fake-docker faults and yaml"],
    ),
];

pub fn fuzz(args: &FuzzArgs) -> Result<i32> {
    let loaders: u64 = PROPERTIES
        .iter()
        .map(|(_, _, _, names)| names.len() as u64)
        .sum();
    let per_loader = args.executions.div_ceil(loaders);
    let cases = u32::try_from(per_loader)
        .context("--executions is too large: proptest counts cases in 32 bits per loader")?;
    let root = root();
    // The commit the tests are built from, taken before they are: a long run outlives
    // later commits. `-dirty` when the work tree differs from it.
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(&root)
            .args(args)
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str("-dirty");
    }
    let mut rows: Vec<(String, u64, f64)> = Vec::new();
    for (package, target, filter, names) in PROPERTIES {
        let mut command = cargo();
        command.current_dir(&root).args(["test", "-p", package]);
        if !args.debug {
            command.arg("--release");
        }
        command
            .args(*target)
            .arg(filter)
            .args(["--", "--nocapture", "--test-threads"])
            .arg(args.threads.to_string())
            .env("PROPTEST_CASES", cases.to_string());
        eprintln!("xtask: running {command:?} (PROPTEST_CASES={cases})");
        let started = Instant::now();
        let output = command
            .output()
            .with_context(|| format!("failed to start {command:?}"))?;
        let seconds = started.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            eprint!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
            bail!("{package}: a property failed (the input is above); nothing is recorded");
        }
        for name in *names {
            // The harness's properties print `NAME: N inputs, no panic`; proptest's macro
            // prints nothing, and a passing property ran exactly `cases` inputs.
            let line = stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")));
            let counted = match line {
                Some(line) => line
                    .split(' ')
                    .next()
                    .and_then(|count| count.parse::<u64>().ok())
                    .unwrap_or(0),
                None if *package == "fake-docker" => u64::from(cases),
                None => 0,
            };
            // `(12.3 s)` at the end of the line: the property's own time.
            let seconds = line
                .and_then(|line| line.rsplit_once('(')?.1.strip_suffix(" s)")?.parse().ok())
                .unwrap_or(seconds);
            if counted != u64::from(cases) {
                bail!("{package}: `{name}` reports {counted} inputs, not {cases}:\n{stdout}");
            }
            rows.push(((*name).to_owned(), counted, seconds));
        }
    }
    let total: u64 = rows.iter().map(|(_, count, _)| count).sum();
    println!("{:<30} {:>12} {:>10}", "loader", "executions", "seconds");
    for (name, count, seconds) in &rows {
        println!("{name:<30} {count:>12} {seconds:>10.1}");
    }
    println!("{:<30} {total:>12}", "total");
    println!("commit {commit}, no panic, every rejection located");
    let report = serde_json::json!({
        "commit": commit,
        "profile": if args.debug { "debug" } else { "release" },
        "cases_per_loader": cases,
        "total": total,
        "loaders": rows
            .iter()
            .map(|(name, count, seconds)| serde_json::json!({
                "loader": name, "executions": count, "seconds": seconds,
            }))
            .collect::<Vec<_>>(),
    });
    let out = target_dir(&root).join("dockproof");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("fuzz.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!("xtask: wrote {}", out.join("fuzz.json").display());
    Ok(0)
}
