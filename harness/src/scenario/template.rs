//! `{{ variable }}` substitution in scenario strings (env values, commands,
//! filestore keys, URLs). Only known variables exist; the loader rejects others.
//! `{{ secret.NAME }}` gives a declared secret's value (the loader checks the name).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

/// The variables a scenario may use.
pub const VARIABLES: [&str; 10] = [
    "job.id",
    "run.id",
    "scenario.name",
    "service.NAME.port",
    "service.NAME.host",
    "service.NAME.url",
    "secret.NAME",
    "vars.NAME",
    "env.NAME",
    "steps.STEP.KEY",
];

/// Where a started service can be reached from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAddress {
    pub host: String,
    /// The first published port's host port.
    pub port: u16,
}

/// Values of the template variables for one scenario run.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub job_id: String,
    pub run_id: String,
    pub scenario_name: String,
    pub services: BTreeMap<String, ServiceAddress>,
    /// Secret values by name.
    pub secrets: BTreeMap<String, String>,
    /// Values earlier steps captured, by `STEP.KEY`.
    pub captures: BTreeMap<String, String>,
}

fn pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}").expect("valid template pattern")
    })
}

/// `service.NAME.FIELD` split into (NAME, FIELD), for a known field.
fn service_variable(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("service.")?;
    let (service, field) = rest.rsplit_once('.')?;
    (!service.is_empty() && matches!(field, "port" | "host" | "url")).then_some((service, field))
}

/// `steps.STEP.KEY` → (STEP, KEY).
fn capture_variable(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("steps.")?;
    let (step, key) = rest.split_once('.')?;
    (!step.is_empty() && !key.is_empty() && !key.contains('.')).then_some((step, key))
}

/// The captures (`STEP`, `KEY`) `text` refers to.
pub fn capture_refs(text: &str) -> Vec<(String, String)> {
    pattern()
        .captures_iter(text)
        .filter_map(|captures| {
            capture_variable(&captures[1]).map(|(step, key)| (step.to_owned(), key.to_owned()))
        })
        .collect()
}

/// Every variable name `text` refers to, as written (`secret.token`, `steps.login.id`, ...).
pub fn references(text: &str) -> Vec<String> {
    pattern()
        .captures_iter(text)
        .map(|captures| captures[1].to_owned())
        .collect()
}

/// `secret.NAME` → NAME.
fn secret_variable(name: &str) -> Option<&str> {
    name.strip_prefix("secret.")
        .filter(|secret| !secret.is_empty() && !secret.contains('.'))
}

/// Ok if every variable in `text` is known; otherwise the first unknown one.
pub fn check(text: &str) -> Result<(), String> {
    for captures in pattern().captures_iter(text) {
        let name = &captures[1];
        // `vars.*` and `env.*` are replaced when the scenario loads; one left over has
        // been reported there already.
        if name.starts_with("vars.") || name.starts_with("env.") {
            continue;
        }
        if !VARIABLES[..3].contains(&name)
            && service_variable(name).is_none()
            && secret_variable(name).is_none()
            && capture_variable(name).is_none()
        {
            return Err(name.to_owned());
        }
    }
    Ok(())
}

/// The secret names `text` refers to.
pub fn secret_refs(text: &str) -> Vec<String> {
    pattern()
        .captures_iter(text)
        .filter_map(|captures| secret_variable(&captures[1]).map(str::to_owned))
        .collect()
}

/// The service names `text` refers to.
pub fn service_refs(text: &str) -> Vec<String> {
    pattern()
        .captures_iter(text)
        .filter_map(|captures| {
            service_variable(&captures[1]).map(|(service, _)| service.to_owned())
        })
        .collect()
}

