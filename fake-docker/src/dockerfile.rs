//! Dockerfile reading for the fake's builds: instructions (continuation lines joined,
//! comments skipped) with their line numbers, stages, the fake's
//! `# dockproof-image: NAME` header, and every image fact a real build derives from the
//! file (`derive`): USER, HEALTHCHECK, EXPOSE, ENV, LABEL, CMD, ENTRYPOINT, WORKDIR,
//! VOLUME, across stages, with ARG substitution.

use std::collections::BTreeMap;

use crate::imageconfig::{ImageConfig, RawHealthcheck};

/// One instruction, as the legacy builder prints it after `Step N/M : `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-cased keyword (`RUN`).
    pub keyword: String,
    /// The instruction as written, continuation lines joined.
    pub text: String,
    /// The arguments after the keyword.
    pub args: String,
    /// The 1-based line the instruction starts on.
    pub line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    /// `# dockproof-image: NAME`, naming the fake image definition built from it.
    pub image_header: Option<String>,
    /// Names `# dockproof-context: HOST-PATH NAME` lines add to the build context
    /// (dockproof copies them in before a real build).
    pub context_extras: Vec<String>,
}

/// Parses Dockerfile text.
pub fn parse(text: &str) -> Dockerfile {
    let mut dockerfile = Dockerfile::default();
    let mut pending = String::new();
    let mut first_line = 0;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            if let Some(name) = trimmed
                .trim_start_matches('#')
                .trim()
                .strip_prefix("dockproof-image:")
            {
                dockerfile.image_header = Some(name.trim().to_string());
            }
            if let Some(extra) = trimmed
                .trim_start_matches('#')
                .trim()
                .strip_prefix("dockproof-context:")
                && let Some(name) = extra.split_whitespace().nth(1)
            {
                dockerfile.context_extras.push(name.to_string());
            }
            continue;
        }
        if trimmed.is_empty() && pending.is_empty() {
            continue;
        }
        if pending.is_empty() {
            first_line = index + 1;
        }
        match trimmed.strip_suffix('\\') {
            Some(body) => {
                pending.push_str(body);
                continue;
            }
            None => pending.push_str(trimmed),
        }
        let text = std::mem::take(&mut pending);
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        dockerfile.instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
            text: text.clone(),
            line: first_line,
        });
    }
    dockerfile
}

impl Dockerfile {
    /// How many instructions a build of `target` runs (all without a target);
    /// `None` when no stage has that name.
    pub fn steps_for(&self, target: Option<&str>) -> Option<usize> {
        let Some(target) = target else {
            return Some(self.instructions.len());
        };
        let mut in_target = false;
        let mut end = None;
        for (index, instruction) in self.instructions.iter().enumerate() {
            if instruction.keyword == "FROM" {
                if in_target {
                    break;
                }
                let words: Vec<&str> = instruction.args.split_whitespace().collect();
                in_target = matches!(words.as_slice(), [_, kw, name] if kw.eq_ignore_ascii_case("as") && name.eq_ignore_ascii_case(target));
            }
            if in_target {
                end = Some(index + 1);
            }
        }
        end
    }
}

/// The command a `RUN` runs, as the legacy builder quotes it in its error:
/// shell form → `/bin/sh -c ARGS`; exec form `["a","b"]` → `a b`.
pub fn run_command(args: &str) -> String {
    let trimmed = args.trim();
    if trimmed.starts_with('[')
        && let Ok(words) = serde_json::from_str::<Vec<String>>(trimmed)
    {
        return words.join(" ");
    }
    format!("/bin/sh -c {trimmed}")
}

/// The PATH the builder gives an image built `FROM scratch` (measured: `ENV A=1` on
/// scratch inspects as `["PATH=/usr/local/sbin:...", "A=1"]`).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a build of a Dockerfile gives the image: its configuration, and for each fact
/// the Dockerfile line that set it (for errors naming both lines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    pub config: ImageConfig,
    /// Fact (`user`, `env`, `workdir`, `cmd`, `entrypoint`, `labels`, `exposed_ports`,
    /// `healthcheck`, `volumes`) → the line of the instruction that last set it.
    pub lines: BTreeMap<&'static str, usize>,
    /// How many `FROM`s the build ran (stages up to the target).
    pub stages: usize,
}

/// A Dockerfile the fake cannot read the way the builder does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DeriveError {
    pub line: usize,
    pub message: String,
}

