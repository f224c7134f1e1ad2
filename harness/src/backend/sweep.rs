//! The sweep: remove what carries a run's label — containers, then the networks and
//! volumes of compose projects, then the images built for the run. The one primitive the
//! runner's final sweep, a compose project's teardown, `dockproof cst` and
//! `dockproof clean` use; each lists the containers once and passes the list.

use super::{Backend, BackendError, ResourceKind};

/// What to remove besides the containers given, and whether to remove anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepPlan<'a> {
    /// Networks, volumes and images carrying the label too (not when only old containers
    /// go: a younger run may still be using its networks).
    pub resources: bool,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
    /// Resources to leave alone (a live run's).
    pub spared: &'a [(ResourceKind, String)],
}

/// What a sweep found and removed (or, dry, would remove), and what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Container ids removed.
    pub containers: Vec<String>,
    /// Networks, volumes and images removed.
    pub resources: Vec<(ResourceKind, String)>,
    /// What could not be listed or removed (each a sentence).
    pub problems: Vec<String>,
}

impl Swept {
    /// Whether the sweep found nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.resources.is_empty()
    }

    /// `network NAME`, `volume NAME`, `image NAME`, one per resource, in removal order.
    pub fn resource_names(&self) -> Vec<String> {
        self.resources
            .iter()
            .map(|(kind, name)| format!("{} {name}", kind.as_str()))
            .collect()
    }
}

/// The containers carrying `label` (`dockproof.run=ID`, or `dockproof.run` for any run).
pub async fn labelled_containers(
    backend: &dyn Backend,
    label: &str,
) -> Result<Vec<String>, BackendError> {
    backend.list_labelled(label).await
}

/// Remove `containers` (listed by the caller, e.g. with [`labelled_containers`]), then, with
/// `plan.resources`, every network, volume and image carrying `label`, in that order (a
/// network goes once no container uses it, an image once no container runs it).
pub async fn sweep(
    backend: &dyn Backend,
    label: &str,
    containers: Vec<String>,
    plan: SweepPlan<'_>,
) -> Swept {
    sweep_listed(
        backend,
        containers,
        list_resources(backend, label, plan.resources),
        plan,
    )
    .await
}

/// Each resource kind carrying `label`, listed at once (each list is a CLI call on the
/// CLI backends); nothing without `resources`.
pub type ResourceLists = Vec<(ResourceKind, Result<Vec<String>, BackendError>)>;

/// [`ResourceLists`] of `label`: start it alongside the container listing (the runner's
/// final sweep does), so a run's last calls are one round of listings, not two.
pub async fn list_resources(backend: &dyn Backend, label: &str, resources: bool) -> ResourceLists {
    if !resources {
        return Vec::new();
    }
    list_kinds(backend, label, &ResourceKind::ALL).await
}

/// [`ResourceLists`] of `label` for `kinds` only (what a [`Ledger`](super::ledger::Ledger)
/// says can be there), listed at once.
pub async fn list_kinds(
    backend: &dyn Backend,
    label: &str,
    kinds: &[ResourceKind],
) -> ResourceLists {
    let lists = kinds
        .iter()
        .map(|&kind| async move { (kind, backend.list_labelled_resources(kind, label).await) });
    futures::future::join_all(lists).await
}

/// [`sweep`] with the resources listed by `listing` (run while the containers go; they
/// are removed after the containers: a network or volume in use cannot go before its
/// container).
pub async fn sweep_listed(
    backend: &dyn Backend,
    containers: Vec<String>,
    listing: impl std::future::Future<Output = ResourceLists>,
    plan: SweepPlan<'_>,
) -> Swept {
    let mut swept = Swept::default();
    let removing = async {
        let mut removed = Vec::new();
        let mut problems = Vec::new();
        for id in containers {
            if !plan.dry_run
                && let Err(error) = backend.remove(&id).await
            {
                problems.push(format!("cannot remove container {id}: {error}"));
                continue;
            }
            removed.push(id);
        }
        (removed, problems)
    };
    let (lists, (removed, problems)) = tokio::join!(listing, removing);
    swept.containers = removed;
    swept.problems = problems;
    for (kind, listed) in lists {
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                swept.problems.push(format!(
                    "cannot list {}s on `{}`: {error}",
                    kind.as_str(),
                    backend.name()
                ));
                continue;
            }
        };
        for name in listed {
            if plan
                .spared
                .iter()
                .any(|(spared_kind, spared)| *spared_kind == kind && *spared == name)
            {
                continue;
            }
            if !plan.dry_run
                && let Err(error) = backend.remove_resource(kind, &name).await
            {
                swept
                    .problems
                    .push(format!("cannot remove {} {name}: {error}", kind.as_str()));
                continue;
            }
            swept.resources.push((kind, name));
        }
    }
    swept
}

/// List and remove everything carrying `label` (containers, networks, volumes, images).
pub async fn sweep_label(backend: &dyn Backend, label: &str) -> Swept {
    let containers = labelled_containers(backend, label)
        .await
        .unwrap_or_default();
    sweep(
        backend,
        label,
        containers,
        SweepPlan {
            resources: true,
            ..SweepPlan::default()
        },
    )
    .await
}
