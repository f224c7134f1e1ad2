//! With `autotests = false` a test file nobody declares is silently never compiled:
//! every file under `harness/tests/` must be a module of a test binary or a target of
//! its own in `harness/Cargo.toml`.

use crate::support;

/// The `mod NAME;` declarations of a test binary's `main.rs`.
fn declared_modules(main: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(main)
        .unwrap()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_test_file_is_compiled_into_a_test_binary() {
    let tests = support::root().join("harness/tests");
    let manifest = std::fs::read_to_string(support::root().join("harness/Cargo.toml")).unwrap();
    let mut orphans = Vec::new();
    for binary in ["integration", "suites"] {
        let declared = declared_modules(&tests.join(binary).join("main.rs"));
        for entry in std::fs::read_dir(tests.join(binary)).unwrap() {
            let path = entry.unwrap().path();
            let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) else {
                continue;
            };
            if stem != "main"
                && path.extension().is_some_and(|ext| ext == "rs")
                && !declared.iter().any(|m| m == stem)
            {
                orphans.push(format!(
                    "{binary}/{stem}.rs: add `mod {stem};` to {binary}/main.rs"
                ));
            }
        }
    }
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str())
            && path.extension().is_some_and(|ext| ext == "rs")
            && !manifest.contains(&format!("name = \"{stem}\""))
        {
            orphans.push(format!(
                "{stem}.rs: move it into integration/ or suites/ (a module there), or give it a [[test]] in harness/Cargo.toml"
            ));
        }
    }
    assert!(
        orphans.is_empty(),
        "test files no binary compiles:\n{}",
        orphans.join("\n")
    );
}