/// The image facts of building `file` up to instruction `total` (see `steps_for`), with
/// `build_args` (`--build-arg`) and `base_config` giving a base image's configuration
/// (`None` for an image the fake does not know: its facts start empty).
pub fn derive(
    file: &Dockerfile,
    total: usize,
    build_args: &BTreeMap<String, String>,
    base_config: &dyn Fn(&str) -> Option<ImageConfig>,
) -> Result<Derived, DeriveError> {
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<(Option<String>, Derived)> = Vec::new();
    // Variables in scope for substitution in the current stage: its ARGs, then its ENV.
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut cmd_set_here = false;
    for instruction in file.instructions.iter().take(total) {
        let line = instruction.line;
        let error = |message: String| DeriveError { line, message };
        if instruction.keyword == "FROM" {
            let words = split_words(&substitute(&instruction.args, &global_args));
            let (base, name) = match words.as_slice() {
                [base] => (base.clone(), None),
                [base, kw, name] if kw.eq_ignore_ascii_case("as") => {
                    (base.clone(), Some(name.to_ascii_lowercase()))
                }
                // `--platform=...` before the image.
                [flag, base, rest @ ..] if flag.starts_with("--") => (
                    base.clone(),
                    match rest {
                        [kw, name] if kw.eq_ignore_ascii_case("as") => {
                            Some(name.to_ascii_lowercase())
                        }
                        _ => None,
                    },
                ),
                _ => {
                    return Err(error(format!(
                        "FROM needs an image, got `{}`",
                        instruction.args
                    )));
                }
            };
            let mut derived = match stages
                .iter()
                .find(|(stage, _)| stage.as_deref() == Some(base.to_ascii_lowercase().as_str()))
            {
                Some((_, earlier)) => earlier.clone(),
                None if base == "scratch" => Derived {
                    config: ImageConfig {
                        env: vec![DEFAULT_PATH.to_string()],
                        ..ImageConfig::default()
                    },
                    ..Derived::default()
                },
                None => Derived {
                    config: base_config(&base).unwrap_or_default(),
                    ..Derived::default()
                },
            };
            derived.stages = stages.last().map_or(0, |(_, d)| d.stages) + 1;
            stages.push((name, derived));
            args.clear();
            cmd_set_here = false;
            continue;
        }
        let Some((_, stage)) = stages.last_mut() else {
            if instruction.keyword == "ARG" {
                for (name, default) in arg_declarations(&instruction.args) {
                    let value = build_args.get(&name).cloned().or(default);
                    global_args.insert(name, value.unwrap_or_default());
                }
                continue;
            }
            return Err(error(format!(
                "{} before the first FROM (a Dockerfile starts with FROM or ARG)",
                instruction.keyword
            )));
        };
        let mut vars = args.clone();
        vars.extend(super_env(&stage.config.env));
        let expanded = substitute(&instruction.args, &vars);
        let config = &mut stage.config;
        let fact: Option<&'static str> = match instruction.keyword.as_str() {
            "ARG" => {
                for (name, default) in arg_declarations(&instruction.args) {
                    let value = build_args
                        .get(&name)
                        .cloned()
                        .or(default)
                        .or_else(|| global_args.get(&name).cloned());
                    args.insert(name, value.unwrap_or_default());
                }
                None
            }
            "ENV" => {
                for (key, value) in key_values(&expanded).map_err(error)? {
                    let entry = format!("{key}={value}");
                    match config
                        .env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
                    {
                        Some(existing) => *existing = entry,
                        None => config.env.push(entry),
                    }
                }
                Some("env")
            }
            "LABEL" => {
                for (key, value) in key_values(&expanded).map_err(error)? {
                    config.labels.insert(key, value);
                }
                Some("labels")
            }
            "USER" => {
                config.user = expanded.trim().to_string();
                Some("user")
            }
            "WORKDIR" => {
                let dir = unquote(expanded.trim());
                config.workdir = if dir.starts_with('/') || config.workdir.is_empty() {
                    normalise_dir(&dir)
                } else {
                    normalise_dir(&format!("{}/{dir}", config.workdir))
                };
                Some("workdir")
            }
            "EXPOSE" => {
                for port in split_words(&expanded) {
                    let port = crate::ports::normalize_port(&port);
                    if !config.exposed_ports.contains(&port) {
                        config.exposed_ports.push(port);
                    }
                }
                Some("exposed_ports")
            }
            "VOLUME" => {
                for volume in command_words(&expanded) {
                    if !config.volumes.contains(&volume) {
                        config.volumes.push(volume);
                    }
                }
                Some("volumes")
            }
            "CMD" => {
                config.cmd = command_form(&instruction.args);
                cmd_set_here = true;
                Some("cmd")
            }
            "ENTRYPOINT" => {
                config.entrypoint = command_form(&instruction.args);
                // Measured in the builder: ENTRYPOINT resets a CMD inherited from the base.
                if !cmd_set_here {
                    config.cmd.clear();
                }
                Some("entrypoint")
            }
            "HEALTHCHECK" => {
                config.healthcheck = Some(healthcheck(&instruction.args).map_err(error)?);
                Some("healthcheck")
            }
            _ => None,
        };
        if let Some(fact) = fact {
            stage.lines.insert(fact, line);
        }
    }
    stages.pop().map(|(_, derived)| derived).ok_or(DeriveError {
        line: 1,
        message: "no FROM instruction".into(),
    })
}

