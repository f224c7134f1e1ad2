//! `logs`, `ps`, `inspect`, `image inspect`, `version`, `info`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    CommandError, Outcome, daemon_error, err, find_container, find_image, load_definitions,
    load_images, out,
};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::image::normalize_reference;
use crate::logfile::{self, Stream};
use crate::render;
use crate::size::human_size;
use crate::state::{Container, StateDir, Status};
use crate::template::Template;
use crate::{API_VERSION, FIXED_TIME, SERVER_VERSION, gojson};

const FORMAT: Flag = Flag {
    long: "format",
    short: Some('f'),
    kind: Kind::Value("string"),
    help: "Format output using a custom template",
};

/// `docker logs`.
pub const LOGS: CommandSpec = CommandSpec {
    name: "logs",
    usage: "logs [OPTIONS] CONTAINER",
    about: "Fetch the logs of a container",
    flags: &[
        Flag {
            long: "tail",
            short: Some('n'),
            kind: Kind::Value("string"),
            help: "Number of lines to show from the end of the logs",
        },
        Flag {
            long: "timestamps",
            short: Some('t'),
            kind: Kind::Bool,
            help: "Show timestamps",
        },
        Flag {
            long: "follow",
            short: Some('f'),
            kind: Kind::Bool,
            help: "Follow log output",
        },
        Flag {
            long: "details",
            short: None,
            kind: Kind::Bool,
            help: "Show extra details provided to logs",
        },
        Flag {
            long: "since",
            short: None,
            kind: Kind::Value("string"),
            help: "Show logs since timestamp (ignored by the fake)",
        },
        Flag {
            long: "until",
            short: None,
            kind: Kind::Value("string"),
            help: "Show logs before a timestamp (ignored by the fake)",
        },
    ],
    interspersed: true,
    arity: Arity::Exactly(1),
};

/// `docker ps`.
pub const PS: CommandSpec = CommandSpec {
    name: "ps",
    usage: "ps [OPTIONS]",
    about: "List containers",
    flags: &[
        Flag {
            long: "all",
            short: Some('a'),
            kind: Kind::Bool,
            help: "Show all containers (default shows just running)",
        },
        Flag {
            long: "quiet",
            short: Some('q'),
            kind: Kind::Bool,
            help: "Only display container IDs",
        },
        Flag {
            long: "no-trunc",
            short: None,
            kind: Kind::Bool,
            help: "Don't truncate output",
        },
        Flag {
            long: "filter",
            short: Some('f'),
            kind: Kind::Value("filter"),
            help: "Filter output based on conditions provided",
        },
        Flag {
            long: "format",
            short: None,
            kind: Kind::Value("string"),
            help: "Format output using a custom template",
        },
        Flag {
            long: "last",
            short: Some('n'),
            kind: Kind::Value("int"),
            help: "Show n last created containers (includes all states)",
        },
        Flag {
            long: "latest",
            short: Some('l'),
            kind: Kind::Bool,
            help: "Show the latest created container (includes all states)",
        },
        Flag {
            long: "size",
            short: Some('s'),
            kind: Kind::Bool,
            help: "Display total file sizes",
        },
    ],
    interspersed: true,
    arity: Arity::Any,
};

