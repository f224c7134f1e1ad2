//! Cancellation: one token per run, handed to every scenario through the engine's
//! context. A signal (or a caller) cancels it; each scenario's step loop stops at once
//! and its own cleanup runs, bounded by [`CLEANUP_LIMIT`]. The run's final sweep is the
//! backstop for what a cleanup could not remove, not the mechanism.
//!
//! A leaf module: it imports nothing of dockproof.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long a cancelled scenario's cleanup may take (removing its containers, compose
/// project, volume and images) before it is abandoned to the run's final sweep: a
/// `compose down` of a small stack takes 1–3 s on a local daemon, a remote one more.
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

/// A cancellation token: cheap to clone, every clone sees the same cancellation.
#[derive(Debug, Clone)]
pub struct Cancel {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Cancel {
        let (sender, _) = watch::channel(false);
        Cancel {
            sender: Arc::new(sender),
        }
    }

    /// Cancel: every waiter of [`Cancel::cancelled`] wakes (idempotent).
    pub fn cancel(&self) {
        self.sender.send_replace(true);
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the token is cancelled (at once if it is already).
    pub async fn cancelled(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = receiver.wait_for(|cancelled| *cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_cancellation_and_waiters_wake() {
        let token = Cancel::new();
        let clone = token.clone();
        assert!(!clone.is_cancelled());
        let waiter = tokio::spawn(async move { clone.cancelled().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter wakes")
            .expect("the waiter does not panic");
        assert!(token.is_cancelled());
        // Already cancelled: resolves at once.
        token.cancelled().await;
    }
}
