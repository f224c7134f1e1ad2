//! An sshd of the test's own (keys from ssh-keygen, a config in a temp dir, listening on
//! one address) and an `ssh` wrapper giving the client a config of its own, so the
//! user's ~/.ssh is neither used nor touched.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

/// The programs the test needs besides docker.
#[derive(Clone)]
pub struct Tools {
    pub sshd: PathBuf,
    pub ssh: PathBuf,
    pub keygen: PathBuf,
}

pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `sshd` (usually in /usr/sbin, which is not on every PATH), `ssh` and `ssh-keygen`, or what is missing.
pub fn tools() -> Result<Tools, String> {
    let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .or_else(|| on_path("sshd"));
    match (sshd, on_path("ssh"), on_path("ssh-keygen")) {
        (Some(sshd), Some(ssh), Some(keygen)) => Ok(Tools { sshd, ssh, keygen }),
        (sshd, ssh, keygen) => {
            let missing: Vec<&str> = [
                (sshd.is_none(), "sshd (openssh-server)"),
                (ssh.is_none(), "ssh (openssh-client)"),
                (keygen.is_none(), "ssh-keygen (openssh-client)"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            Err(format!(
                "the ssh tests need {}: apt-get install openssh-server openssh-client",
                missing.join(", ")
            ))
        }
    }
}

pub fn run(command: &mut Command, what: &str) -> Result<String, Failed> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{what} failed: {}", super::describe(&output)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub fn keygen(tools: &Tools, path: &Path) -> Result<String, Failed> {
    run(
        Command::new(&tools.keygen)
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "dockproof-test",
                "-f",
            ])
            .arg(path),
        "ssh-keygen",
    )?;
    Ok(std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|error| error.to_string())?
        .trim()
        .to_owned())
}

/// A loopback port nothing listens on (just released).
pub fn free_port() -> Result<u16, Failed> {
    free_port_on("127.0.0.1".parse().map_err(|_| "127.0.0.1")?)
}

/// A port nothing listens on at `ip` (just released).
pub fn free_port_on(ip: IpAddr) -> Result<u16, Failed> {
    let listener = std::net::TcpListener::bind((ip, 0)).map_err(|error| error.to_string())?;
    Ok(listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port())
}

/// An sshd this test started and stops (killed by its handle on drop).
pub struct Sshd {
    child: Child,
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_sshd(
    tools: &Tools,
    dir: &Path,
    listen: IpAddr,
    host_key: &Path,
    authorized: &Path,
) -> Result<Sshd, Failed> {
    // sshd insists on its privilege separation directory, which only its init script makes.
    if tools.sshd.starts_with("/usr/sbin") && !Path::new("/run/sshd").is_dir() {
        std::fs::create_dir_all("/run/sshd")
            .map_err(|error| format!("sshd needs /run/sshd: {error}"))?;
    }
    let port = free_port_on(listen)?;
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {listen}\nPort {port}\nHostKey {}\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile {}\nStrictModes no\n\
             PidFile {}\nUsePAM no\nLogLevel VERBOSE\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .map_err(|error| error.to_string())?;
    let log = std::fs::File::create(dir.join("sshd.log")).map_err(|error| error.to_string())?;
    let child = Command::new(&tools.sshd)
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-e")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", tools.sshd.display()))?;
    let mut sshd = Sshd { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((listen, port)).is_err() {
        if let Ok(Some(status)) = sshd.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            return Err(format!("sshd exited with {status}:\n{log}").into());
        }
        if Instant::now() > deadline {
            return Err("sshd did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(sshd)
}

/// A directory holding an `ssh` that runs the real one with `config`: put first on PATH,
/// it is what the docker CLI and dockproof's tunnel run.
pub fn ssh_wrapper(tools: &Tools, dir: &Path, name: &str, config: &str) -> Result<PathBuf, Failed> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join(name);
    std::fs::create_dir_all(&bin).map_err(|error| error.to_string())?;
    let config_path = bin.join("ssh_config");
    std::fs::write(&config_path, config).map_err(|error| error.to_string())?;
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' -F '{}' \"$@\"\n",
            tools.ssh.display(),
            config_path.display()
        ),
    )
    .map_err(|error| error.to_string())?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| error.to_string())?;
    Ok(bin)
}

/// A client config for `host`: only this identity, only these known hosts, strictly checked.
pub fn client_config(host: &str, identity: &Path, known_hosts: &Path) -> String {
    format!(
        "Host {host}\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n  LogLevel ERROR\n",
        identity.display(),
        known_hosts.display(),
    )
}
