//! Docker-shaped views of containers: `inspect` objects and `ps` rows.

use serde_json::{Value, json};

use crate::gotype;
use crate::image::null_if_empty;
use crate::objects::{self, Network};
use crate::ports;
use crate::state::{Container, Status};
use crate::{FIXED_TIME, ZERO_TIME};

/// Where the daemon keeps a container's files (`ResolvConfPath`, `LogPath`, ...).
fn container_file(container: &Container, name: &str) -> String {
    if container.state.started {
        format!("/var/lib/docker/containers/{}/{name}", container.id)
    } else {
        String::new()
    }
}

/// A container's endpoint ID on its network (also named in port errors).
pub fn endpoint_id(container: &Container) -> String {
    crate::image::hash_hex(&format!("fake-docker/endpoint/{}", container.name))
}

/// The paths docker masks and makes read-only in every unprivileged container (measured).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Builds a JSON object from (key, value) pairs in order.
fn object(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

fn host_config(container: &Container) -> Value {
    let mut pairs: Vec<(&str, Value)> = vec![
        ("Binds", null_if_empty(&container.binds)),
        ("ContainerIDFile", json!("")),
        ("LogConfig", json!({ "Type": "json-file", "Config": {} })),
        ("NetworkMode", json!(container.network_mode)),
        (
            "PortBindings",
            ports::bindings_json(&container.port_requests),
        ),
        (
            "RestartPolicy",
            json!({ "Name": "no", "MaximumRetryCount": 0 }),
        ),
        ("AutoRemove", json!(container.auto_remove)),
        ("VolumeDriver", json!("")),
        ("VolumesFrom", Value::Null),
        ("CapAdd", null_if_empty(&container.cap_add)),
        ("CapDrop", null_if_empty(&container.cap_drop)),
        ("CgroupnsMode", json!("host")),
        ("Dns", json!([])),
        ("DnsOptions", json!([])),
        ("DnsSearch", json!([])),
        ("ExtraHosts", Value::Null),
        ("GroupAdd", Value::Null),
        ("IpcMode", json!("private")),
        ("Cgroup", json!("")),
        ("Links", Value::Null),
        ("OomScoreAdj", json!(0)),
        ("PidMode", json!("")),
        ("Privileged", json!(container.privileged)),
        ("PublishAllPorts", json!(false)),
        ("ReadonlyRootfs", json!(container.read_only)),
        // Measured: the daemon adds `label=disable` for a privileged container.
        (
            "SecurityOpt",
            if container.privileged {
                let mut options = container.security_opt.clone();
                options.push("label=disable".to_string());
                json!(options)
            } else {
                null_if_empty(&container.security_opt)
            },
        ),
    ];
    if !container.tmpfs.is_empty() {
        pairs.push(("Tmpfs", json!(container.tmpfs)));
    }
    pairs.extend([
        ("UTSMode", json!("")),
        ("UsernsMode", json!("")),
        ("ShmSize", json!(67_108_864)),
        ("Runtime", json!("runc")),
        ("ConsoleSize", json!([0, 0])),
        ("Isolation", json!("")),
        ("CpuShares", json!(0)),
        ("Memory", json!(container.memory)),
        ("NanoCpus", json!(container.nano_cpus)),
        ("CgroupParent", json!("")),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", json!([])),
        ("BlkioDeviceReadBps", json!([])),
        ("BlkioDeviceWriteBps", json!([])),
        ("BlkioDeviceReadIOps", json!([])),
        ("BlkioDeviceWriteIOps", json!([])),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("CpusetCpus", json!("")),
        ("CpusetMems", json!("")),
        ("Devices", json!([])),
        ("DeviceCgroupRules", Value::Null),
        ("DeviceRequests", Value::Null),
        ("KernelMemory", json!(0)),
        ("KernelMemoryTCP", json!(0)),
        ("MemoryReservation", json!(0)),
        (
            "MemorySwap",
            json!(
                container
                    .memory_swap
                    .unwrap_or_else(|| memory_swap(container.memory))
            ),
        ),
        ("MemorySwappiness", Value::Null),
        ("OomKillDisable", json!(false)),
        ("PidsLimit", json!(container.pids_limit)),
        ("Ulimits", json!([])),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
    ]);
    let flagged: Vec<Value> = container
        .mounts
        .iter()
        .filter(|m| m.mount_flag)
        .map(|m| {
            let mut mount = serde_json::Map::new();
            mount.insert(
                "Type".into(),
                json!(if m.volume.is_some() { "volume" } else { "bind" }),
            );
            let source = m
                .volume
                .clone()
                .unwrap_or_else(|| m.source.to_string_lossy().into_owned());
            mount.insert("Source".into(), json!(source));
            mount.insert("Target".into(), json!(m.destination));
            if m.read_only {
                mount.insert("ReadOnly".into(), json!(true));
            }
            Value::Object(mount)
        })
        .collect();
    // Measured: `--mount`s are listed in HostConfig.Mounts (omitted when there are none).
    if !flagged.is_empty() {
        pairs.push(("Mounts", Value::Array(flagged)));
    }
    // Measured: a privileged container has no masked or read-only paths (null).
    if container.privileged {
        pairs.extend([("MaskedPaths", Value::Null), ("ReadonlyPaths", Value::Null)]);
    } else {
        pairs.extend([
            ("MaskedPaths", json!(MASKED_PATHS)),
            ("ReadonlyPaths", json!(READONLY_PATHS)),
        ]);
    }
    if container.init {
        pairs.push(("Init", json!(true)));
    }
    object(pairs)
}

fn config(container: &Container) -> Value {
    let mut pairs: Vec<(&str, Value)> = vec![
        (
            "Hostname",
            json!(
                container
                    .hostname
                    .as_deref()
                    .unwrap_or(container.short_id())
            ),
        ),
        ("Domainname", json!("")),
        ("User", json!(container.user)),
        ("AttachStdin", json!(container.attach_stdin)),
        ("AttachStdout", json!(container.attach_output)),
        ("AttachStderr", json!(container.attach_output)),
    ];
    // Measured: no ExposedPorts key at all when nothing is exposed.
    if !container.exposed_ports.is_empty() {
        let exposed: serde_json::Map<String, Value> = container
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        pairs.push(("ExposedPorts", Value::Object(exposed)));
    }
    pairs.extend([
        ("Tty", json!(container.tty)),
        ("OpenStdin", json!(container.open_stdin)),
        ("StdinOnce", json!(container.attach_stdin)),
        ("Env", json!(container.env)),
        ("Cmd", null_if_empty(&container.cmd)),
    ]);
    if let Some(health) = &container.healthcheck {
        pairs.push(("Healthcheck", health.to_json()));
    }
    pairs.extend([
        ("Image", json!(container.image_name)),
        ("Volumes", Value::Null),
        ("WorkingDir", json!(container.workdir)),
        (
            "Entrypoint",
            container
                .entrypoint
                .as_deref()
                .map_or(Value::Null, null_if_empty),
        ),
        ("OnBuild", Value::Null),
        ("Labels", json!(container.labels)),
    ]);
    if let Some(timeout) = container.stop_timeout {
        pairs.push(("StopTimeout", json!(timeout)));
    }
    object(pairs)
}

/// `NetworkSettings`: the sandbox once the container has started, its address on its
/// network while it runs (the top-level address fields only on the default bridge).
fn network_settings(container: &Container, networks: &[Network]) -> Value {
    let state = &container.state;
    let running = state.status == Status::Running;
    let name = network_name(&container.network_mode);
    let network = networks.iter().find(|n| n.name == name);
    let ip = if running {
        state.ip_address.as_str()
    } else {
        ""
    };
    let addressed = !ip.is_empty();
    let gateway = network
        .filter(|_| addressed)
        .and_then(Network::gateway)
        .unwrap_or_default();
    let prefix = if addressed {
        network.map_or(0, Network::prefix_len)
    } else {
        0
    };
    let mac = if addressed {
        objects::mac_address(ip)
    } else {
        String::new()
    };
    let endpoint = if running && network.is_some() {
        endpoint_id(container)
    } else {
        String::new()
    };
    let sandbox = if state.started {
        crate::image::hash_hex(&format!("fake-docker/sandbox/{}", container.id))
    } else {
        String::new()
    };
    let sandbox_key = if sandbox.is_empty() {
        String::new()
    } else {
        format!("/var/run/docker/netns/{}", &sandbox[..12])
    };
    let aliases =
        if state.started && name != "bridge" && network.is_some_and(|n| !n.subnet.is_empty()) {
            json!([container.short_id()])
        } else {
            Value::Null
        };
    let network_id = match network {
        Some(network) if state.started => network.id.clone(),
        _ => String::new(),
    };
    let endpoint_settings = object(vec![
        ("IPAMConfig", Value::Null),
        ("Links", Value::Null),
        ("Aliases", aliases),
        ("NetworkID", json!(network_id)),
        ("EndpointID", json!(endpoint)),
        ("Gateway", json!(gateway)),
        ("IPAddress", json!(ip)),
        ("IPPrefixLen", json!(prefix)),
        ("IPv6Gateway", json!("")),
        ("GlobalIPv6Address", json!("")),
        ("GlobalIPv6PrefixLen", json!(0)),
        ("MacAddress", json!(mac)),
        ("DriverOpts", Value::Null),
    ]);
    // The top-level fields mirror the default bridge's endpoint only.
    let (top_endpoint, top_gateway, top_ip, top_prefix, top_mac) = if name == "bridge" {
        (
            endpoint.clone(),
            gateway.clone(),
            ip.to_string(),
            prefix,
            mac.clone(),
        )
    } else {
        (
            String::new(),
            String::new(),
            String::new(),
            0,
            String::new(),
        )
    };
    let mut networks_map = serde_json::Map::new();
    networks_map.insert(name, endpoint_settings);
    object(vec![
        ("Bridge", json!("")),
        ("SandboxID", json!(sandbox)),
        ("HairpinMode", json!(false)),
        ("LinkLocalIPv6Address", json!("")),
        ("LinkLocalIPv6PrefixLen", json!(0)),
        (
            "Ports",
            ports::ports_json(&container.exposed_ports, &state.published, running),
        ),
        ("SandboxKey", json!(sandbox_key)),
        ("SecondaryIPAddresses", Value::Null),
        ("SecondaryIPv6Addresses", Value::Null),
        ("EndpointID", json!(top_endpoint)),
        ("Gateway", json!(top_gateway)),
        ("GlobalIPv6Address", json!("")),
        ("GlobalIPv6PrefixLen", json!(0)),
        ("IPAddress", json!(top_ip)),
        ("IPPrefixLen", json!(top_prefix)),
        ("IPv6Gateway", json!("")),
        ("MacAddress", json!(top_mac)),
        ("Networks", Value::Object(networks_map)),
    ])
}

/// The `docker inspect` object of a container, as the daemon sends it (the raw JSON
/// `docker inspect` prints without `--format`), in the daemon's key order.
pub fn container_json(container: &Container, networks: &[Network]) -> Value {
    let state = &container.state;
    let mut state_pairs: Vec<(&str, Value)> = vec![
        ("Status", json!(state.status.as_str())),
        ("Running", json!(state.status == Status::Running)),
        ("Paused", json!(false)),
        ("Restarting", json!(false)),
        ("OOMKilled", json!(state.oom_killed)),
        ("Dead", json!(false)),
        ("Pid", json!(state.pid)),
        ("ExitCode", json!(state.exit_code)),
        ("Error", json!(state.error)),
        (
            "StartedAt",
            json!(if state.started { FIXED_TIME } else { ZERO_TIME }),
        ),
        (
            "FinishedAt",
            json!(if state.finished {
                FIXED_TIME
            } else {
                ZERO_TIME
            }),
        ),
    ];
    // Measured: State has no Health key at all without a health check, so
    // `{{.State.Health.Status}}` is an error there, not `<no value>`.
    if let Some(health) = &state.health {
        state_pairs.push(("Health", health.to_json()));
    }
    let mounts: Vec<Value> = container
        .mounts
        .iter()
        .map(|m| match &m.volume {
            // Measured: a named volume is `Type: volume` under the daemon's volume root,
            // mode `z` unless `-v` gave one, no propagation.
            Some(name) => json!({
                "Type": "volume",
                "Name": name,
                "Source": format!("/var/lib/docker/volumes/{name}/_data"),
                "Destination": m.destination,
                "Driver": "local",
                "Mode": if m.mode.is_empty() { "z" } else { m.mode.as_str() },
                "RW": !m.read_only,
                "Propagation": "",
            }),
            None => json!({
                "Type": "bind",
                "Source": m.source.to_string_lossy(),
                "Destination": m.destination,
                "Mode": m.mode,
                "RW": !m.read_only,
                "Propagation": "rprivate",
            }),
        })
        .collect();
    let log_path = if container.state.started {
        format!("/var/lib/docker/containers/{0}/{0}-json.log", container.id)
    } else {
        String::new()
    };
    object(vec![
        ("Id", json!(container.id)),
        ("Created", json!(FIXED_TIME)),
        ("Path", json!(container.path)),
        ("Args", json!(container.args)),
        ("State", object(state_pairs)),
        ("Image", json!(container.image_id)),
        (
            "ResolvConfPath",
            json!(container_file(container, "resolv.conf")),
        ),
        ("HostnamePath", json!(container_file(container, "hostname"))),
        ("HostsPath", json!(container_file(container, "hosts"))),
        ("LogPath", json!(log_path)),
        ("Name", json!(format!("/{}", container.name))),
        ("RestartCount", json!(0)),
        ("Driver", json!("overlay2")),
        ("Platform", json!("linux")),
        ("MountLabel", json!("")),
        ("ProcessLabel", json!("")),
        ("AppArmorProfile", json!("")),
        ("ExecIDs", Value::Null),
        ("HostConfig", host_config(container)),
        (
            "GraphDriver",
            crate::image::graph_driver(
                &container.image_id,
                container.image_layers,
                Some(&container.id),
            ),
        ),
        ("Mounts", json!(mounts)),
        ("Config", config(container)),
        ("NetworkSettings", network_settings(container, networks)),
    ])
}

fn index_of(map: &serde_json::Map<String, Value>, key: &str) -> Option<usize> {
    map.keys().position(|k| k == key)
}

/// `inspect -s`: the container's writable layer (nothing written, on the fake) and its
/// root filesystem (the image), after `GraphDriver` as measured.
pub fn add_sizes(document: &mut Value, container: &Container) {
    if let Some(map) = document.as_object_mut() {
        let at = index_of(map, "GraphDriver").map_or(map.len(), |i| i + 1);
        map.shift_insert(at, "SizeRw".into(), json!(0));
        map.shift_insert(at + 1, "SizeRootFs".into(), json!(container.image_size));
    }
}

/// Moves `key` of `map` to just after `after` (or to the front when `after` is absent).
fn move_after(map: &mut serde_json::Map<String, Value>, key: &str, after: &str) {
    let Some(value) = map.shift_remove(key) else {
        return;
    };
    let index = index_of(map, after).map_or(0, |i| i + 1);
    map.shift_insert(index, key.to_string(), value);
}

/// A struct of the typed view made from the raw object `raw`: its fields in order, with
/// the named ones converted to Go's nil slices and maps when `null`.
fn typed_fields(raw: Option<&Value>, slices: &[&str], maps: &[&str], omit: &[&str]) -> Value {
    let Some(Value::Object(map)) = raw else {
        return Value::Null;
    };
    let fields: Vec<(&str, Value)> = map
        .iter()
        .map(|(key, value)| {
            let value = if slices.contains(&key.as_str()) {
                gotype::slice(Some(value))
            } else if maps.contains(&key.as_str()) {
                gotype::map_or_nil(Some(value))
            } else {
                value.clone()
            };
            (key.as_str(), value)
        })
        .collect();
    gotype::structure(fields, omit)
}

/// `{Test Interval Timeout StartPeriod StartInterval Retries}` (durations print as `1s`).
pub fn typed_healthcheck(raw: Option<&Value>) -> Value {
    let Some(raw) = raw.filter(|v| v.is_object()) else {
        return Value::Null;
    };
    gotype::structure(
        vec![
            ("Test", gotype::slice(raw.get("Test"))),
            ("Interval", gotype::duration(raw.get("Interval"))),
            ("Timeout", gotype::duration(raw.get("Timeout"))),
            ("StartPeriod", gotype::duration(raw.get("StartPeriod"))),
            ("StartInterval", gotype::duration(raw.get("StartInterval"))),
            ("Retries", raw.get("Retries").cloned().unwrap_or(json!(0))),
        ],
        &[
            "Test",
            "Interval",
            "Timeout",
            "StartPeriod",
            "StartInterval",
            "Retries",
        ],
    )
}

/// A `nat.PortMap`/`PortSet` value: port → `[]PortBinding` (nil when `null`), or port →
/// `struct{}`.
fn typed_ports(raw: Option<&Value>, set: bool) -> Value {
    let Some(Value::Object(map)) = raw else {
        return gotype::nil_map();
    };
    Value::Object(
        map.iter()
            .map(|(port, value)| {
                let value = if set {
                    gotype::structure(Vec::new(), &[])
                } else {
                    match value {
                        Value::Array(bindings) => Value::Array(
                            bindings
                                .iter()
                                .map(|b| typed_fields(Some(b), &[], &[], &[]))
                                .collect(),
                        ),
                        _ => gotype::nil_slice(),
                    }
                };
                (port.clone(), value)
            })
            .collect(),
    )
}

/// The object the docker CLI 28.x executes an inspect template on: the daemon's JSON
/// decoded into the CLI's own Go types (measured with `{{json .HostConfig}}`,
/// `{{json .NetworkSettings}}`, `{{.State}}`, `{{.NetworkSettings.Ports}}`): some keys
/// move, some are added or dropped, structs print as `{a b}` and nil slices as `[]`. A
/// template that fails on it is run again on the raw JSON, as the CLI does.
pub fn container_typed_view(raw: &Value) -> Value {
    let mut view = raw.clone();
    let Some(top) = view.as_object_mut() else {
        return view;
    };
    if let Some(Value::Object(host)) = top.get_mut("HostConfig") {
        move_after(host, "ConsoleSize", "VolumesFrom");
        host.shift_remove("KernelMemory");
        host.shift_remove("KernelMemoryTCP");
        let log = typed_fields(host.get("LogConfig"), &[], &[], &[]);
        host.insert("LogConfig".into(), log);
        let restart = typed_fields(host.get("RestartPolicy"), &[], &[], &[]);
        host.insert("RestartPolicy".into(), restart);
        let bindings = typed_ports(host.get("PortBindings"), false);
        host.insert("PortBindings".into(), bindings);
    }
    let host = typed_fields(
        top.get("HostConfig"),
        &[
            "Binds",
            "VolumesFrom",
            "CapAdd",
            "CapDrop",
            "ExtraHosts",
            "GroupAdd",
            "Links",
            "SecurityOpt",
            "DeviceCgroupRules",
            "DeviceRequests",
        ],
        &["Tmpfs"],
        &["Tmpfs"],
    );
    top.insert("HostConfig".into(), host);
    if let Some(Value::Object(state)) = top.get_mut("State") {
        let health = state.get("Health").map(|health| {
            let log: Vec<Value> = health
                .get("Log")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|entry| typed_fields(Some(entry), &[], &[], &[]))
                .collect();
            gotype::structure(
                vec![
                    ("Status", health.get("Status").cloned().unwrap_or_default()),
                    (
                        "FailingStreak",
                        health.get("FailingStreak").cloned().unwrap_or_default(),
                    ),
                    ("Log", Value::Array(log)),
                ],
                &[],
            )
        });
        // `*Health`: nil without a health check (printed `<nil>`, left out of `json`).
        state.insert("Health".into(), health.unwrap_or(Value::Null));
    }
    let state = typed_fields(top.get("State"), &[], &[], &["Health"]);
    top.insert("State".into(), state);
    let graph = typed_fields(top.get("GraphDriver"), &[], &[], &[]);
    top.insert("GraphDriver".into(), graph);
    if let Some(Value::Array(mounts)) = top.get("Mounts") {
        let typed: Vec<Value> = mounts
            .iter()
            .map(|mount| {
                let field = |key: &str| mount.get(key).cloned().unwrap_or(json!(""));
                gotype::structure(
                    vec![
                        ("Type", field("Type")),
                        ("Name", field("Name")),
                        ("Source", field("Source")),
                        ("Destination", field("Destination")),
                        ("Driver", field("Driver")),
                        ("Mode", field("Mode")),
                        ("RW", mount.get("RW").cloned().unwrap_or(json!(false))),
                        ("Propagation", field("Propagation")),
                    ],
                    &["Name", "Driver"],
                )
            })
            .collect();
        top.insert("Mounts".into(), Value::Array(typed));
    }
    if let Some(config) = top.get("Config") {
        let field = |key: &str| config.get(key).cloned().unwrap_or(Value::Null);
        let typed = gotype::structure(
            vec![
                ("Hostname", field("Hostname")),
                ("Domainname", field("Domainname")),
                ("User", field("User")),
                ("AttachStdin", field("AttachStdin")),
                ("AttachStdout", field("AttachStdout")),
                ("AttachStderr", field("AttachStderr")),
                (
                    "ExposedPorts",
                    typed_ports(config.get("ExposedPorts"), true),
                ),
                ("Tty", field("Tty")),
                ("OpenStdin", field("OpenStdin")),
                ("StdinOnce", field("StdinOnce")),
                ("Env", gotype::slice(config.get("Env"))),
                ("Cmd", gotype::slice(config.get("Cmd"))),
                ("Healthcheck", typed_healthcheck(config.get("Healthcheck"))),
                ("ArgsEscaped", json!(false)),
                ("Image", field("Image")),
                ("Volumes", gotype::map_or_nil(config.get("Volumes"))),
                ("WorkingDir", field("WorkingDir")),
                ("Entrypoint", gotype::slice(config.get("Entrypoint"))),
                ("NetworkDisabled", json!(false)),
                ("MacAddress", json!("")),
                ("OnBuild", gotype::slice(config.get("OnBuild"))),
                ("Labels", gotype::map_or_nil(config.get("Labels"))),
                ("StopSignal", json!("")),
                ("StopTimeout", field("StopTimeout")),
                ("Shell", gotype::nil_slice()),
            ],
            &[
                "ExposedPorts",
                "Healthcheck",
                "ArgsEscaped",
                "NetworkDisabled",
                "MacAddress",
                "StopSignal",
                "StopTimeout",
                "Shell",
            ],
        );
        top.insert("Config".into(), typed);
    }
    if let Some(Value::Object(settings)) = top.get_mut("NetworkSettings") {
        move_after(settings, "SandboxKey", "SandboxID");
        move_after(settings, "Ports", "SandboxKey");
        let ports = typed_ports(settings.get("Ports"), false);
        settings.insert("Ports".into(), ports);
        if let Some(Value::Object(networks)) = settings.get_mut("Networks") {
            for endpoint in networks.values_mut() {
                if let Some(map) = endpoint.as_object_mut() {
                    move_after(map, "MacAddress", "Aliases");
                    move_after(map, "DriverOpts", "MacAddress");
                    let at = index_of(map, "DriverOpts").map_or(0, |i| i + 1);
                    map.shift_insert(at, "GwPriority".to_string(), json!(0));
                    map.insert("DNSNames".to_string(), Value::Null);
                }
                let typed = typed_fields(
                    Some(endpoint),
                    &["Links", "Aliases", "DNSNames"],
                    &["DriverOpts"],
                    &[],
                );
                *endpoint = typed;
            }
        }
    }
    let settings = typed_fields(
        top.get("NetworkSettings"),
        &["SecondaryIPAddresses", "SecondaryIPv6Addresses"],
        &[],
        &[],
    );
    top.insert("NetworkSettings".into(), settings);
    typed_fields(Some(&view), &["Args", "ExecIDs"], &[], &[])
}

