//! `{{ variable }}` substitution in scenario strings (env values, commands,
//! filestore keys, URLs). Only known variables exist; the loader rejects others.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

/// The variables a scenario may use (besides `service.NAME.port|host|url`).
pub const VARIABLES: [&str; 6] =
    ["job.id", "run.id", "scenario.name", "service.NAME.port", "service.NAME.host", "service.NAME.url"];

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
}

fn pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}").expect("valid template pattern"))
}

/// `service.NAME.FIELD` split into (NAME, FIELD), for a known field.
fn service_variable(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("service.")?;
    let (service, field) = rest.rsplit_once('.')?;
    (!service.is_empty() && matches!(field, "port" | "host" | "url")).then_some((service, field))
}

/// Ok if every variable in `text` is known; otherwise the first unknown one.
pub fn check(text: &str) -> Result<(), String> {
    for captures in pattern().captures_iter(text) {
        let name = &captures[1];
        if !VARIABLES[..3].contains(&name) && service_variable(name).is_none() {
            return Err(name.to_owned());
        }
    }
    Ok(())
}

/// The service names `text` refers to.
pub fn service_refs(text: &str) -> Vec<String> {
    pattern()
        .captures_iter(text)
        .filter_map(|captures| service_variable(&captures[1]).map(|(service, _)| service.to_owned()))
        .collect()
}

/// Replace every known variable in `text` (unknown ones stay as written).
pub fn render(text: &str, vars: &Vars) -> String {
    pattern()
        .replace_all(text, |captures: &regex::Captures<'_>| match &captures[1] {
            "job.id" => vars.job_id.clone(),
            "run.id" => vars.run_id.clone(),
            "scenario.name" => vars.scenario_name.clone(),
            other => match service_variable(other).and_then(|(name, field)| vars.services.get(name).map(|address| (address, field))) {
                Some((address, "port")) => address.port.to_string(),
                Some((address, "host")) => address.host.clone(),
                Some((address, _)) => format!("http://{}:{}", address.host, address.port),
                None => format!("{{{{ {other} }}}}"),
            },
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let services = [("web".to_owned(), ServiceAddress { host: "127.0.0.1".into(), port: 49153 })].into();
        Vars { job_id: "job-1".into(), run_id: "r1".into(), scenario_name: "happy".into(), services }
    }

    #[test]
    fn renders_known_variables() {
        assert_eq!(render("jobs/{{ job.id }}/{{run.id}}.json", &vars()), "jobs/job-1/r1.json");
        assert_eq!(render("no templates", &vars()), "no templates");
        assert_eq!(render("{{ service.web.url }}/health on {{service.web.port}}", &vars()), "http://127.0.0.1:49153/health on 49153");
    }

    #[test]
    fn check_names_the_unknown_variable() {
        assert_eq!(check("{{ job.id }}"), Ok(()));
        assert_eq!(check("{{ job.name }}"), Err("job.name".to_owned()));
        assert_eq!(check("{{ service.web-1.port }}"), Ok(()));
        assert_eq!(check("{{ service.web.ip }}"), Err("service.web.ip".to_owned()));
        assert_eq!(service_refs("{{ service.api.url }}/x {{ job.id }}"), vec!["api".to_owned()]);
    }
}
