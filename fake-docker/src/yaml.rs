//! The fake's own YAML files (fake image definitions, faults files) read within a
//! budget: serde-saphyr's defaults, tightened to what dockproof's readers allow
//! (`scenario::yaml::LIMITS` in the harness), so an alias bomb or a deep nest in a
//! fixture is a parse error, not gigabytes or a stack overflow.

use serde::de::DeserializeOwned;

/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;
/// Nodes (scalars, sequences, mappings) in the text.
pub const MAX_NODES: usize = 100_000;
/// Bytes of scalar text.
pub const MAX_SCALAR_BYTES: usize = 4 * 1024 * 1024;
/// Events replayed from aliases, in all.
pub const MAX_REPLAYED_EVENTS: usize = 50_000;

/// Deserialise `text` within the budget.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_total_scalar_bytes: MAX_SCALAR_BYTES,
            max_events: 4 * MAX_NODES,
            max_recorded_anchor_events: MAX_REPLAYED_EVENTS,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
        },
    };
    serde_saphyr::from_str_with_options(text, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let mut text = format!("a: &a [{}]\n", ["lol"; 9].join(","));
        for pair in ["a", "b", "c", "d", "e", "f", "g", "h", "i"].windows(2) {
            text.push_str(&format!(
                "{}: &{} [{}]\n",
                pair[1],
                pair[1],
                vec![format!("*{}", pair[0]); 9].join(",")
            ));
        }
        let started = Instant::now();
        // A value that accepts anything is the worst case: nothing stops the expansion early.
        // (Expanded, it is 387,420,489 strings; the bound is generous for a debug build
        // under load.)
        let result = from_str::<serde_json::Value>(&text);
        assert!(result.is_err(), "the bomb was expanded");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn deep_nesting_is_refused_and_normal_files_load() {
        let nested = format!("{}z\n", "- ".repeat(2048));
        assert!(from_str::<serde_json::Value>(&nested).is_err());
        let value: serde_json::Value = from_str("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(value["b"], serde_json::json!([1, 2]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000),
            failure_persistence: None,
            ..Default::default()
        })]

        /// Random YAML-ish text through the faults-file reader and the generic one:
        /// no panic, no stack overflow, whatever the nesting and aliases.
        #[test]
        fn random_yaml_never_panics(tokens in proptest::collection::vec(
            proptest::sample::select(vec![
                ":", " ", "- ", "\n", "  ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b",
                "<<: ", "faults:", "command: run", "fault: oom", "x", "1", "- - - - ", "[[[[",
            ]),
            0..300,
        )) {
            let text = tokens.concat();
            let _ = crate::faults::parse_file(&text, "faults.yaml");
            let _ = from_str::<serde_json::Value>(&text);
        }
    }
}