/// The typed view (see [`container_typed_view`]) of an `image inspect` object: its
/// `Config` is the CLI's OCI image configuration (every field `omitempty`, printed as
/// `{{User ExposedPorts Env Entrypoint Cmd Volumes WorkingDir Labels StopSignal
/// ArgsEscaped} {Healthcheck OnBuild Shell}}`, measured).
pub fn image_typed_view(raw: &Value) -> Value {
    let mut view = raw.clone();
    let Some(top) = view.as_object_mut() else {
        return view;
    };
    if let Some(config) = top.get("Config") {
        let field = |key: &str| config.get(key).cloned().unwrap_or(json!(""));
        let typed = gotype::structure_grouped(
            vec![
                ("User", field("User")),
                (
                    "ExposedPorts",
                    typed_ports(config.get("ExposedPorts"), true),
                ),
                ("Env", gotype::slice(config.get("Env"))),
                ("Entrypoint", gotype::slice(config.get("Entrypoint"))),
                ("Cmd", gotype::slice(config.get("Cmd"))),
                ("Volumes", gotype::map_or_nil(config.get("Volumes"))),
                ("WorkingDir", field("WorkingDir")),
                ("Labels", gotype::map_or_nil(config.get("Labels"))),
                ("StopSignal", json!("")),
                ("ArgsEscaped", json!(false)),
                ("Healthcheck", typed_healthcheck(config.get("Healthcheck"))),
                ("OnBuild", gotype::slice(config.get("OnBuild"))),
                ("Shell", gotype::nil_slice()),
            ],
            &[
                "User",
                "ExposedPorts",
                "Env",
                "Entrypoint",
                "Cmd",
                "Volumes",
                "WorkingDir",
                "Labels",
                "StopSignal",
                "ArgsEscaped",
                "Healthcheck",
                "OnBuild",
                "Shell",
            ],
            &[10, 3],
        );
        top.insert("Config".into(), typed);
    }
    for key in ["GraphDriver", "RootFS", "Metadata"] {
        let typed = typed_fields(top.get(key), &[], &[], &[]);
        top.insert(key.into(), typed);
    }
    typed_fields(Some(&view), &["RepoTags", "RepoDigests"], &[], &[])
}

