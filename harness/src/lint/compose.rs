//! Compose file rules (seed 001's stack, seed 004's patterns).

use std::path::Path;

use serde_json::Value;

use super::{Finding, Level, Rule, looks_secret};
use crate::scenario::yaml::{self, SpanIndex};

/// Long-lived services declare a healthcheck.
pub const HEALTHCHECK: Rule = Rule {
    id: "DC001",
    level: Level::Error,
    summary: "every long-lived service has a healthcheck",
};
/// Long-lived services restart by themselves.
pub const RESTART: Rule = Rule {
    id: "DC002",
    level: Level::Error,
    summary: "restart policy `unless-stopped` or `always`",
};
/// Dependencies on stateful services wait until they are healthy.
pub const DEPENDS_HEALTHY: Rule = Rule {
    id: "DC003",
    level: Level::Error,
    summary: "`depends_on` a stateful service uses `condition: service_healthy`",
};
/// The Docker socket is not mounted into services.
pub const DOCKER_SOCKET: Rule = Rule {
    id: "DC004",
    level: Level::Error,
    summary: "no Docker socket mounted (unless allowed)",
};
/// Images are pinned.
pub const PINNED_IMAGE: Rule = Rule {
    id: "DC005",
    level: Level::Error,
    summary: "images pinned (no `latest`, no untagged)",
};
/// Logs are capped.
pub const LOG_CAPS: Rule = Rule {
    id: "DC006",
    level: Level::Warning,
    summary: "log size capped (`logging.options.max-size`)",
};
/// `.env.example` documents the variables, without real secrets.
pub const ENV_EXAMPLE: Rule = Rule {
    id: "DC007",
    level: Level::Error,
    summary: "`.env.example` present and free of secret-looking values",
};
/// Named volumes are declared.
pub const NAMED_VOLUMES: Rule = Rule {
    id: "DC008",
    level: Level::Error,
    summary: "named volumes declared under top-level `volumes:`",
};

/// Every compose rule.
pub const RULES: [Rule; 8] = [
    HEALTHCHECK,
    RESTART,
    DEPENDS_HEALTHY,
    DOCKER_SOCKET,
    PINNED_IMAGE,
    LOG_CAPS,
    ENV_EXAMPLE,
    NAMED_VOLUMES,
];

/// Label that marks a service as short-lived (exempt from healthcheck and restart rules).
pub const EPHEMERAL_LABEL: &str = "dockproof.lint.ephemeral";
/// Label that allows a service to mount the Docker socket.
pub const ALLOW_SOCKET_LABEL: &str = "dockproof.lint.allow-docker-socket";

const STATEFUL_IMAGES: [&str; 10] = [
    "postgres",
    "mysql",
    "mariadb",
    "redis",
    "mongo",
    "rabbitmq",
    "elasticsearch",
    "kafka",
    "zookeeper",
    "minio",
];

fn label(service: &Value, name: &str) -> Option<String> {
    match service.get("labels")? {
        Value::Object(labels) => labels.get(name).map(|value| {
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        }),
        Value::Array(items) => items.iter().filter_map(Value::as_str).find_map(|item| {
            item.split_once('=')
                .filter(|(key, _)| *key == name)
                .map(|(_, value)| value.to_owned())
        }),
        _ => None,
    }
}

fn image_unpinned(image: &str) -> Option<&'static str> {
    if image.contains("${") || image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Some("has no tag (means `latest`)"),
        Some((_, "latest")) => Some("uses `latest`"),
        Some(_) => None,
    }
}

