//! Docker-style (cobra/pflag) argument parsing, with docker's exact error texts.
//!
//! clap is not used here on purpose: the fake must reproduce pflag's messages and
//! rules (`--name=x`, `-e K=V`, `-it`, flags after positionals except for run/create/exec).

use std::fmt::Write as _;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A value flag; the text names the value type in `--help` (`string`, `list`, ...).
    Value(&'static str),
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub help: &'static str,
}

/// How many positional arguments a command needs.
#[derive(Debug, Clone, Copy)]
pub enum Arity {
    AtLeast(usize),
    Exactly(usize),
    /// Between min and max (inclusive), like `docker port`.
    Range(usize, usize),
    Any,
}

/// A command's syntax.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// As typed after `docker`, e.g. `image inspect`.
    pub name: &'static str,
    /// The usage line after `docker `.
    pub usage: &'static str,
    pub about: &'static str,
    pub flags: &'static [Flag],
    /// pflag's interspersed mode: flags may follow positionals (false for run/create/exec).
    pub interspersed: bool,
    pub arity: Arity,
}

/// Parsed flags and positionals.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: Vec<(&'static str, String)>,
    pub positionals: Vec<String>,
}

impl Parsed {
    /// Whether a bool flag ended up true.
    pub fn bool(&self, long: &str) -> bool {
        self.last(long).is_some_and(|v| v == "true")
    }

    /// The last value given for a flag.
    pub fn last(&self, long: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(name, _)| *name == long)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for a repeatable flag, in order.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(name, _)| *name == long)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Why parsing stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `--help`/`-h` was given.
    Help,
    /// A usage error: docker prints `message` with the usage line and exits 125;
    /// `argument` is the offending flag as the message names it (`--bogus`, `-z`).
    Usage { message: String, argument: String },
    /// Too few/many positionals: docker prints `docker: ...` and exits 1.
    Arity(String),
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The `-m, --memory` / `--cpus` way pflag names a flag in messages.
pub fn display_name(flag: &Flag) -> String {
    match flag.short {
        Some(short) => format!("-{short}, --{}", flag.long),
        None => format!("--{}", flag.long),
    }
}

