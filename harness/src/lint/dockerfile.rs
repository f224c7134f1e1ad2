//! Dockerfile rules (seed 004's deployment patterns, and what jobs and services
//! need to stop cleanly), on the spans of [`super::parser`].

use super::parser::{self, Arguments, Dockerfile, Instruction, ParseError, Pos};
use super::{Finding, Level, Rule, SecretPolicy};

/// The base image of every stage is pinned: a tag other than `latest`, or a digest.
pub const PINNED_BASE: Rule = Rule {
    id: "DF001",
    level: Level::Error,
    summary: "base image tag pinned (no `latest`, no untagged)",
};
/// The final stage runs as a non-root user.
pub const NON_ROOT_USER: Rule = Rule {
    id: "DF002",
    level: Level::Error,
    summary: "`USER` set to a non-root user in the final stage",
};
/// An image that exposes a port (a service) declares a HEALTHCHECK.
pub const HEALTHCHECK: Rule = Rule {
    id: "DF003",
    level: Level::Error,
    summary: "`HEALTHCHECK` present in images that `EXPOSE` a port",
};
/// `COPY` is preferred over `ADD`.
pub const COPY_OVER_ADD: Rule = Rule {
    id: "DF004",
    level: Level::Warning,
    summary: "`COPY` instead of `ADD`",
};
/// No secret values in `ENV` or `ARG`.
pub const NO_SECRETS: Rule = Rule {
    id: "DF005",
    level: Level::Error,
    summary: "no secrets in `ENV`/`ARG`",
};
/// The final `CMD`/`ENTRYPOINT` is in exec form, so the process itself gets SIGTERM.
pub const EXEC_FORM: Rule = Rule {
    id: "DF006",
    level: Level::Error,
    summary: "exec-form `CMD`/`ENTRYPOINT` so the process receives SIGTERM (exit 143, not 137)",
};
/// Files the non-root user must write are copied with `--chown`.
pub const COPY_CHOWN: Rule = Rule {
    id: "DF007",
    level: Level::Warning,
    summary: "`COPY --chown` for files the non-root user writes (a VOLUME, or chowned later)",
};
/// A program that stops gracefully on another signal than SIGTERM gets `STOPSIGNAL`.
pub const STOP_SIGNAL: Rule = Rule {
    id: "DF008",
    level: Level::Warning,
    summary: "`STOPSIGNAL` set when the entrypoint stops gracefully on another signal",
};

/// Every Dockerfile rule.
pub const RULES: [Rule; 8] = [
    PINNED_BASE,
    NON_ROOT_USER,
    HEALTHCHECK,
    COPY_OVER_ADD,
    NO_SECRETS,
    EXEC_FORM,
    COPY_CHOWN,
    STOP_SIGNAL,
];

/// Programs whose graceful stop is another signal than SIGTERM: (program, signal, why).
pub const GRACEFUL_SIGNALS: [(&str, &str, &str); 6] = [
    (
        "nginx",
        "SIGQUIT",
        "nginx stops at once on SIGTERM and gracefully on SIGQUIT",
    ),
    (
        "php-fpm",
        "SIGQUIT",
        "php-fpm stops at once on SIGTERM and gracefully on SIGQUIT",
    ),
    (
        "httpd",
        "SIGWINCH",
        "Apache httpd stops gracefully on SIGWINCH",
    ),
    (
        "apache2",
        "SIGWINCH",
        "Apache httpd stops gracefully on SIGWINCH",
    ),
    (
        "uwsgi",
        "SIGINT",
        "uWSGI reloads on SIGTERM instead of stopping; SIGINT stops it",
    ),
    (
        "postgres",
        "SIGINT",
        "postgres waits for every client on SIGTERM (smart shutdown); SIGINT is the fast shutdown",
    ),
];

/// The `(line, column)` of a finding.
fn at(pos: Pos) -> (usize, usize) {
    (pos.line, pos.column)
}