/// `docker inspect`.
pub const INSPECT: CommandSpec = CommandSpec {
    name: "inspect",
    usage: "inspect [OPTIONS] NAME|ID [NAME|ID...]",
    about: "Return low-level information on Docker objects",
    flags: &[
        FORMAT,
        Flag {
            long: "type",
            short: None,
            kind: Kind::Value("string"),
            help: "Only inspect objects of the given type",
        },
        Flag {
            long: "size",
            short: Some('s'),
            kind: Kind::Bool,
            help: "Display total file sizes if the type is container",
        },
    ],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker container inspect`.
pub const CONTAINER_INSPECT: CommandSpec = CommandSpec {
    name: "container inspect",
    usage: "container inspect [OPTIONS] CONTAINER [CONTAINER...]",
    about: "Display detailed information on one or more containers",
    flags: &[
        FORMAT,
        Flag {
            long: "size",
            short: Some('s'),
            kind: Kind::Bool,
            help: "Display total file sizes",
        },
    ],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker image inspect`.
pub const IMAGE_INSPECT: CommandSpec = CommandSpec {
    name: "image inspect",
    usage: "image inspect [OPTIONS] IMAGE [IMAGE...]",
    about: "Display detailed information on one or more images",
    flags: &[FORMAT],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// Print `data` through a `--format` template; the exit code.
fn print_formatted(format: &str, data: &Value) -> i32 {
    // Measured: `--format json` is the whole object as JSON (the CLI's shorthand for
    // `{{json .}}`), not the word `json`.
    let format = if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let Some(template) = parse_template(format) else {
        return 1;
    };
    match render_line(&template, data) {
        Ok(line) => {
            out(&line);
            0
        }
        Err(code) => code,
    }
}

/// `docker version`.
pub const VERSION: CommandSpec = CommandSpec {
    name: "version",
    usage: "version [OPTIONS]",
    about: "Show the Docker version information",
    flags: &[FORMAT],
    interspersed: true,
    arity: Arity::Any,
};

/// `docker info`.
pub const INFO: CommandSpec = CommandSpec {
    name: "info",
    usage: "info [OPTIONS]",
    about: "Display system-wide information",
    flags: &[FORMAT],
    interspersed: true,
    arity: Arity::Any,
};

/// Parses a template, printing docker's message when it is invalid.
fn parse_template(text: &str) -> Option<Template> {
    match Template::parse(text) {
        Ok(template) => Some(template),
        Err(e) => {
            err(&format!("template parsing error: {e}\n"));
            None
        }
    }
}

/// Renders one object with a template and a trailing newline.
fn render_line(template: &Template, data: &Value) -> Result<String, i32> {
    template
        .render(data)
        .map(|text| format!("{text}\n"))
        .map_err(|e| {
            err(&format!("template parsing error: {e}\n"));
            1
        })
}

/// `docker logs`.
pub fn logs(spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let name = &parsed.positionals[0];
    let state = StateDir::from_env()?;
    let Some(container) = find_container(&state, name)? else {
        daemon_error(&format!("No such container: {name}"));
        return Ok(1);
    };
    let tail = match parsed.last("tail") {
        None | Some("all") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => {
                err(&spec.invalid_value(
                    "tail",
                    text,
                    &format!("strconv.ParseInt: parsing \"{text}\": invalid syntax"),
                ));
                return Ok(125);
            }
        },
    };
    let timestamps = parsed.bool("timestamps");
    // Measured: `--details` puts the log entry's attributes (none here) and a space
    // before each line.
    let details = if parsed.bool("details") { " " } else { "" };
    let log = state.log_path(&container.id);
    let emit = |stream: Stream, bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let text = if timestamps {
            format!("2000-01-01T00:00:00.000000000Z {details}{text}")
        } else {
            format!("{details}{text}")
        };
        match stream {
            Stream::Stdout => out(&text),
            Stream::Stderr => err(&text),
        }
    };
    let mut offset = 0u64;
    if tail.is_none() && !timestamps && details.is_empty() {
        // The whole log, streamed through buffered writers: a log of any size
        // costs little memory and few writes.
        let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let mut stderr = std::io::BufWriter::with_capacity(64 << 10, std::io::stderr().lock());
        let streamed = logfile::stream_lines(&log, &mut |stream, bytes| match stream {
            Stream::Stdout => stdout.write_all(bytes),
            Stream::Stderr => stderr.write_all(bytes),
        });
        // A reader that went away is not the log's problem (docker logs | head).
        offset = streamed.unwrap_or_default();
        let _ = stdout.flush();
        let _ = stderr.flush();
    } else {
        let records = logfile::read_new(&log, &mut offset).unwrap_or_default();
        let lines = logfile::lines(&records);
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        for (stream, bytes) in &lines[skip..] {
            emit(*stream, bytes);
        }
    }
    if parsed.bool("follow") {
        loop {
            let running = state
                .load(&container.id)?
                .is_some_and(|c| c.state.status == Status::Running || c.state.starting);
            for (stream, bytes) in logfile::read_new(&log, &mut offset).unwrap_or_default() {
                emit(stream, &bytes);
            }
            if !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(0)
}

/// One `--filter` condition of `ps`.
enum Filter {
    Label(String, Option<String>),
    Name(String),
    Status(String),
    Id(String),
    Ancestor(String),
    /// `exited=N`: an exited container whose exit code is N.
    Exited(i32),
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err("bad format of filter (expected name=value)".to_string());
    };
    Ok(match key {
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(value.to_string(), None),
        },
        "name" => Filter::Name(value.to_string()),
        "status" => {
            if !matches!(
                value,
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                return Err(format!("Invalid filter 'status={value}'"));
            }
            Filter::Status(value.to_string())
        }
        "id" => Filter::Id(value.to_string()),
        "ancestor" => Filter::Ancestor(value.to_string()),
        // Measured: the daemon parses the code with Go's strconv.Atoi.
        "exited" => Filter::Exited(
            value
                .parse()
                .map_err(|_| format!("strconv.Atoi: parsing \"{value}\": invalid syntax"))?,
        ),
        _ => return Err(format!("Invalid filter '{key}'")),
    })
}

