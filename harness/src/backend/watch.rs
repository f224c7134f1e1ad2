//! Daemons that hang: every call a real backend makes to the daemon runs under a
//! [`DaemonWatch`], which turns "a socket that accepts and never answers" into
//! `daemon_unavailable` within the daemon timeout (default [`DEFAULT_DAEMON_TIMEOUT`],
//! `--daemon-timeout` / `DOCKPROOF_DAEMON_TIMEOUT`), whatever the call is.
//!
//! A call cannot simply be cut at the timeout: `wait`, a build or a long log are slow
//! on purpose. So a call that has not finished after a third of the timeout makes the
//! watch ask the daemon something it answers at once (the backend's probe: `docker
//! version`, or the Engine API's `/_ping`); the probe gets the rest of the timeout. A
//! daemon that answers the probe lets the call go on (asked again every third of the
//! timeout, one probe at a time for all calls); one that does not (or answers something
//! that is not the Engine API) ends the call as `daemon_unavailable`, and the watch
//! remembers it: every later call of the run fails at once, so cleanup and the final
//! sweep end promptly instead of waiting out the timeout once per call (what they could
//! not remove is for `dockproof clean`).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::BackendError;

/// How long a daemon may take to answer before it is `daemon_unavailable`.
pub const DEFAULT_DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// The smallest daemon timeout accepted (a probe must have time to be answered).
pub const MIN_DAEMON_TIMEOUT: Duration = Duration::from_secs(1);

/// What a daemon that answers garbage is told apart by, in messages.
pub const NOT_ENGINE_API: &str = "the daemon's answer is not the Engine API";

/// Keeps a daemon's calls bounded; shared by every clone of a backend talking to one daemon.
#[derive(Debug)]
pub struct DaemonWatch {
    timeout: Duration,
    /// When the daemon last answered a probe; locked while a probe runs (one at a time).
    last_answer: tokio::sync::Mutex<Option<Instant>>,
    /// Why the daemon is given up on, once it is: later calls fail with this at once.
    gone: std::sync::Mutex<Option<String>>,
}

impl DaemonWatch {
    /// A watch giving the daemon `timeout` to answer (at least [`MIN_DAEMON_TIMEOUT`]).
    pub fn new(timeout: Duration) -> Self {
        DaemonWatch {
            timeout: timeout.max(MIN_DAEMON_TIMEOUT),
            last_answer: tokio::sync::Mutex::new(None),
            gone: std::sync::Mutex::new(None),
        }
    }

    /// How long the daemon may take to answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a call runs before the daemon is asked whether it still answers.
    fn interval(&self) -> Duration {
        self.timeout / 3
    }

    /// Why the daemon was given up on, as the error every later call gets.
    pub fn gone(&self) -> Option<BackendError> {
        let gone = self
            .gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gone.as_ref()
            .map(|message| BackendError::DaemonUnavailable {
                message: format!("{message} (given up on earlier in this run, not asked again)"),
            })
    }

    /// Give up on the daemon: every later call fails at once with `message`.
    pub fn give_up(&self, message: &str) {
        let mut gone = self
            .gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gone.get_or_insert_with(|| message.to_owned());
    }

    /// The error for a daemon that did not answer within the timeout.
    pub fn no_answer(&self, what: &str) -> BackendError {
        let message = format!(
            "the daemon did not answer {what} within {} (something accepts connections but \
             nothing answers; `--daemon-timeout` or DOCKPROOF_DAEMON_TIMEOUT sets the limit)",
            humantime::format_duration(self.timeout)
        );
        self.give_up(&message);
        BackendError::DaemonUnavailable { message }
    }

