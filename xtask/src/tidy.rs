//! `cargo xtask tidy`: the architecture's invariants kept by a test, not by prose (in the
//! spirit of rust-analyzer's `xtask/src/tidy.rs`). Run by `cargo xtask ci`.
//!
//! - the module import graph of each crate (one node per source file, an edge for every
//!   `crate::…`/`super::…` path it names outside its tests) has no cycle;
//! - `check` and `cst::check` (the pure verdicts) have no `async` and no `Backend`;
//! - `report/` (the renderers) imports neither `engine` nor `backend`;
//! - `backend/` (which translates) creates no `Finding` (only a check decides).
//!
//! Text-based on purpose: a `use` or a path is enough to see an edge, and a tool that
//! needs no parser stays fast and has nothing to build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The crates whose graphs are checked: (name, source directory below the root).
const CRATES: [(&str, &str); 2] = [
    ("dockproof", "harness/src"),
    ("fake-docker", "fake-docker/src"),
];

/// Cycles known and not untangled yet, per crate: each must match a cycle found exactly
/// (so a cycle that grows, shrinks or goes away fails until this list says so). Only
/// shrink this list. It is empty: fake-docker's supervisor/image/state tangle was broken
/// into leaf modules (issue 19 item 2), and the loader's `Diagnostic` lives in the leaf
/// `scenario::diagnostic`.
const KNOWN_CYCLES: [(&str, &[&str]); 0] = [];

/// One module's source: its path (`engine::compose`) and its text outside `#[cfg(test)]`.
#[derive(Debug, Clone)]
pub struct Module {
    pub path: String,
    pub file: PathBuf,
    pub text: String,
}

/// Every problem tidy finds in a crate, one sentence each.
pub fn check_crate(name: &str, modules: &[Module]) -> Vec<String> {
    check_crate_with(name, modules, &KNOWN_CYCLES)
}

/// [`check_crate`] with the known cycles given.
fn check_crate_with(name: &str, modules: &[Module], known: &[(&str, &[&str])]) -> Vec<String> {
    let mut problems = Vec::new();
    let graph = graph(modules);
    let found = cycles(&graph);
    for cycle in &found {
        let listed = known
            .iter()
            .any(|(krate, members)| *krate == name && *members == cycle.as_slice());
        if !listed {
            problems.push(format!(
                "{name}: import cycle among {}: move what they share into a leaf module",
                cycle.join(", ")
            ));
        }
    }
    for (krate, members) in known.iter().filter(|(krate, _)| *krate == name) {
        if !found.iter().any(|cycle| cycle.as_slice() == *members) {
            problems.push(format!(
                "{krate}: the known cycle among {} is gone or changed: update KNOWN_CYCLES in xtask/src/tidy.rs",
                members.join(", ")
            ));
        }
    }
    for module in modules {
        let pure = module.path == "check" || module.path == "cst::check";
        if pure {
            for word in ["async", "Backend"] {
                if contains_word(&module.text, word) {
                    problems.push(format!(
                        "{name}: {} ({}) uses `{word}`: the checks are pure (no async, no backend): observe in the engine, decide here",
                        module.path,
                        module.file.display()
                    ));
                }
            }
        }
        if is_under(&module.path, "report") {
            for target in graph.get(&module.path).into_iter().flatten() {
                if is_under(target, "engine") || is_under(target, "backend") {
                    problems.push(format!(
                        "{name}: {} ({}) imports `{target}`: reporters render events, they import no engine or backend",
                        module.path,
                        module.file.display()
                    ));
                }
            }
        }
        if is_under(&module.path, "backend") && contains_word(&module.text, "Finding") {
            problems.push(format!(
                "{name}: {} ({}) names `Finding`: a backend translates, only a check decides (return a BackendError)",
                module.path,
                module.file.display()
            ));
        }
    }
    problems
}