fn filter_kind(filter: &Filter) -> u8 {
    match filter {
        Filter::Label(..) => 0,
        Filter::Name(_) => 1,
        Filter::Status(_) => 2,
        Filter::Id(_) => 3,
        Filter::Ancestor(_) => 4,
        Filter::Exited(_) => 5,
    }
}

fn filter_matches(filter: &Filter, container: &Container) -> bool {
    match filter {
        Filter::Label(key, value) => match (container.labels.get(key), value) {
            (Some(actual), Some(expected)) => actual == expected,
            (Some(_), None) => true,
            (None, _) => false,
        },
        // Docker matches names by regular expression; a substring covers plain names.
        Filter::Name(name) => {
            let name = name.trim_start_matches('/');
            match (name.strip_prefix('^'), name.strip_suffix('$')) {
                _ if name.starts_with('^') && name.ends_with('$') => {
                    container.name == name[1..name.len() - 1]
                }
                (Some(prefix), _) => container.name.starts_with(prefix),
                (_, Some(suffix)) => container.name.ends_with(suffix),
                _ => container.name.contains(name),
            }
        }
        Filter::Status(status) => container.state.status.as_str() == status,
        Filter::Id(id) => container.id.starts_with(id.as_str()),
        Filter::Exited(code) => {
            container.state.status == Status::Exited && container.state.exit_code == *code
        }
        Filter::Ancestor(image) => {
            container.image_name == *image
                || crate::image::normalize_reference(&container.image_name)
                    == crate::image::normalize_reference(image)
                || container.image_id == *image
        }
    }
}