/// Replace every known variable in `text` (unknown ones stay as written).
pub fn render(text: &str, vars: &Vars) -> String {
    pattern()
        .replace_all(text, |captures: &regex::Captures<'_>| match &captures[1] {
            "job.id" => vars.job_id.clone(),
            "run.id" => vars.run_id.clone(),
            "scenario.name" => vars.scenario_name.clone(),
            other
                if capture_variable(other).is_some_and(|(step, key)| {
                    vars.captures.contains_key(&format!("{step}.{key}"))
                }) =>
            {
                capture_variable(other)
                    .and_then(|(step, key)| vars.captures.get(&format!("{step}.{key}")))
                    .cloned()
                    .unwrap_or_default()
            }
            other if secret_variable(other).is_some_and(|name| vars.secrets.contains_key(name)) => {
                secret_variable(other)
                    .and_then(|name| vars.secrets.get(name))
                    .cloned()
                    .unwrap_or_default()
            }
            other => match service_variable(other)
                .and_then(|(name, field)| vars.services.get(name).map(|address| (address, field)))
            {
                Some((address, "port")) => address.port.to_string(),
                Some((address, "host")) => address.host.clone(),
                Some((address, _)) => format!("http://{}:{}", address.host, address.port),
                None => format!("{{{{ {other} }}}}"),
            },
        })
        .into_owned()
}

/// `value` with every string in it rendered.
pub fn render_json(value: &serde_json::Value, vars: &Vars) -> serde_json::Value {
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(render(text, vars)),
        serde_json::Value::Array(items) => {
            items.iter().map(|item| render_json(item, vars)).collect()
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, item)| (key.clone(), render_json(item, vars)))
            .collect(),
        other => other.clone(),
    }
}

/// An assertion with templates in its expected values rendered.
pub fn render_assertion(
    assertion: &crate::scenario::PointerAssertion,
    vars: &Vars,
) -> crate::scenario::PointerAssertion {
    let mut rendered = assertion.clone();
    for value in [
        &mut rendered.equals,
        &mut rendered.not_equals,
        &mut rendered.contains,
    ]
    .into_iter()
    .flatten()
    {
        *value = render_json(value, vars);
    }
    if let Some(pattern) = &mut rendered.matches {
        *pattern = render(pattern, vars);
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let services = [(
            "web".to_owned(),
            ServiceAddress {
                host: "127.0.0.1".into(),
                port: 49153,
            },
        )]
        .into();
        let secrets = [("token".to_owned(), "tok-123456".to_owned())].into();
        Vars {
            job_id: "job-1".into(),
            run_id: "r1".into(),
            scenario_name: "happy".into(),
            services,
            secrets,
            captures: [("login.token".to_owned(), "abc".to_owned())].into(),
        }
    }

    #[test]
    fn renders_known_variables() {
        assert_eq!(
            render("jobs/{{ job.id }}/{{run.id}}.json", &vars()),
            "jobs/job-1/r1.json"
        );
        assert_eq!(render("no templates", &vars()), "no templates");
        assert_eq!(
            render("t={{ steps.login.token }} {{ steps.login.other }}", &vars()),
            "t=abc {{ steps.login.other }}"
        );
        assert_eq!(
            render(
                "{{ service.web.url }}/health on {{service.web.port}}",
                &vars()
            ),
            "http://127.0.0.1:49153/health on 49153"
        );
        assert_eq!(
            render("Bearer {{ secret.token }} {{ secret.other }}", &vars()),
            "Bearer tok-123456 {{ secret.other }}"
        );
    }

    #[test]
    fn renders_strings_inside_json() {
        let value = serde_json::json!({"a": ["{{ job.id }}", 1], "b": "{{ secret.token }}"});
        assert_eq!(
            render_json(&value, &vars()),
            serde_json::json!({"a": ["job-1", 1], "b": "tok-123456"})
        );
    }

    #[test]
    fn check_names_the_unknown_variable() {
        assert_eq!(check("{{ job.id }}"), Ok(()));
        assert_eq!(check("{{ job.name }}"), Err("job.name".to_owned()));
        assert_eq!(check("{{ service.web-1.port }}"), Ok(()));
        assert_eq!(
            check("{{ service.web.ip }}"),
            Err("service.web.ip".to_owned())
        );
        assert_eq!(
            service_refs("{{ service.api.url }}/x {{ job.id }}"),
            vec!["api".to_owned()]
        );
        assert_eq!(check("{{ secret.token }}"), Ok(()));
        assert_eq!(check("{{ secret.a.b }}"), Err("secret.a.b".to_owned()));
        assert_eq!(
            secret_refs("{{ secret.token }}:{{secret.other}}"),
            vec!["token".to_owned(), "other".to_owned()]
        );
    }
}
