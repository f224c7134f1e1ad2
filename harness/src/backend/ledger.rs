//! The ledger: what a backend has asked its daemon to make, so that the run's final
//! sweep lists only what can be there.
//!
//! Everything dockproof labels with a run's id reaches the daemon through a handful of
//! [`Backend`](super::Backend) calls: `create` (containers), `build`/`build_image`/
//! `commit`/`load_image` (images), `create_volume` (volumes), and a compose project,
//! which docker compose brings up outside the backend (containers, networks, volumes,
//! images: [`Ledger::outside`]). The backends note each call here *before* it is made,
//! and note a container gone only once its removal succeeded. So:
//!
//! - a container can carry the run's label only if a `create` was asked for it: either
//!   its id came back and is still [`live`](Ledger::scope) (not removed, or its removal
//!   failed), or the create did not answer with an id (it failed, timed out, or was cut
//!   short by a cancelled run), which makes the containers *unaccounted*;
//! - a network, volume or image can carry it only if a call of its kind was asked for.
//!
//! What cannot be there is not listed: a run whose every container was removed and that
//! made nothing else ends without a listing (on the CLI backends, four `docker` processes
//! less). Anything unaccounted for keeps the listing, and with it the report of what a
//! scenario left behind.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::ResourceKind;

/// What a backend (and the backends [`with_overrides`](super::Backend::with_overrides)
/// made from it, which share it) has asked its daemon to make.
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Containers created (their ids, as `create` answered) and not removed since.
    live: BTreeSet<String>,
    /// A container may exist that no id in `live` names.
    unaccounted: bool,
    /// The kinds of other resources asked for (ordered as [`ResourceKind::ALL`]).
    kinds: BTreeSet<ResourceKind>,
}

/// What a sweep of the run's label must list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The containers (some may be there).
    pub containers: bool,
    /// The kinds of other resources some of which may be there, in [`ResourceKind::ALL`]'s
    /// order.
    pub kinds: Vec<ResourceKind>,
}

impl Scope {
    /// List everything (no ledger, or nothing is known).
    pub fn everything() -> Scope {
        Scope {
            containers: true,
            kinds: ResourceKind::ALL.to_vec(),
        }
    }

    /// Whether nothing need be listed.
    pub fn is_empty(&self) -> bool {
        !self.containers && self.kinds.is_empty()
    }
}

impl Ledger {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while the lock was held leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A container create is about to be asked for: call [`Creating::created`] with the id
    /// it answers; a `Creating` dropped without one (the create failed, or its future was
    /// dropped part way) leaves the containers unaccounted for.
    pub fn creating(&self) -> Creating<'_> {
        Creating {
            ledger: self,
            created: false,
        }
    }

    /// The container `id` (as `create` answered it) was removed, or is gone already.
    pub fn removed(&self, id: &str) {
        self.state().live.remove(id);
    }

    /// A call that makes a `kind` labelled with the run is about to be made.
    pub fn making(&self, kind: ResourceKind) {
        self.state().kinds.insert(kind);
    }

    /// Something outside the backend (docker compose) is about to make containers,
    /// networks, volumes and images labelled with the run.
    pub fn outside(&self) {
        let mut state = self.state();
        state.unaccounted = true;
        state.kinds.extend(ResourceKind::ALL);
    }

    /// What a sweep of the run's label must list now.
    pub fn scope(&self) -> Scope {
        let state = self.state();
        Scope {
            containers: state.unaccounted || !state.live.is_empty(),
            kinds: state.kinds.iter().copied().collect(),
        }
    }
}

/// A container create under way (see [`Ledger::creating`]).
#[derive(Debug)]
#[must_use = "a create's id must be noted with `created`, or the containers stay unaccounted"]
pub struct Creating<'l> {
    ledger: &'l Ledger,
    created: bool,
}

impl Creating<'_> {
    /// The create answered with `id`.
    pub fn created(mut self, id: &str) {
        self.created = true;
        self.ledger.state().live.insert(id.to_owned());
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if !self.created {
            self.ledger.state().unaccounted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_ledger_needs_no_listing() {
        assert!(Ledger::default().scope().is_empty());
    }

    #[test]
    fn a_container_created_and_removed_is_accounted_for() {
        let ledger = Ledger::default();
        ledger.creating().created("c1");
        ledger.creating().created("c2");
        assert!(ledger.scope().containers, "two containers are live");
        ledger.removed("c1");
        assert!(ledger.scope().containers, "c2 is still live");
        ledger.removed("c2");
        assert_eq!(
            ledger.scope(),
            Scope {
                containers: false,
                kinds: vec![]
            }
        );
    }

    #[test]
    fn a_container_whose_removal_is_not_noted_stays_live() {
        let ledger = Ledger::default();
        ledger.creating().created("c1");
        // Removing another id (a name, say) does not account for it.
        ledger.removed("other");
        assert!(ledger.scope().containers);
    }

    #[test]
    fn a_create_without_an_id_leaves_containers_unaccounted_for_good() {
        let ledger = Ledger::default();
        {
            let _pending = ledger.creating();
            // Dropped: the create failed, or its future was dropped (a cancelled run).
        }
        assert!(ledger.scope().containers);
        ledger.creating().created("c1");
        ledger.removed("c1");
        assert!(
            ledger.scope().containers,
            "nothing after it can account for a container no id names"
        );
    }

    #[test]
    fn a_create_cut_short_in_its_future_is_unaccounted() {
        let ledger = Ledger::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let create = async {
                let pending = ledger.creating();
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                pending.created("never");
            };
            let cut = tokio::time::timeout(std::time::Duration::from_millis(1), create).await;
            assert!(cut.is_err());
        });
        assert!(ledger.scope().containers);
    }

    #[test]
    fn kinds_are_listed_once_asked_for_in_removal_order() {
        let ledger = Ledger::default();
        ledger.making(ResourceKind::Image);
        ledger.making(ResourceKind::Volume);
        ledger.making(ResourceKind::Image);
        assert_eq!(
            ledger.scope(),
            Scope {
                containers: false,
                kinds: vec![ResourceKind::Volume, ResourceKind::Image]
            }
        );
    }

    #[test]
    fn what_compose_makes_is_all_unaccounted() {
        let ledger = Ledger::default();
        ledger.outside();
        assert_eq!(ledger.scope(), Scope::everything());
    }
}