/// `docker ps`.
pub fn ps(spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let mut filters = Vec::new();
    for text in parsed.all("filter") {
        match parse_filter(text) {
            Ok(filter) => filters.push(filter),
            // Measured: a filter without `=` is the CLI's flag error (125).
            Err(message) if !text.contains('=') => {
                err(&spec.invalid_value("filter", text, &message));
                return Ok(125);
            }
            Err(message) => {
                daemon_error(&message);
                return Ok(1);
            }
        }
    }
    let last = match parsed.last("last") {
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                err(&spec.invalid_value(
                    "last",
                    text,
                    &format!("strconv.ParseInt: parsing \"{text}\": invalid syntax"),
                ));
                return Ok(125);
            }
        },
        None if parsed.bool("latest") => 1,
        None => -1,
    };
    let show_all =
        parsed.bool("all") || last > 0 || filters.iter().any(|f| matches!(f, Filter::Status(_)));
    let state = StateDir::from_env()?;
    let mut containers: Vec<Container> = state
        .all()?
        .into_iter()
        .filter(|c| show_all || c.state.status == Status::Running)
        .filter(|c| {
            // Same filter key: any may match; different keys: all must.
            (0..6u8).all(|kind| {
                let of_kind: Vec<&Filter> =
                    filters.iter().filter(|f| filter_kind(f) == kind).collect();
                of_kind.is_empty() || of_kind.iter().any(|f| filter_matches(f, c))
            })
        })
        .collect();
    if last > 0 {
        containers.truncate(last as usize);
    }
    let truncate = !parsed.bool("no-trunc");
    if parsed.bool("quiet") {
        for container in &containers {
            out(&format!(
                "{}\n",
                if truncate {
                    container.short_id()
                } else {
                    &container.id
                }
            ));
        }
        return Ok(0);
    }
    let format = parsed.last("format").unwrap_or("table");
    let format = if format == "table" {
        let size = if parsed.bool("size") {
            "\t{{.Size}}"
        } else {
            ""
        };
        format!(
            "table {{{{.ID}}}}\t{{{{.Image}}}}\t{{{{.Command}}}}\t{{{{.RunningFor}}}}\t{{{{.Status}}}}\t{{{{.Ports}}}}\t{{{{.Names}}}}{size}"
        )
    } else {
        // docker's formatter turns the two-character `\t`/`\n` into real ones.
        format.replace("\\t", "\t").replace("\\n", "\n")
    };
    let (is_table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_matches(' ').to_string()),
        None => (false, format.trim_matches(' ').to_string()),
    };
    let Some(template) = parse_template(if body == "json" { "{{json .}}" } else { &body }) else {
        return Ok(1);
    };
    // Measured: a field the CLI's container context lacks fails the whole listing.
    let template = template.in_context("*formatter.ContainerContext");
    // `-s`: the container's writable layer (nothing, on the fake) and its image's size,
    // as measured: `0B (virtual 1.99MB)`.
    let image_sizes: BTreeMap<String, u64> = if parsed.bool("size") {
        load_definitions()
            .map_err(CommandError::from)?
            .into_iter()
            .map(|image| (image.id, image.size))
            .collect()
    } else {
        BTreeMap::new()
    };
    let fields_of = |container: &Container| {
        let mut fields = render::ps_fields(container, truncate);
        if let Some(size) = image_sizes.get(&container.image_id) {
            fields["Size"] = json!(format!("0B (virtual {})", human_size(*size, 3)));
        }
        fields
    };
    if (body == "{{json .}}" || body == "json") && !is_table {
        for container in &containers {
            out(&format!("{}\n", gojson::compact(&fields_of(container))));
        }
        return Ok(0);
    }
    let mut lines = Vec::new();
    // Measured: a field the container context lacks fails `ps` even with no rows (the
    // CLI checks the template against its context first).
    if !is_table
        && let Err(e) = template.render_with(&render::ps_headers(), &|name, _| {
            (name == "Label").then(|| json!("LABEL"))
        })
    {
        err(&format!("failed to execute template: {e}\n"));
        return Ok(1);
    }
    if is_table {
        let headers = render::ps_headers();
        match template.render_with(&headers, &|name, _| {
            (name == "Label").then(|| json!("LABEL"))
        }) {
            Ok(line) => lines.push(line),
            Err(e) => {
                err(&format!("template parsing error: {e}\n"));
                return Ok(1);
            }
        }
    }
    for container in &containers {
        let fields = fields_of(container);
        let methods = |name: &str, args: &[String]| -> Option<Value> {
            (name == "Label").then(|| {
                json!(
                    args.first()
                        .and_then(|k| container.labels.get(k))
                        .cloned()
                        .unwrap_or_default()
                )
            })
        };
        match template.render_with(&fields, &methods) {
            Ok(line) => lines.push(line),
            Err(e) => {
                match e {
                    crate::template::TemplateError::Execution(..) => {
                        err(&format!("failed to execute template: {e}\n"))
                    }
                    _ => err(&format!("template parsing error: {e}\n")),
                }
                return Ok(1);
            }
        }
    }
    if is_table {
        out(&render::tabulate(&lines));
    } else {
        for line in lines {
            out(&format!("{line}\n"));
        }
    }
    Ok(0)
}

/// `docker inspect`.
pub fn inspect(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let kind = parsed.last("type").unwrap_or("");
    if !matches!(kind, "" | "container" | "image" | "network" | "volume") {
        err(&format!(
            "unknown type: \"{kind}\": must be one of \"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\"\n"
        ));
        return Ok(1);
    }
    inspect_objects(parsed, kind, 64)
}

/// `docker container inspect`: `inspect --type container` with the daemon's message for
/// a missing container.
pub fn container_inspect(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    inspect_objects(parsed, "container", 1)
}

/// One inspected object: the daemon's JSON and, for a container, the CLI's typed view
/// that templates run on first.
pub(crate) struct Inspected {
    pub(crate) raw: Value,
    pub(crate) typed: Option<Value>,
}

