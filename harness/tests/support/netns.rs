//! A "remote machine" on this host, for tests of dockproof against a daemon elsewhere: a
//! network namespace joined to the host by a veth pair whose two addresses (a /30 from
//! 169.254.0.0/16, derived from the test's pid and checked unused) the test assigns, and a
//! private mount namespace per command whose TMPDIR is a tmpfs the daemon cannot see.
//! Inside, only `lo` and the veth exist: no default route, so traffic can only go to
//! loopback and the two veth addresses. Everything is removed on drop.
//!
//! Needs root, `ip` (iproute2) and `unshare` (util-linux).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::Failed;

/// The first /30 tried is derived from the pid; so many others are tried when it is taken.
const ATTEMPTS: u32 = 64;

/// Why the namespace tests cannot run here (not root, `ip` or `unshare` missing), if so.
pub fn unavailable() -> Option<String> {
    let mut missing = Vec::new();
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0") {
        missing.push("root (ip netns, veth, mount)");
    }
    for (program, package) in [
        ("ip", "ip (iproute2)"),
        ("unshare", "unshare (util-linux)"),
        ("bash", "bash"),
    ] {
        let found = Command::new(program)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            missing.push(package);
        }
    }
    (!missing.is_empty()).then(|| {
        format!(
            "the remote topology tests need {}: run as root with iproute2 and util-linux installed",
            missing.join(", ")
        )
    })
}

/// Run `ip` with `args`; its failure is the test's.
fn ip(args: &[&str]) -> Result<String, Failed> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// IPv4 addresses assigned on this host (every interface of the root namespace) and the
/// destinations of its routes: a /30 touching any of them is not used.
fn taken_addresses() -> Result<String, Failed> {
    Ok(format!(
        "{}\n{}",
        ip(&["-4", "-o", "addr", "show"])?,
        ip(&["-4", "route", "show", "table", "all"])?
    ))
}

/// The /30 number `n` in 169.254.1.0–169.254.254.255: (network, host side, remote side).
fn slash30(n: u32) -> (Ipv4Addr, Ipv4Addr, Ipv4Addr) {
    let n = n % (254 * 64);
    let third = (1 + n / 64) as u8;
    let fourth = ((n % 64) * 4) as u8;
    (
        Ipv4Addr::new(169, 254, third, fourth),
        Ipv4Addr::new(169, 254, third, fourth + 1),
        Ipv4Addr::new(169, 254, third, fourth + 2),
    )
}

/// One remote machine: namespace `name`, reached from the host at `remote_side`, reaching
/// the host (where the daemon is) at `host_side`.
#[derive(Debug)]
pub struct RemoteMachine {
    pub name: String,
    /// The veth address in the root namespace: the daemon's host as the machine sees it.
    pub host_side: Ipv4Addr,
    /// The veth address inside the namespace.
    pub remote_side: Ipv4Addr,
    host_link: String,
    /// On the host, an empty directory; in each command of the machine, a private tmpfs
    /// (its TMPDIR). Whatever appears here on the host was made by the daemon's side.
    tmp: tempfile::TempDir,
}

impl RemoteMachine {
    /// Make machine `index` (0, 1, … for a fleet) of this test process.
    pub fn create(index: u32) -> Result<RemoteMachine, Failed> {
        let pid = std::process::id();
        let name = format!("remotenet-{pid}-{index}");
        let host_link = format!("rn{}h{index}", pid % 100_000);
        let remote_link = format!("rn{}n{index}", pid % 100_000);
        let taken = taken_addresses()?;
        let (_, host_side, remote_side) = (0..ATTEMPTS)
            .map(|attempt| slash30(pid.wrapping_mul(7) + index * 997 + attempt * 13))
            .find(|(network, _, _)| {
                let octets = network.octets();
                (0..4).all(|offset| {
                    let address =
                        Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3] + offset);
                    // Followed by `/` (an address or route) or a space (a route without a prefix).
                    !taken.contains(&format!("{address}/"))
                        && !taken.contains(&format!("{address} "))
                })
            })
            .ok_or("no unused /30 found in 169.254.0.0/16")?;
        let tmp = tempfile::Builder::new()
            .prefix("remotenet-daemon-side-")
            .tempdir()
            .map_err(|error| error.to_string())?;
        ip(&["netns", "add", &name])?;
        // From here on, drop removes what was made.
        let machine = RemoteMachine {
            name,
            host_side,
            remote_side,
            host_link,
            tmp,
        };
        let ns = machine.name.as_str();
        let host_cidr = format!("{host_side}/30");
        let remote_cidr = format!("{remote_side}/30");
        ip(&[
            "link",
            "add",
            &machine.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &remote_link,
        ])?;
        ip(&["link", "set", &remote_link, "netns", ns])?;
        ip(&["addr", "add", &host_cidr, "dev", &machine.host_link])?;
        ip(&["link", "set", &machine.host_link, "up"])?;
        ip(&["-n", ns, "addr", "add", &remote_cidr, "dev", &remote_link])?;
        ip(&["-n", ns, "link", "set", &remote_link, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(machine)
    }

    /// `program` run on the machine: in its network namespace, in a mount namespace of its
    /// own whose TMPDIR is a fresh tmpfs (mounted over a directory that stays empty on the
    /// host). Add arguments to the command returned.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .args(["unshare", "--mount", "--propagation", "private"])
            .args([
                "sh",
                "-c",
                r#"dir=$1; shift; mount -t tmpfs -o mode=1777,size=2g remotenet "$dir" && TMPDIR="$dir" exec "$@""#,
                "sh",
            ])
            .arg(self.tmp.path())
            .arg(program.as_ref());
        command
    }

    /// The directory that is the machine's TMPDIR, as the daemon's host sees it.
    pub fn daemon_side_tmp(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    /// What the daemon's host has under the machine's TMPDIR (nothing, unless something on
    /// the daemon's side created it, as a bind mount of a missing source does).
    pub fn daemon_side_leftovers(&self) -> Vec<PathBuf> {
        walkdir(self.tmp.path())
    }

    /// Whether a TCP connection from inside the machine to `address:port` is accepted (5 s at most).
    pub fn connects(&self, address: &str, port: u16) -> Result<bool, Failed> {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, "timeout", "5", "bash", "-c"])
            .arg(r#"exec 3<>"/dev/tcp/$0/$1""#)
            .arg(address)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|error| format!("cannot run ip netns exec: {error}"))?;
        Ok(status.success())
    }
}

impl Drop for RemoteMachine {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth, and so the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .stderr(Stdio::null())
            .status();
    }
}

/// Every path under `dir` (not `dir` itself), depth first.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        found.push(path.clone());
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.extend(walkdir(&path));
        }
    }
    found
}