impl CommandSpec {
    fn long(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.long == name)
    }

    fn short(&self, name: char) -> Option<&Flag> {
        self.flags.iter().find(|f| f.short == Some(name))
    }

    /// Looks a flag up by its long name (for value-error messages).
    pub fn flag(&self, long: &str) -> Option<&Flag> {
        self.long(long)
    }

    /// Parses `args` (everything after the command name).
    pub fn parse(&self, args: &[String]) -> Result<Parsed, ParseError> {
        let mut parsed = Parsed::default();
        let mut index = 0;
        let mut flags_done = false;
        while index < args.len() {
            let arg = &args[index];
            index += 1;
            if flags_done || arg == "-" || !arg.starts_with('-') {
                parsed.positionals.push(arg.clone());
                if !self.interspersed {
                    flags_done = true;
                }
                continue;
            }
            if arg == "--" {
                flags_done = true;
                continue;
            }
            if let Some(body) = arg.strip_prefix("--") {
                let (name, inline) = match body.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_string())),
                    None => (body, None),
                };
                if name == "help" {
                    return Err(ParseError::Help);
                }
                let flag = self.long(name).ok_or_else(|| ParseError::Usage {
                    message: format!("unknown flag: --{name}"),
                    argument: format!("--{name}"),
                })?;
                let value = match (flag.kind, inline) {
                    (Kind::Bool, None) => "true".to_string(),
                    (Kind::Bool, Some(text)) => parse_bool(&text)
                        .ok_or_else(|| ParseError::Usage {
                            message: format!(
                                "invalid argument \"{text}\" for \"{}\" flag: strconv.ParseBool: parsing \"{text}\": invalid syntax",
                                display_name(flag)
                            ),
                            argument: format!("--{}", flag.long),
                        })?
                        .to_string(),
                    (Kind::Value(_), Some(text)) => text,
                    (Kind::Value(_), None) => {
                        let value = args.get(index).cloned().ok_or_else(|| ParseError::Usage {
                            message: format!("flag needs an argument: --{name}"),
                            argument: format!("--{name}"),
                        })?;
                        index += 1;
                        value
                    }
                };
                parsed.values.push((flag.long, value));
                continue;
            }
            // A cluster of shorthands: `-it`, `-eK=V`, `-e K=V`, `-m=64m`.
            let cluster: Vec<char> = arg[1..].chars().collect();
            let mut position = 0;
            while position < cluster.len() {
                let letter = cluster[position];
                position += 1;
                if letter == 'h' && self.short('h').is_none() {
                    return Err(ParseError::Help);
                }
                let flag = self.short(letter).ok_or_else(|| ParseError::Usage {
                    message: format!("unknown shorthand flag: '{letter}' in {arg}"),
                    argument: arg.clone(),
                })?;
                match flag.kind {
                    Kind::Bool => {
                        let value = if cluster.get(position) == Some(&'=') {
                            let text: String = cluster[position + 1..].iter().collect();
                            position = cluster.len();
                            parse_bool(&text).unwrap_or(false)
                        } else {
                            true
                        };
                        parsed.values.push((flag.long, value.to_string()));
                    }
                    Kind::Value(_) => {
                        let mut rest: String = cluster[position..].iter().collect();
                        if let Some(stripped) = rest.strip_prefix('=') {
                            rest = stripped.to_string();
                        }
                        let value = if !rest.is_empty() {
                            rest
                        } else {
                            let value =
                                args.get(index).cloned().ok_or_else(|| ParseError::Usage {
                                    message: format!(
                                        "flag needs an argument: '{letter}' in -{letter}"
                                    ),
                                    argument: format!("-{letter}"),
                                })?;
                            index += 1;
                            value
                        };
                        parsed.values.push((flag.long, value));
                        position = cluster.len();
                    }
                }
            }
        }
        self.check_arity(parsed.positionals.len())?;
        Ok(parsed)
    }

    fn check_arity(&self, count: usize) -> Result<(), ParseError> {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        // Measured: RequiresMinArgs ends with "See", ExactArgs and RangeArgs with "Run".
        let (message, verb) = match self.arity {
            Arity::AtLeast(min) if count < min => {
                (format!("requires at least {min} {}", plural(min)), "See")
            }
            Arity::Exactly(n) if count != n => (format!("requires {n} {}", plural(n)), "Run"),
            Arity::Range(min, max) if count < min || count > max => (
                format!("requires at least {min} and at most {max} {}", plural(max)),
                "Run",
            ),
            _ => return Ok(()),
        };
        Err(ParseError::Arity(format!(
            "docker: 'docker {}' {message}\n\nUsage:  docker {}\n\n{verb} 'docker {} --help' for more information\n",
            self.name,
            self.usage.replace('\n', "\n\t"),
            self.name
        )))
    }

    /// The text docker prints for a usage error (exit 125).
    pub fn usage_error(&self, message: &str) -> String {
        format!(
            "{message}\n\nUsage:  docker {}\n\nRun 'docker {} --help' for more information\n",
            self.usage.replace('\n', "\n\t"),
            self.name
        )
    }

    /// `invalid argument "V" for "-m, --memory" flag: WHY` plus usage.
    pub fn invalid_value(&self, long: &str, value: &str, why: &str) -> String {
        let name = self
            .long(long)
            .map(display_name)
            .unwrap_or_else(|| format!("--{long}"));
        self.usage_error(&format!(
            "invalid argument \"{value}\" for \"{name}\" flag: {why}"
        ))
    }

    /// `--help` text.
    pub fn help(&self) -> String {
        // Measured: `--help` starts with the usage line, no blank line before it.
        let mut text = format!(
            "Usage:  docker {}\n\n{}\n",
            self.usage.replace('\n', "\n\t"),
            self.about
        );
        if !self.flags.is_empty() {
            text.push_str("\nOptions:\n");
            let rows: Vec<(String, &str)> = self
                .flags
                .iter()
                .map(|flag| {
                    let short = flag
                        .short
                        .map(|c| format!("-{c}, "))
                        .unwrap_or_else(|| "    ".to_string());
                    let value = match flag.kind {
                        Kind::Bool => String::new(),
                        Kind::Value(kind) => format!(" {kind}"),
                    };
                    (format!("  {short}--{}{value}", flag.long), flag.help)
                })
                .collect();
            let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0);
            for (left, help) in rows {
                let _ = writeln!(text, "{left:width$}   {help}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag {
            long: "name",
            short: None,
            kind: Kind::Value("string"),
            help: "",
        },
        Flag {
            long: "env",
            short: Some('e'),
            kind: Kind::Value("list"),
            help: "",
        },
        Flag {
            long: "interactive",
            short: Some('i'),
            kind: Kind::Bool,
            help: "",
        },
        Flag {
            long: "tty",
            short: Some('t'),
            kind: Kind::Bool,
            help: "",
        },
        Flag {
            long: "rm",
            short: None,
            kind: Kind::Bool,
            help: "",
        },
    ];

    const RUN: CommandSpec = CommandSpec {
        name: "run",
        usage: "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
        about: "",
        flags: FLAGS,
        interspersed: false,
        arity: Arity::AtLeast(1),
    };

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_short_and_clusters() {
        let parsed = RUN
            .parse(&args(&[
                "--name=a", "-it", "-e", "A=1", "-eB=2", "--rm", "img", "cmd", "--name", "x",
            ]))
            .unwrap_or_default();
        assert_eq!(parsed.last("name"), Some("a"));
        assert!(parsed.bool("interactive") && parsed.bool("tty") && parsed.bool("rm"));
        assert_eq!(parsed.all("env"), vec!["A=1", "B=2"]);
        assert_eq!(parsed.positionals, args(&["img", "cmd", "--name", "x"]));
    }

    #[test]
    fn interspersed_commands_take_flags_after_positionals() {
        let spec = CommandSpec {
            interspersed: true,
            ..RUN
        };
        let parsed = spec
            .parse(&args(&["t1", "--name", "x"]))
            .unwrap_or_default();
        assert_eq!(parsed.positionals, args(&["t1"]));
        assert_eq!(parsed.last("name"), Some("x"));
    }

    #[test]
    fn errors_read_like_pflag() {
        let usage = |message: &str, argument: &str| ParseError::Usage {
            message: message.into(),
            argument: argument.into(),
        };
        assert_eq!(
            RUN.parse(&args(&["--bogus", "x"])).unwrap_err(),
            usage("unknown flag: --bogus", "--bogus")
        );
        assert_eq!(
            RUN.parse(&args(&["-iz"])).unwrap_err(),
            usage("unknown shorthand flag: 'z' in -iz", "-iz")
        );
        assert_eq!(
            RUN.parse(&args(&["--name"])).unwrap_err(),
            usage("flag needs an argument: --name", "--name")
        );
        assert_eq!(
            RUN.parse(&args(&["-ie"])).unwrap_err(),
            usage("flag needs an argument: 'e' in -e", "-e")
        );
        assert_eq!(
            RUN.parse(&args(&["--rm=maybe", "x"])).unwrap_err(),
            usage(
                "invalid argument \"maybe\" for \"--rm\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax",
                "--rm"
            )
        );
        assert_eq!(RUN.parse(&args(&["--help"])).unwrap_err(), ParseError::Help);
        assert!(matches!(
            RUN.parse(&args(&[])).unwrap_err(),
            ParseError::Arity(_)
        ));
    }
}
