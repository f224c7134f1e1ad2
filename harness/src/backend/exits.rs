//! The exit watch: one `docker events` process per CLI backend (real daemons only),
//! reading the `create`, `start`, `die` and `oom` events of dockproof's containers, so
//! that an attached run's end is known without a `docker inspect` per container (on the
//! CLI backend every call is a process of its own: one process for the run instead of
//! one per container).
//!
//! What it is trusted with, and what not:
//! - A `die` event carries the exit code the daemon recorded; the `oom` events seen
//!   before it say whether the kernel's OOM killer struck, as `State.OOMKilled` does
//!   (both come from the same daemon event; one arriving after the exit is what the
//!   engine's settle loop asks `inspect` about, as before); `create`, `start` and `die`
//!   are the daemon's timestamps for the run's timings.
//! - The watch may miss events: it subscribes when the backend's first container is
//!   created, replaying the daemon's recent events (`--since`) to cover the gap; a daemon
//!   whose clock is far off ours, a process that failed, or an event log that rolled over
//!   on a busy daemon can still leave a container without its `die`. A caller then asks
//!   `inspect`, as it did before the watch existed, and the watch is not waited for again
//!   in this run (one bounded wait at most).
//! - A `create` event carries the container's labels, its image's merged in: the
//!   fixture digest label ([`super::FIXTURE_DIGEST_LABEL`]) there is the digest of the
//!   image the container was made from, so a fixture's first use in a run is checked
//!   without a `docker image inspect` process (the engine falls back to asking when the
//!   event does not come, or the container's own labels could have set that key).
//! - Everything the daemon sends is untrusted: lines are bounded, unparseable ones are
//!   skipped, and at most [`KEPT`] containers are remembered (the oldest forgotten).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::ContainerState;

/// Containers remembered at most (a shared daemon's other runs' containers pass through).
pub const KEPT: usize = 4096;
/// Longest event line read; a longer one (huge labels) is skipped.
const LINE_LIMIT: usize = 256 << 10;
/// How far back the subscription replays: the time between the first create and the
/// subscription taking effect, plus a daemon clock somewhat off ours.
pub const REPLAY: &str = "10s";

/// What the events said about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Event times, nanoseconds since the epoch (the daemon's clock).
    pub created_ns: Option<i128>,
    pub started_ns: Option<i128>,
    /// The exit code and time of its `die`.
    pub died: Option<(i64, i128)>,
    /// An `oom` event came before the `die`.
    pub oom: bool,
    /// The fixture digest label its `create` event carried (its image's).
    pub fixture_digest: Option<String>,
}

impl Seen {
    /// The stopped container's state as `inspect` would have given it, once it died.
    pub fn state(&self) -> Option<ContainerState> {
        let (exit_code, died_ns) = self.died?;
        let millis = |from: i128, to: i128| u64::try_from((to - from) / 1_000_000).ok();
        let daemon_timings = match (self.created_ns, self.started_ns) {
            (Some(created), Some(started)) => {
                millis(created, started).map(|start| (start, millis(started, died_ns)))
            }
            _ => None,
        };
        Some(ContainerState {
            status: "exited".to_owned(),
            running: false,
            exit_code,
            oom_killed: self.oom,
            error: String::new(),
            daemon_timings,
        })
    }
}

#[derive(Debug, Default)]
struct State {
    seen: HashMap<String, Seen>,
    /// Ids in the order first seen (to forget the oldest).
    order: VecDeque<String>,
    /// The events process ended, or a wait ran out: no more waiting in this run.
    given_up: bool,
}