/// (source, target) of a service volume entry, short or long syntax.
fn volume_source(entry: &Value) -> Option<String> {
    match entry {
        Value::String(text) => text.split(':').next().map(str::to_owned),
        Value::Object(long) => long
            .get("source")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

fn is_named_volume(source: &str) -> bool {
    !(source.is_empty()
        || source.starts_with('/')
        || source.starts_with('.')
        || source.starts_with('~')
        || source.contains("${"))
}

fn is_stateful(services: &serde_json::Map<String, Value>, name: &str) -> bool {
    let Some(service) = services.get(name) else {
        return false;
    };
    let image = service
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let base = image
        .rsplit('/')
        .next()
        .unwrap_or(image)
        .split(':')
        .next()
        .unwrap_or_default();
    STATEFUL_IMAGES.contains(&base)
        || service
            .get("volumes")
            .and_then(Value::as_array)
            .is_some_and(|volumes| {
                volumes
                    .iter()
                    .filter_map(volume_source)
                    .any(|source| is_named_volume(&source))
            })
}

/// Resolve YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`) as compose does:
/// explicit keys win, then earlier merged mappings over later ones.
pub fn resolve_merge_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for member in map.values_mut() {
                resolve_merge_keys(member);
            }
            if let Some(merged) = map.remove("<<") {
                let sources: Vec<Value> = match merged {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    if let Value::Object(source) = source {
                        for (key, member) in source {
                            map.entry(key).or_insert(member);
                        }
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(resolve_merge_keys),
        _ => {}
    }
}

/// `base` under `own`: what `own` sets wins; mappings are merged key by key.
fn merge_under(own: &mut Value, base: &Value) {
    if let (Value::Object(own), Value::Object(base)) = (own, base) {
        for (key, member) in base {
            match own.get_mut(key) {
                Some(existing) => merge_under(existing, member),
                None => {
                    own.insert(key.clone(), member.clone());
                }
            }
        }
    }
}

/// How deep `extends` chains are followed (compose refuses cycles; this stops them).
const MAX_EXTENDS_DEPTH: usize = 8;
/// How many other files (`include:`, `extends.file`) one compose file may name.
const MAX_OTHER_FILES: usize = 64;

/// A compose file beside `dir`, parsed, its merge keys resolved; `None` when unreadable.
fn other_file(dir: Option<&Path>, relative: &str) -> Option<Value> {
    let path = dir?.join(relative);
    let text = crate::input_file::read_config(&path).ok()?;
    let mut value = yaml::parse(&text).ok()?.value;
    resolve_merge_keys(&mut value);
    Some(value)
}

/// The service `extends` names: `(file, service)`.
fn extends_target(service: &Value) -> Option<(Option<String>, String)> {
    match service.get("extends")? {
        Value::String(name) => Some((None, name.clone())),
        Value::Object(long) => Some((
            long.get("file").and_then(Value::as_str).map(str::to_owned),
            long.get("service")?.as_str()?.to_owned(),
        )),
        _ => None,
    }
}

/// Resolve `extends` (same file, or `file:` beside it) so rules see the service as
/// compose runs it; a base that cannot be read leaves the service as written.
pub fn resolve_extends(document: &mut Value, dir: Option<&Path>) {
    let Some(names) = document
        .get("services")
        .and_then(Value::as_object)
        .map(|services| services.keys().cloned().collect::<Vec<_>>())
    else {
        return;
    };
    let mut files_read = 0;
    for name in names {
        let Some(mut service) = document
            .pointer(&format!("/services/{}", yaml::escape_segment(&name)))
            .cloned()
        else {
            continue;
        };
        let mut current_file: Option<Value> = None;
        for _ in 0..MAX_EXTENDS_DEPTH {
            let Some((file, base_name)) = extends_target(&service) else {
                break;
            };
            if let Some(file) = file {
                if files_read >= MAX_OTHER_FILES {
                    break;
                }
                files_read += 1;
                current_file = other_file(dir, &file);
            }
            let source = current_file.as_ref().unwrap_or(document);
            let Some(base) = source
                .get("services")
                .and_then(|services| services.get(&base_name))
                .cloned()
            else {
                break;
            };
            if let Value::Object(map) = &mut service {
                map.remove("extends");
            }
            merge_under(&mut service, &base);
        }
        if let Some(Value::Object(services)) = document.get_mut("services") {
            services.insert(name, service);
        }
    }
}

/// Services of the files `include:` names (short or long syntax), for lookups.
fn included_services(document: &Value, dir: Option<&Path>) -> Vec<(String, Value)> {
    let paths: Vec<String> = document
        .get("include")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(MAX_OTHER_FILES)
        .flat_map(|entry| match entry {
            Value::String(path) => vec![path.clone()],
            Value::Object(long) => match long.get("path") {
                Some(Value::String(path)) => vec![path.clone()],
                Some(Value::Array(paths)) => paths
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
        .collect();
    paths
        .iter()
        .filter_map(|path| other_file(dir, path))
        .filter_map(|file| file.get("services").and_then(Value::as_object).cloned())
        .flatten()
        .collect()
}

/// Lint a compose file's text; `dir` is where `.env.example` is looked for.
/// `Err((line, column, message))` when it is not valid YAML (or over the YAML limits).
pub fn lint(text: &str, dir: Option<&Path>) -> Result<Vec<Finding>, (usize, usize, String)> {
    let located = yaml::parse(text).map_err(|error| {
        (
            error.span.start.line.max(1),
            error.span.start.column.max(1),
            error.with_hint(),
        )
    })?;
    let mut resolved = located.value.clone();
    resolve_merge_keys(&mut resolved);
    resolve_extends(&mut resolved, dir);
    let document = &resolved;
    let spans = &located.spans;
    let mut findings = Vec::new();
    let Some(services) = document.get("services").and_then(Value::as_object) else {
        return Err((1, 1, "no top-level `services:` mapping".into()));
    };
    // Services of `include:`d files: known to `depends_on` (DC003), linted in their own file.
    let mut lookup = services.clone();
    for (name, service) in included_services(document, dir) {
        lookup.entry(name).or_insert(service);
    }
    let services_in_file = services;
    let services = &lookup;
    let declared_volumes: Vec<&String> = document
        .get("volumes")
        .and_then(Value::as_object)
        .map(|volumes| volumes.keys().collect())
        .unwrap_or_default();
    let line = |spans: &SpanIndex, pointer: &str| spans.key(pointer).start.line.max(1);

    for (name, service) in services_in_file {
        let pointer = format!("/services/{}", yaml::escape_segment(name));
        let service_line = line(spans, &pointer);
        let ephemeral = label(service, EPHEMERAL_LABEL).as_deref() == Some("true");
        if !ephemeral {
            let disabled = service
                .pointer("/healthcheck/disable")
                .and_then(Value::as_bool)
                == Some(true);
            if service.get("healthcheck").is_none() || disabled {
                findings.push(Finding::new(
                    &HEALTHCHECK,
                    service_line,
                    format!("service `{name}` has no healthcheck"),
                ));
            }
            match service.get("restart").and_then(Value::as_str) {
                Some("unless-stopped" | "always") => {}
                Some(other) => findings.push(Finding::new(
                    &RESTART,
                    line(spans, &format!("{pointer}/restart")),
                    format!(
                        "service `{name}` restarts `{other}`; use `unless-stopped` or `always`"
                    ),
                )),
                None => findings.push(Finding::new(
                    &RESTART,
                    service_line,
                    format!("service `{name}` has no restart policy"),
                )),
            }
        }
        match service.get("depends_on") {
            Some(Value::Array(dependencies)) => {
                for (index, dependency) in dependencies.iter().enumerate() {
                    let dependency = dependency.as_str().unwrap_or_default();
                    if is_stateful(services, dependency) {
                        findings.push(Finding::new(&DEPENDS_HEALTHY, line(spans, &format!("{pointer}/depends_on/{index}")), format!("`{name}` depends on stateful `{dependency}` without `condition: service_healthy`")));
                    }
                }
            }
            Some(Value::Object(dependencies)) => {
                for (dependency, condition) in dependencies {
                    let healthy = condition.get("condition").and_then(Value::as_str)
                        == Some("service_healthy");
                    if !healthy && is_stateful(services, dependency) {
                        let at =
                            format!("{pointer}/depends_on/{}", yaml::escape_segment(dependency));
                        findings.push(Finding::new(&DEPENDS_HEALTHY, line(spans, &at), format!("`{name}` depends on stateful `{dependency}` without `condition: service_healthy`")));
                    }
                }
            }
            _ => {}
        }
        let allow_socket = label(service, ALLOW_SOCKET_LABEL).as_deref() == Some("true");
        for (index, entry) in service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = line(spans, &format!("{pointer}/volumes/{index}"));
            let Some(source) = volume_source(entry) else {
                continue;
            };
            if source.ends_with("docker.sock") && !allow_socket {
                findings.push(Finding::new(&DOCKER_SOCKET, at, format!("service `{name}` mounts the Docker socket `{source}`: root on the host for anything inside")));
            }
            if is_named_volume(&source)
                && !declared_volumes.iter().any(|declared| **declared == source)
            {
                findings.push(Finding::new(
                    &NAMED_VOLUMES,
                    at,
                    format!("named volume `{source}` is not declared under top-level `volumes:`"),
                ));
            }
        }
        if let Some(image) = service.get("image").and_then(Value::as_str)
            && let Some(problem) = image_unpinned(image)
        {
            findings.push(Finding::new(
                &PINNED_IMAGE,
                line(spans, &format!("{pointer}/image")),
                format!("image `{image}` {problem}; pin a version"),
            ));
        }
        if service.pointer("/logging/options/max-size").is_none() {
            findings.push(Finding::new(
                &LOG_CAPS,
                service_line,
                format!("service `{name}` has no log size cap (`logging.options.max-size`)"),
            ));
        }
    }

    if let Some(dir) = dir {
        let example = dir.join(".env.example");
        match crate::input_file::read_config(&example) {
            Ok(text) => {
                for (index, entry) in text.lines().enumerate() {
                    let entry = entry.trim();
                    if entry.starts_with('#') {
                        continue;
                    }
                    if let Some((key, value)) = entry.split_once('=')
                        && looks_secret(key.trim(), value)
                    {
                        findings.push(Finding::new(&ENV_EXAMPLE, 1, format!(".env.example line {}: `{}` holds a secret-looking value; use a placeholder", index + 1, key.trim())));
                    }
                }
            }
            Err(_) => findings.push(Finding::new(
                &ENV_EXAMPLE,
                1,
                "no `.env.example` beside the compose file to document its variables",
            )),
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<(&'static str, usize)> {
        let mut found: Vec<_> = lint(text, None)
            .unwrap()
            .into_iter()
            .map(|finding| {
                let id = RULES
                    .iter()
                    .find(|rule| rule.id == finding.rule)
                    .map_or("?", |rule| rule.id);
                (id, finding.line)
            })
            .collect();
        found.sort();
        found
    }

    const GOOD: &str = "\
services:
  api:
    image: example/api:1.4.2
    restart: unless-stopped
    healthcheck: { test: [CMD, wget, -q, localhost/health] }
    depends_on:
      db: { condition: service_healthy }
    logging: { options: { max-size: 10m } }
  db:
    image: postgres:16.2
    restart: always
    healthcheck: { test: [CMD, pg_isready] }
    volumes: [pgdata:/var/lib/postgresql/data]
    logging: { options: { max-size: 10m } }
volumes:
  pgdata: {}
";

    #[test]
    fn a_good_stack_is_clean() {
        assert_eq!(ids(GOOD), vec![]);
    }

    #[test]
    fn broken_variants_are_caught_at_their_line() {
        let broken = "\
services:
  runner:
    image: example/runner
    depends_on: [db]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - cache:/cache
    restart: on-failure
  db:
    image: postgres:latest
    restart: always
    healthcheck: { test: [CMD, pg_isready] }
    logging: { options: { max-size: 10m } }
";
        assert_eq!(
            ids(broken),
            vec![
                ("DC001", 2),
                ("DC002", 8),
                ("DC003", 4),
                ("DC004", 6),
                ("DC005", 3),
                ("DC005", 10),
                ("DC006", 2),
                ("DC008", 7)
            ]
        );
    }

    #[test]
    fn labels_exempt_ephemeral_services_and_allowed_sockets() {
        let text = "\
services:
  ci-runner:
    image: example/runner:2
    labels: [dockproof.lint.ephemeral=true, dockproof.lint.allow-docker-socket=true]
    volumes: [/var/run/docker.sock:/var/run/docker.sock]
    logging: { options: { max-size: 1m } }
";
        assert_eq!(ids(text), vec![]);
    }
}