fn super_env(env: &[String]) -> BTreeMap<String, String> {
    crate::expand::env_vars(env)
}

/// `ARG A=1 B` → `[(A, Some(1)), (B, None)]`.
fn arg_declarations(text: &str) -> Vec<(String, Option<String>)> {
    split_words(text)
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, default)) => (name.to_string(), Some(default.to_string())),
            None => (word, None),
        })
        .collect()
}

/// The builder's variable substitution: `$NAME`, `${NAME}`, `${NAME:-default}`,
/// `${NAME:+alternative}`; `\$` is a literal `$`; inside single quotes nothing expands.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    let mut single = false;
    while index < chars.len() {
        let c = chars[index];
        if c == '\'' {
            single = !single;
            out.push(c);
            index += 1;
            continue;
        }
        if c == '\\' && chars.get(index + 1) == Some(&'$') {
            out.push_str("\\$");
            index += 2;
            continue;
        }
        if c != '$' || single {
            out.push(c);
            index += 1;
            continue;
        }
        if chars.get(index + 1) == Some(&'{') {
            let Some(close) = chars[index + 2..].iter().position(|&c| c == '}') else {
                out.push(c);
                index += 1;
                continue;
            };
            let inner: String = chars[index + 2..index + 2 + close].iter().collect();
            let value = if let Some((name, default)) = inner.split_once(":-") {
                vars.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            } else if let Some((name, alternative)) = inner.split_once(":+") {
                if vars.get(name).is_some_and(|v| !v.is_empty()) {
                    alternative.to_string()
                } else {
                    String::new()
                }
            } else {
                vars.get(&inner).cloned().unwrap_or_default()
            };
            out.push_str(&value);
            index += close + 3;
            continue;
        }
        let name: String = chars[index + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        if name.is_empty() {
            out.push(c);
            index += 1;
        } else {
            out.push_str(vars.get(&name).map_or("", String::as_str));
            index += 1 + name.chars().count();
        }
    }
    out
}

/// Words split on unquoted whitespace, with quotes and backslash escapes removed.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn unquote(text: &str) -> String {
    split_words(text).join(" ")
}

/// `K=V K2="v 2"`, or the legacy `K rest of line`, as key/value pairs.
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(text);
    if words.is_empty() {
        return Err("needs at least one KEY=VALUE".into());
    }
    if !words[0].contains('=') {
        // Legacy `ENV KEY value with spaces`.
        let (key, value) = text
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((text.trim(), ""));
        return Ok(vec![(key.to_string(), unquote(value.trim()))]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!("`{word}` is not KEY=VALUE")),
        })
        .collect()
}

/// `["a", "b"]` (exec form) as is; anything else (shell form) as `/bin/sh -c TEXT`.
fn command_form(args: &str) -> Vec<String> {
    let trimmed = args.trim();
    if trimmed.starts_with('[')
        && let Ok(words) = serde_json::from_str::<Vec<String>>(trimmed)
    {
        return words;
    }
    vec!["/bin/sh".into(), "-c".into(), trimmed.to_string()]
}

/// VOLUME's list: a JSON array or words.
fn command_words(args: &str) -> Vec<String> {
    let trimmed = args.trim();
    if trimmed.starts_with('[')
        && let Ok(words) = serde_json::from_str::<Vec<String>>(trimmed)
    {
        return words;
    }
    split_words(trimmed)
}

fn normalise_dir(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `HEALTHCHECK [--interval=..] [--timeout=..] [--start-period=..] [--retries=N] CMD ...`
/// or `HEALTHCHECK NONE`.
fn healthcheck(args: &str) -> Result<RawHealthcheck, String> {
    let mut rest = args.trim();
    let mut check = RawHealthcheck::default();
    while let Some(option) = rest.strip_prefix("--") {
        let (word, after) = option
            .split_once(char::is_whitespace)
            .unwrap_or((option, ""));
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| format!("HEALTHCHECK option `--{word}` needs a value"))?;
        match name {
            "interval" => check.interval = Some(value.to_string()),
            "timeout" => check.timeout = Some(value.to_string()),
            "start-period" => check.start_period = Some(value.to_string()),
            "retries" => {
                check.retries = Some(
                    value
                        .parse()
                        .map_err(|_| format!("HEALTHCHECK --retries={value} is not a number"))?,
                );
            }
            other => return Err(format!("unknown HEALTHCHECK option `--{other}`")),
        }
        rest = after.trim_start();
    }
    let (kind, command) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => check.test = vec!["NONE".into()],
        "CMD" => {
            let command = command.trim();
            check.test = match serde_json::from_str::<Vec<String>>(command) {
                Ok(words) if command.starts_with('[') => {
                    std::iter::once("CMD".to_string()).chain(words).collect()
                }
                _ => vec!["CMD-SHELL".into(), command.to_string()],
            };
        }
        _ => return Err(format!("HEALTHCHECK needs CMD or NONE, got `{kind}`")),
    }
    Ok(check)
}