/// The events of one daemon's dockproof containers (see the module docs).
#[derive(Debug, Default)]
pub struct ExitWatch {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
    /// Dropped with the watch: tells the reading task to end (and its process to go).
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ExitWatch {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start reading `lines` (a `docker events --format '{{json .}}'` stdout) in a task
    /// that owns `keep` (the process: dropping it ends it) and ends with the watch.
    pub fn start<R, K>(lines: R, keep: K) -> Arc<ExitWatch>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        K: Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let watch = Arc::new(ExitWatch {
            _stop: Some(stop),
            ..ExitWatch::default()
        });
        let weak = Arc::downgrade(&watch);
        tokio::spawn(async move {
            let _keep = keep;
            tokio::select! {
                () = read_events(lines, &weak) => {}
                _ = stopped => {}
            }
            if let Some(watch) = weak.upgrade() {
                watch.give_up();
            }
        });
        watch
    }

    /// Note one event line; unreadable or unrelated lines change nothing.
    pub fn note(&self, line: &str) {
        let Some((id, event)) = parse(line) else {
            return;
        };
        let mut state = self.state();
        if !state.seen.contains_key(&id) {
            if state.order.len() >= KEPT
                && let Some(oldest) = state.order.pop_front()
            {
                state.seen.remove(&oldest);
            }
            state.order.push_back(id.clone());
        }
        let seen = state.seen.entry(id).or_default();
        match event {
            Event::Create(at, digest) => {
                seen.created_ns = Some(at);
                seen.fixture_digest = digest;
            }
            Event::Start(at) => seen.started_ns = Some(at),
            Event::Oom => seen.oom = true,
            Event::Die(code, at) => seen.died = Some((code, at)),
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Stop waiting for events in this run (the process ended, or one wait ran out).
    pub fn give_up(&self) {
        self.state().given_up = true;
        self.changed.notify_waiters();
    }

    /// Forget `id` (removed).
    pub fn forget(&self, id: &str) {
        let mut state = self.state();
        if state.seen.remove(id).is_some() {
            state.order.retain(|known| known != id);
        }
    }

    /// What the events said about `id` once its `die` came, waiting for it up to `wait`;
    /// `None` when it did not come in that time, or the watch has given up (the caller
    /// may [`give_up`](Self::give_up) after a wait that should not have run out).
    pub async fn died(&self, id: &str, wait: Duration) -> Option<Seen> {
        self.seen_when(id, wait, |seen| seen.died.is_some()).await
    }

    /// What the events said about `id` once its `create` came, waiting up to `wait`
    /// (`None` as for [`died`](Self::died)).
    pub async fn created(&self, id: &str, wait: Duration) -> Option<Seen> {
        self.seen_when(id, wait, |seen| seen.created_ns.is_some())
            .await
    }

    /// Whether the watch still waits for events (it has not given up).
    pub fn is_live(&self) -> bool {
        !self.state().given_up
    }

    /// What was seen of `id` once `ready` holds for it, waiting up to `wait`.
    async fn seen_when(
        &self,
        id: &str,
        wait: Duration,
        ready: impl Fn(&Seen) -> bool,
    ) -> Option<Seen> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking: a notification between the look and the wait is kept.
            changed.as_mut().enable();
            {
                let state = self.state();
                if let Some(seen) = state.seen.get(id).filter(|seen| ready(seen)) {
                    return Some(seen.clone());
                }
                if state.given_up {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }
}

/// Read event lines into the watch while it exists.
async fn read_events<R: tokio::io::AsyncRead + Unpin>(lines: R, watch: &Weak<ExitWatch>) {
    let mut reader = BufReader::new(lines);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: a line past the limit is read to its end in pieces and skipped.
        let mut too_long = false;
        let mut at_end = false;
        loop {
            let buffer = match reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    at_end = true;
                    break;
                }
                Ok(buffer) => buffer,
            };
            let (taken, ended) = match buffer.iter().position(|&byte| byte == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffer.len(), false),
            };
            if line.len() + taken <= LINE_LIMIT {
                line.extend_from_slice(&buffer[..taken]);
            } else {
                too_long = true;
            }
            reader.consume(taken);
            if ended {
                break;
            }
        }
        if !too_long
            && !line.is_empty()
            && let Some(watch) = watch.upgrade()
        {
            watch.note(&String::from_utf8_lossy(&line));
        }
        if at_end || watch.strong_count() == 0 {
            return;
        }
    }
}

