//! Resource monitoring of a run: the backend's stats samples, taken while the
//! container runs, folded into the record's `metrics.docker.resources` (the budgets are
//! judged by [`check::budgets`](crate::check::budgets)).

use std::future::Future;

use crate::backend::{Backend, StatsSample};
use crate::record::ResourceUsage;

/// Folds samples into peaks (memory, CPU, processes) and latest counters (CPU time, I/O).
#[derive(Debug, Default)]
struct Sampler {
    usage: ResourceUsage,
}

impl Sampler {
    fn add(&mut self, sample: StatsSample) {
        let usage = &mut self.usage;
        usage.samples += 1;
        let peak = |current: Option<u64>, value: u64| {
            Some(current.map_or(value, |current| current.max(value)))
        };
        usage.peak_memory_bytes = peak(usage.peak_memory_bytes, sample.memory_bytes);
        usage.peak_pids = peak(usage.peak_pids, sample.pids);
        usage.peak_cpu_percent = Some(
            usage
                .peak_cpu_percent
                .map_or(sample.cpu_percent, |current| {
                    current.max(sample.cpu_percent)
                }),
        );
        // Counters only grow while the container runs: the largest is the latest.
        usage.net_rx_bytes = peak(usage.net_rx_bytes, sample.net_rx_bytes);
        usage.net_tx_bytes = peak(usage.net_tx_bytes, sample.net_tx_bytes);
        usage.block_read_bytes = peak(usage.block_read_bytes, sample.block_read_bytes);
        usage.block_write_bytes = peak(usage.block_write_bytes, sample.block_write_bytes);
        if let Some(nanos) = sample.cpu_time_ns {
            usage.cpu_time_ms = peak(usage.cpu_time_ms, nanos / 1_000_000);
        }
    }
}

/// Run `work` (waiting for the container) while the backend samples `container`;
/// sampling ends when `work` does. A sampling failure is recorded, not raised: the run's
/// verdict does not depend on its statistics unless a budget asks.
pub async fn sample_while<T>(
    backend: &dyn Backend,
    container: &str,
    work: impl Future<Output = T>,
) -> (T, ResourceUsage) {
    let mut sampler = Sampler::default();
    let mut error = None;
    let output = {
        let mut sink = |sample| sampler.add(sample);
        let sampling = backend.stats(container, &mut sink);
        tokio::pin!(sampling, work);
        let mut sampling_done = false;
        loop {
            tokio::select! {
                output = &mut work => break output,
                result = &mut sampling, if !sampling_done => {
                    sampling_done = true;
                    error = result.err().map(|error| error.to_string());
                }
            }
        }
    };
    sampler.usage.error = error;
    (output, sampler.usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use crate::scenario::{ByteSize, Monitor};

    fn sample(memory_mib: u64, cpu_percent: f64, pids: u64, written: u64) -> StatsSample {
        StatsSample {
            memory_bytes: memory_mib << 20,
            cpu_percent,
            pids,
            block_write_bytes: written,
            ..StatsSample::default()
        }
    }

    fn folded(samples: &[StatsSample]) -> ResourceUsage {
        let mut sampler = Sampler::default();
        samples.iter().for_each(|sample| sampler.add(*sample));
        sampler.usage
    }

    #[test]
    fn peaks_and_latest_counters_are_kept() {
        let usage = folded(&[
            sample(1, 0.5, 1, 0),
            sample(25, 12.0, 3, 4096),
            sample(2, 1.0, 1, 8192),
        ]);
        assert_eq!(usage.samples, 3);
        assert_eq!(usage.peak_memory_bytes, Some(25 << 20));
        assert_eq!(usage.peak_cpu_percent, Some(12.0));
        assert_eq!(usage.peak_pids, Some(3));
        assert_eq!(usage.block_write_bytes, Some(8192));
        assert_eq!(usage.cpu_time_ms, None, "no sample carried CPU time");
    }

    #[test]
    fn no_sample_leaves_every_figure_unknown() {
        let usage = folded(&[]);
        assert_eq!(usage, ResourceUsage::default());
        assert!(usage.peak_memory_bytes.is_none());
    }

    fn monitor(
        max_memory_mib: Option<u64>,
        max_cpu_percent: Option<f64>,
        max_pids: Option<u64>,
    ) -> Monitor {
        Monitor {
            max_memory: max_memory_mib.map(|mib| ByteSize(mib << 20)),
            max_cpu_percent,
            max_pids,
            ..Monitor::default()
        }
    }

    #[test]
    fn each_budget_exceeded_is_a_finding_at_its_key() {
        let usage = folded(&[sample(40, 150.0, 12, 0)]);
        let findings = crate::check::budgets(
            "/steps/0/run",
            &monitor(Some(32), Some(100.0), Some(10)),
            &usage,
            3000,
        );
        let pointers: Vec<&str> = findings
            .iter()
            .map(|finding| finding.pointer.as_str())
            .collect();
        assert_eq!(
            pointers,
            [
                "/steps/0/run/monitor/max_memory",
                "/steps/0/run/monitor/max_cpu_percent",
                "/steps/0/run/monitor/max_pids"
            ]
        );
        assert!(
            findings
                .iter()
                .all(|finding| finding.category == Category::AssertionFailed)
        );
        assert!(
            findings[0]
                .message
                .contains("40.0 MiB is over the budget of 32.0 MiB"),
            "{}",
            findings[0].message
        );
        assert!(
            crate::check::budgets(
                "/steps/0/run",
                &monitor(Some(64), Some(200.0), Some(12)),
                &usage,
                3000
            )
            .is_empty(),
            "at the budget is within it"
        );
    }

    #[test]
    fn a_budget_without_samples_fails_and_says_why() {
        let mut usage = folded(&[]);
        let findings =
            crate::check::budgets("/steps/1/run", &monitor(None, None, Some(4)), &usage, 300);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].pointer, "/steps/1/run/monitor/max_pids");
        assert!(
            findings[0].message.contains("ran 300 ms"),
            "{}",
            findings[0].message
        );
        usage.error = Some("cannot reach the Docker daemon".into());
        assert!(
            crate::check::budgets("/steps/1/run", &monitor(Some(1), None, None), &usage, 300)[0]
                .message
                .contains("sampling failed: cannot reach")
        );
        assert!(
            crate::check::budgets("/steps/1/run", &Monitor::default(), &usage, 300).is_empty(),
            "no budget, nothing to check"
        );
    }
}