/// The typed view of a `network inspect` object (28.x adds `EnableIPv4`; IPAM and
/// endpoints are structs).
pub fn network_typed_view(raw: &Value) -> Value {
    let mut view = raw.clone();
    let Some(top) = view.as_object_mut() else {
        return view;
    };
    let at = index_of(top, "Driver").map_or(0, |i| i + 1);
    top.shift_insert(at, "EnableIPv4".into(), json!(false));
    if let Some(Value::Object(ipam)) = top.get_mut("IPAM") {
        let configs: Vec<Value> = ipam
            .get("Config")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|config| {
                gotype::structure(
                    vec![
                        ("Subnet", config.get("Subnet").cloned().unwrap_or(json!(""))),
                        ("IPRange", json!("")),
                        (
                            "Gateway",
                            config.get("Gateway").cloned().unwrap_or(json!("")),
                        ),
                        ("AuxiliaryAddresses", gotype::nil_map()),
                    ],
                    &["Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"],
                )
            })
            .collect();
        ipam.insert("Config".into(), Value::Array(configs));
    }
    let ipam = typed_fields(top.get("IPAM"), &[], &["Options"], &[]);
    top.insert("IPAM".into(), ipam);
    let from = typed_fields(top.get("ConfigFrom"), &[], &[], &[]);
    top.insert("ConfigFrom".into(), from);
    if let Some(Value::Object(containers)) = top.get_mut("Containers") {
        for endpoint in containers.values_mut() {
            *endpoint = typed_fields(Some(endpoint), &[], &[], &[]);
        }
    }
    typed_fields(Some(&view), &[], &["Options", "Labels"], &[])
}