/// The sources a `COPY`/`ADD` takes from the build context (none with `--from=`).
pub fn context_sources(instruction: &Instruction) -> Vec<String> {
    if !matches!(instruction.keyword.as_str(), "COPY" | "ADD") {
        return Vec::new();
    }
    let args = instruction.args.trim();
    let mut words: Vec<String> = if args.starts_with('[') {
        serde_json::from_str::<Vec<String>>(args).unwrap_or_default()
    } else {
        split_words(args)
    };
    if words.iter().any(|w| w.starts_with("--from")) {
        return Vec::new();
    }
    words.retain(|w| !w.starts_with("--"));
    words.pop();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# dockproof-image: web:1\nFROM bb:1 AS base\nARG G=hi\nRUN echo \\\n  hi\n\n# c\nFROM base AS final\nCMD [\"sh\"]\n";

    #[test]
    fn instructions_and_stages() {
        let file = parse(TEXT);
        assert_eq!(file.image_header.as_deref(), Some("web:1"));
        assert_eq!(file.instructions.len(), 5);
        assert_eq!(file.instructions[2].text, "RUN echo hi");
        assert_eq!(file.steps_for(None), Some(5));
        assert_eq!(file.steps_for(Some("base")), Some(3));
        assert_eq!(file.steps_for(Some("final")), Some(5));
        assert_eq!(file.steps_for(Some("nosuch")), None);
    }

    #[test]
    fn derives_the_image_facts_like_the_builder() {
        // The facts measured from a real legacy build of this file with V=9.
        let file = parse(
            "FROM scratch AS base\nARG V=dev\nENV A=1 B=\"${V}x\"\nLABEL l1=\"v ${V}\"\nWORKDIR /srv/${V}\nEXPOSE 8080 9090/udp\nUSER nobody\nCOPY app.conf /etc/app.conf\nCMD [\"true\"]\n",
        );
        let args = BTreeMap::from([("V".to_string(), "9".to_string())]);
        let derived = derive(&file, 9, &args, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(derived.config.user, "nobody");
        assert_eq!(derived.config.env, [DEFAULT_PATH, "A=1", "B=9x"]);
        assert_eq!(derived.config.workdir, "/srv/9");
        assert_eq!(
            derived.config.labels.get("l1").map(String::as_str),
            Some("v 9")
        );
        assert_eq!(derived.config.exposed_ports, ["8080/tcp", "9090/udp"]);
        assert_eq!(derived.config.cmd, ["true"]);
        assert_eq!(derived.lines.get("user"), Some(&7));
        assert!(derived.config.healthcheck.is_none());
    }

    #[test]
    fn stages_inherit_and_the_target_decides() {
        let file = parse(
            "FROM scratch AS base\nUSER 1000\nFROM base AS final\nHEALTHCHECK --interval=5s CMD [\"test\", \"-f\", \"/x\"]\nFROM scratch AS other\n",
        );
        let final_stage =
            derive(&file, 4, &BTreeMap::new(), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(final_stage.config.user, "1000");
        assert_eq!(final_stage.stages, 2);
        let check = final_stage.config.healthcheck.unwrap_or_default();
        assert_eq!(check.test, ["CMD", "test", "-f", "/x"]);
        assert_eq!(check.interval.as_deref(), Some("5s"));
        let last = derive(&file, 5, &BTreeMap::new(), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(last.config.user, "");
        assert!(last.config.healthcheck.is_none());
    }

    #[test]
    fn copy_sources_skip_other_stages() {
        let file =
            parse("FROM scratch\nCOPY a b /dst/\nCOPY --from=build /x /y\nADD [\"s p\", \"/d\"]\n");
        assert_eq!(context_sources(&file.instructions[1]), ["a", "b"]);
        assert!(context_sources(&file.instructions[2]).is_empty());
        assert_eq!(context_sources(&file.instructions[3]), ["s p"]);
    }

    #[test]
    fn run_commands_quote_like_the_builder() {
        assert_eq!(run_command("make all"), "/bin/sh -c make all");
        assert_eq!(run_command("[\"make\", \"all\"]"), "make all");
    }
}
