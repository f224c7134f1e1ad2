//! Secrets: values a scenario hands to containers (tokens, passwords) that must
//! never reach a report. A scenario declares them under `secrets:`, uses them as
//! `{{ secret.NAME }}`, and every message, log tail, log file and job record that
//! leaves the engine has their values replaced by [`MASK`].
//!
//! Masking works on bytes, not lines: a [`Masker`] searches for every
//! representation of every value dockproof itself could produce (raw, JSON- and
//! Debug-escaped, URL-encoded, base64 at each alignment, and each line of a
//! multi-line value) in one Aho-Corasick pass, and a [`StreamMasker`] does the same
//! over a stream of chunks holding back only the last `longest pattern - 1` bytes,
//! so a value split across chunks is still caught and memory stays bounded.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use thiserror::Error;

use crate::scenario::SecretSpec;

/// What a secret's value is replaced with.
pub const MASK: &str = "***";

/// Shorter values would mask ordinary text (`a`, `ok`) all over the reports.
pub const MIN_LENGTH: usize = 6;

/// Bytes a [`StreamMasker`] looks at in one search: a chunk larger than this is
/// taken in slices, so one huge write costs no more memory than many small ones.
const STREAM_SLICE: usize = 64 * 1024;

/// A secret whose value cannot be had.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret `{name}`: environment variable `{variable}` is not set")]
    Unset { name: String, variable: String },
    #[error(
        "secret `{name}`: its value is shorter than {MIN_LENGTH} characters, too short to mask safely"
    )]
    TooShort { name: String },
    #[error("secret `{name}`: the operating system gave no random bytes to generate it: {message}")]
    Random { name: String, message: String },
    #[error("the scenario's secrets are too large to search for: {message}")]
    TooLarge { message: String },
}

/// The values of a scenario's secrets, by name.
///
/// `env` secrets come from `environment` (the dockproof process's own, in a run);
/// `generate` secrets are hex of that many bytes from the operating system's
/// random source: nothing in a report (run id, scenario, name) lets anyone work
/// them out, and two runs never share one. Reports stay byte-identical on the
/// fake because the value itself is always masked.
pub fn resolve(
    specs: &BTreeMap<String, SecretSpec>,
    environment: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut values = BTreeMap::new();
    for (name, spec) in specs {
        let value = match (&spec.env, spec.generate) {
            (Some(variable), _) => environment(variable)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| SecretError::Unset {
                    name: name.clone(),
                    variable: variable.clone(),
                })?,
            (None, bytes) => {
                let mut random = vec![0u8; bytes.unwrap_or(16).max(8) as usize];
                getrandom::fill(&mut random).map_err(|error| SecretError::Random {
                    name: name.clone(),
                    message: error.to_string(),
                })?;
                hex::encode(random)
            }
        };
        if value.chars().count() < MIN_LENGTH {
            return Err(SecretError::TooShort { name: name.clone() });
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// What `url::Url` and object stores leave unescaped in a path segment: everything
/// else of the value is percent-encoded there.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%')
    .add(b'/');

/// `application/x-www-form-urlencoded`: alphanumerics and `*-._` stay, space is `+`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Every way `text` can appear in what dockproof writes, besides itself.
fn escaped_forms(text: &str) -> Vec<String> {
    let quoted = |form: String| {
        form.strip_prefix('"')
            .and_then(|form| form.strip_suffix('"'))
            .map(str::to_owned)
    };
    let mut forms = Vec::new();
    forms.extend(serde_json::to_string(text).ok().and_then(quoted));
    forms.extend(quoted(format!("{text:?}")));
    forms.push(utf8_percent_encode(text, NON_ALPHANUMERIC).to_string());
    forms.push(utf8_percent_encode(text, PATH_SEGMENT).to_string());
    forms.push(
        utf8_percent_encode(text, FORM)
            .to_string()
            .replace("%20", "+"),
    );
    forms
}

/// The base64 of `value` as it appears inside any longer base64 text: for each of
/// the three alignments, the characters that depend on the value's bytes alone
/// (what GitHub Actions masks too).
fn base64_forms(value: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(value);
            let encoded = engine.encode(&shifted);
            // Character i holds bits 6i..6i+6 of the shifted bytes.
            let first = (8 * shift).div_ceil(6);
            let last = 8 * shifted.len() / 6;
            if let Some(core) = encoded.get(first..last)
                && core.len() >= MIN_LENGTH
            {
                forms.push(core.to_owned());
            }
        }
    }
    forms
}