fn is_under(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with("::"))
}

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// Read a crate's modules: `lib.rs`/`main.rs` is the root (`crate`), `a/mod.rs` and `a.rs`
/// are `a`, `a/b.rs` is `a::b`. A file's `#[cfg(test)]` part (from that line on, where
/// this project keeps its tests) and its comments are left out.
pub fn read_crate(dir: &Path) -> Result<Vec<Module>> {
    let mut modules = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot read {}", current.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path).with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            let module = if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
                "crate".to_owned()
            } else {
                parts.join("::")
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            modules.push(Module {
                path: module,
                file: path,
                text: strip(&text),
            });
        }
    }
    modules.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(modules)
}

/// `text` without its `#[cfg(test)]` part and without `//` comments.
pub fn strip(text: &str) -> String {
    let mut kept = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// Each module's edges: the modules it names with `crate::…`, `super::…` or a `use` of them.
pub fn graph(modules: &[Module]) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<&str> = modules.iter().map(|module| module.path.as_str()).collect();
    let mut graph = BTreeMap::new();
    for module in modules {
        let mut targets = BTreeSet::new();
        for path in named_paths(&module.text) {
            let absolute = match resolve(&module.path, &path) {
                Some(absolute) => absolute,
                None => continue,
            };
            // The longest known module prefix of the path is the module it names.
            let segments: Vec<&str> = absolute.split("::").collect();
            let target = (1..=segments.len())
                .rev()
                .map(|len| segments[..len].join("::"))
                .find(|candidate| known.contains(candidate.as_str()));
            if let Some(target) = target
                && target != module.path
                && !is_ancestor(&target, &module.path)
            {
                targets.insert(target);
            }
        }
        graph.insert(module.path.clone(), targets);
    }
    graph
}

/// A parent module names its children (`mod x;`, `pub use x::…`) by design: an edge to
/// an ancestor (`super::Foo` in `a::b` naming `a`) is a child using its parent's items,
/// and only the child's own edges count.
fn is_ancestor(ancestor: &str, module: &str) -> bool {
    ancestor == "crate"
        || module
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// `path` (starting with `crate::` or `super::`) as a path from the crate root, seen from
/// `module`; none for another crate's path.
fn resolve(module: &str, path: &str) -> Option<String> {
    let mut base: Vec<&str> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    let mut rest = path;
    if let Some(tail) = rest.strip_prefix("crate::") {
        base.clear();
        rest = tail;
    } else if rest.starts_with("super::") {
        while let Some(tail) = rest.strip_prefix("super::") {
            base.pop();
            rest = tail;
        }
    } else {
        return None;
    }
    base.extend(rest.split("::").filter(|part| !part.is_empty()));
    Some(base.join("::"))
}

/// Every `crate::a::b` and `super::a` path in `text`, `use` groups expanded
/// (`use crate::{a, b::{c, d}}` names `crate::a`, `crate::b::c`, `crate::b::d`).
pub fn named_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for start in ["crate::", "super::"] {
        for (at, _) in text.match_indices(start) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tail = &text[at..];
            let end = tail
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
                .map_or(tail.len(), |(index, _)| index);
            let prefix = tail[..end].trim_end_matches(':');
            if tail[end..].starts_with('{') {
                expand_group(prefix, &tail[end..], &mut paths);
            } else {
                paths.push(prefix.to_owned());
            }
        }
    }
    paths
}

/// `prefix::{a, b::{c}}` into its paths; `group` starts at the `{`.
fn expand_group(prefix: &str, group: &str, paths: &mut Vec<String>) {
    let mut depth = 0;
    let mut close = group.len();
    for (index, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = index;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &group[1..close.max(1)];
    let mut depth = 0;
    let mut item_start = 0;
    let mut items = Vec::new();
    for (index, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[item_start..index]);
                item_start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[item_start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let item = item.split(" as ").next().unwrap_or(item).trim();
        if let Some(open) = item.find('{') {
            let head = item[..open].trim_end_matches(':');
            let nested = if head.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}::{head}")
            };
            expand_group(&nested, &item[open..], paths);
        } else if item == "self" || item == "*" {
            paths.push(prefix.to_owned());
        } else {
            paths.push(format!("{prefix}::{item}"));
        }
    }
}

