//! Dockerfile rules (seed 004's deployment patterns).

use dockerfile_parser::{Dockerfile, Instruction};

use super::{Finding, Level, Rule, looks_secret};

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

/// Every Dockerfile rule.
pub const RULES: [Rule; 5] = [
    PINNED_BASE,
    NON_ROOT_USER,
    HEALTHCHECK,
    COPY_OVER_ADD,
    NO_SECRETS,
];

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Lint a Dockerfile's text; `Err` when it cannot be parsed.
pub fn lint(text: &str) -> Result<Vec<Finding>, String> {
    let dockerfile = Dockerfile::parse(text).map_err(|error| error.to_string())?;
    let line = |offset: usize| line_of(text, offset);
    let mut findings = Vec::new();
    let mut stage_names: Vec<String> = Vec::new();
    // State of the stage being read; reset at every FROM so only the final stage counts.
    let mut final_from_line = 0;
    let mut user: Option<(usize, String)> = None;
    let mut healthcheck = false;
    let mut expose_line: Option<usize> = None;

    for instruction in &dockerfile.instructions {
        match instruction {
            Instruction::From(from) => {
                final_from_line = line(from.span.start);
                user = None;
                healthcheck = false;
                expose_line = None;
                let image = from.image.content.as_str();
                let parsed = &from.image_parsed;
                let earlier_stage = stage_names
                    .iter()
                    .any(|stage| stage.eq_ignore_ascii_case(image));
                if !earlier_stage
                    && image != "scratch"
                    && !image.contains('$')
                    && parsed.hash.is_none()
                {
                    match parsed.tag.as_deref() {
                        None => findings.push(Finding::new(
                            &PINNED_BASE,
                            line(from.span.start),
                            format!(
                                "base image `{image}` has no tag (means `latest`); pin a version"
                            ),
                        )),
                        Some("latest") => findings.push(Finding::new(
                            &PINNED_BASE,
                            line(from.span.start),
                            format!("base image `{image}` uses `latest`; pin a version"),
                        )),
                        Some(_) => {}
                    }
                }
                if let Some(alias) = &from.alias {
                    stage_names.push(alias.content.clone());
                }
            }
            Instruction::Env(env) => {
                for var in &env.vars {
                    let value = var.value.to_string();
                    if looks_secret(&var.key.content, &value) {
                        findings.push(Finding::new(&NO_SECRETS, line(var.span.start), format!("`ENV {}` looks like a secret baked into the image; pass it at run time", var.key.content)));
                    }
                }
            }
            Instruction::Arg(arg) => {
                let value = arg
                    .value
                    .as_ref()
                    .map(|value| value.content.as_str())
                    .unwrap_or_default();
                if looks_secret(&arg.name.content, value) {
                    findings.push(Finding::new(&NO_SECRETS, line(arg.span.start), format!("`ARG {}` has a secret-looking default; build args end up in the image history", arg.name.content)));
                }
            }
            Instruction::Misc(misc) => {
                let keyword = misc.instruction.content.to_ascii_uppercase();
                let arguments = misc.arguments.to_string();
                match keyword.as_str() {
                    "USER" => user = Some((line(misc.span.start), arguments.trim().to_owned())),
                    "HEALTHCHECK" => healthcheck = !arguments.trim().eq_ignore_ascii_case("none"),
                    "EXPOSE" => expose_line = expose_line.or(Some(line(misc.span.start))),
                    "ADD" => findings.push(Finding::new(&COPY_OVER_ADD, line(misc.span.start), "use `COPY`; `ADD` also fetches URLs and unpacks archives, which is rarely meant")),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if final_from_line > 0 {
        match &user {
            None => findings.push(Finding::new(
                &NON_ROOT_USER,
                final_from_line,
                "the final stage sets no `USER`, so it runs as root",
            )),
            Some((line, name)) => {
                let name = name.split(':').next().unwrap_or_default();
                if name == "root" || name == "0" {
                    findings.push(Finding::new(
                        &NON_ROOT_USER,
                        *line,
                        format!("`USER {name}` runs as root; use a non-root user"),
                    ));
                }
            }
        }
        if let (Some(line), false) = (expose_line, healthcheck) {
            findings.push(Finding::new(
                &HEALTHCHECK,
                line,
                "the image exposes a port (a service) but has no `HEALTHCHECK`",
            ));
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<(&'static str, usize)> {
        lint(text)
            .unwrap()
            .into_iter()
            .map(|finding| (finding.rule, finding.line))
            .collect()
    }

    #[test]
    fn a_good_multi_stage_file_is_clean() {
        let text = "FROM debian:12.5 AS build\nRUN make\n\nFROM debian:12.5\nCOPY --from=build /out /app\nEXPOSE 8080\nHEALTHCHECK CMD wget -q localhost:8080/health\nUSER 1000:1000\nCMD [\"/app\"]\n";
        assert_eq!(ids(text), vec![]);
    }

    #[test]
    fn each_rule_names_its_line() {
        let text = "FROM node\nARG NPM_TOKEN=abc123\nFROM alpine:latest AS final\nADD app.tar.gz /app\nENV DB_PASSWORD=hunter2 LOG=debug\nEXPOSE 80\nUSER root\n";
        let mut found = ids(text);
        found.sort();
        assert_eq!(
            found,
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
    }

    #[test]
    fn a_missing_user_points_at_the_final_from() {
        assert_eq!(
            ids("FROM debian:12 AS a\nUSER app\nFROM debian:12\nRUN true\n"),
            vec![("DF002", 3)]
        );
    }
}
