//! Image roots in the fake: `files:` of every type with owners, as `cp`
//! archives them; `save` in the `docker save` layout; `commit` as a new image.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use tempfile::TempDir;

const IMAGE: &str = r##"
name: test/files:1
config:
  env: ["PATH=/bin", "A=1"]
  cmd: [write]
  volumes: [/data]
files:
  /bin/tool: { content: "#!/bin/sh\n", mode: "0750", uid: 10, gid: 20 }
  /bin/link: { type: symlink, target: /bin/tool }
  /var/empty: { type: dir, mode: "1777" }
  /etc/script: { from: script.txt, mode: "0644" }
programs:
  write:
    - mkdir: /out
    - write: { path: /out/made, content: "by setup" }
  cat:
    - cat_args: true
"##;

struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("images")).unwrap();
        std::fs::write(dir.path().join("images/files.yaml"), IMAGE).unwrap();
        std::fs::write(
            dir.path().join("images/script.txt"),
            "echo from a host file\n",
        )
        .unwrap();
        Fake { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("fake-docker").expect("binary");
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("FAKE_DOCKER_STATE", self.path("state"))
            .env("FAKE_DOCKER_IMAGES", self.path("images"))
            .timeout(Duration::from_secs(60));
        command
    }

    fn stdout(&self, args: &[&str]) -> Vec<u8> {
        let output = self.cmd(args).output().expect("run fake-docker");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }
}

/// (name, type, mode, uid, gid, link, content) of every entry.
type Entry = (String, tar::EntryType, u32, u64, u64, String, Vec<u8>);

fn entries(archive: &[u8]) -> Vec<Entry> {
    let mut reader = tar::Archive::new(archive);
    reader
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            let link = header
                .link_name()
                .unwrap()
                .map(|link| link.display().to_string())
                .unwrap_or_default();
            (
                entry.path().unwrap().display().to_string(),
                header.entry_type(),
                header.mode().unwrap() & 0o7777,
                header.uid().unwrap(),
                header.gid().unwrap(),
                link,
                content,
            )
        })
        .collect()
}

#[test]
fn cp_archives_files_links_dirs_with_their_modes_and_owners() {
    let fake = Fake::new();
    let id = String::from_utf8(fake.stdout(&["create", "test/files:1", "NOOP"]))
        .unwrap()
        .trim()
        .to_owned();
    let tool = entries(&fake.stdout(&["cp", &format!("{id}:/bin/tool"), "-"]));
    assert_eq!(
        tool,
        [(
            "tool".into(),
            tar::EntryType::Regular,
            0o750,
            10,
            20,
            String::new(),
            b"#!/bin/sh\n".to_vec()
        )]
    );
    let link = entries(&fake.stdout(&["cp", &format!("{id}:/bin/link"), "-"]));
    assert_eq!(
        (link[0].1, link[0].2, link[0].5.as_str()),
        (tar::EntryType::Symlink, 0o777, "/bin/tool")
    );
    let dir = entries(&fake.stdout(&["cp", &format!("{id}:/var/empty"), "-"]));
    assert_eq!(
        (dir[0].0.as_str(), dir[0].1, dir[0].2),
        ("empty/", tar::EntryType::Directory, 0o1777)
    );
    let script = entries(&fake.stdout(&["cp", &format!("{id}:/etc/script"), "-"]));
    assert_eq!(script[0].6, b"echo from a host file\n");
    let inspect = String::from_utf8(fake.stdout(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Volumes}}",
        "test/files:1",
    ]))
    .unwrap();
    assert_eq!(inspect.trim(), r#"{"/data":{}}"#);
}

#[test]
fn save_writes_the_docker_save_layout() {
    let fake = Fake::new();
    let saved = fake.path("saved.tar");
    fake.stdout(&["save", "-o", saved.to_str().unwrap(), "test/files:1"]);
    let outer = entries(&std::fs::read(&saved).unwrap());
    let file = |name: &str| {
        outer
            .iter()
            .find(|entry| entry.0 == name)
            .map(|entry| entry.6.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(&file("manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "test/files:1");
    let config: serde_json::Value =
        serde_json::from_slice(&file(manifest[0]["Config"].as_str().unwrap())).unwrap();
    assert_eq!(config["config"]["Env"][1], "A=1");
    assert_eq!(config["config"]["Cmd"][0], "write");
    let layer = entries(&file(manifest[0]["Layers"][0].as_str().unwrap()));
    let names: Vec<&str> = layer.iter().map(|entry| entry.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/link",
            "bin/tool",
            "etc/",
            "etc/script",
            "var/",
            "var/empty/"
        ]
    );
    let tool = &layer[2];
    assert_eq!((tool.2, tool.3, tool.4), (0o750, 10, 20));
    assert_eq!(
        (layer[0].2, layer[0].3),
        (0o755, 0),
        "implied directories are 0755 and root's"
    );
}

#[test]
fn commit_makes_an_image_holding_the_containers_changes_and_env() {
    let fake = Fake::new();
    let id = String::from_utf8(fake.stdout(&["create", "-e", "B=2", "test/files:1"]))
        .unwrap()
        .trim()
        .to_owned();
    fake.stdout(&["start", &id]);
    assert_eq!(
        String::from_utf8(fake.stdout(&["wait", &id]))
            .unwrap()
            .trim(),
        "0"
    );
    let image = String::from_utf8(fake.stdout(&["commit", &id]))
        .unwrap()
        .trim()
        .to_owned();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{image}");
    let env = String::from_utf8(fake.stdout(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &image,
    ]))
    .unwrap();
    assert!(env.contains("\"B=2\"") && env.contains("\"A=1\""), "{env}");
    let output = fake.stdout(&[
        "run",
        "--rm",
        "--entrypoint",
        "",
        &image,
        "cat",
        "/out/made",
    ]);
    assert_eq!(output, b"by setup");
    fake.stdout(&["rmi", &image]);
    fake.cmd(&["image", "inspect", &image]).assert().code(1);
}

#[test]
fn a_symlink_without_target_is_rejected_at_load() {
    let fake = Fake::new();
    std::fs::write(
        fake.path("images/bad.yaml"),
        "name: bad:1\nfiles:\n  /x: { type: symlink }\n",
    )
    .unwrap();
    let output = fake.cmd(&["images"]).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("files./x: a symlink needs a `target`"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