/// `(repository, tag, digest)` of an image reference.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |index| index + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(&name[last_slash + colon + 1..]),
            digest,
        ),
        None => (name, None, digest),
    }
}

/// The program a command runs: the basename of its first word.
fn program(arguments: &Arguments) -> Option<String> {
    let first = arguments.words().first()?;
    let text = first.unquoted();
    Some(text.rsplit('/').next().unwrap_or(&text).to_owned())
}

/// Whether `path` is `root` or beneath it.
fn under(path: &str, root: &str) -> bool {
    let path = path.trim_end_matches('/');
    let root = root.trim_end_matches('/');
    !root.is_empty() && (path == root || path.starts_with(&format!("{root}/")))
}

/// Parse and lint a Dockerfile's text.
pub fn lint(text: &str, secrets: &SecretPolicy) -> Result<Vec<Finding>, ParseError> {
    let file = parser::parse(text)?;
    Ok(lint_parsed(&file, secrets))
}

/// Lint a parsed Dockerfile.
pub fn lint_parsed(file: &Dockerfile, secrets: &SecretPolicy) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut stage_names: Vec<String> = Vec::new();
    let stages: Vec<usize> = file
        .instructions
        .iter()
        .enumerate()
        .filter(|(_, instruction)| instruction.keyword == "FROM")
        .map(|(index, _)| index)
        .collect();

    for instruction in &file.instructions {
        match instruction.keyword.as_str() {
            "FROM" => check_from(instruction, &mut stage_names, &mut findings),
            "ENV" | "ARG" => check_secrets(instruction, secrets, &mut findings),
            "ADD" => {
                let (line, column) = at(instruction.keyword_span.start);
                findings.push(Finding::at(&COPY_OVER_ADD, line, column, "use `COPY`; `ADD` also fetches URLs and unpacks archives, which is rarely meant"));
            }
            _ => {}
        }
    }
    if let Some(&last_from) = stages.last() {
        check_final_stage(&file.instructions[last_from..], &mut findings);
    }
    findings
}

fn check_from(
    instruction: &Instruction,
    stage_names: &mut Vec<String>,
    findings: &mut Vec<Finding>,
) {
    let words = instruction.arguments.words();
    let Some(image_word) = words.first() else {
        return;
    };
    let image = image_word.unquoted();
    let (line, column) = at(image_word.span.start);
    let earlier_stage = stage_names
        .iter()
        .any(|stage| stage.eq_ignore_ascii_case(&image));
    let (_, tag, digest) = split_image(&image);
    if !earlier_stage && image != "scratch" && !image.contains('$') && digest.is_none() {
        match tag {
            None => findings.push(Finding::at(
                &PINNED_BASE,
                line,
                column,
                format!("base image `{image}` has no tag (means `latest`); pin a version (a digest is better)"),
            )),
            Some("latest") => findings.push(Finding::at(
                &PINNED_BASE,
                line,
                column,
                format!("base image `{image}` uses `latest`; pin a version (a digest is better)"),
            )),
            Some(_) => {}
        }
    }
    if let [_, as_word, alias, ..] = words
        && as_word.text.eq_ignore_ascii_case("as")
    {
        stage_names.push(alias.unquoted());
    }
}

fn check_secrets(instruction: &Instruction, secrets: &SecretPolicy, findings: &mut Vec<Finding>) {
    for (key, value, span) in parser::key_values(instruction) {
        if secrets.looks_secret(&key, value.as_deref().unwrap_or_default()) {
            let (line, column) = at(span.start);
            let message = if instruction.keyword == "ENV" {
                format!(
                    "`ENV {key}` looks like a secret baked into the image; pass it at run time (or allow it with `secrets.allow`)"
                )
            } else {
                format!(
                    "`ARG {key}` has a secret-looking default; build args end up in the image history (use `RUN --mount=type=secret`)"
                )
            };
            findings.push(Finding::at(&NO_SECRETS, line, column, message));
        }
    }
}

