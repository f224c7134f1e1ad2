//! File work whose size a scenario or a container decides (staging a 1 GiB input,
//! hashing an output, reading an upload) runs here, on tokio's blocking pool, never on
//! an async worker: a worker busy for seconds would stall every other scenario of the
//! run (`-j N` shares two workers on a two-core machine).
//!
//! The work is told to stop when the step waiting for it is dropped (a cancelled run):
//! it gets a [`Stop`] and ends at its next chunk (a [`Stoppable`] reader does that for
//! any copy), so a cancelled scenario's cleanup does not wait for a gigabyte to be copied.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the caller no longer waits for the work.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether the work should end now.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sets the [`Stop`] when dropped: the awaiting future went away (or finished).
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Relaxed);
    }
}

/// Run `work` on the blocking pool and wait for it without holding a worker. A panic in
/// it is the caller's panic (the runner reports it as `internal_error`).
pub async fn run<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Stop) -> T + Send + 'static,
{
    let stop = Stop::default();
    let _guard = StopOnDrop(stop.clone());
    match tokio::task::spawn_blocking(move || work(stop)).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            // Only a runtime shutting down cancels a blocking task: nothing waits for this.
            Err(_) => std::future::pending().await,
        },
    }
}

/// A reader that fails once [`Stop`] is set (an `Other` error: `Interrupted` would be
/// retried by a copy), so a copy through it ends at its next read.
pub struct Stoppable<'r> {
    inner: &'r mut dyn Read,
    stop: Stop,
}

impl<'r> Stoppable<'r> {
    pub fn new(inner: &'r mut dyn Read, stop: Stop) -> Self {
        Stoppable { inner, stop }
    }
}

impl Read for Stoppable<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.requested() {
            return Err(std::io::Error::other("stopped: the step was cancelled"));
        }
        self.inner.read(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The awaiting future dropped, the blocking work sees the stop and ends early.
    #[tokio::test]
    async fn dropping_the_waiter_stops_the_work() {
        let (started, started_rx) = std::sync::mpsc::channel();
        let (ended, ended_rx) = std::sync::mpsc::channel();
        let waiting = run(move |stop| {
            let mut endless = std::io::repeat(0);
            let mut reader = Stoppable::new(&mut endless, stop);
            let _ = started.send(());
            let copied = std::io::copy(&mut reader, &mut std::io::sink());
            let _ = ended.send(copied.is_err());
        });
        let waiting = tokio::spawn(waiting);
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        waiting.abort();
        let stopped = tokio::task::spawn_blocking(move || {
            ended_rx.recv_timeout(std::time::Duration::from_secs(20))
        })
        .await
        .unwrap();
        assert_eq!(stopped, Ok(true), "an endless copy did not stop");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_the_callers() {
        let outcome = tokio::spawn(run(|_| -> u8 { panic!("boom") })).await;
        assert!(outcome.unwrap_err().is_panic());
    }
}