/// Inspects every positional as `kind` (`""`: container, then image, network, volume,
/// as the CLI tries them). `bad_template` is the exit code of a template that does not
/// parse (measured: 64 for `docker inspect`, 1 for `container inspect`).
fn inspect_objects(parsed: &Parsed, kind: &str, bad_template: i32) -> Outcome {
    let template = match parsed.last("format") {
        Some(text) => match inspect_template(text) {
            Some(template) => Some(template),
            None => return Ok(bad_template),
        },
        None => None,
    };
    let state = StateDir::from_env()?;
    let wants = |k: &str| kind.is_empty() || kind == k;
    let images = if wants("image") {
        load_images()?
    } else {
        Vec::new()
    };
    let networks = crate::objects::networks(&state)?;
    let volumes = if wants("volume") {
        crate::objects::volumes(&state)?
    } else {
        Vec::new()
    };
    let containers = if wants("network") {
        state.all()?
    } else {
        Vec::new()
    };
    let mut objects = Vec::new();
    let mut missing = Vec::new();
    for name in &parsed.positionals {
        let container = if wants("container") {
            find_container(&state, name)?
        } else {
            None
        };
        if let Some(container) = container {
            let mut raw = render::container_json(&container, &networks);
            if parsed.bool("size") {
                render::add_sizes(&mut raw, &container);
            }
            let typed = render::container_typed_view(&raw);
            objects.push(Inspected {
                raw,
                typed: Some(typed),
            });
        } else if let Some(image) = find_image(&images, name).filter(|_| wants("image")) {
            let raw = image.inspect_json();
            objects.push(Inspected {
                typed: Some(render::image_typed_view(&raw)),
                raw,
            });
        } else if let Some(network) = wants("network")
            .then(|| crate::objects::find_network(&state, name))
            .transpose()?
            .flatten()
        {
            let raw = super::inspect_json::network_json(&network, &containers);
            objects.push(Inspected {
                typed: Some(render::network_typed_view(&raw)),
                raw,
            });
        } else if let Some(volume) = volumes.iter().find(|v| v.name == *name) {
            let raw = super::inspect_json::volume_json(volume);
            objects.push(Inspected {
                typed: Some(render::volume_typed_view(&raw)),
                raw,
            });
        } else {
            missing.push(name.clone());
        }
    }
    let code = print_inspected(template.as_ref(), &objects)?;
    for name in &missing {
        match kind {
            // Measured: `inspect --type image X` asks the daemon, which answers this.
            "image" => daemon_error(&format!(
                "no such image: {name}: No such image: {}",
                normalize_reference(name)
            )),
            "container" => daemon_error(&format!("No such container: {name}")),
            "network" => daemon_error(&format!("network {name} not found")),
            "volume" => daemon_error(&format!("get {name}: no such volume")),
            _ => err(&format!("Error: No such object: {name}\n")),
        }
    }
    Ok(if missing.is_empty() { code } else { 1 })
}

/// Prints inspected objects; a template runs on the typed view first and, where it
/// fails, on the raw JSON (the CLI's fallback, whose error is the one reported).
pub(crate) fn print_inspected(template: Option<&InspectFormat>, objects: &[Inspected]) -> Outcome {
    let Some(InspectFormat::Template(template)) = template else {
        let raw: Vec<Value> = objects.iter().map(|o| o.raw.clone()).collect();
        return print_objects(template, &raw);
    };
    let on_raw = template.on_raw_json();
    let mut failed = false;
    let mut printed = false;
    for object in objects {
        let typed = object.typed.as_ref().map(|typed| template.render(typed));
        let rendered = match typed {
            Some(Ok(line)) => Ok(line),
            _ => on_raw.render(&object.raw),
        };
        match rendered {
            Ok(line) => {
                out(&format!("{line}\n"));
                printed = true;
            }
            Err(e) => {
                err(&format!("template parsing error: {e}\n"));
                failed = true;
            }
        }
    }
    // Measured: the CLI prints one empty line when a template printed nothing at all.
    if !printed {
        out("\n");
    }
    Ok(if failed { 1 } else { 0 })
}

/// An `inspect --format`: `json` (the objects as one compact JSON array, measured), or
/// a template where a key missing from the raw JSON is an error, as the CLI has it.
pub(crate) enum InspectFormat {
    Json,
    Template(Template),
}

/// Parses an inspect `--format`, printing docker's message when it is invalid.
pub(crate) fn inspect_template(text: &str) -> Option<InspectFormat> {
    if text == "json" {
        return Some(InspectFormat::Json);
    }
    parse_template(text).map(|t| InspectFormat::Template(t.strict_missing_keys()))
}

