//! Just enough Dockerfile reading for the legacy builder's step listing: instructions
//! (continuation lines joined, comments skipped), stages, and the fake's
//! `# dockproof-image: NAME` header.

/// One instruction, as the legacy builder prints it after `Step N/M : `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-cased keyword (`RUN`).
    pub keyword: String,
    /// The instruction as written, continuation lines joined.
    pub text: String,
    /// The arguments after the keyword.
    pub args: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    /// `# dockproof-image: NAME`, naming the fake image definition built from it.
    pub image_header: Option<String>,
}

/// Parses Dockerfile text.
pub fn parse(text: &str) -> Dockerfile {
    let mut dockerfile = Dockerfile::default();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            if let Some(name) = trimmed
                .trim_start_matches('#')
                .trim()
                .strip_prefix("dockproof-image:")
            {
                dockerfile.image_header = Some(name.trim().to_string());
            }
            continue;
        }
        if trimmed.is_empty() && pending.is_empty() {
            continue;
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
    fn run_commands_quote_like_the_builder() {
        assert_eq!(run_command("make all"), "/bin/sh -c make all");
        assert_eq!(run_command("[\"make\", \"all\"]"), "make all");
    }
}
