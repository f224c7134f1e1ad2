//! `docker cp -` and `docker save` archives through the `tar` crate: ustar headers
//! (regular files, directories and symlinks, with owners), written byte for byte as the
//! daemon's Go `archive/tar` writes them (the checksum field is `%06o\0 `, Go's format,
//! where the crate writes `%07o\0`), and read back with `..` escapes refused.

use std::io::{Read, Write};
use std::path::{Component, Path};

const BLOCK: usize = 512;

/// Why an archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("archive/tar: invalid tar header")]
    Header,
    #[error("name too long for a tar header: {0}")]
    Name(String),
    #[error("invalid path in archive: {0}")]
    Unsafe(String),
}

/// One archive entry's metadata.
pub struct EntryMeta<'a> {
    pub mode: u32,
    pub size: u64,
    /// `b'0'` file, `b'5'` directory, `b'2'` symlink.
    pub kind: u8,
    pub uid: u64,
    pub gid: u64,
    pub link: &'a str,
}

/// The modification time of every entry: 2000-01-01, as the fake's other timestamps.
const MTIME: u64 = 946_684_800;

fn header_with(name: &str, meta: &EntryMeta<'_>) -> Result<tar::Header, TarError> {
    let too_long = || TarError::Name(name.to_string());
    let mut header = tar::Header::new_ustar();
    // A name over 100 bytes is split at a `/` into the ustar prefix (155) and name (100).
    if name.len() > 100 {
        let split = name[..name.len().min(156)]
            .rfind('/')
            .filter(|i| name.len() - i - 1 <= 100)
            .ok_or_else(too_long)?;
        let ustar = header.as_ustar_mut().ok_or_else(too_long)?;
        ustar.prefix[..split].copy_from_slice(&name.as_bytes()[..split]);
        ustar.name[..name.len() - split - 1].copy_from_slice(&name.as_bytes()[split + 1..]);
    } else {
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    }
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    if meta.link.len() > 100 {
        return Err(TarError::Name(meta.link.to_string()));
    }
    header.as_old_mut().linkname[..meta.link.len()].copy_from_slice(meta.link.as_bytes());
    header.set_size(meta.size);
    header.set_mtime(MTIME);
    header.set_entry_type(tar::EntryType::new(meta.kind));
    // Go's checksum field: six octal digits, NUL, space.
    let bytes = header.as_mut_bytes();
    bytes[148..156].copy_from_slice(b"        ");
    let sum: u32 = bytes.iter().map(|b| u32::from(*b)).sum();
    let digits = format!("{sum:06o}");
    bytes[148..154].copy_from_slice(&digits.as_bytes()[digits.len() - 6..]);
    bytes[154] = 0;
    bytes[155] = b' ';
    Ok(header)
}

/// Writes `path` (a file or a directory tree) into an archive under the name `name`.
pub fn write_tree(out: &mut dyn Write, path: &Path, name: &str) -> Result<(), TarError> {
    write_tree_owned(out, path, name, &|_| (0, 0))
}

/// Writes one entry: a file's bytes, a directory or a symlink.
pub fn write_entry(
    out: &mut dyn Write,
    name: &str,
    meta: &EntryMeta<'_>,
    bytes: &[u8],
) -> Result<(), TarError> {
    let header = header_with(name, meta)?;
    out.write_all(header.as_bytes())?;
    if meta.kind == b'0' {
        out.write_all(bytes)?;
        let pad = (BLOCK - bytes.len() % BLOCK) % BLOCK;
        out.write_all(&[0u8; BLOCK][..pad])?;
    }
    Ok(())
}

/// Like `write_tree`, with each entry's owner from `owner` (given the host path).
/// Symlinks are archived as links, not followed, as `docker cp` does.
pub fn write_tree_owned(
    out: &mut dyn Write,
    path: &Path,
    name: &str,
    owner: &dyn Fn(&Path) -> (u64, u64),
) -> Result<(), TarError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mode = meta.permissions().mode();
    let (uid, gid) = owner(path);
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        let link = target.to_string_lossy();
        write_entry(
            out,
            name,
            &EntryMeta {
                mode,
                size: 0,
                kind: b'2',
                uid,
                gid,
                link: &link,
            },
            &[],
        )?;
    } else if meta.is_dir() {
        write_entry(
            out,
            &format!("{name}/"),
            &EntryMeta {
                mode,
                size: 0,
                kind: b'5',
                uid,
                gid,
                link: "",
            },
            &[],
        )?;
        let mut entries: Vec<_> = std::fs::read_dir(path)?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            write_tree_owned(out, &entry.path(), &child, owner)?;
        }
    } else {
        let bytes = std::fs::read(path)?;
        write_entry(
            out,
            name,
            &EntryMeta {
                mode,
                size: bytes.len() as u64,
                kind: b'0',
                uid,
                gid,
                link: "",
            },
            &bytes,
        )?;
    }
    Ok(())
}

/// Copies a host tree into `to` (merging into existing directories), keeping modes and symlinks.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if meta.is_dir() {
        if !to.is_dir() {
            std::fs::create_dir_all(to)?;
        }
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        let _ = std::fs::remove_file(to);
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// Ends an archive (two zero blocks).
pub fn finish(out: &mut dyn Write) -> Result<(), TarError> {
    out.write_all(&[0u8; BLOCK * 2])?;
    out.flush()?;
    Ok(())
}

/// Where the first regular file's data starts in an archive, and its size.
pub fn first_file_data(archive: &[u8]) -> Option<(usize, u64)> {
    let mut archive_reader = tar::Archive::new(archive);
    for entry in archive_reader.entries().ok()? {
        let entry = entry.ok()?;
        let size = entry.header().size().ok()?;
        if entry.header().entry_type().is_file() && size > 0 {
            return Some((usize::try_from(entry.raw_file_position()).ok()?, size));
        }
    }
    None
}

