//! `{{ variable }}` substitution in scenario strings (env values, commands,
//! filestore keys). Only known variables exist; the loader rejects others.

use std::sync::OnceLock;

use regex::Regex;

/// The variables a scenario may use.
pub const VARIABLES: [&str; 3] = ["job.id", "run.id", "scenario.name"];

/// Values of the template variables for one scenario run.
#[derive(Debug, Clone)]
pub struct Vars {
    pub job_id: String,
    pub run_id: String,
    pub scenario_name: String,
}

fn pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}").expect("valid template pattern"))
}

/// Ok if every variable in `text` is known; otherwise the first unknown one.
pub fn check(text: &str) -> Result<(), String> {
    for captures in pattern().captures_iter(text) {
        let name = &captures[1];
        if !VARIABLES.contains(&name) {
            return Err(name.to_owned());
        }
    }
    Ok(())
}

/// Replace every known variable in `text`.
pub fn render(text: &str, vars: &Vars) -> String {
    pattern()
        .replace_all(text, |captures: &regex::Captures<'_>| match &captures[1] {
            "job.id" => vars.job_id.clone(),
            "run.id" => vars.run_id.clone(),
            "scenario.name" => vars.scenario_name.clone(),
            other => format!("{{{{ {other} }}}}"),
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars { job_id: "job-1".into(), run_id: "r1".into(), scenario_name: "happy".into() }
    }

    #[test]
    fn renders_known_variables() {
        assert_eq!(render("jobs/{{ job.id }}/{{run.id}}.json", &vars()), "jobs/job-1/r1.json");
        assert_eq!(render("no templates", &vars()), "no templates");
    }

    #[test]
    fn check_names_the_unknown_variable() {
        assert_eq!(check("{{ job.id }}"), Ok(()));
        assert_eq!(check("{{ job.name }}"), Err("job.name".to_owned()));
    }
}