    /// Run `call`, making sure the daemon still answers while it runs (see the module
    /// documentation); `probe` asks the daemon something it answers at once.
    pub async fn guard<T, P, PF>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
        probe: P,
    ) -> Result<T, BackendError>
    where
        P: Fn() -> PF,
        PF: Future<Output = Result<(), BackendError>>,
    {
        if let Some(error) = self.gone() {
            return Err(error);
        }
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                result = &mut call => return self.noted(result),
                () = tokio::time::sleep(self.interval()) => {}
            }
            let check = self.check(&probe);
            tokio::pin!(check);
            tokio::select! {
                biased;
                result = &mut call => return self.noted(result),
                verdict = &mut check => verdict?,
            }
        }
    }

    /// A call's result; an answer that is not the Engine API gives the daemon up.
    fn noted<T>(&self, result: Result<T, BackendError>) -> Result<T, BackendError> {
        result.map_err(|error| self.noted_error(error))
    }

    /// A call's error; an answer that is not the Engine API gives the daemon up.
    pub fn noted_error(&self, error: BackendError) -> BackendError {
        if let BackendError::DaemonUnavailable { message } = &error
            && message.contains(NOT_ENGINE_API)
        {
            self.give_up(message);
        }
        error
    }

    /// Whether the daemon answers `probe` within the rest of the timeout (a fresh answer
    /// from another call's probe counts).
    async fn check<P, PF>(&self, probe: &P) -> Result<(), BackendError>
    where
        P: Fn() -> PF,
        PF: Future<Output = Result<(), BackendError>>,
    {
        let mut last_answer = self.last_answer.lock().await;
        if let Some(error) = self.gone() {
            return Err(error);
        }
        if last_answer.is_some_and(|at| at.elapsed() < self.interval()) {
            return Ok(());
        }
        match tokio::time::timeout(self.timeout - self.interval(), probe()).await {
            Ok(Ok(())) => {
                *last_answer = Some(Instant::now());
                Ok(())
            }
            Ok(Err(error)) => self.noted(Err(error)),
            Err(_) => Err(self.no_answer("a request")),
        }
    }
}

impl Default for DaemonWatch {
    fn default() -> Self {
        DaemonWatch::new(DEFAULT_DAEMON_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn unavailable(error: &BackendError) -> bool {
        matches!(error, BackendError::DaemonUnavailable { .. })
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_nobody_answers_ends_at_the_timeout_and_later_calls_at_once() {
        let watch = DaemonWatch::new(Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let hung = watch
            .guard(std::future::pending::<Result<(), BackendError>>(), || {
                std::future::pending()
            })
            .await;
        let error = hung.expect_err("a call nobody answers fails");
        assert!(unavailable(&error), "{error}");
        assert!(error.to_string().contains("did not answer"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        // Given up on: the next call is not even started.
        let started = tokio::time::Instant::now();
        let later = watch
            .guard(async { Ok(()) }, || async { Ok(()) })
            .await
            .expect_err("the daemon was given up on");
        assert!(unavailable(&later) && later.to_string().contains("not asked again"));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_goes_on_while_the_daemon_answers_probes() {
        let watch = DaemonWatch::new(Duration::from_secs(3));
        let probes = AtomicUsize::new(0);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(7)
        };
        let result = watch
            .guard(slow, || {
                probes.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        // About one probe a second for ten seconds.
        let asked = probes.load(Ordering::SeqCst);
        assert!((4..=10).contains(&asked), "{asked} probes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_gone_quiet_mid_call_is_noticed_within_the_timeout() {
        let watch = DaemonWatch::new(Duration::from_secs(3));
        let answers = AtomicUsize::new(2);
        let started = tokio::time::Instant::now();
        let result = watch
            .guard(std::future::pending::<Result<(), BackendError>>(), || {
                let answering = answers
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        left.checked_sub(1)
                    })
                    .is_ok();
                async move {
                    if answering {
                        Ok(())
                    } else {
                        std::future::pending().await
                    }
                }
            })
            .await;
        assert!(unavailable(&result.unwrap_err()));
        // Two answered probes (1 s, 2 s), the third asked at 3 s gets 2 s: 5 s.
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn garbage_gives_the_daemon_up_but_a_refusal_does_not() {
        let watch = DaemonWatch::new(Duration::from_secs(30));
        let refused = watch
            .guard(
                async {
                    Err::<(), _>(BackendError::DaemonUnavailable {
                        message: "connection refused".into(),
                    })
                },
                || async { Ok(()) },
            )
            .await;
        assert!(unavailable(&refused.unwrap_err()));
        assert!(
            watch.gone().is_none(),
            "a refusal may end when the daemon is back"
        );
        let garbage = watch
            .guard(
                async {
                    Err::<(), _>(BackendError::DaemonUnavailable {
                        message: format!("{NOT_ENGINE_API}: invalid character '<'"),
                    })
                },
                || async { Ok(()) },
            )
            .await;
        assert!(unavailable(&garbage.unwrap_err()));
        assert!(watch.gone().is_some());
    }
}