/// Rules about what the image runs: its last stage, from its FROM on.
fn check_final_stage(stage: &[Instruction], findings: &mut Vec<Finding>) {
    let Some(from) = stage.first() else {
        return;
    };
    let base = from
        .arguments
        .words()
        .first()
        .map(|word| {
            let image = word.unquoted();
            let (repository, _, _) = split_image(&image);
            repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_owned()
        })
        .unwrap_or_default();
    let mut user: Option<(&Instruction, String)> = None;
    let mut healthcheck = false;
    let mut expose: Option<&Instruction> = None;
    let mut stop_signal: Option<String> = None;
    let mut command: Option<&Instruction> = None;
    let mut entrypoint: Option<&Instruction> = None;
    let mut volumes: Vec<String> = Vec::new();
    for instruction in stage {
        match instruction.keyword.as_str() {
            "USER" => {
                let name = instruction
                    .arguments
                    .words()
                    .first()
                    .map(|word| word.unquoted())
                    .unwrap_or_default();
                user = Some((instruction, name));
            }
            "HEALTHCHECK" => {
                healthcheck = instruction
                    .subcommand
                    .as_ref()
                    .is_some_and(|sub| sub.text.eq_ignore_ascii_case("cmd"));
            }
            "EXPOSE" => expose = expose.or(Some(instruction)),
            "STOPSIGNAL" => {
                stop_signal = instruction
                    .arguments
                    .words()
                    .first()
                    .map(|word| word.unquoted().to_ascii_uppercase());
            }
            "CMD" => command = Some(instruction),
            "ENTRYPOINT" => {
                entrypoint = Some(instruction);
                // An ENTRYPOINT resets the CMD inherited so far.
                command = None;
            }
            "VOLUME" => volumes.extend(
                instruction
                    .arguments
                    .words()
                    .iter()
                    .map(|word| word.unquoted()),
            ),
            _ => {}
        }
    }
    let user_name = user
        .as_ref()
        .map(|(_, name)| name.split(':').next().unwrap_or_default().to_owned());
    match &user {
        None => {
            let (line, column) = at(from.keyword_span.start);
            findings.push(Finding::at(
                &NON_ROOT_USER,
                line,
                column,
                "the final stage sets no `USER`, so it runs as root",
            ));
        }
        Some((instruction, _)) => {
            if let Some(name) = &user_name
                && (name == "root" || name == "0")
            {
                let (line, column) = at(instruction.keyword_span.start);
                findings.push(Finding::at(
                    &NON_ROOT_USER,
                    line,
                    column,
                    format!("`USER {name}` runs as root; use a non-root user"),
                ));
            }
        }
    }
    if let (Some(instruction), false) = (expose, healthcheck) {
        let (line, column) = at(instruction.keyword_span.start);
        findings.push(Finding::at(
            &HEALTHCHECK,
            line,
            column,
            "the image exposes a port (a service) but has no `HEALTHCHECK`",
        ));
    }
    // DF006: the process the container runs is the one `docker stop` signals.
    for instruction in [entrypoint, command].into_iter().flatten() {
        if let Arguments::Shell { text, .. } = &instruction.arguments
            && !text.trim_start().starts_with("exec ")
        {
            let (line, column) = at(instruction.keyword_span.start);
            let keyword = &instruction.keyword;
            findings.push(Finding::at(
                &EXEC_FORM,
                line,
                column,
                format!("shell-form `{keyword}` runs under `/bin/sh -c`, which does not pass SIGTERM on: `docker stop` waits, then SIGKILLs (exit 137, not 143); write `{keyword} [\"…\"]` or start with `exec`"),
            ));
        }
    }
    // DF007: a non-root user cannot write files COPY gave to root.
    let non_root = user_name
        .as_deref()
        .is_some_and(|name| name != "root" && name != "0");
    if non_root {
        check_copy_chown(stage, &volumes, findings);
    }
    // DF008: the program `docker stop` stops should get the signal it stops on.
    let main = entrypoint.or(command);
    if let Some(instruction) = main
        && let Some(program) = program(&instruction.arguments)
        && let Some((_, signal, why)) = GRACEFUL_SIGNALS
            .iter()
            .find(|(name, _, _)| *name == program)
        && stop_signal.as_deref() != Some(*signal)
        && base != program
    {
        let (line, column) = at(instruction.keyword_span.start);
        let current = stop_signal.as_deref().unwrap_or("SIGTERM (the default)");
        findings.push(Finding::at(
            &STOP_SIGNAL,
            line,
            column,
            format!("`{program}` is stopped with {current}: {why}; add `STOPSIGNAL {signal}`"),
        ));
    }
}

