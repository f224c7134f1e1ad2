//! A problem found while loading a scenario file: where, what, what was expected and a
//! hint. A leaf module: the loader, variables and the CST loader all make these.

use super::yaml::SourceSpan;

/// One problem found in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the file (line 0 when the problem is the file as a whole).
    pub span: SourceSpan,
    /// What is wrong.
    pub message: String,
    /// What would have been valid.
    pub expected: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(span: SourceSpan, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            expected: None,
            hint: None,
        }
    }

    pub(crate) fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
