//! The workspace transport inside a scenario: which mount a container step gets, and, with
//! `copy`, moving the local workspace (the mirror every check reads) into the scenario's
//! volume before a container step and back after it.

use super::{ScenarioRun, finding};
use crate::backend::{ContainerSpec, Mount, MountSource, ResourceKind};
use crate::category::Category;
use crate::check::Finding;
use crate::transport::{self, Transport, TransportError};

/// A container that has the workspace mounted, and how: what a copy needs to reach it.
#[derive(Debug, Clone)]
pub(super) struct Mounted {
    /// Where the workspace is in the container.
    pub path: String,
    pub image: String,
    pub read_only_rootfs: bool,
}

fn transport_finding(error: &TransportError, pointer: &str) -> Vec<Finding> {
    finding(error.category(), pointer, error.to_string())
}

/// `/a/workspace` → (`/a`, `workspace`).
fn split_mount(path: &str) -> Option<(String, String)> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = trimmed.rsplit_once('/')?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let parent = if parent.is_empty() { "/" } else { parent };
    Some((parent.to_owned(), name.to_owned()))
}

impl ScenarioRun<'_> {
    /// The host's transport (probed once per host per run under `auto`), from the run's
    /// unfaulted backend: a scenario's injected faults are for its own steps.
    pub(super) async fn transport(
        &mut self,
        image: &str,
        pointer: &str,
    ) -> Result<Transport, Vec<Finding>> {
        if let Some(transport) = self.transport_without_probe().await {
            return Ok(transport);
        }
        let transport = self
            .context
            .transport
            .decide(
                self.prober(),
                image,
                &self.context.work_dir,
                &self.context.run_id,
            )
            .await
            .map_err(|error| super::backend_finding(&error, pointer))?;
        self.transport = Some(transport);
        Ok(transport)
    }

    /// The transport when it is known without a probe container (chosen, decided already,
    /// or a local daemon sharing our files: see
    /// [`TransportPolicy::decide_without_probe`](crate::transport::TransportPolicy::decide_without_probe)),
    /// remembered as [`transport`](Self::transport) remembers it; `None`: only a probe,
    /// which needs the step's image on the daemon, can tell.
    pub(super) async fn transport_without_probe(&mut self) -> Option<Transport> {
        if let Some(transport) = self.transport {
            return Some(transport);
        }
        let transport = match self.loaded.scenario.workspace.transport {
            Some(crate::transport::TransportChoice::Bind) => Transport::Bind,
            Some(crate::transport::TransportChoice::Copy) => Transport::Copy,
            Some(crate::transport::TransportChoice::Auto) | None => {
                self.context
                    .transport
                    .decide_without_probe(self.prober())
                    .await?
            }
        };
        self.transport = Some(transport);
        Some(transport)
    }

    /// Who asks the daemon about the transport: the run's backend, except that a scenario
    /// whose only override is its recording uses its own (on the fake, an image only a
    /// recording knows is known there alone). Fault rules must not see the probe; another
    /// host is not this one.
    fn prober(&self) -> &dyn crate::backend::Backend {
        let scenario = &self.loaded.scenario;
        if scenario.fake_faults.is_none() && scenario.docker_host.is_none() {
            self.backend.as_ref()
        } else {
            self.context.backend.as_ref()
        }
    }

    /// Put the transport in the record once a container with the workspace exists. Not
    /// when it is decided: a step can fail after the decision (a missing image) or in the
    /// probe itself, depending on whether another scenario probed first, and the record
    /// must not depend on that order.
    pub(super) fn note_transport(&mut self) {
        if let Some(transport) = self.transport {
            self.record.context.docker.workspace.transport = Some(transport.as_str().to_owned());
        }
    }

    /// The workspace mount for a container from `image` with the workspace at `path`:
    /// the local directory (`bind`), or the scenario's volume, created on first use (`copy`).
    pub(super) async fn workspace_mount(
        &mut self,
        image: &str,
        path: &str,
        pointer: &str,
    ) -> Result<Mount, Vec<Finding>> {
        let source = match self.transport(image, pointer).await? {
            Transport::Bind => MountSource::BindExisting(self.workspace().root().to_path_buf()),
            Transport::Copy => {
                if split_mount(path).is_none() {
                    return Err(finding(
                        Category::ConfigInvalid,
                        pointer,
                        format!(
                            "the workspace cannot be copied to `{path}`: it must be a directory below `/`"
                        ),
                    ));
                }
                if self.volume.is_none() {
                    let name = format!("dockproof-{}-{}-ws", self.context.run_id, self.slug);
                    let mut labels = std::collections::BTreeMap::new();
                    labels.insert("dockproof.run".to_owned(), self.context.run_id.clone());
                    labels.insert("dockproof.scenario".to_owned(), self.slug.clone());
                    self.backend
                        .create_volume(&name, &labels)
                        .await
                        .map_err(|error| super::backend_finding(&error, pointer))?;
                    self.volume = Some(name);
                    self.mirror_dirty = true;
                }
                MountSource::Volume(self.volume.clone().unwrap_or_default())
            }
        };
        Ok(Mount {
            source,
            container: path.to_owned(),
            read_only: false,
        })
    }

    /// A failed create, said in workspace terms when the daemon cannot see the bound
    /// workspace (`bind` forced on a daemon elsewhere): a configuration to fix.
    pub(super) fn create_finding(
        &self,
        error: &crate::backend::BackendError,
        pointer: &str,
    ) -> Vec<Finding> {
        if self.transport == Some(Transport::Bind)
            && error
                .to_string()
                .contains("bind source path does not exist")
        {
            return finding(
                Category::ConfigInvalid,
                pointer,
                format!(
                    "the daemon does not see the workspace directory, so the `bind` transport cannot work on this host (it is on another machine or in another mount namespace): use `--workspace-transport copy` or `auto` ({error})"
                ),
            );
        }
        super::backend_finding(error, pointer)
    }

    /// Whether the workspace travels by copy in this scenario.
    pub(super) fn copies(&self) -> bool {
        self.transport == Some(Transport::Copy) && self.volume.is_some()
    }

    /// Note that the created container `id` has the workspace; with `copy`, upload the
    /// local workspace into the volume when it changed since it was last there.
    pub(super) async fn workspace_attached(
        &mut self,
        id: &str,
        spec: &ContainerSpec,
        path: &str,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        self.workspace_mounts.insert(
            id.to_owned(),
            Mounted {
                path: path.to_owned(),
                image: spec.image.clone(),
                read_only_rootfs: spec.read_only_rootfs,
            },
        );
        if self.copies() && self.mirror_dirty {
            self.push_workspace(id, pointer).await?;
        }
        Ok(())
    }

    /// Upload the local workspace into the volume through container `id` (created or
    /// running). The archive is extracted into the mount's parent with the mount's own
    /// directory first (mode 0777), so any container user can write the volume's root. A
    /// read-only root filesystem refuses that extraction: then a never-started container
    /// of the same image with the volume at the same path takes the upload instead (no
    /// helper image: the job's own image is on the daemon already).
    pub(super) async fn push_workspace(
        &mut self,
        id: &str,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        let Some(mounted) = self.workspace_mounts.get(id).cloned() else {
            return Ok(());
        };
        let Some((parent, top)) = split_mount(&mounted.path) else {
            return Ok(());
        };
        let staging = self.context.work_dir.join(format!(
            "dockproof-push-{}-{}.tar",
            self.context.run_id, self.slug
        ));
        // Packed on the blocking pool: the workspace may hold up to its size limit.
        let root = self.workspace().root().to_path_buf();
        let archive = staging.clone();
        crate::blocking::run(move |_| transport::pack(&root, &top, &archive))
            .await
            .map_err(|error| finding(error.category(), pointer, error.to_string()))?;
        let through = if mounted.read_only_rootfs {
            let helper = ContainerSpec {
                name: format!("dockproof-{}-{}-upload", self.context.run_id, self.slug),
                image: mounted.image.clone(),
                mounts: vec![Mount {
                    source: MountSource::Volume(self.volume.clone().unwrap_or_default()),
                    container: mounted.path.clone(),
                    read_only: false,
                }],
                labels: [
                    ("dockproof.run".to_owned(), self.context.run_id.clone()),
                    ("dockproof.scenario".to_owned(), self.slug.clone()),
                ]
                .into(),
                ..ContainerSpec::default()
            };
            let helper_id = self
                .backend
                .create(&helper)
                .await
                .map_err(|error| super::backend_finding(&error, pointer))?;
            Some(helper_id)
        } else {
            None
        };
        let target = through.as_deref().unwrap_or(id);
        let copied = self.backend.copy_to(target, &parent, &staging).await;
        let _ = std::fs::remove_file(&staging);
        if let Some(helper_id) = &through
            && let Err(error) = self.backend.remove(helper_id).await
        {
            return Err(super::backend_finding(&error, pointer));
        }
        copied.map_err(|source| {
            transport_finding(
                &TransportError::Backend {
                    direction: "into",
                    source,
                },
                pointer,
            )
        })?;
        self.mirror_dirty = false;
        Ok(())
    }

    /// With `copy`, replace the local workspace with what container `id` has in its
    /// workspace, every entry checked before it is written (`transport::unpack_checked`).
    /// The usage counted is recorded, also when a limit stops the copy.
    pub(super) async fn pull_workspace(
        &mut self,
        id: &str,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        if !self.copies() {
            return Ok(());
        }
        let Some(mounted) = self.workspace_mounts.get(id).cloned() else {
            return Ok(());
        };
        let Some((_, top)) = split_mount(&mounted.path) else {
            return Ok(());
        };
        let staging = tempfile::Builder::new()
            .prefix(&format!("dockproof-back-{}-", self.slug))
            .tempdir_in(&self.context.work_dir)
            .map_err(|error| {
                finding(
                    Category::ConfigInvalid,
                    pointer,
                    format!("cannot create a directory to copy the workspace back into: {error}"),
                )
            })?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        let limits = self.workspace().limits();
        let into = staging.path().to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            transport::unpack_checked(transport::ChannelReader::new(receiver), &top, &into, limits)
        });
        let copied = self
            .backend
            .copy_from_stream(id, &mounted.path, sender)
            .await;
        let unpacked = reader.await.map_err(|error| {
            finding(
                Category::ConfigInvalid,
                pointer,
                format!("copying the workspace back stopped: {error}"),
            )
        })?;
        if let Err(source) = copied {
            return Err(transport_finding(
                &TransportError::Backend {
                    direction: "out of",
                    source,
                },
                pointer,
            ));
        }
        let usage = match unpacked {
            Ok(usage) => usage,
            Err((error, usage)) => {
                let workspace = &mut self.record.context.docker.workspace;
                workspace.files = usage.files;
                workspace.bytes = usage.bytes;
                return Err(transport_finding(&error, pointer));
            }
        };
        let staging = staging.keep();
        let root = self.workspace().root().to_path_buf();
        crate::blocking::run(move |_| transport::replace_contents(&root, &staging))
            .await
            .map_err(|error| finding(error.category(), pointer, error.to_string()))?;
        let workspace = &mut self.record.context.docker.workspace;
        workspace.files = usage.files;
        workspace.bytes = usage.bytes;
        Ok(())
    }

    /// With `copy`, bring back what a still-running container with the workspace wrote
    /// (before an upload reads the mirror).
    pub(super) async fn pull_from_live(&mut self, pointer: &str) -> Result<(), Vec<Finding>> {
        if let Some(id) = self.live.clone() {
            self.pull_workspace(&id, pointer).await?;
        }
        Ok(())
    }

    /// With `copy`, the scenario's volume is removed (after its containers).
    pub(super) async fn remove_volume(&mut self) -> Option<String> {
        let name = self.volume.take()?;
        match self
            .backend
            .remove_resource(ResourceKind::Volume, &name)
            .await
        {
            Ok(()) => None,
            Err(error) => Some(format!("volume {name}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_mount;

    #[test]
    fn mount_paths_split_into_parent_and_name() {
        assert_eq!(
            split_mount("/workspace"),
            Some(("/".into(), "workspace".into()))
        );
        assert_eq!(
            split_mount("/data/ws/"),
            Some(("/data".into(), "ws".into()))
        );
        assert_eq!(split_mount("/"), None);
        assert_eq!(split_mount("relative"), None);
    }
}
