//! A minimal ustar writer and reader for `docker cp -` and `docker save` (regular
//! files, directories and symlinks, with owners).

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

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
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

fn header_with(name: &str, meta: &EntryMeta<'_>) -> Result<[u8; BLOCK], TarError> {
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
    out.write_all(&header_with(name, meta)?)?;
    if meta.kind == b'0' {
        out.write_all(bytes)?;
        let pad = (BLOCK - bytes.len() % BLOCK) % BLOCK;
        out.write_all(&vec![0u8; pad])?;
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

fn parse_octal(field: &[u8]) -> Result<u64, TarError> {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| TarError::Header)
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Where the first regular file's data starts in an archive, and its size.
pub fn first_file_data(archive: &[u8]) -> Option<(usize, u64)> {
    let mut at = 0;
    while at + BLOCK <= archive.len() {
        let block = &archive[at..at + BLOCK];
        if block.iter().all(|b| *b == 0) {
            return None;
        }
        let size = parse_octal(&block[124..136]).ok()?;
        if matches!(block[156], b'0' | 0) && size > 0 {
            return Some((at + BLOCK, size));
        }
        let padded = usize::try_from(size.div_ceil(BLOCK as u64)).ok()? * BLOCK;
        at += BLOCK + padded;
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
    let mut block = [0u8; BLOCK];
    loop {
        if input.read_exact(&mut block).is_err() || block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let prefix = field_text(&block[345..500]);
        let short = field_text(&block[..100]);
        let name = if prefix.is_empty() {
            short
        } else {
            format!("{prefix}/{short}")
        };
        let mode = parse_octal(&block[100..108])? as u32;
        let size = parse_octal(&block[124..136])?;
        let kind = block[156];
        let relative = Path::new(&name);
        if relative
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::RootDir))
        {
            return Err(TarError::Unsafe(name));
        }
        let target = place(relative);
        let mut data = vec![0u8; size as usize];
        input.read_exact(&mut data)?;
        let pad = (BLOCK - (size as usize) % BLOCK) % BLOCK;
        let mut skip = vec![0u8; pad];
        input.read_exact(&mut skip)?;
        match kind {
            b'5' => std::fs::create_dir_all(&target)?,
            b'0' | 0 => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, &data)?;
                if mode != 0 {
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
                }
            }
            // Links, devices and extended headers are not needed by the fake.
            _ => {}
        }
    }
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
    }
}
