//! What the benchmarks run: generated scenario files and large files.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A job scenario as the bash baseline (`fixtures/bench/jobs.sh`) does it:
/// two inputs staged, the job run locked down, stdout, stderr and outputs
/// checked, both artifacts uploaded (read back and sha256-verified).
pub fn job_scenario(name: &str, seed: u64, blob_bytes: u64) -> String {
    format!(
        r#"name: {name}
tags: [bench]
timeout: 2m
workspace: {{ max_bytes: 16MiB, max_files: 16 }}
stage:
  - {{ text: "order_id,amount\n1,10\n2,20\n", to: inputs/orders.csv }}
  - {{ generate: {{ bytes: {blob_bytes}, seed: {seed} }}, to: inputs/blob.bin }}
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [job]
      env: {{ JOB_ID: "{{{{ job.id }}}}" }}
      user: "1000:1000"
      limits: {{ memory: 64MiB, cpus: 0.5, pids: 64 }}
      security: {{ read_only: true, no_new_privileges: true, network: none }}
      timeout: 60s
    expect:
      exit_code: 0
      stdout: {{ contains: "summary written to outputs/summary.json" }}
      stderr: {{ matches: "reading inputs from /workspace/inputs", not_matches: "(?i)panic|error" }}
      files:
        - {{ path: outputs/summary.json, json: {{ /job: {name}, /inputs: 2, /status: ok }} }}
        - {{ path: outputs/checksums.sha256, text: {{ contains: "  inputs/blob.bin" }} }}
  - upload: {{ from: outputs/summary.json, to: "jobs/{{{{ job.id }}}}/summary.json" }}
  - upload: {{ from: outputs/checksums.sha256, to: "jobs/{{{{ job.id }}}}/checksums.sha256" }}
"#
    )
}

/// Steps each [`job_scenario`] runs (stage, run, two uploads).
pub const JOB_SCENARIO_STEPS: usize = 4;

/// The smallest job: one container, `job`, no inputs (for per-container overhead).
pub fn single_run_scenario(name: &str) -> String {
    format!(
        r#"name: {name}
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [job]
    expect: {{ exit_code: 0 }}
"#
    )
}

/// A job that prints a log file (`log_file`, beside the scenario) on stdout,
/// staged as `inputs/big.log`.
pub fn big_log_scenario(name: &str, log_file: &str, log_bytes: u64, last_line: &str) -> String {
    format!(
        r#"name: {name}
timeout: 15m
workspace: {{ max_bytes: {max_bytes}, max_files: 4 }}
stage:
  - {{ from: {from}, to: inputs/big.log }}
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [cat, /workspace/inputs/big.log]
      timeout: 10m
    expect:
      exit_code: 0
      stdout: {{ contains: "{last_line}" }}
"#,
        max_bytes = log_bytes * 2,
        from = log_file,
    )
}

/// Write `count` scenario files made by `make(index)` into `dir`; returns their paths.
pub fn write_scenarios(
    dir: &Path,
    count: usize,
    make: impl Fn(usize) -> String,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    (0..count)
        .map(|index| {
            let path = dir.join(format!("scenario-{index:04}.yaml"));
            fs::write(&path, make(index))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// A file of `bytes` pseudo-random bytes (splitmix64), written in large blocks.
pub fn random_file(path: &Path, bytes: u64) -> Result<()> {
    let mut file = BufWriter::with_capacity(
        8 << 20,
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut block = vec![0u8; 8 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let take = left.min(block.len() as u64) as usize;
        file.write_all(&block[..take])?;
        left -= take as u64;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Length of each line of [`log_file`] (newline included).
pub const LOG_LINE_BYTES: u64 = 1024;

/// A text file of `bytes` bytes made of numbered 1 KiB lines; returns how its last line starts.
pub fn log_file(path: &Path, bytes: u64) -> Result<String> {
    let mut file = BufWriter::with_capacity(
        8 << 20,
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let lines = bytes / LOG_LINE_BYTES;
    // "log line 000000000001 " is 22 bytes; padding and a newline make up the rest.
    let padding = "x".repeat(LOG_LINE_BYTES as usize - 23);
    for number in 0..lines {
        writeln!(file, "log line {number:012} {padding}")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(format!("log line {:012} ", lines - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_have_the_stated_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let last = log_file(&path, 10 * LOG_LINE_BYTES).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, 10 * LOG_LINE_BYTES);
        assert!(
            text.lines()
                .all(|line| line.len() as u64 == LOG_LINE_BYTES - 1)
        );
        assert!(text.lines().last().unwrap().starts_with(&last));
        assert_eq!(last, "log line 000000000009 ");
    }

    #[test]
    fn random_files_have_the_asked_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        random_file(&path, 10_000_001).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 10_000_001);
    }
}
