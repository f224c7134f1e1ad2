//! Resource samples of a running container, from either source Docker offers:
//! the frames `docker stats --format '{{json .}}'` prints (human units, rounded
//! by the CLI) and the Engine API's raw stats documents. Both are reduced to one
//! [`StatsSample`] computed the way the docker CLI computes its columns, so the
//! two backends report comparable numbers.

use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use serde::Deserialize;

/// One reading of a running container's resource usage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSample {
    /// Memory in use, without the page cache the kernel can drop (as `docker stats` shows it).
    pub memory_bytes: u64,
    /// CPU use since the previous reading, in percent of one core (100 = one core busy).
    pub cpu_percent: f64,
    /// CPU time used since the container started; `None` where the source has no such counter
    /// (the docker CLI prints a percentage only).
    pub cpu_time_ns: Option<u64>,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: u64,
}

impl StatsSample {
    /// Whether this reading is of a container that runs. The daemon (and the CLI) keep
    /// sending all-zero frames for a container that has stopped: those are not readings.
    pub fn is_live(&self) -> bool {
        self.pids > 0 || self.memory_bytes > 0
    }
}

/// One frame of `docker stats --format '{{json .}}'`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CliFrame {
    #[serde(rename = "CPUPerc")]
    cpu_perc: String,
    mem_usage: String,
    #[serde(rename = "NetIO")]
    net_io: String,
    #[serde(rename = "BlockIO")]
    block_io: String,
    #[serde(rename = "PIDs")]
    pids: String,
}

/// Every sample in one chunk of `docker stats --format '{{json .}}'` output. The CLI
/// draws frames for a terminal even when its output is a pipe (cursor moves and line
/// clears around each JSON object), so objects are found between braces rather than
/// per line; a piece that does not parse as a frame is skipped.
pub fn parse_cli_frames(text: &str) -> Vec<StatsSample> {
    let mut samples = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start..].find('}') else {
            break;
        };
        let object = &rest[start..=start + length];
        if let Some(sample) = parse_cli_frame(object) {
            samples.push(sample);
        }
        rest = &rest[start + length + 1..];
    }
    samples
}

/// One `{{json .}}` object of `docker stats`, or `None` when it is not a stats frame.
pub fn parse_cli_frame(object: &str) -> Option<StatsSample> {
    let frame: CliFrame = serde_json::from_str(object).ok()?;
    let (net_rx, net_tx) = pair(&frame.net_io, decimal_bytes)?;
    let (block_read, block_write) = pair(&frame.block_io, decimal_bytes)?;
    let (memory, _limit) = pair(&frame.mem_usage, binary_bytes)?;
    Some(StatsSample {
        memory_bytes: memory,
        cpu_percent: percent(&frame.cpu_perc)?,
        cpu_time_ns: None,
        net_rx_bytes: net_rx,
        net_tx_bytes: net_tx,
        block_read_bytes: block_read,
        block_write_bytes: block_write,
        // `--` while the daemon has no reading yet.
        pids: frame.pids.trim().parse().unwrap_or(0),
    })
}

/// `A / B`, each side parsed by `parse`. The CLI prints `-- / --` before its first reading.
fn pair(text: &str, parse: fn(&str) -> Option<u64>) -> Option<(u64, u64)> {
    let (left, right) = text.split_once('/')?;
    let side = |text: &str| {
        if text.trim() == "--" {
            Some(0)
        } else {
            parse(text.trim())
        }
    };
    Some((side(left)?, side(right)?))
}

fn percent(text: &str) -> Option<f64> {
    let text = text.trim();
    if text == "--" {
        return Some(0.0);
    }
    text.strip_suffix('%')?
        .trim()
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite())
}

/// A size the CLI printed with `units.BytesSize` (memory: powers of 1024, `KiB`, `MiB`, ...).
fn binary_bytes(text: &str) -> Option<u64> {
    scaled(
        text,
        &[
            ("B", 1.0),
            ("KiB", 1024.0),
            ("MiB", 1048576.0),
            ("GiB", 1073741824.0),
            ("TiB", 1099511627776.0),
            ("PiB", 1125899906842624.0),
        ],
    )
}

/// A size the CLI printed with `units.HumanSizeWithPrecision` (network and block I/O: powers of 1000).
fn decimal_bytes(text: &str) -> Option<u64> {
    scaled(
        text,
        &[
            ("B", 1.0),
            ("kB", 1e3),
            ("MB", 1e6),
            ("GB", 1e9),
            ("TB", 1e12),
            ("PB", 1e15),
        ],
    )
}