/// COPY/ADD without `--chown` into a VOLUME, or into a path a later RUN chowns.
fn check_copy_chown(stage: &[Instruction], volumes: &[String], findings: &mut Vec<Finding>) {
    for (index, instruction) in stage.iter().enumerate() {
        if !matches!(instruction.keyword.as_str(), "COPY" | "ADD")
            || instruction.flag("chown").is_some()
        {
            continue;
        }
        let Some(destination) = instruction
            .arguments
            .words()
            .last()
            .map(|word| word.unquoted())
        else {
            continue;
        };
        let volume = volumes.iter().find(|volume| under(&destination, volume));
        let chowned_later = stage[index + 1..].iter().any(|later| {
            later.keyword == "RUN"
                && later
                    .arguments
                    .words()
                    .windows(2)
                    .any(|pair| pair[0].text == "chown" || pair[0].text.ends_with("/chown"))
                && later.arguments.words().iter().any(|word| {
                    word.unquoted().trim_end_matches('/') == destination.trim_end_matches('/')
                })
        });
        let why = match (volume, chowned_later) {
            (Some(volume), _) => format!("the VOLUME `{volume}` the non-root user writes"),
            (None, true) => "a path a later `RUN chown` hands to the user (a second copy of every file in a new layer)".to_owned(),
            (None, false) => continue,
        };
        let (line, column) = at(instruction.keyword_span.start);
        findings.push(Finding::at(
            &COPY_CHOWN,
            line,
            column,
            format!("`{}` into `{destination}`, {why}, leaves the files owned by root; add `--chown=<user>:<group>`", instruction.keyword),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<(&'static str, usize)> {
        let mut found: Vec<_> = lint(text, &SecretPolicy::default())
            .unwrap()
            .into_iter()
            .map(|finding| {
                let id = RULES
                    .iter()
                    .find(|rule| rule.id == finding.rule)
                    .map_or("?", |rule| rule.id);
                (id, finding.line)
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_good_multi_stage_file_is_clean() {
        let text = "FROM debian:12.5 AS build\nRUN make\n\nFROM debian:12.5\nCOPY --from=build /out /app\nEXPOSE 8080\nHEALTHCHECK CMD wget -q localhost:8080/health\nUSER 1000:1000\nCMD [\"/app\"]\n";
        assert_eq!(ids(text), vec![]);
    }

    #[test]
    fn each_rule_names_its_line() {
        let text = "FROM node\nARG NPM_TOKEN=abc123\nFROM alpine:latest AS final\nADD app.tar.gz /app\nENV DB_PASSWORD=hunter2 LOG=debug\nEXPOSE 80\nUSER root\n";
        assert_eq!(
            ids(text),
            vec![
                ("DF001", 1),
                ("DF001", 3),
                ("DF002", 7),
                ("DF003", 6),
                ("DF004", 4),
                ("DF005", 2),
                ("DF005", 5)
            ]
        );
    }

    #[test]
    fn earlier_stages_scratch_and_digests_count_as_pinned() {
        let text = "FROM scratch AS base\nFROM base\nFROM busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000\nUSER 65534\n";
        assert_eq!(ids(text), vec![]);
        assert_eq!(
            ids("FROM registry:5000/team/app\nUSER 1\n"),
            vec![("DF001", 1)]
        );
        assert_eq!(ids("FROM registry:5000/team/app:2.1\nUSER 1\n"), vec![]);
    }

    #[test]
    fn a_missing_user_points_at_the_final_from() {
        assert_eq!(
            ids("FROM debian:12 AS a\nUSER app\nFROM debian:12\nRUN true\n"),
            vec![("DF002", 3)]
        );
    }

    #[test]
    fn shell_form_cmd_and_entrypoint_lose_sigterm() {
        assert_eq!(
            ids("FROM debian:12\nUSER 1\nCMD python app.py\n"),
            vec![("DF006", 3)]
        );
        assert_eq!(
            ids("FROM debian:12\nUSER 1\nENTRYPOINT /app --serve\n"),
            vec![("DF006", 3)]
        );
        // exec form, or `exec` in the shell form: the process is PID 1 and gets SIGTERM.
        assert_eq!(
            ids("FROM debian:12\nUSER 1\nCMD [\"python\", \"app.py\"]\n"),
            vec![]
        );
        assert_eq!(
            ids("FROM debian:12\nUSER 1\nCMD exec python app.py\n"),
            vec![]
        );
        // Only the final stage's command runs.
        assert_eq!(
            ids("FROM debian:12 AS a\nCMD make\nFROM debian:12\nUSER 1\nCMD [\"/app\"]\n"),
            vec![]
        );
    }

    #[test]
    fn copy_without_chown_into_what_the_user_writes() {
        let volume = "FROM debian:12\nVOLUME /data\nCOPY seed/ /data/seed/\nCOPY --chown=app:app more/ /data/more/\nCOPY bin/ /usr/local/bin/\nUSER app\nCMD [\"/app\"]\n";
        assert_eq!(ids(volume), vec![("DF007", 3)]);
        let chowned = "FROM debian:12\nCOPY . /srv/app\nRUN chown -R app:app /srv/app\nUSER app\nCMD [\"/app\"]\n";
        assert_eq!(ids(chowned), vec![("DF007", 2)]);
        // Running as root, ownership does not matter.
        assert_eq!(
            ids("FROM debian:12\nVOLUME /data\nCOPY x /data/x\nUSER root\nCMD [\"/app\"]\n"),
            vec![("DF002", 4)]
        );
    }

    #[test]
    fn programs_that_stop_on_another_signal_need_stopsignal() {
        assert_eq!(
            ids("FROM debian:12\nUSER www\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n"),
            vec![("DF008", 3)]
        );
        assert_eq!(
            ids("FROM debian:12\nSTOPSIGNAL SIGQUIT\nUSER www\nCMD [\"nginx\"]\n"),
            vec![]
        );
        assert_eq!(
            ids("FROM debian:12\nSTOPSIGNAL SIGTERM\nUSER u\nENTRYPOINT [\"/usr/sbin/php-fpm\"]\n"),
            vec![("DF008", 4)]
        );
        // The official image sets it already.
        assert_eq!(ids("FROM nginx:1.27\nUSER www\nCMD [\"nginx\"]\n"), vec![]);
    }

    #[test]
    fn secret_allow_list_and_urls_that_mention_token() {
        assert_eq!(
            ids("FROM a:1\nENV TOKEN_URL=https://auth.example.com/oauth/token\nUSER 1\n"),
            vec![]
        );
        assert_eq!(
            ids("FROM a:1\nENV TOKEN_ENDPOINT=https://auth.example.com/token\nUSER 1\n"),
            vec![]
        );
        assert_eq!(
            ids("FROM a:1\nENV API_TOKEN=abc123\nUSER 1\n"),
            vec![("DF005", 2)]
        );
        let policy = SecretPolicy {
            allow: vec!["API_TOKEN".into()],
        };
        assert!(
            lint("FROM a:1\nENV API_TOKEN=abc123\nUSER 1\n", &policy)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let text = "FROM a:1\nRUN <<EOF\nUSER root\nADD x y\nEOF\nUSER 1\nCMD [\"/app\"]\n";
        assert_eq!(ids(text), vec![]);
    }
}
