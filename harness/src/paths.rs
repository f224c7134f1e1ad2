//! Path-safety rules shared by the scenario loader (which refuses an unsafe path at its
//! line) and the workspace (which refuses it again when it is used). A leaf module: it
//! imports nothing of dockproof.

use std::path::{Component, Path};

/// Why a workspace-relative path is unsafe, if it is.
pub fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    let path = Path::new(path);
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
            Component::ParentDir => return Err("leaves the workspace with `..`"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_relative_path;

    #[test]
    fn only_relative_paths_inside_the_workspace_are_safe() {
        assert_eq!(check_relative_path("inputs/a.csv"), Ok(()));
        assert_eq!(check_relative_path("./a"), Ok(()));
        assert_eq!(check_relative_path(""), Err("is empty"));
        assert_eq!(check_relative_path("/etc/passwd"), Err("is absolute"));
        assert_eq!(
            check_relative_path("a/../../b"),
            Err("leaves the workspace with `..`")
        );
    }
}
