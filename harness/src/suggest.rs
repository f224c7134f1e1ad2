//! "Did you mean": the one place a misspelt word (a scenario key, a project key, a gate,
//! a failure category) finds the word that was meant. A leaf module: it imports nothing
//! of dockproof.

/// How alike (Jaro-Winkler, 0 to 1) a word and a candidate must be for the candidate to
/// be offered: above this, a typo (`oom` → `oom_killed` is 0.84, `scenario` →
/// `scenarios` 0.98); below, a different word.
const LIKELY_TYPO: f64 = 0.8;

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > LIKELY_TYPO)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn offers_the_closest_word_only_when_it_is_a_likely_typo() {
        let known = ["min_success_rate", "max_p95_start_ms", "max_failures"];
        assert_eq!(closest("max_p95_start", known), Some("max_p95_start_ms"));
        assert_eq!(closest("max_failure", known), Some("max_failures"));
        assert_eq!(
            closest("oom", ["oom_killed", "timeout"]),
            Some("oom_killed")
        );
        assert_eq!(closest("colour", known), None);
        assert_eq!(closest("anything", []), None);
    }
}