#[derive(Debug, PartialEq)]
enum Event {
    /// With the fixture digest label it carried.
    Create(i128, Option<String>),
    Start(i128),
    Oom,
    Die(i64, i128),
}

/// A container event line: its id and what happened.
fn parse(line: &str) -> Option<(String, Event)> {
    let event: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if event["Type"].as_str() != Some("container") {
        return None;
    }
    let id = event["Actor"]["ID"]
        .as_str()
        .or_else(|| event["id"].as_str())?;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let at = event["timeNano"].as_i64().map(i128::from)?;
    let event = match event["Action"]
        .as_str()
        .or_else(|| event["status"].as_str())?
    {
        "create" => {
            // A digest is 64 hex digits; anything else is not one (and is not kept).
            let digest = event["Actor"]["Attributes"][super::FIXTURE_DIGEST_LABEL]
                .as_str()
                .filter(|digest| {
                    digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit())
                })
                .map(str::to_owned);
            Event::Create(at, digest)
        }
        "start" => Event::Start(at),
        "oom" => Event::Oom,
        "die" => {
            let code = event["Actor"]["Attributes"]["exitCode"]
                .as_str()?
                .parse()
                .ok()?;
            Event::Die(code, at)
        }
        _ => return None,
    };
    Some((id.to_owned(), event))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5ea0062c17f897029f8f4719d3e5431ae1bf940cf8b0f0d5b5e9b2d0f5a1c3d2";

    fn line(action: &str, at: i64, attributes: &str) -> String {
        format!(
            r#"{{"status":"{action}","id":"{ID}","from":"dockproof/job-runner:1","Type":"container","Action":"{action}","Actor":{{"ID":"{ID}","Attributes":{{{attributes}}}}},"scope":"local","time":1,"timeNano":{at}}}"#
        )
    }

    #[test]
    fn a_die_gives_the_exit_code_oom_and_the_daemon_timings() {
        let watch = ExitWatch::default();
        watch.note(&line("create", 1_000_000_000, r#""dockproof.run":"r1""#));
        watch.note(&line("start", 1_250_000_000, ""));
        watch.note(&line("oom", 1_300_000_000, ""));
        watch.note(&line(
            "die",
            2_250_000_000,
            r#""exitCode":"137","dockproof.run":"r1""#,
        ));
        let seen = watch.state().seen.get(ID).cloned().unwrap();
        let state = seen.state().unwrap();
        assert_eq!(state.exit_code, 137);
        assert!(state.oom_killed);
        assert!(!state.running);
        assert_eq!(state.status, "exited");
        assert_eq!(state.daemon_timings, Some((250, Some(1000))));
    }

    #[test]
    fn a_create_keeps_the_fixture_digest_its_labels_carried() {
        let digest = "40135d37ba211a1f378fcdf4c88228f2af90ecb3c7dc29998f09243279a8ae0f";
        let watch = ExitWatch::default();
        watch.note(&line(
            "create",
            1,
            &format!(r#""dockproof.fixture-digest":"{digest}","dockproof.run":"r1""#),
        ));
        let seen = watch.state().seen.get(ID).cloned().unwrap();
        assert_eq!(seen.fixture_digest.as_deref(), Some(digest));
        // Not a digest (too long, not hex, not a string): not kept; the create still counts.
        for bad in [
            format!(r#""dockproof.fixture-digest":"{digest}0""#),
            format!(r#""dockproof.fixture-digest":"{}""#, "z".repeat(64)),
            r#""dockproof.fixture-digest":7"#.to_owned(),
            String::new(),
        ] {
            let watch = ExitWatch::default();
            watch.note(&line("create", 2, &bad));
            let seen = watch.state().seen.get(ID).cloned().unwrap();
            assert_eq!(seen.fixture_digest, None, "{bad}");
            assert_eq!(seen.created_ns, Some(2));
        }
    }

    /// A task waiting (30 s at most) for `ID`'s create, or its die, given a moment to begin.
    async fn waiter(
        watch: &Arc<ExitWatch>,
        for_create: bool,
    ) -> tokio::task::JoinHandle<Option<Seen>> {
        let watch = Arc::clone(watch);
        let task = tokio::spawn(async move {
            let wait = Duration::from_secs(30);
            if for_create {
                watch.created(ID, wait).await
            } else {
                watch.died(ID, wait).await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        task
    }

    #[tokio::test]
    async fn a_wait_for_the_create_ends_with_it() {
        let watch = Arc::new(ExitWatch::default());
        let waiter = waiter(&watch, true).await;
        // Its start does not end the wait; its create does.
        watch.note(&line("start", 4, ""));
        watch.note(&line("create", 5, ""));
        let seen = waiter.await.unwrap().expect("the create was seen");
        assert_eq!(seen.created_ns, Some(5));
        assert_eq!(watch.created("ab", Duration::from_millis(10)).await, None);
        assert!(watch.is_live());
        watch.give_up();
        assert!(!watch.is_live());
    }

    #[test]
    fn no_die_no_state() {
        let watch = ExitWatch::default();
        watch.note(&line("create", 1, ""));
        watch.note(&line("start", 2, ""));
        assert_eq!(watch.state().seen.get(ID).unwrap().state(), None);
    }

    #[test]
    fn hostile_lines_change_nothing() {
        let watch = ExitWatch::default();
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"Type":"image","Action":"die","Actor":{"ID":"abc"},"timeNano":1}"#,
            r#"{"Type":"container","Action":"die","Actor":{"ID":"../../etc"},"timeNano":1}"#,
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"x"}},"timeNano":1}"#,
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{}},"timeNano":1}"#,
            r#"{"Type":"container","Action":"start","Actor":{"ID":"abc"}}"#,
        ] {
            watch.note(bad);
        }
        assert!(watch.state().seen.is_empty());
    }

    #[test]
    fn at_most_kept_containers_are_remembered() {
        let watch = ExitWatch::default();
        for index in 0..KEPT + 10 {
            let id = format!("{index:064x}");
            watch.note(&format!(
                r#"{{"Type":"container","Action":"create","Actor":{{"ID":"{id}"}},"timeNano":1}}"#
            ));
        }
        let state = watch.state();
        assert_eq!(state.seen.len(), KEPT);
        assert_eq!(state.order.len(), KEPT);
        assert!(!state.seen.contains_key(&format!("{:064x}", 0)));
    }

    #[tokio::test]
    async fn a_wait_ends_with_the_die_or_gives_up_for_good() {
        let watch = Arc::new(ExitWatch::default());
        let waiter = waiter(&watch, false).await;
        watch.note(&line("die", 5, r#""exitCode":"3""#));
        let seen = waiter.await.unwrap().expect("the die was seen");
        assert_eq!(seen.died, Some((3, 5)));
        // A wait that runs out is None; after giving up, no wait waits.
        assert_eq!(watch.died("ab", Duration::from_millis(10)).await, None);
        watch.give_up();
        let started = std::time::Instant::now();
        assert_eq!(watch.died("cd", Duration::from_secs(30)).await, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        // What was seen is still given.
        assert!(watch.died(ID, Duration::from_secs(30)).await.is_some());
    }

    #[tokio::test]
    async fn the_reader_takes_whole_lines_and_skips_overlong_ones() {
        let long = format!("{}\n", "x".repeat(LINE_LIMIT + 10));
        let input = format!(
            "{}\n{long}{}",
            line("start", 7, ""),
            line("die", 9, r#""exitCode":"0""#)
        );
        let watch = ExitWatch::start(std::io::Cursor::new(input.into_bytes()), ());
        let seen = watch.died(ID, Duration::from_secs(10)).await.unwrap();
        assert_eq!(seen.started_ns, Some(7));
        assert_eq!(seen.died, Some((0, 9)));
    }
}