/// The typed view of a `volume inspect` object (nil labels and options print `map[]`).
pub fn volume_typed_view(raw: &Value) -> Value {
    typed_fields(Some(raw), &[], &["Labels", "Options"], &[])
}

/// The daemon's default swap limit: twice `--memory` when one is set. The daemon computes
/// it in Go's int64, which wraps; so does this (`--memory 99999999999999999999g` once
/// panicked here with a multiplication overflow).
fn memory_swap(memory: i64) -> i64 {
    if memory > 0 {
        memory.wrapping_mul(2)
    } else {
        0
    }
}

fn network_name(mode: &str) -> String {
    if mode == "default" {
        "bridge".to_string()
    } else {
        mode.to_string()
    }
}

/// The age docker's `ps` puts in STATUS. The fake has no clock (its output must not depend
/// on timing), so every age is docker's shortest: `Less than a second`.
const AGE: &str = "Less than a second";

/// `ps` STATUS text the way docker writes it: `Up Less than a second`, `Created`,
/// `Exited (N) Less than a second ago`, with the health after the age:
/// `Up Less than a second (healthy)`, `Up Less than a second (health: starting)`.
pub fn ps_status(container: &Container) -> String {
    match container.state.status {
        Status::Running => match container.state.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => format!("Up {AGE} (health: starting)"),
            Some(status) => format!("Up {AGE} ({status})"),
            None => format!("Up {AGE}"),
        },
        Status::Created => "Created".to_string(),
        Status::Exited => format!("Exited ({}) {AGE} ago", container.state.exit_code),
    }
}

