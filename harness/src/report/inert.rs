//! Text from containers and users made inert in a GitHub Actions log.
//!
//! The Actions runner reads every line a step prints and acts on workflow
//! commands in it: `::error::…` at the start of a line (after leading
//! whitespace), and the older `##[error]…` anywhere in a line. It matches them
//! with .NET's culture-aware string search, which skips "ignorable" characters
//! (a soft hyphen, a zero-width space, control characters), so `\u{AD}::error::`
//! counts too. A container that prints such a line, or a scenario named like one,
//! must not create annotations, masks, outputs or groups in the workflow.
//!
//! Under `GITHUB_ACTIONS=true`, every line dockproof prints that can hold such
//! text goes through [`InertWriter`] (the console view, `dockproof cst`, the
//! diagnostics, lint findings) or [`text`] (error lines), which, line by line:
//!
//! 1. replace control and default-ignorable characters with `\u{FFFD}`, so what
//!    the runner compares is what is checked here;
//! 2. prefix a line whose first non-blank characters are `::` with `|`;
//! 3. write `##[` as `# #[`.
//!
//! dockproof's own annotations (`report::github`) are printed directly and are
//! the only lines that begin with `::`. Outside GitHub Actions nothing changes.

use std::borrow::Cow;
use std::io::Write;

/// Whether this process prints into a GitHub Actions log (`GITHUB_ACTIONS=true`).
pub fn github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true")
}

/// A character the runner's comparison would skip, or a control character: both
/// could hide a command from a check that compares characters one by one.
fn hides_from_comparison(character: char) -> bool {
    if character == '\t' {
        return false;
    }
    character.is_control()
        || matches!(
            character,
            '\u{AD}'
                | '\u{34F}'
                | '\u{61C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// One line (no line break in it) made inert.
fn inert_line(line: &str) -> Cow<'_, str> {
    let needs_work = line.chars().any(hides_from_comparison)
        || line.trim_start().starts_with("::")
        || line.contains("##[");
    if !needs_work {
        return Cow::Borrowed(line);
    }
    let cleaned: String = line
        .chars()
        .map(|character| {
            if hides_from_comparison(character) {
                '\u{FFFD}'
            } else {
                character
            }
        })
        .collect();
    let mut out = cleaned.replace("##[", "# #[");
    if out.trim_start().starts_with("::") {
        out.insert(0, '|');
    }
    Cow::Owned(out)
}

/// `text` made inert when `enabled`: every line (split at `\n`, `\r\n` and `\r`,
/// as the runner splits them) as described in the module docs; line breaks kept.
pub fn neutralise(text: &str, enabled: bool) -> Cow<'_, str> {
    if !enabled {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = inert_line(&rest[..end]);
        changed |= matches!(line, Cow::Owned(_));
        out.push_str(&line);
        let mut next = end;
        if rest[end..].starts_with("\r\n") {
            next += 2;
        } else if end < rest.len() {
            next += 1;
        }
        out.push_str(&rest[end..next]);
        rest = &rest[next..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` made inert if this process prints into a GitHub Actions log.
pub fn text(text: &str) -> Cow<'_, str> {
    neutralise(text, github_actions())
}

/// `println!` whose whole text is made inert under GitHub Actions: what the binary
/// prints that can hold a name, a path, a daemon's or a container's words goes through
/// it (`tests/integration/ci_output.rs` fails on a `println!` that is neither this nor allowed).
#[macro_export]
macro_rules! inert_println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // A closed stdout (`| head`) drops the line: never a panic.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            $crate::report::inert::text(&format!($($arg)*))
        );
    }};
}

/// `eprintln!` whose whole text is made inert under GitHub Actions (see [`inert_println!`]).
#[macro_export]
macro_rules! inert_eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            $crate::report::inert::text(&format!($($arg)*))
        );
    }};
}

/// A writer that makes every line written through it inert (when enabled): whole
/// lines are passed on as they complete, a partial one on `flush`.
pub struct InertWriter<W: Write> {
    inner: W,
    enabled: bool,
    pending: Vec<u8>,
}

impl<W: Write> InertWriter<W> {
    /// Wrap `inner`; with `enabled` false, bytes pass through untouched.
    pub fn new(inner: W, enabled: bool) -> Self {
        InertWriter {
            inner,
            enabled,
            pending: Vec::new(),
        }
    }

    /// Wrap `inner`, enabled under GitHub Actions.
    pub fn for_ci(inner: W) -> Self {
        Self::new(inner, github_actions())
    }

    fn write_pending(&mut self, through: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..through).collect();
        let text = String::from_utf8_lossy(&chunk);
        self.inner.write_all(neutralise(&text, true).as_bytes())
    }
}

impl<W: Write> Write for InertWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.enabled {
            return self.inner.write(buf);
        }
        self.pending.extend_from_slice(buf);
        if let Some(last_break) = self
            .pending
            .iter()
            .rposition(|byte| *byte == b'\n' || *byte == b'\r')
        {
            self.write_pending(last_break + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.enabled && !self.pending.is_empty() {
            let all = self.pending.len();
            self.write_pending(all)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for InertWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the runner would take as a command: `::` after leading whitespace, or
    /// `##[` anywhere, once ignorable characters are skipped as its comparison does.
    fn runner_sees_command(line: &str) -> bool {
        let visible: String = line
            .chars()
            .filter(|character| !hides_from_comparison(*character))
            .collect();
        visible.trim_start().starts_with("::") || visible.contains("##[")
    }

    #[test]
    fn commands_in_untrusted_text_are_defused_line_by_line() {
        let hostile = "ok\n::error::pwned\n  ::warning file=a,line=1::x\r::add-mask::y\r\nsee ##[error]z\n\u{AD}::error::soft\n\u{200B}:\u{200B}:error::zw\n#\u{AD}#[group]g\n::set-output name=a::b";
        let out = neutralise(hostile, true);
        for line in out.split(['\n', '\r']) {
            assert!(!runner_sees_command(line), "{line:?} in {out:?}");
        }
        assert!(out.starts_with("ok\n|::error::pwned\n"), "{out:?}");
        assert!(out.contains("see # #[error]z"), "{out:?}");
        // Line breaks are kept as they were.
        assert_eq!(out.matches('\n').count(), hostile.matches('\n').count());
        assert_eq!(out.matches('\r').count(), hostile.matches('\r').count());
    }

    #[test]
    fn outside_ci_and_for_plain_text_nothing_changes() {
        assert!(matches!(
            neutralise("::error::x", false),
            Cow::Borrowed("::error::x")
        ));
        let plain = "PASS demo\n    stderr| a: b\tc\n";
        assert!(matches!(neutralise(plain, true), Cow::Borrowed(_)));
    }

    #[test]
    fn the_writer_defuses_lines_split_across_writes() {
        let mut buffer = Vec::new();
        {
            let mut writer = InertWriter::new(&mut buffer, true);
            writer.write_all(b"first\n:").unwrap();
            writer.write_all(b":error::split\nlast ##").unwrap();
            writer.write_all(b"[debug]").unwrap();
        }
        let out = String::from_utf8(buffer).unwrap();
        assert_eq!(out, "first\n|::error::split\nlast # #[debug]");
    }
}