/// Every byte string that stands for one of `values` in dockproof's output.
fn patterns<'a>(values: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut patterns = Vec::new();
    for value in values {
        patterns.push(value.clone());
        patterns.extend(escaped_forms(value));
        patterns.extend(base64_forms(value.as_bytes()));
        // A multi-line value also shows up a line at a time (log tails, excerpts).
        if value.contains('\n') {
            for line in value.lines().map(|line| line.trim_end_matches('\r')) {
                if line.chars().count() >= MIN_LENGTH {
                    patterns.push(line.to_owned());
                    patterns.extend(escaped_forms(line));
                }
            }
        }
    }
    patterns.retain(|pattern| !pattern.is_empty());
    patterns.sort();
    patterns.dedup();
    patterns
}

/// The compiled search for a set of secret values.
struct Patterns {
    automaton: AhoCorasick,
    /// The longest pattern's length in bytes.
    longest: usize,
    /// The patterns themselves (never printed), for equality.
    patterns: Vec<String>,
}

/// Replaces secret values (in every representation) in text, bytes and streams.
///
/// Cheap to clone (the compiled search is shared). Its `Debug` shows how many
/// patterns it holds, never what they are.
#[derive(Clone, Default)]
pub struct Masker {
    patterns: Option<Arc<Patterns>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self
            .patterns
            .as_ref()
            .map_or(0, |patterns| patterns.patterns.len());
        write!(f, "Masker {{ patterns: {count} }}")
    }
}

impl PartialEq for Masker {
    fn eq(&self, other: &Self) -> bool {
        let patterns = |masker: &Masker| {
            masker
                .patterns
                .as_ref()
                .map(|patterns| patterns.patterns.clone())
        };
        patterns(self) == patterns(other)
    }
}

impl Eq for Masker {}

impl Masker {
    /// A masker for `values` and every representation of them.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a String>) -> Result<Self, SecretError> {
        let patterns = patterns(values);
        if patterns.is_empty() {
            return Ok(Masker::default());
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            // Only a search too large for its limits fails to build.
            .map_err(|error| SecretError::TooLarge {
                message: error.to_string(),
            })?;
        Ok(Masker {
            patterns: Some(Arc::new(Patterns {
                automaton,
                longest: patterns.iter().map(String::len).max().unwrap_or(1),
                patterns,
            })),
        })
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
    }

    /// `text` with every secret value replaced by [`MASK`].
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(patterns) = &self.patterns else {
            return Cow::Borrowed(text);
        };
        if !patterns.automaton.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut masked = String::with_capacity(text.len());
        patterns
            .automaton
            .replace_all_with(text, &mut masked, |_, _, masked| {
                masked.push_str(MASK);
                true
            });
        Cow::Owned(masked)
    }

    /// Mask `text` where it is.
    pub fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// `bytes` (any encoding) with every secret value replaced by [`MASK`].
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut masked = Vec::with_capacity(bytes.len());
        let mut stream = self.stream();
        stream.push(bytes, &mut masked);
        stream.finish(&mut masked);
        masked
    }

    /// A masker for one stream of chunks.
    pub fn stream(&self) -> StreamMasker {
        StreamMasker {
            patterns: self.patterns.clone(),
            pending: Vec::new(),
        }
    }

    /// The last `count` lines of captured text, masked. The text is masked whole
    /// before it is cut into lines, so a multi-line value is one [`MASK`]; when only
    /// a tail was kept, its first `longest pattern - 1` bytes are dropped as well, so
    /// the end of a value cut off by the capture's limit is not shown either.
    /// `truncated`: only the tail of the output was kept (`Captured::truncated`).
    pub fn tail_lines(&self, text: &str, truncated: bool, count: usize) -> Vec<String> {
        let mut text = text;
        if truncated && let Some(patterns) = &self.patterns {
            let mut skip = (patterns.longest - 1).min(text.len());
            while !text.is_char_boundary(skip) {
                skip += 1;
            }
            text = &text[skip..];
            text = text.find('\n').map_or("", |newline| &text[newline + 1..]);
        }
        let masked = self.mask(text);
        let lines: Vec<&str> = masked.lines().collect();
        lines[lines.len().saturating_sub(count)..]
            .iter()
            .map(|line| (*line).to_owned())
            .collect()
    }
}