/// The graph's cycles: every strongly connected component of more than one module (in
/// a stable order, each starting at its smallest module), as a path through it.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iteratively small enough here to recurse: module graphs are
    // a few hundred nodes deep at most.
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        components: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        if let Some(targets) = state.graph.get(node) {
            for target in targets {
                let target = target.as_str();
                if !state.graph.contains_key(target) {
                    continue;
                }
                if !state.index.contains_key(target) {
                    visit(state, target);
                    let low = state.low[node].min(state.low[target]);
                    state.low.insert(node, low);
                } else if state.on_stack.contains(target) {
                    let low = state.low[node].min(state.index[target]);
                    state.low.insert(node, low);
                }
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    let mut components = state.components;
    components.sort();
    components
}

/// Check every crate under `root`; the problems, one per line.
pub fn tidy(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (name, dir) in CRATES {
        let modules = read_crate(&root.join(dir))?;
        problems.extend(check_crate(name, &modules));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, text: &str) -> Module {
        Module {
            path: path.to_owned(),
            file: PathBuf::from(format!("{}.rs", path.replace("::", "/"))),
            text: strip(text),
        }
    }

    #[test]
    fn use_groups_and_super_paths_become_edges() {
        let paths = named_paths(
            "use crate::{engine::{self, EngineContext}, check as c};\nlet x = super::super::report::junit::write();",
        );
        assert_eq!(
            paths,
            [
                "crate::engine",
                "crate::engine::EngineContext",
                "crate::check",
                "super::super::report::junit::write"
            ]
        );
        assert_eq!(
            resolve("report::json", "super::super::engine::slug"),
            Some("engine::slug".into())
        );
    }

    /// This workspace as it is: no cycle (fake-docker has none since
    /// issue 19 item 2 broke its supervisor/image/state tangle), no forbidden edge.
    #[test]
    fn this_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace");
        let problems = tidy(root).expect("the crates' sources are readable");
        assert_eq!(problems, Vec::<String>::new());
        let fake_docker = read_crate(&root.join("fake-docker/src")).expect("readable");
        assert_eq!(cycles(&graph(&fake_docker)), Vec::<Vec<String>>::new());
    }

    #[test]
    fn a_clean_tree_passes() {
        let modules = [
            module("crate", "pub mod check; pub mod engine; pub mod report;"),
            module("check", "use crate::category::Category;\npub fn judge() {}"),
            module("category", ""),
            module("engine", "use crate::check;\npub async fn run() {}"),
            module("report", "use crate::events::Event;"),
            module("events", "use crate::category::Category;"),
            module(
                "backend",
                "pub enum BackendError {}\n#[cfg(test)]\nmod tests { use crate::check::Finding; }",
            ),
        ];
        assert_eq!(check_crate("t", &modules), Vec::<String>::new());
    }

    #[test]
    fn a_known_cycle_passes_only_while_it_is_exactly_that() {
        let modules = [
            module("crate", ""),
            module("a", "use crate::b::x;"),
            module("b", "use crate::a::y;"),
        ];
        let known: [(&str, &[&str]); 1] = [("t", &["a", "b"])];
        assert_eq!(
            check_crate_with("t", &modules, &known),
            Vec::<String>::new()
        );
        let untangled = [
            module("crate", ""),
            module("a", ""),
            module("b", "use crate::a::y;"),
        ];
        let problems = check_crate_with("t", &untangled, &known);
        assert!(problems[0].contains("is gone or changed"), "{problems:?}");
    }

    #[test]
    fn a_cycle_and_each_forbidden_edge_fail() {
        let modules = [
            module("crate", ""),
            module("engine", "use crate::runner::sweep;"),
            module("runner", "use crate::engine::{self, EngineContext};"),
            module("check", "pub async fn judge(backend: &dyn Backend) {}"),
            module(
                "backend",
                "pub fn translate() -> crate::check::Finding { todo!() }",
            ),
            module("report", "use crate::engine::slug;"),
        ];
        let problems = check_crate("t", &modules);
        let expect = [
            "t: import cycle among engine, runner:",
            "check (check.rs) uses `async`",
            "check (check.rs) uses `Backend`",
            "report (report.rs) imports `engine`",
            "backend (backend.rs) names `Finding`",
        ];
        for expected in expect {
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{expected:?} not in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }
}
