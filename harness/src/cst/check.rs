//! CST's verdicts as pure functions: observations in, CST's error messages
//! out (an empty list is a pass). Nothing here talks to Docker.

use std::collections::BTreeMap;

use super::files::{FileInfo, Kind};
use super::model::{CommandTest, FileContentTest, FileExistenceTest, MetadataTest, SchemaVersion};

/// Go's `regexp.MatchString`: RE2 syntax, unanchored. A pattern that does not
/// compile never matches (the loader rejects such patterns first).
fn matches(pattern: &str, text: &str) -> bool {
    go_regex(pattern).is_ok_and(|regex| regex.is_match(text))
}

/// A Go (RE2) pattern as the `regex` crate reads it with Go's meaning: `\d`, `\w`,
/// `\s` and `\b` (and their negations) are ASCII-only as in RE2 (the crate's are
/// Unicode), `\Q…\E` is a literal, and inside a class `[` `&` `~` are plain
/// characters (the crate reads them as nested classes and set operations).
pub fn go_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&translate_go_regex(pattern))
}

fn translate_go_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(character) = chars.next() {
        match character {
            '\\' => {
                let Some(next) = chars.next() else {
                    // A trailing backslash: let the crate report it.
                    out.push('\\');
                    break;
                };
                match next {
                    'Q' => {
                        let mut literal = String::new();
                        while let Some(quoted) = chars.next() {
                            if quoted == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(quoted);
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str("[\\t\\n\\f\\r ]"),
                    'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                    'b' if !in_class => out.push_str("(?-u:\\b)"),
                    'B' if !in_class => out.push_str("(?-u:\\B)"),
                    // An escaped punctuation character is that character in RE2; the
                    // crate gives `\<` and `\>` a meaning (word start/end) of its own.
                    other if other.is_ascii_punctuation() => {
                        out.push_str(&regex::escape(&other.to_string()));
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                // A `]` first in a class is a literal in both.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // `[:alpha:]` inside a class: the same ASCII classes in both.
                out.push('[');
                for class in chars.by_ref() {
                    out.push(class);
                    if class == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(character);
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `text` is an `os.FileMode` string (`-rwxr-xr-x`, `drwxr-xr-x`, `Lrwxrwxrwx`, ...).
pub fn is_permission_string(text: &str) -> bool {
    static SHAPE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new("^(-|[dalTLDpSugct?]+)[r-][w-][x-][r-][w-][x-][r-][w-][x-]$")
            .expect("a valid pattern")
    });
    SHAPE.is_match(text)
}

/// Go's `os.Expand`: `$NAME`, `${NAME}` and the shell's one-character names;
/// an unknown name expands to nothing, bad syntax is eaten.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    fn special(byte: u8) -> bool {
        matches!(byte, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || byte.is_ascii_digit()
    }
    fn shell_name(rest: &[u8]) -> (&[u8], usize) {
        if rest[0] == b'{' {
            if rest.len() > 2 && special(rest[1]) && rest[2] == b'}' {
                return (&rest[1..2], 3);
            }
            for index in 1..rest.len() {
                if rest[index] == b'}' {
                    if index == 1 {
                        return (&[], 2);
                    }
                    return (&rest[1..index], index + 1);
                }
            }
            return (&[], 1);
        }
        if special(rest[0]) {
            return (&rest[0..1], 1);
        }
        let length = rest
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
            .count();
        (&rest[..length], length)
    }
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' && index + 1 < bytes.len() {
            out.extend_from_slice(&bytes[start..index]);
            let (name, width) = shell_name(&bytes[index + 1..]);
            if name.is_empty() && width > 0 {
                // Bad syntax: eaten.
            } else if name.is_empty() {
                out.push(b'$');
            } else {
                let name = String::from_utf8_lossy(name);
                out.extend_from_slice(
                    env.get(name.as_ref())
                        .map(String::as_str)
                        .unwrap_or_default()
                        .as_bytes(),
                );
            }
            index += width;
            start = index + 1;
        }
        index += 1;
    }
    out.extend_from_slice(&bytes[start.min(bytes.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// CST's checks of a command test's output, in CST's order and words (schema 1.0.0's
/// messages do not quote the output: `pkg/types/v1/command.go`).
pub fn command(
    test: &CommandTest,
    stdout: &str,
    stderr: &str,
    exit_code: i64,
    schema: SchemaVersion,
) -> Vec<String> {
    let quoted = |text: &str| match schema {
        SchemaVersion::V1 => String::new(),
        SchemaVersion::V2 => format!(" '{text}'"),
    };
    let mut errors = Vec::new();
    for pattern in &test.expected_error {
        if !matches(pattern, stderr) {
            errors.push(format!(
                "Expected string '{pattern}' not found in error{}",
                quoted(stderr)
            ));
        }
    }
    for pattern in &test.excluded_error {
        if matches(pattern, stderr) {
            errors.push(format!(
                "Excluded string '{pattern}' found in error{}",
                quoted(stderr)
            ));
        }
    }
    for pattern in &test.expected_output {
        if !matches(pattern, stdout) {
            errors.push(format!(
                "Expected string '{pattern}' not found in output{}",
                quoted(stdout)
            ));
        }
    }
    for pattern in &test.excluded_output {
        if matches(pattern, stdout) {
            errors.push(format!(
                "Excluded string '{pattern}' found in output{}",
                quoted(stdout)
            ));
        }
    }
    if test.exit_code != exit_code {
        errors.push(format!(
            "Test '{}' exited with incorrect error code. Expected: {}, Actual: {exit_code}",
            test.name, test.exit_code
        ));
    }
    errors
}

/// CST's file existence checks; `found` is the file's metadata or why it could not be examined.
pub fn file_existence(test: &FileExistenceTest, found: Result<&FileInfo, &str>) -> Vec<String> {
    let info = match (found, test.should_exist) {
        (Err(error), true) => return vec![format!("Error examining file in container: {error}")],
        (Ok(_), false) => return vec![format!("File {} should not exist but does", test.path)],
        (Err(_), false) => return Vec::new(),
        (Ok(info), true) => info,
    };
    let mut errors = Vec::new();
    let mode = info.mode_string();
    if !test.permissions.is_empty() && mode != test.permissions {
        errors.push(format!(
            "{} has incorrect permissions. Expected: {}, Actual: {mode}",
            test.path, test.permissions
        ));
    }
    let bit = match test.is_executable_by.as_str() {
        "any" => Some(0o111),
        "owner" => Some(0o100),
        "group" => Some(0o010),
        "other" => Some(0o001),
        _ => None,
    };
    if let Some(bit) = bit
        && info.mode & bit == 0
    {
        errors.push(format!(
            "{} has incorrect executable bit. Expected to be executable by {}, Actual: {mode}",
            test.path, test.is_executable_by
        ));
    }
    if let Some(uid) = test.uid.filter(|uid| *uid != -1)
        && i64::try_from(info.uid).ok() != Some(uid)
    {
        errors.push(format!(
            "{} has incorrect user ownership. Expected: {uid}, Actual: {}",
            test.path, info.uid
        ));
    }
    if let Some(gid) = test.gid.filter(|gid| *gid != -1)
        && i64::try_from(info.gid).ok() != Some(gid)
    {
        errors.push(format!(
            "{} has incorrect group ownership. Expected: {gid}, Actual: {}",
            test.path, info.gid
        ));
    }
    errors
}

/// CST's file content checks; `content` is the file's bytes or why it could not be read.
/// Schema 1.0.0 words a found excluded string as a missing expected one (CST's
/// copy-paste in `pkg/types/v1/file_content.go`).
pub fn file_content(
    test: &FileContentTest,
    content: Result<&[u8], &str>,
    schema: SchemaVersion,
) -> Vec<String> {
    let contents = match content {
        Ok(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Err(error) => return vec![format!("Failed to open {}. Error: {error}", test.path)],
    };
    let mut errors = Vec::new();
    for pattern in &test.expected_contents {
        if !matches(pattern, &contents) {
            errors.push(format!(
                "Expected string '{pattern}' not found in file content string '{contents}'"
            ));
        }
    }
    let excluded = match schema {
        SchemaVersion::V1 => "Expected string '{pattern}' not found",
        SchemaVersion::V2 => "Excluded string '{pattern}' found",
    };
    for pattern in &test.excluded_contents {
        if matches(pattern, &contents) {
            errors.push(format!(
                "{} in file content string '{contents}'",
                excluded.replace("{pattern}", pattern)
            ));
        }
    }
    errors
}

/// The parts of an image's configuration CST's metadata test reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: BTreeMap<String, String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub volumes: Vec<String>,
    pub workdir: String,
    /// Port numbers only (`8080`, not `8080/tcp`), as CST's `Port()` gives them.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub user: String,
}

impl ImageConfig {
    /// From Docker's `Config` object (image inspect, or the saved image's `config`).
    pub fn from_docker(config: &serde_json::Value) -> ImageConfig {
        let strings = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(|value| value.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let keys = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(|value| value.as_object())
                .map(|members| members.keys().cloned().collect())
                .unwrap_or_default()
        };
        let text = |key: &str| {
            config
                .get(key)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        ImageConfig {
            env: strings("Env")
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map_or((pair.clone(), String::new()), |(key, value)| {
                            (key.to_owned(), value.to_owned())
                        })
                })
                .collect(),
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            volumes: keys("Volumes"),
            workdir: text("WorkingDir"),
            exposed_ports: keys("ExposedPorts")
                .iter()
                .map(|port| port.split('/').next().unwrap_or_default().to_owned())
                .collect(),
            labels: config
                .get("Labels")
                .and_then(|value| value.as_object())
                .map(|members| {
                    members
                        .iter()
                        .map(|(key, value)| {
                            (key.clone(), value.as_str().unwrap_or_default().to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            user: text("User"),
        }
    }
}

/// CST's metadata checks, in CST's order and words.
pub fn metadata(test: &MetadataTest, config: &ImageConfig) -> Vec<String> {
    let mut errors = Vec::new();
    for pair in &test.env_vars {
        match config.env.get(&pair.key) {
            Some(value)
                if if pair.is_regex {
                    matches(&pair.value, value)
                } else {
                    pair.value == *value
                } => {}
            Some(value) => errors.push(format!(
                "env var {} value {value} does not match expected value: {}",
                pair.key, pair.value
            )),
            None => errors.push(format!("variable {} not found in image env", pair.key)),
        }
    }
    for pair in &test.unbound_env_vars {
        if config.env.contains_key(&pair.key) {
            errors.push(format!(
                "env variable {} should not be present in image metadata",
                pair.key
            ));
        }
    }
    for pair in &test.labels {
        match config.labels.get(&pair.key) {
            Some(value)
                if if pair.is_regex {
                    matches(&pair.value, value)
                } else {
                    pair.value == *value
                } => {}
            Some(value) => errors.push(format!(
                "label {} value {value} does not match expected value: {}",
                pair.key, pair.value
            )),
            None => errors.push(format!("label {} not found in image metadata", pair.key)),
        }
    }
    if let Some(cmd) = &test.cmd
        && *cmd != config.cmd
    {
        errors.push(format!(
            "Image Cmd {:?} does not match expected Cmd: {cmd:?}",
            config.cmd
        ));
    }
    if let Some(entrypoint) = &test.entrypoint
        && *entrypoint != config.entrypoint
    {
        errors.push(format!(
            "Image entrypoint {:?} does not match expected entrypoint: {entrypoint:?}",
            config.entrypoint
        ));
    }
    if !test.workdir.is_empty() && test.workdir != config.workdir {
        errors.push(format!(
            "Image workdir {} does not match config workdir: {}",
            config.workdir, test.workdir
        ));
    }
    if !test.user.is_empty() && test.user != config.user {
        errors.push(format!(
            "Image user {} does not match config user: {}",
            config.user, test.user
        ));
    }
    for port in &test.exposed_ports {
        if !config.exposed_ports.contains(port) {
            errors.push(format!("Port {port} not found in config"));
        }
    }
    for port in &test.unexposed_ports {
        if config.exposed_ports.contains(port) {
            errors.push(format!("Port {port} should not be exposed"));
        }
    }
    for volume in &test.volumes {
        if !config.volumes.contains(volume) {
            errors.push(format!("Volume {volume} not found in config"));
        }
    }
    for volume in &test.unmounted_volumes {
        if config.volumes.contains(volume) {
            errors.push(format!("Volume {volume} should not be mounted"));
        }
    }
    errors
}

/// Words whose presence in a license file fails the license test (CST's blacklist).
const FORBIDDEN_LICENSES: [&str; 2] = ["AGPL", "WTFPL"];
/// Debian packages that pass the license test regardless (CST's whitelist).
pub const LICENSE_ALLOWED_PACKAGES: [&str; 1] = ["libgnutls30"];

/// CST's check of one license file.
pub fn license_file(path: &str, content: Result<&[u8], &str>) -> Option<String> {
    let contents = match content {
        Ok(bytes) => String::from_utf8_lossy(bytes).to_uppercase(),
        Err(error) => return Some(format!("Error reading license file for {path}: {error}")),
    };
    FORBIDDEN_LICENSES
        .iter()
        .find(|word| contents.contains(*word))
        .map(|word| format!("Invalid license for {path}, license contains {word}"))
}

/// Whether a stat result is a directory, for reading files.
pub fn is_dir(info: &FileInfo) -> bool {
    info.kind == Kind::Dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_regex_classes_are_ascii_on_non_ascii_output() {
        // (pattern, text, Go's regexp.MatchString)
        let cases = [
            (r"^\d+$", "١٢٣", false),
            (r"^\d+$", "123", true),
            (r"^\w+$", "héllo", false),
            (r"^\w+$", "hello_1", true),
            (r"\s", "a\u{a0}b", false),
            (r"\s", "a\u{85}b", false),
            (r"\s", "a\u{b}b", false),
            (r"\s", "a\tb", true),
            (r"\bé", "é", false),
            (r"\bx\b", "éxé", true),
            (r"\Bx", "éx", false),
            (r"\Bx", "ax", true),
            (r"^[\d]+$", "٣", false),
            (r"^[^\w]+$", "é", true),
            (r"^\D$", "٣", true),
            (r"\Qa.b*\E", "xa.b*y", true),
            (r"\Qa.b\E", "axb", false),
            (r"^\Q(x)\E$", "(x)", true),
            (r"^[a&&b]+$", "&&", true),
            (r"^[[:alpha:]]+$", "abc", true),
            (r"^[]a]+$", "]a", true),
            (r"(?i)straße", "STRASSE", false),
            (r"\<a\>", "<a>", true),
            (r"\<a", "a", false),
            (r"a\.b", "axb", false),
        ];
        for (pattern, text, expected) in cases {
            let regex = go_regex(pattern).unwrap_or_else(|error| panic!("{pattern}: {error}"));
            assert_eq!(regex.is_match(text), expected, "{pattern} on {text:?}");
        }
    }

    #[test]
    fn expand_is_go_os_expand() {
        let env: BTreeMap<String, String> = [
            ("HOME".to_owned(), "/root".to_owned()),
            ("A_1".to_owned(), "x".to_owned()),
        ]
        .into();
        assert_eq!(expand("$HOME/x ${A_1}y $NOPE.z", &env), "/root/x xy .z");
        assert_eq!(expand("cost: 5$", &env), "cost: 5$");
        assert_eq!(expand("${}a ${A:-d} $$", &env), "a  ");
        assert_eq!(expand("a$ b", &env), "a$ b");
    }

    #[test]
    fn regexes_are_unanchored_like_match_string() {
        let test = CommandTest {
            name: "t".into(),
            expected_output: vec!["ell".into()],
            excluded_output: vec!["^x".into()],
            ..Default::default()
        };
        assert!(command(&test, "hello\n", "", 0, SchemaVersion::V2).is_empty());
        assert_eq!(
            command(&test, "hello\n", "", 3, SchemaVersion::V2),
            ["Test 't' exited with incorrect error code. Expected: 0, Actual: 3"]
        );
    }

    #[test]
    fn schema_1_0_0_words_its_messages_as_cst_v1_does() {
        let test = CommandTest {
            name: "t".into(),
            expected_output: vec!["x".into()],
            excluded_error: vec!["e".into()],
            ..Default::default()
        };
        assert_eq!(
            command(&test, "out\n", "err\n", 0, SchemaVersion::V1),
            [
                "Excluded string 'e' found in error",
                "Expected string 'x' not found in output"
            ]
        );
        assert_eq!(
            command(&test, "out\n", "err\n", 0, SchemaVersion::V2),
            [
                "Excluded string 'e' found in error 'err\n'",
                "Expected string 'x' not found in output 'out\n'"
            ]
        );
        let test = FileContentTest {
            name: "c".into(),
            path: "/c".into(),
            excluded_contents: vec!["secret".into()],
            ..Default::default()
        };
        assert_eq!(
            file_content(&test, Ok(b"a secret"), SchemaVersion::V1),
            ["Expected string 'secret' not found in file content string 'a secret'"]
        );
        assert_eq!(
            file_content(&test, Ok(b"a secret"), SchemaVersion::V2),
            ["Excluded string 'secret' found in file content string 'a secret'"]
        );
    }

    #[test]
    fn executable_bits_and_ownership() {
        let info = FileInfo {
            kind: Kind::File,
            mode: 0o744,
            uid: 0,
            gid: 5,
            link: String::new(),
        };
        let test = FileExistenceTest {
            name: "f".into(),
            path: "/f".into(),
            should_exist: true,
            permissions: "-rwxr--r--".into(),
            uid: Some(0),
            gid: Some(6),
            is_executable_by: "group".into(),
        };
        assert_eq!(
            file_existence(&test, Ok(&info)),
            [
                "/f has incorrect executable bit. Expected to be executable by group, Actual: -rwxr--r--",
                "/f has incorrect group ownership. Expected: 6, Actual: 5"
            ]
        );
        let absent = FileExistenceTest {
            should_exist: false,
            ..test
        };
        assert!(file_existence(&absent, Err("not found")).is_empty());
    }

    #[test]
    fn metadata_ports_are_numbers_and_lists_compare_exactly() {
        let config = ImageConfig::from_docker(
            &serde_json::json!({"Env": ["A=1=2"], "ExposedPorts": {"8080/tcp": {}}, "Cmd": ["web"], "Entrypoint": null}),
        );
        assert_eq!(config.env["A"], "1=2");
        let test = MetadataTest {
            exposed_ports: vec!["8080".into()],
            cmd: Some(vec!["web".into()]),
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        assert!(metadata(&test, &config).is_empty());
        let wrong = MetadataTest {
            exposed_ports: vec!["8080/tcp".into()],
            ..Default::default()
        };
        assert_eq!(
            metadata(&wrong, &config),
            ["Port 8080/tcp not found in config"]
        );
    }

    #[test]
    fn license_words_are_case_insensitive() {
        assert_eq!(
            license_file("/c", Ok(b"GNU Affero agpl")),
            Some("Invalid license for /c, license contains AGPL".into())
        );
        assert_eq!(license_file("/c", Ok(b"MIT")), None);
    }
}