fn scaled(text: &str, units: &[(&str, f64)]) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let (_, factor) = units.iter().find(|(name, _)| *name == unit.trim())?;
    Some((number * factor).round() as u64)
}

/// A sample from one Engine API stats document, computed as the docker CLI computes its
/// columns (memory without inactive file pages; CPU percent from the delta to `precpu_stats`;
/// network and block I/O summed over interfaces and devices). `None` for a stopped container's
/// empty document.
pub fn from_api(stats: &ContainerStatsResponse) -> Option<StatsSample> {
    let memory = stats.memory_stats.as_ref();
    let usage = memory.and_then(|memory| memory.usage).unwrap_or(0);
    // cgroup v1 calls it total_inactive_file, v2 inactive_file.
    let inactive = memory
        .and_then(|memory| memory.stats.as_ref())
        .and_then(|stats| {
            stats
                .get("total_inactive_file")
                .or_else(|| stats.get("inactive_file"))
                .copied()
        })
        .filter(|inactive| *inactive < usage)
        .unwrap_or(0);
    let (mut net_rx, mut net_tx) = (0u64, 0u64);
    for network in stats.networks.iter().flat_map(|networks| networks.values()) {
        net_rx = net_rx.saturating_add(network.rx_bytes.unwrap_or(0));
        net_tx = net_tx.saturating_add(network.tx_bytes.unwrap_or(0));
    }
    let (mut block_read, mut block_write) = (0u64, 0u64);
    let entries = stats
        .blkio_stats
        .as_ref()
        .and_then(|blkio| blkio.io_service_bytes_recursive.as_ref());
    for entry in entries.into_iter().flatten() {
        let value = entry.value.unwrap_or(0);
        match entry.op.as_deref().and_then(|op| op.chars().next()) {
            Some('r' | 'R') => block_read = block_read.saturating_add(value),
            Some('w' | 'W') => block_write = block_write.saturating_add(value),
            _ => {}
        }
    }
    let sample = StatsSample {
        memory_bytes: usage - inactive,
        // Two decimals, as the CLI prints it.
        cpu_percent: (cpu_percent(stats.cpu_stats.as_ref(), stats.precpu_stats.as_ref()) * 100.0)
            .round()
            / 100.0,
        cpu_time_ns: stats
            .cpu_stats
            .as_ref()
            .and_then(|cpu| cpu.cpu_usage.as_ref())
            .and_then(|usage| usage.total_usage),
        net_rx_bytes: net_rx,
        net_tx_bytes: net_tx,
        block_read_bytes: block_read,
        block_write_bytes: block_write,
        pids: stats
            .pids_stats
            .as_ref()
            .and_then(|pids| pids.current)
            .unwrap_or(0),
    };
    sample.is_live().then_some(sample)
}