/// Extracts an archive into `dir`; only files and directories, no `..` escapes.
pub fn extract(input: &mut dyn Read, dir: &Path) -> Result<(), TarError> {
    extract_with(input, &|relative| dir.join(relative))
}

/// Extracts an archive, each entry where `place` puts its relative path (a container's
/// path through its mounts); only files and directories, no `..` escapes.
pub fn extract_with(
    input: &mut dyn Read,
    place: &dyn Fn(&Path) -> std::path::PathBuf,
) -> Result<(), TarError> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(|_| TarError::Header)? {
        // A short or unreadable header ends the archive, as a truncated stream does.
        let Ok(mut entry) = entry else {
            return Ok(());
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mode = entry.header().mode().map_err(|_| TarError::Header)?;
        let kind = entry.header().entry_type();
        let relative = Path::new(&name);
        if relative
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
        {
            return Err(TarError::Unsafe(name));
        }
        let target = place(relative);
        let size = entry.header().size().map_err(|_| TarError::Header)?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        // The crate stops at the end of the stream: a file cut short is an error here.
        if u64::try_from(data.len()).ok() != Some(size) {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, &data)?;
            if mode != 0 {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
            }
        }
        // Links, devices and extended headers are not needed by the fake.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_tree() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let source = dir.path().join("data");
        std::fs::create_dir_all(source.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(source.join("a.txt"), "hello\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(source.join("sub/b.txt"), "deep\n").unwrap_or_else(|e| panic!("{e}"));
        let mut archive = Vec::new();
        write_tree(&mut archive, &source, "data").unwrap_or_else(|e| panic!("{e}"));
        finish(&mut archive).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(archive.len() % BLOCK, 0);
        let target = dir.path().join("out");
        std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("{e}"));
        extract(&mut archive.as_slice(), &target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(target.join("data/sub/b.txt")).unwrap_or_default(),
            "deep\n"
        );
        let (at, size) = first_file_data(&archive).unwrap_or_default();
        assert_eq!(
            &archive[at..at + usize::try_from(size).unwrap_or(0)],
            b"hello\n"
        );
    }

    #[test]
    fn an_escaping_entry_is_refused() {
        let meta = EntryMeta {
            mode: 0o644,
            size: 1,
            kind: b'0',
            uid: 0,
            gid: 0,
            link: "",
        };
        let mut archive = Vec::new();
        write_entry(&mut archive, "../x", &meta, b"a").unwrap_or_else(|e| panic!("{e}"));
        finish(&mut archive).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            extract(&mut archive.as_slice(), dir.path()),
            Err(TarError::Unsafe(name)) if name == "../x"
        ));
    }

    /// The hand-written ustar writer this module replaced (Go's header layout), kept as
    /// the oracle: the `tar` crate's headers must be the same bytes, so `docker save` and
    /// `docker cp` archives (and every digest of them) do not change.
    mod oracle {
        use super::super::{BLOCK, EntryMeta, TarError};

        fn octal(field: &mut [u8], value: u64) {
            let width = field.len() - 1;
            let text = format!("{value:0width$o}");
            let bytes = text.as_bytes();
            let start = bytes.len().saturating_sub(width);
            field[..width].copy_from_slice(&bytes[start..]);
            field[width] = 0;
        }

        pub fn header_with(name: &str, meta: &EntryMeta<'_>) -> Result<[u8; BLOCK], TarError> {
            let (mode, size, kind) = (meta.mode, meta.size, meta.kind);
            let mut block = [0u8; BLOCK];
            let (prefix, short) = if name.len() <= 100 {
                ("", name)
            } else {
                let split = name[..name.len().min(156)]
                    .rfind('/')
                    .filter(|i| name.len() - i - 1 <= 100)
                    .ok_or_else(|| TarError::Name(name.to_string()))?;
                (&name[..split], &name[split + 1..])
            };
            block[..short.len()].copy_from_slice(short.as_bytes());
            octal(&mut block[100..108], u64::from(mode & 0o7777));
            octal(&mut block[108..116], meta.uid);
            octal(&mut block[116..124], meta.gid);
            if meta.link.len() > 100 {
                return Err(TarError::Name(meta.link.to_string()));
            }
            block[157..157 + meta.link.len()].copy_from_slice(meta.link.as_bytes());
            octal(&mut block[124..136], size);
            octal(&mut block[136..148], 946_684_800);
            block[156] = kind;
            block[257..263].copy_from_slice(b"ustar\0");
            block[263..265].copy_from_slice(b"00");
            block[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
            block[148..156].copy_from_slice(b"        ");
            let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
            octal(&mut block[148..155], u64::from(sum));
            block[155] = b' ';
            Ok(block)
        }
    }

    #[test]
    fn headers_are_byte_identical_to_the_hand_written_writer() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let meta = |mode, size, kind, owner, link| EntryMeta {
            mode,
            size,
            kind,
            uid: owner,
            gid: owner,
            link,
        };
        let cases = [
            ("a.txt", meta(0o100_644, 6, b'0', 0, "")),
            ("dir/", meta(0o40_755, 0, b'5', 1000, "")),
            ("link", meta(0o777, 0, b'2', 0, "a.txt")),
            (long.as_str(), meta(0o600, 123_456_789, b'0', 65534, "")),
        ];
        for (name, meta) in &cases {
            let ours = header_with(name, meta).unwrap_or_else(|e| panic!("{e}"));
            let theirs = oracle::header_with(name, meta).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ours.as_bytes().as_slice(), theirs.as_slice(), "{name}");
        }
        assert!(matches!(
            header_with(&"x".repeat(300), &cases[0].1),
            Err(TarError::Name(_))
        ));
    }
}
