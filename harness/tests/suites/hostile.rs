//! Hostile input: random and mutated scenario files through the loader. It
//! must never panic or hang, and every rejection must say where it is.
//! `PROPTEST_CASES` sets how many cases each property runs (default 50,000
//! each, 100,000 in all).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50_000)
}

/// Load `text`; on rejection every diagnostic must point at a line of the text.
fn load_and_check(text: &str) -> Result<(), TestCaseError> {
    let (scenario, diagnostics) =
        dockproof::scenario::load::load_str(text, Path::new("/nonexistent-base"));
    prop_assert!(
        scenario.is_some() == diagnostics.is_empty(),
        "a scenario comes with no diagnostics, a rejection with some"
    );
    let lines = text.lines().count().max(1) + 1;
    for diagnostic in &diagnostics {
        prop_assert!(!diagnostic.message.is_empty());
        prop_assert!(
            diagnostic.hint.is_some(),
            "every diagnostic has a hint: {diagnostic:?}"
        );
        prop_assert!(
            diagnostic.span.start.line >= 1 && diagnostic.span.start.line <= lines,
            "{diagnostic:?} outside {lines} lines"
        );
        prop_assert!(diagnostic.span.start.offset <= text.len());
    }
    Ok(())
}

/// A shipped scenario with a random edit: a cut, an insertion, or two lines swapped.
fn mutated() -> impl Strategy<Value = String> {
    let sources: Vec<String> = support::shipped_scenarios()
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("shipped scenarios are readable"))
        .collect();
    let alphabet = prop::sample::select(vec![
        ":", " ", "-", "\n", "[", "]", "{", "}", "'", "\"", "#", "&a", "*a", "!!str", "0", "1m",
        "x", "\t", "é", "~",
    ]);
    (
        prop::sample::select(sources),
        0usize..4,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(alphabet, 0..6),
    )
        .prop_map(|(source, edit, first, second, inserted)| {
            let mut text = source;
            let boundaries: Vec<usize> = (0..=text.len())
                .filter(|index| text.is_char_boundary(*index))
                .collect();
            let (mut a, mut b) = (
                boundaries[first.index(boundaries.len())],
                boundaries[second.index(boundaries.len())],
            );
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            // Keep cuts short, on character boundaries.
            let within = |limit: usize| {
                boundaries
                    .iter()
                    .copied()
                    .filter(|index| *index <= b.min(a + limit))
                    .max()
                    .unwrap_or(a)
            };
            match edit {
                0 => text.replace_range(a..within(40), ""),
                1 => text.insert_str(a, &inserted.concat()),
                2 => {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let (i, j) = (first.index(lines.len()), second.index(lines.len()));
                    lines.swap(i, j);
                    text = lines.join("\n");
                }
                _ => text.replace_range(a..within(8), &inserted.concat()),
            }
            text
        })
}

/// Random and mutated scenario files never panic the loader (proptest).
fn never_panics() -> Result<(), libtest_mimic::Failed> {
    let mut failures = 0;
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(error) = runner.run(&any::<String>(), |text| load_and_check(&text)) {
        eprintln!("random text: {error}");
        failures += 1;
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(error) = runner.run(&mutated(), |text| load_and_check(&text)) {
        eprintln!("mutated scenarios: {error}");
        failures += 1;
    }
    println!(
        "{} random and {} mutated scenario files loaded without a panic",
        cases(),
        cases()
    );
    if failures > 0 {
        return Err(format!("{failures} properties failed (see above)").into());
    }
    Ok(())
}

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![libtest_mimic::Trial::test(
        "hostile::random-and-mutated-scenario-files-never-panic",
        never_panics,
    )]
}
