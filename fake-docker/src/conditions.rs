//! `when:` conditions and the scalars they compare, shared by programs (`program.rs`) and
//! HTTP routes (`http.rs`). A leaf module: it imports only `expand`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::expand::{Scope, expand};

/// A YAML scalar accepted where text is expected (`sleep: 1`, `exit: "${CODE}"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    /// The scalar as text (before expansion).
    pub fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// `when: { var: NAME, equals: "x" }` (or `not_equals`, or numeric `greater_than`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub var: String,
    #[serde(default)]
    pub equals: Option<Scalar>,
    #[serde(default)]
    pub not_equals: Option<Scalar>,
    #[serde(default)]
    pub greater_than: Option<Scalar>,
}

/// Whether a `when:` condition holds for these variables and arguments.
pub fn when_holds(when: &When, vars: &BTreeMap<String, String>, args: &[String]) -> bool {
    let value = vars.get(&when.var).cloned().unwrap_or_default();
    let scope = Scope { vars, args };
    if let Some(expected) = &when.equals
        && value != expand(&expected.text(), &scope)
    {
        return false;
    }
    if let Some(unexpected) = &when.not_equals
        && value == expand(&unexpected.text(), &scope)
    {
        return false;
    }
    if let Some(limit) = &when.greater_than {
        let limit = expand(&limit.text(), &scope);
        match (value.trim().parse::<f64>(), limit.trim().parse::<f64>()) {
            (Ok(v), Ok(l)) if v > l => {}
            _ => return false,
        }
    }
    true
}