/// The docker CLI's `calculateCPUPercentUnix`.
fn cpu_percent(now: Option<&ContainerCpuStats>, before: Option<&ContainerCpuStats>) -> f64 {
    let total = |cpu: Option<&ContainerCpuStats>| {
        cpu.and_then(|cpu| cpu.cpu_usage.as_ref())
            .and_then(|usage| usage.total_usage)
            .unwrap_or(0)
    };
    let system =
        |cpu: Option<&ContainerCpuStats>| cpu.and_then(|cpu| cpu.system_cpu_usage).unwrap_or(0);
    let cpu_delta = total(now).saturating_sub(total(before)) as f64;
    let system_delta = system(now).saturating_sub(system(before)) as f64;
    let online = now
        .and_then(|cpu| cpu.online_cpus.filter(|count| *count > 0).map(f64::from))
        .or_else(|| {
            now.and_then(|cpu| cpu.cpu_usage.as_ref())
                .and_then(|usage| usage.percpu_usage.as_ref())
                .map(|per| per.len() as f64)
        })
        .unwrap_or(1.0);
    if cpu_delta > 0.0 && system_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two frames exactly as `docker stats --format '{{json .}}' ID` (CLI 28.x) wrote them to a pipe.
    const PIPED: &str = "\u{1b}[H{\"BlockIO\":\"0B / 0B\",\"CPUPerc\":\"0.00%\",\"Container\":\"0d37\",\"ID\":\"0d3776dcd042\",\"MemPerc\":\"0.00%\",\"MemUsage\":\"752KiB / 23.54GiB\",\"Name\":\"musing_bohr\",\"NetIO\":\"646B / 0B\",\"PIDs\":\"2\"} \u{1b}[K\n \u{1b}[K\n\u{1b}[J\u{1b}[H{\"BlockIO\":\"1.2MB / 24.6kB\",\"CPUPerc\":\"0.12%\",\"Container\":\"0d37\",\"ID\":\"0d3776dcd042\",\"MemPerc\":\"0.00%\",\"MemUsage\":\"24.84MiB / 23.54GiB\",\"Name\":\"musing_bohr\",\"NetIO\":\"736B / 0B\",\"PIDs\":\"1\"}\n";

    #[test]
    fn cli_frames_are_found_between_terminal_control_sequences() {
        let samples = parse_cli_frames(PIPED);
        assert_eq!(samples.len(), 2);
        assert_eq!(
            samples[0],
            StatsSample {
                memory_bytes: 752 * 1024,
                net_rx_bytes: 646,
                pids: 2,
                ..StatsSample::default()
            }
        );
        assert_eq!(
            samples[1].memory_bytes,
            (24.84f64 * 1048576.0).round() as u64
        );
        assert_eq!(
            (samples[1].block_read_bytes, samples[1].block_write_bytes),
            (1_200_000, 24_600)
        );
        assert!((samples[1].cpu_percent - 0.12).abs() < 1e-9);
        assert_eq!(samples[1].cpu_time_ns, None, "the CLI prints no CPU time");
    }

    #[test]
    fn frames_before_the_first_reading_and_after_the_exit_are_not_live() {
        let waiting = r#"{"BlockIO":"-- / --","CPUPerc":"--","MemUsage":"-- / --","NetIO":"-- / --","PIDs":"--"}"#;
        assert!(!parse_cli_frame(waiting).expect("a frame").is_live());
        let stopped = r#"{"BlockIO":"0B / 0B","CPUPerc":"0.00%","MemUsage":"0B / 0B","NetIO":"0B / 0B","PIDs":"0"}"#;
        assert!(!parse_cli_frame(stopped).expect("a frame").is_live());
    }

    #[test]
    fn broken_frames_are_skipped_not_misread() {
        for text in [
            "{}",
            "{\"MemUsage\":\"1MiB\"}",
            r#"{"BlockIO":"0B / 0B","CPUPerc":"x%","MemUsage":"1MiB / 2MiB","NetIO":"0B / 0B","PIDs":"1"}"#,
            "{not json",
            "{\"BlockIO\":\"1 parsec / 0B\"}",
        ] {
            assert_eq!(parse_cli_frames(text), Vec::new(), "{text}");
        }
        assert_eq!(
            binary_bytes("3MB"),
            None,
            "memory is printed in binary units"
        );
        assert_eq!(
            decimal_bytes("3MiB"),
            None,
            "I/O is printed in decimal units"
        );
    }

    #[test]
    fn api_documents_are_computed_like_the_cli_does() {
        let document = serde_json::json!({
            "memory_stats": {"usage": 30_000_000u64, "stats": {"total_inactive_file": 4_000_000u64}, "limit": 1u64 << 30},
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000u64}, "system_cpu_usage": 20_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000u64}, "system_cpu_usage": 10_000_000_000u64},
            "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 7}, "eth1": {"rx_bytes": 20, "tx_bytes": 3}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096}, {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 16, "op": "write", "value": 8}, {"major": 8, "minor": 0, "op": "Total", "value": 12288}]},
            "pids_stats": {"current": 3}
        });
        let stats: ContainerStatsResponse =
            serde_json::from_value(document).expect("a stats document");
        let sample = from_api(&stats).expect("a live sample");
        assert_eq!(sample.memory_bytes, 26_000_000);
        assert!(
            (sample.cpu_percent - 20.0).abs() < 1e-9,
            "{}",
            sample.cpu_percent
        );
        assert_eq!(sample.cpu_time_ns, Some(3_000_000_000));
        assert_eq!((sample.net_rx_bytes, sample.net_tx_bytes), (120, 10));
        assert_eq!(
            (sample.block_read_bytes, sample.block_write_bytes),
            (4096, 8200)
        );
        assert_eq!(sample.pids, 3);
    }

    #[test]
    fn a_stopped_containers_api_document_is_no_sample() {
        let stats: ContainerStatsResponse =
            serde_json::from_value(serde_json::json!({"memory_stats": {}, "pids_stats": {}}))
                .unwrap();
        assert_eq!(from_api(&stats), None);
    }
}