/// Prints inspect output: a JSON array, or one template line per object. A template
/// error is printed for each object it fails on (measured: stdout then holds a single
/// empty line), and the exit code is 1.
pub(crate) fn print_objects(template: Option<&InspectFormat>, objects: &[Value]) -> Outcome {
    match template {
        None => {
            out(&format!(
                "{}\n",
                gojson::indented(&Value::Array(objects.to_vec()))
            ));
            Ok(0)
        }
        Some(InspectFormat::Json) => {
            out(&format!(
                "{}\n",
                gojson::compact(&Value::Array(objects.to_vec()))
            ));
            Ok(0)
        }
        Some(InspectFormat::Template(template)) => {
            let mut failed = false;
            let mut printed = false;
            for object in objects {
                match template.render(object) {
                    Ok(line) => {
                        out(&format!("{line}\n"));
                        printed = true;
                    }
                    Err(e) => {
                        err(&format!("template parsing error: {e}\n"));
                        failed = true;
                    }
                }
            }
            // Measured: the CLI prints one empty line when a template printed nothing.
            if !printed {
                out("\n");
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}

/// `docker image inspect`.
pub fn image_inspect(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let template = match parsed.last("format") {
        Some(text) => match inspect_template(text) {
            Some(template) => Some(template),
            None => return Ok(1),
        },
        None => None,
    };
    let images = load_images()?;
    let mut objects = Vec::new();
    let mut missing = Vec::new();
    for name in &parsed.positionals {
        match find_image(&images, name) {
            Some(image) => {
                let raw = image.inspect_json();
                objects.push(Inspected {
                    typed: Some(render::image_typed_view(&raw)),
                    raw,
                });
            }
            None => missing.push(name.clone()),
        }
    }
    let code = print_inspected(template.as_ref(), &objects)?;
    for name in &missing {
        daemon_error(&format!(
            "no such image: {name}: No such image: {}",
            normalize_reference(name)
        ));
    }
    Ok(if missing.is_empty() { code } else { 1 })
}

fn version_data() -> Value {
    // DOCKER_API_VERSION at or below the daemon's is the version the client speaks.
    let client_api = std::env::var("DOCKER_API_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| API_VERSION.to_string());
    json!({
        "Client": {
            "Platform": { "Name": "" },
            "Version": SERVER_VERSION,
            "ApiVersion": client_api,
            // Go templates name the struct field (`{{.Client.APIVersion}}`, measured).
            "APIVersion": client_api,
            "DefaultAPIVersion": API_VERSION,
            "GitCommit": "fake",
            "GoVersion": "go1.0-fake",
            "Os": "linux",
            "Arch": "amd64",
            "BuildTime": FIXED_TIME,
            "Context": "default",
        },
        "Server": {
            "Platform": { "Name": "fake-docker" },
            "Version": SERVER_VERSION,
            "ApiVersion": API_VERSION,
            "APIVersion": API_VERSION,
            "MinAPIVersion": "1.12",
            "GitCommit": "fake",
            "GoVersion": "go1.0-fake",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "fake",
            "BuildTime": FIXED_TIME,
        },
    })
}

/// `docker version`.
pub fn version(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let data = version_data();
    if let Some(format) = parsed.last("format") {
        return Ok(print_formatted(format, &data));
    }
    out(&format!(
        "Client:\n Version:           {SERVER_VERSION}\n API version:       {API_VERSION}\n Go version:        go1.0-fake\n Git commit:        fake\n Built:             {FIXED_TIME}\n OS/Arch:           linux/amd64\n Context:           default\n\nServer: fake-docker\n Engine:\n  Version:          {SERVER_VERSION}\n  API version:      {API_VERSION} (minimum version 1.12)\n  Go version:       go1.0-fake\n  Git commit:       fake\n  Built:            {FIXED_TIME}\n  OS/Arch:          linux/amd64\n  Experimental:     false\n"
    ));
    Ok(0)
}

/// `docker info`.
pub fn info(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let containers = state.all()?;
    let running = containers
        .iter()
        .filter(|c| c.state.status == Status::Running)
        .count();
    let images = load_images()?.len();
    let data = json!({
        "ID": "FAKE",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Driver": "overlay2",
        "LoggingDriver": "json-file",
        "CgroupDriver": "none",
        "CgroupVersion": "2",
        "KernelVersion": "fake",
        "OperatingSystem": "fake-docker",
        "OSType": "linux",
        "Architecture": "x86_64",
        "NCPU": 1,
        "MemTotal": 1073741824,
        "DockerRootDir": state.root().to_string_lossy(),
        "Name": "fake-docker",
        "ServerVersion": SERVER_VERSION,
        "SecurityOptions": [],
        "Warnings": null,
    });
    if let Some(format) = parsed.last("format") {
        return Ok(print_formatted(format, &data));
    }
    out(&format!(
        "Client:\n Context:    default\n\nServer:\n Containers: {}\n  Running: {running}\n  Paused: 0\n  Stopped: {}\n Images: {images}\n Server Version: {SERVER_VERSION}\n Storage Driver: fake\n Logging Driver: json-file\n Operating System: fake-docker\n OSType: linux\n Architecture: x86_64\n Docker Root Dir: {}\n",
        containers.len(),
        containers.len() - running,
        state.root().display()
    ));
    Ok(0)
}