/// Masks a stream given in chunks of any size, with memory bounded by the longest
/// pattern: what could still be the start of a value is held back until the next
/// chunk shows whether it is (at most `longest pattern - 1` bytes).
///
/// Dropping it without [`StreamMasker::finish`] (an interrupted stream) loses the
/// held-back bytes rather than writing them unmasked.
#[derive(Default)]
pub struct StreamMasker {
    patterns: Option<Arc<Patterns>>,
    /// Bytes seen but not yet given out.
    pending: Vec<u8>,
}

impl std::fmt::Debug for StreamMasker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StreamMasker {{ pending: {} bytes }}",
            self.pending.len()
        )
    }
}

impl StreamMasker {
    /// Feed `input`; append to `out` what is now known to be masked.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(patterns) = self.patterns.clone() else {
            out.extend_from_slice(input);
            return;
        };
        for slice in input.chunks(STREAM_SLICE) {
            self.pending.extend_from_slice(slice);
            // A match starting before `safe` ends within what is pending (no pattern is
            // longer than `longest`); one starting later may need the next chunk.
            let safe = self.pending.len().saturating_sub(patterns.longest - 1);
            let mut cursor = 0;
            for found in patterns.automaton.find_iter(&self.pending) {
                if found.start() >= safe {
                    break;
                }
                out.extend_from_slice(&self.pending[cursor..found.start()]);
                out.extend_from_slice(MASK.as_bytes());
                cursor = found.end();
            }
            let given = cursor.max(safe);
            out.extend_from_slice(&self.pending[cursor..given]);
            self.pending.drain(..given);
        }
    }

    /// The stream ended: append the rest, masked.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        match &self.patterns {
            Some(patterns) => {
                let mut cursor = 0;
                for found in patterns.automaton.find_iter(&pending) {
                    out.extend_from_slice(&pending[cursor..found.start()]);
                    out.extend_from_slice(MASK.as_bytes());
                    cursor = found.end();
                }
                out.extend_from_slice(&pending[cursor..]);
            }
            None => out.extend_from_slice(&pending),
        }
    }

    /// Bytes held back (never more than the longest pattern plus one slice).
    pub fn retained_capacity(&self) -> usize {
        self.pending.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Captured;

    fn spec(env: Option<&str>, generate: Option<u32>) -> SecretSpec {
        SecretSpec {
            env: env.map(str::to_owned),
            generate,
        }
    }

    fn masker(values: &[&str]) -> Masker {
        let values: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        Masker::new(&values).unwrap()
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\nNMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n-----END PRIVATE KEY-----\n";

    #[test]
    fn env_secrets_come_from_the_environment() {
        let specs = [("token".to_owned(), spec(Some("RUNNER_TOKEN"), None))].into();
        let environment = |name: &str| (name == "RUNNER_TOKEN").then(|| "s3cr3t-value".to_owned());
        assert_eq!(
            resolve(&specs, environment).unwrap()["token"],
            "s3cr3t-value"
        );
        assert_eq!(
            resolve(&specs, |_| None),
            Err(SecretError::Unset {
                name: "token".into(),
                variable: "RUNNER_TOKEN".into()
            })
        );
        assert_eq!(
            resolve(&specs, |_| Some("abc".into())),
            Err(SecretError::TooShort {
                name: "token".into()
            })
        );
    }

    /// Generated values come from the OS random source: the same inputs twice give
    /// two different values, so nothing in a report can reproduce one.
    #[test]
    fn generated_secrets_are_random_and_sized() {
        let specs: BTreeMap<_, _> = [
            ("a".to_owned(), spec(None, Some(20))),
            ("b".to_owned(), spec(None, None)),
            ("c".to_owned(), spec(None, Some(1))),
        ]
        .into();
        let first = resolve(&specs, |_| None).unwrap();
        assert_eq!(first["a"].len(), 40);
        assert_eq!(first["b"].len(), 32);
        assert_eq!(first["c"].len(), 16, "at least 8 bytes");
        assert!(
            first
                .values()
                .all(|value| value.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        let second = resolve(&specs, |_| None).unwrap();
        for name in ["a", "b", "c"] {
            assert_ne!(
                first[name], second[name],
                "`{name}` was generated twice alike"
            );
        }
        assert_ne!(first["a"][..32], first["b"]);
    }

    #[test]
    fn masking_replaces_every_occurrence_longest_first() {
        let masker = masker(&["token-123", "token-123-extended"]);
        assert_eq!(
            masker.mask("a token-123-extended b token-123 c"),
            "a *** b *** c"
        );
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        let mut text = "Authorization: Bearer token-123".to_owned();
        masker.mask_in_place(&mut text);
        assert_eq!(text, "Authorization: Bearer ***");
        assert!(Masker::default().is_empty());
        assert_eq!(
            format!("{masker:?}"),
            format!(
                "Masker {{ patterns: {} }}",
                masker.patterns.as_ref().unwrap().patterns.len()
            ),
            "Debug never shows a value"
        );
        assert!(!format!("{:?}", masker.stream()).contains("token"));
    }

    /// A value with `"`, `\\` and a newline is masked however dockproof writes it:
    /// raw, inside JSON, inside a Debug string, URL-encoded, base64-encoded.
    #[test]
    fn every_representation_is_masked() {
        const VALUE: &str = "pa\"ss\\wo/rd 42\n&x";
        let masker = masker(&[VALUE]);
        let json =
            serde_json::to_string(&serde_json::json!({ "message": format!("got {VALUE} here") }))
                .unwrap();
        let debug = format!("{:?}", format!("got {VALUE} here"));
        let url = format!(
            "file:///store/{}/x",
            utf8_percent_encode(VALUE, PATH_SEGMENT)
        );
        let query = format!("?q={}", utf8_percent_encode(VALUE, NON_ALPHANUMERIC));
        let form = format!(
            "q={}",
            utf8_percent_encode(VALUE, FORM)
                .to_string()
                .replace("%20", "+")
        );
        for text in [&json, &debug, &url, &query, &form] {
            let masked = masker.mask(text);
            assert!(masked.contains(MASK), "nothing masked in {text}");
            assert!(
                !masked.contains("ss\\\\wo")
                    && !masked.contains("ss\\wo")
                    && !masked.contains("wo%2Frd")
                    && !masked.contains("wo/rd"),
                "{masked}"
            );
        }
        // Base64 of the value inside longer base64 text, at each alignment.
        let engine = base64::engine::general_purpose::STANDARD;
        for prefix in ["", "u", "us", "user:"] {
            let encoded = engine.encode(format!("{prefix}{VALUE}:suffix"));
            let masked = masker.mask(&encoded);
            assert!(
                masked.contains(MASK),
                "base64 with prefix {prefix:?} not masked: {encoded}"
            );
            // What is left encodes the prefix and suffix (and a character at each seam).
            let left = masked.replace(MASK, "").trim_end_matches('=').len();
            assert!(
                left <= (prefix.len() + 7) * 4 / 3 + 2,
                "{prefix:?}: {masked}"
            );
        }
    }

    #[test]
    fn a_multi_line_value_is_masked_whole_and_line_by_line() {
        let masker = masker(&[PEM]);
        let output = format!("starting\n{PEM}done\n");
        assert_eq!(masker.mask(&output), "starting\n***done\n");
        // A log tail that starts inside the key, or shows its lines joined otherwise.
        let lines: Vec<&str> = PEM.lines().collect();
        let joined = lines[2..].join(" | ");
        let masked = masker.mask(&joined);
        for line in &lines {
            assert!(!masked.contains(line), "{line} in {masked}");
        }
        // The capture kept only a tail starting in the middle of the key.
        let cut = output.len() - 40;
        let captured = Captured {
            text: output[cut..].to_owned(),
            total_bytes: output.len() as u64,
            truncated: true,
            ..Captured::default()
        };
        let tail = masker.tail_lines(&captured.text, captured.truncated, 10);
        assert!(
            tail.iter()
                .all(|line| !PEM.contains(line.as_str()) || line.len() < 6),
            "{tail:?}"
        );
        let whole = Captured::from_text(output.clone());
        assert_eq!(
            masker.tail_lines(&whole.text, whole.truncated, 2),
            vec!["starting", "***done"]
        );
    }

    /// Splitting a stream anywhere (once, twice, byte by byte) masks exactly as
    /// masking it whole does.
    #[test]
    fn a_value_split_across_chunks_is_masked_at_every_split_point() {
        let masker = masker(&["s3cr3t-value", "s3cr3t-value-longer", "pa\"ss\\word", PEM]);
        let text = format!(
            "a s3cr3t-value b s3cr3t-value-longer c s3cr3t-valu d pa\"ss\\word e {PEM} f s3cr3t-value"
        );
        let expected = masker.mask(&text).into_owned();
        assert!(!expected.contains("s3cr3t-value") && !expected.contains("BEGIN"));
        let bytes = text.as_bytes();
        let run = |pieces: &[&[u8]]| {
            let mut stream = masker.stream();
            let mut out = Vec::new();
            for piece in pieces {
                stream.push(piece, &mut out);
            }
            stream.finish(&mut out);
            String::from_utf8(out).unwrap()
        };
        for split in 0..=bytes.len() {
            assert_eq!(
                run(&[&bytes[..split], &bytes[split..]]),
                expected,
                "split at {split}"
            );
        }
        let short = &bytes[..80];
        let short_expected = masker
            .mask(std::str::from_utf8(short).unwrap())
            .into_owned();
        for first in 0..=short.len() {
            for second in first..=short.len() {
                assert_eq!(
                    run(&[&short[..first], &short[first..second], &short[second..]]),
                    short_expected,
                    "splits at {first} and {second}"
                );
            }
        }
        let one_byte_at_a_time: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&one_byte_at_a_time), expected);
    }

    /// 64 MiB with no newline and a secret every 3 MiB, in uneven chunks and in one
    /// 16 MiB write: the stream masker holds at most the longest pattern plus one
    /// slice, whatever the stream's length, and masks every occurrence.
    #[test]
    fn a_long_stream_without_newlines_costs_bounded_memory() {
        const SECRET: &str = "s3cr3t-value-in-a-long-line";
        let masker = masker(&[SECRET, PEM]);
        let bound = 2 * (PEM.len() * 2 + STREAM_SLICE);
        let mut stream = masker.stream();
        let mut out = Vec::new();
        let (mut written, mut planted, mut stars) = (0usize, 0usize, 0usize);
        let filler = vec![b'x'; 3 << 20];
        let mut chunk_size = 4096usize;
        // The output holds only filler and masks: any other byte is a leaked secret.
        let mut check = |out: &mut Vec<u8>| {
            for &byte in out.iter() {
                match byte {
                    b'x' => {}
                    b'*' => stars += 1,
                    other => panic!("unmasked byte {:?} in the output", other as char),
                }
            }
            out.clear();
        };
        while written < 64 << 20 {
            let mut block = filler.clone();
            block.extend_from_slice(SECRET.as_bytes());
            planted += 1;
            for piece in block.chunks(chunk_size) {
                stream.push(piece, &mut out);
                assert!(
                    stream.retained_capacity() <= bound,
                    "{} > {bound}",
                    stream.retained_capacity()
                );
                check(&mut out);
            }
            written += block.len();
            chunk_size = (chunk_size * 7 + 13) % 200_000 + 1000;
        }
        let mut big = filler.repeat(5);
        big.extend_from_slice(SECRET.as_bytes());
        planted += 1;
        stream.push(&big, &mut out);
        assert!(stream.retained_capacity() <= bound);
        stream.finish(&mut out);
        check(&mut out);
        assert_eq!(stars, 3 * planted);
    }
}
