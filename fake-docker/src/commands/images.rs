//! `images`, `rmi` / `image rm`, `pull`.

use serde_json::{Value, json};

use super::listing::{glob_match, print_rows_in, split_filter};
use super::{Outcome, daemon_error, err, load_definitions, load_images, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::image::{Image, normalize_reference, repository_of};
use crate::imagestore;
use crate::size::human_size;
use crate::state::StateDir;

const IMAGES_FLAGS: &[Flag] = &[
    Flag {
        long: "all",
        short: Some('a'),
        kind: Kind::Bool,
        help: "Show all images (default hides intermediate images)",
    },
    Flag {
        long: "digests",
        short: None,
        kind: Kind::Bool,
        help: "Show digests",
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
        long: "no-trunc",
        short: None,
        kind: Kind::Bool,
        help: "Don't truncate output",
    },
    Flag {
        long: "quiet",
        short: Some('q'),
        kind: Kind::Bool,
        help: "Only show image IDs",
    },
];

/// `docker images`.
pub const IMAGES: CommandSpec = CommandSpec {
    name: "images",
    usage: "images [OPTIONS] [REPOSITORY[:TAG]]",
    about: "List images",
    flags: IMAGES_FLAGS,
    interspersed: true,
    arity: Arity::Range(0, 1),
};

/// `docker image ls`.
pub const IMAGE_LS: CommandSpec = CommandSpec {
    name: "image ls",
    usage: "image ls [OPTIONS] [REPOSITORY[:TAG]]",
    ..IMAGES
};

/// `docker image list`.
pub const IMAGE_LIST: CommandSpec = CommandSpec {
    name: "image list",
    usage: "image list [OPTIONS] [REPOSITORY[:TAG]]",
    ..IMAGES
};

const RMI_FLAGS: &[Flag] = &[
    Flag {
        long: "force",
        short: Some('f'),
        kind: Kind::Bool,
        help: "Force removal of the image",
    },
    Flag {
        long: "no-prune",
        short: None,
        kind: Kind::Bool,
        help: "Do not delete untagged parents",
    },
];

/// `docker rmi`.
pub const RMI: CommandSpec = CommandSpec {
    name: "rmi",
    usage: "rmi [OPTIONS] IMAGE [IMAGE...]",
    about: "Remove one or more images",
    flags: RMI_FLAGS,
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker image rm`.
pub const IMAGE_RM: CommandSpec = CommandSpec {
    name: "image rm",
    usage: "image rm [OPTIONS] IMAGE [IMAGE...]",
    ..RMI
};

/// `docker image remove`.
pub const IMAGE_REMOVE: CommandSpec = CommandSpec {
    name: "image remove",
    usage: "image remove [OPTIONS] IMAGE [IMAGE...]",
    ..RMI
};

/// `docker pull`.
pub const PULL: CommandSpec = CommandSpec {
    name: "pull",
    usage: "pull [OPTIONS] NAME[:TAG|@DIGEST]",
    about: "Download an image from a registry",
    flags: &[
        Flag {
            long: "all-tags",
            short: Some('a'),
            kind: Kind::Bool,
            help: "Download all tagged images in the repository",
        },
        Flag {
            long: "quiet",
            short: Some('q'),
            kind: Kind::Bool,
            help: "Suppress verbose output",
        },
        Flag {
            long: "platform",
            short: None,
            kind: Kind::Value("string"),
            help: "Set platform if server is multi-platform capable",
        },
        Flag {
            long: "disable-content-trust",
            short: None,
            kind: Kind::Bool,
            help: "Skip image verification (default true)",
        },
    ],
    interspersed: true,
    arity: Arity::Exactly(1),
};

/// `docker image pull`.
pub const IMAGE_PULL: CommandSpec = CommandSpec {
    name: "image pull",
    usage: "image pull [OPTIONS] NAME[:TAG|@DIGEST]",
    ..PULL
};

/// `repo:tag` → (`repo`, `tag`).
fn split_tag(reference: &str) -> (String, String) {
    let repository = repository_of(reference);
    let tag = reference
        .strip_prefix(&repository)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or("latest")
        .to_string();
    (repository, tag)
}

fn image_row(image: &Image, tag: &str, truncate: bool) -> Value {
    let (repository, tag) = split_tag(tag);
    json!({
        "Containers": "N/A",
        "CreatedAt": "2000-01-01 00:00:00 +0000 UTC",
        "CreatedSince": "Less than a second ago",
        "Digest": "<none>",
        "ID": if truncate { image.short_id().to_string() } else { image.id.clone() },
        "Repository": repository,
        "SharedSize": "N/A",
        "Size": human_size(image.size, 3),
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(image.size, 4),
    })
}

fn image_filter_matches(image: &Image, tag: &str, key: &str, value: &str) -> bool {
    match key {
        "reference" => {
            let (repository, _) = split_tag(tag);
            glob_match(value, tag) || glob_match(value, &repository)
        }
        "label" => crate::objects::label_matches(&image.config.labels, value),
        "dangling" => value != "true",
        _ => true,
    }
}

/// `docker images`.
pub fn images(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let mut filters = Vec::new();
    for text in parsed.all("filter") {
        match split_filter(text) {
            Some((key, value))
                if matches!(key, "reference" | "label" | "dangling" | "before" | "since") =>
            {
                filters.push((key.to_string(), value.to_string()));
            }
            Some((key, _)) => {
                daemon_error(&format!("Invalid filter '{key}'"));
                return Ok(1);
            }
            None => {
                daemon_error("bad format of filter (expected name=value)");
                return Ok(1);
            }
        }
    }
    let wanted = parsed.positionals.first().map(String::as_str);
    let truncate = !parsed.bool("no-trunc");
    let images = load_images()?;
    let mut rows: Vec<(String, &Image)> = images
        .iter()
        .flat_map(|image| image.tags.iter().map(move |tag| (tag.clone(), image)))
        .filter(|(tag, image)| {
            let positional = wanted.is_none_or(|w| {
                let (repository, _) = split_tag(tag);
                repository == w || *tag == normalize_reference(w)
            });
            positional
                && filters
                    .iter()
                    .all(|(k, v)| image_filter_matches(image, tag, k, v))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if parsed.bool("quiet") {
        for (_, image) in &rows {
            out(&format!(
                "{}\n",
                if truncate {
                    image.short_id()
                } else {
                    &image.id
                }
            ));
        }
        return Ok(0);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|(tag, image)| image_row(image, tag, truncate))
        .collect();
    let headers = json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    // Measured: `--digests` adds a DIGEST column (`<none>` for a local build).
    let default = if parsed.bool("digests") {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    Ok(print_rows_in(
        parsed.last("format"),
        default,
        &headers,
        &values,
        Some("*formatter.imageContext"),
    ))
}

/// `docker rmi`: untag; the last tag gone deletes the image.
pub fn rmi(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let force = parsed.bool("force");
    let state = StateDir::from_env()?;
    let mut code = 0;
    for name in &parsed.positionals {
        let _lock = state.lock()?;
        let images = load_images()?;
        let Some(image) = images.iter().find(|i| i.matches(name)) else {
            daemon_error(&format!("No such image: {}", normalize_reference(name)));
            code = 1;
            continue;
        };
        let reference = normalize_reference(name);
        let by_tag = image.tags.contains(&reference);
        let removing: Vec<String> = if by_tag {
            vec![reference]
        } else {
            image.tags.clone()
        };
        // Untagging one of several tags never conflicts; deleting the image does.
        let deleting = removing.len() == image.tags.len();
        if !force
            && deleting
            && let Some(user) = state.all()?.iter().find(|c| c.image_id == image.id)
        {
            let what = if by_tag {
                format!("unable to remove repository reference \"{name}\" (must force)")
            } else {
                format!("unable to delete {} (must be forced)", image.short_id())
            };
            daemon_error(&format!(
                "conflict: {what} - container {} is using its referenced image {}",
                user.short_id(),
                image.short_id()
            ));
            code = 1;
            continue;
        }
        for tag in &removing {
            imagestore::untag(&state, tag)?;
            out(&format!("Untagged: {tag}\n"));
        }
        if deleting {
            out(&format!("Deleted: {}\n", image.id));
        }
    }
    Ok(code)
}

/// Docker Hub's path for a repository (`library/x` for official images) and whether it
/// lives on Docker Hub at all.
fn hub_path(repository: &str) -> (String, bool) {
    let first = repository.split('/').next().unwrap_or(repository);
    let on_registry = repository.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if on_registry {
        (repository.to_string(), false)
    } else if repository.contains('/') {
        (repository.to_string(), true)
    } else {
        (format!("library/{repository}"), true)
    }
}

/// `docker pull`: a defined image "downloads" (or is up to date); anything else is the
/// registry's "pull access denied".
pub fn pull(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let name = &parsed.positionals[0];
    let quiet = parsed.bool("quiet");
    let repository = repository_of(name);
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        let last = repository.rsplit('/').next().unwrap_or(&repository);
        err(&format!(
            "invalid reference format: repository name ({last}) must be lowercase\n"
        ));
        return Ok(1);
    }
    let reference = normalize_reference(name);
    if reference != *name && !name.contains('@') && !quiet {
        out("Using default tag: latest\n");
    }
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let definitions = load_definitions()?;
    let visible = load_images()?;
    let Some(definition) = definitions.iter().find(|i| i.reference == reference) else {
        if let Some(image) = visible.iter().find(|i| i.tags.contains(&reference)) {
            // A tag given by `build -t`: the registry has nothing newer.
            print_pull(image, &reference, quiet, true);
            return Ok(0);
        }
        daemon_error(&format!(
            "pull access denied for {repository}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        ));
        return Ok(1);
    };
    let up_to_date = visible
        .iter()
        .any(|i| i.id == definition.id && i.tags.contains(&reference));
    imagestore::restore(&state, definition)?;
    print_pull(definition, &reference, quiet, up_to_date);
    Ok(0)
}

fn print_pull(image: &Image, reference: &str, quiet: bool, up_to_date: bool) {
    let (repository, tag) = split_tag(reference);
    let (path, on_hub) = hub_path(&repository);
    let canonical = if on_hub {
        format!("docker.io/{path}:{tag}")
    } else {
        format!("{path}:{tag}")
    };
    if quiet {
        out(&format!("{canonical}\n"));
        return;
    }
    let digest = crate::objects::object_id("digest", &image.id);
    let mut text = format!("{tag}: Pulling from {path}\n");
    if !up_to_date {
        text.push_str(&format!("{}: Pull complete\n", image.short_id()));
    }
    text.push_str(&format!("Digest: sha256:{digest}\n"));
    let shown = reference.strip_prefix("docker.io/").unwrap_or(reference);
    if up_to_date {
        text.push_str(&format!("Status: Image is up to date for {shown}\n"));
    } else {
        text.push_str(&format!("Status: Downloaded newer image for {shown}\n"));
    }
    text.push_str(&format!("{canonical}\n"));
    out(&text);
}

/// `docker tag`.
pub const TAG: CommandSpec = CommandSpec {
    name: "tag",
    usage: "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    about: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    flags: &[],
    interspersed: true,
    arity: Arity::Exactly(2),
};

/// `docker image tag`.
pub const IMAGE_TAG: CommandSpec = CommandSpec {
    name: "image tag",
    usage: "image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    ..TAG
};

/// Why `text` is no valid image reference, in the words of docker's reference parser
/// (`invalid reference format`, or the lowercase rule naming the repository path).
pub(crate) fn reference_problem(text: &str) -> Option<String> {
    static GRAMMAR: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let grammar = GRAMMAR.get_or_init(|| {
        let label = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain = format!(r"(?:{label}(?:\.{label})*(?::[0-9]+)?/)?");
        let component = r"[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*";
        let tag = r"(?::[\w][\w.-]{0,127})?";
        let digest = r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?";
        regex::Regex::new(&format!(
            "^{domain}{component}(?:/{component})*{tag}{digest}$"
        ))
        .ok()
    });
    let grammar = grammar.as_ref()?;
    if grammar.is_match(text) {
        return None;
    }
    let lowered = {
        // Only the repository path must be lowercase: keep a tag or digest as written.
        let (name, rest) = match text.rfind(['@']).or_else(|| {
            text.rfind(':')
                .filter(|&colon| !text[colon..].contains('/'))
        }) {
            Some(index) => text.split_at(index),
            None => (text, ""),
        };
        format!("{}{rest}", name.to_lowercase())
    };
    if lowered != text && grammar.is_match(&lowered) {
        let (path, _) = hub_path(&repository_of(text));
        return Some(format!(
            "invalid reference format: repository name ({path}) must be lowercase"
        ));
    }
    Some("invalid reference format".to_string())
}

/// `docker tag SOURCE TARGET`: points TARGET at SOURCE's image; prints nothing.
pub fn tag(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let (source, target) = (&parsed.positionals[0], &parsed.positionals[1]);
    for reference in [source, target] {
        if let Some(problem) = reference_problem(reference) {
            err(&format!(
                "Error parsing reference: \"{reference}\" is not a valid repository/tag: {problem}\n"
            ));
            return Ok(1);
        }
    }
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let images = load_images()?;
    let Some(image) = images.iter().find(|i| i.matches(source)) else {
        daemon_error(&format!("No such image: {}", normalize_reference(source)));
        return Ok(1);
    };
    imagestore::tag(&state, target, &image.id)?;
    Ok(0)
}