/// Truncates to `width` characters with `…`, like docker's `Ellipsis`.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The fields a `ps --format` template sees.
pub fn ps_fields(container: &Container, truncate: bool) -> Value {
    let command = container.argv().join(" ");
    let command = if truncate {
        ellipsis(&command, 20)
    } else {
        command
    };
    let labels: Vec<String> = container
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = container
        .mounts
        .iter()
        .map(|m| m.source.to_string_lossy().into_owned())
        .collect();
    json!({
        "Command": serde_json::to_string(&command).unwrap_or_default(),
        "CreatedAt": "2000-01-01 00:00:00 +0000 UTC",
        "ID": if truncate { container.short_id().to_string() } else { container.id.clone() },
        "Image": container.image_name,
        "Labels": labels.join(","),
        "LocalVolumes": "0",
        "Mounts": mounts.join(","),
        "Names": container.name,
        "Networks": network_name(&container.network_mode),
        "Ports": if container.state.status == Status::Running {
            ports::ps_ports(&container.exposed_ports, &container.state.published)
        } else {
            String::new()
        },
        "RunningFor": "Less than a second ago",
        "Size": "0B",
        "State": container.state.status.as_str(),
        "Status": ps_status(container),
    })
}

/// The header a `table` template prints for each field.
pub fn ps_headers() -> Value {
    json!({
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Labels": "LABELS",
        "LocalVolumes": "LOCAL VOLUMES",
        "Mounts": "MOUNTS",
        "Names": "NAMES",
        "Networks": "NETWORKS",
        "Ports": "PORTS",
        "RunningFor": "CREATED",
        "Size": "SIZE",
        "State": "STATE",
        "Status": "STATUS",
    })
}

/// Aligns tab-separated cells like Go's tabwriter(minwidth 10, padding 3), as docker does.
pub fn tabulate(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &rows {
        // The last cell of a row is not part of a column and is never padded.
        for (index, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[index] = widths[index].max((cell.chars().count() + 3).max(10));
        }
    }
    let mut text = String::new();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            text.push_str(cell);
            if index + 1 < row.len() {
                let pad = widths[index].saturating_sub(cell.chars().count());
                text.push_str(&" ".repeat(pad));
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_alignment() {
        let text = tabulate(&[
            "CONTAINER ID\tIMAGE\tNAMES".to_string(),
            "abc\tbusybox:latest\tt1".to_string(),
        ]);
        assert_eq!(
            text,
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   t1\n"
        );
    }

    #[test]
    fn memory_swap_of_a_huge_limit_wraps_like_go_instead_of_panicking() {
        assert_eq!(memory_swap(0), 0);
        assert_eq!(memory_swap(64 * 1024 * 1024), 128 * 1024 * 1024);
        assert_eq!(memory_swap(i64::MAX), -2);
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("sleep 100 and a long tail", 20),
            "sleep 100 and a lon…"
        );
    }
}
