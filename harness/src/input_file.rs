//! Reading files a user names (scenario files, CST configs and envFiles, compose
//! files, hosts and gates files, lint arguments) without letting one hang or
//! exhaust dockproof: a FIFO, device or socket is refused before it is opened
//! (and again on the open descriptor, opened with `O_NONBLOCK`), and a file is
//! refused by its size before a byte of it is read.
//!
//! A leaf module: it knows nothing of scenarios, so every loader can use it.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest configuration file dockproof reads (scenario, CST, compose, hosts,
/// gates, envFile, linted file): 2 MiB, far above any real one.
pub const MAX_CONFIG_BYTES: u64 = 2 * 1024 * 1024;

/// Why a named file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputFileError {
    /// A FIFO, device or socket: reading it could block forever or never end.
    #[error(
        "{path} is {what}, not a regular file; it is refused, not opened (name a regular file)"
    )]
    Special { path: PathBuf, what: &'static str },
    /// A directory where a file was expected.
    #[error("{path} is a directory, not a file")]
    Directory { path: PathBuf },
    /// Larger than the limit, by its size on disk.
    #[error(
        "{path} is {size} bytes, more than the {limit} bytes dockproof reads from such a file (split it, or check that this is the file you meant)"
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
    /// The file system said no.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of non-regular file `file_type` is, when reading it could block or
/// never end (a FIFO, a character or block device, a socket); `None` for regular
/// files, directories and symlinks.
pub fn special_kind(file_type: fs::FileType) -> Option<&'static str> {
    if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// Refuse `path` if it is (or, through a symlink, leads to) a FIFO, device or
/// socket; a missing path passes (the caller's open reports it).
pub fn refuse_special(path: &Path) -> Result<(), InputFileError> {
    match fs::metadata(path) {
        Ok(metadata) => match special_kind(metadata.file_type()) {
            Some(what) => Err(InputFileError::Special {
                path: path.to_path_buf(),
                what,
            }),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// Open `path` for reading if it is a regular file of at most `limit` bytes: its
/// type is checked before opening (so a FIFO is never opened and a device never
/// touched) and again on the descriptor (opened non-blocking, so a file swapped for a
/// FIFO in between cannot block either). Returns the file and its size.
pub fn open_regular(path: &Path, limit: u64) -> Result<(fs::File, u64), InputFileError> {
    let io = |source: std::io::Error| InputFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let check = |metadata: &fs::Metadata| -> Result<u64, InputFileError> {
        if let Some(what) = special_kind(metadata.file_type()) {
            return Err(InputFileError::Special {
                path: path.to_path_buf(),
                what,
            });
        }
        if metadata.is_dir() {
            return Err(InputFileError::Directory {
                path: path.to_path_buf(),
            });
        }
        if metadata.len() > limit {
            return Err(InputFileError::TooLarge {
                path: path.to_path_buf(),
                size: metadata.len(),
                limit,
            });
        }
        Ok(metadata.len())
    };
    check(&fs::metadata(path).map_err(io)?)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let size = check(&file.metadata().map_err(io)?)?;
    Ok((file, size))
}

/// Read `path` as UTF-8 text of at most `limit` bytes (see [`open_regular`]); a file
/// that grows past the limit while it is read is refused too.
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputFileError> {
    let (file, size) = open_regular(path, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(InputFileError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| InputFileError::NotText {
        path: path.to_path_buf(),
    })
}

/// Read a configuration file (at most [`MAX_CONFIG_BYTES`]).
pub fn read_config(path: &Path) -> Result<String, InputFileError> {
    read_text(path, MAX_CONFIG_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let error = read_config(&fifo).unwrap_err();
        assert!(
            matches!(error, InputFileError::Special { what: "a FIFO", .. }),
            "{error}"
        );
        assert!(error.to_string().contains("pipe.yaml"), "{error}");
        assert!(refuse_special(&fifo).is_err());
    }

    #[test]
    fn a_device_is_refused() {
        let error = read_config(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(
                error,
                InputFileError::Special {
                    what: "a character device",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn size_is_checked_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        let file = fs::File::create(&big).unwrap();
        // Sparse: nothing is written, only the size is set.
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let error = read_config(&big).unwrap_err();
        assert!(matches!(error, InputFileError::TooLarge { .. }), "{error}");
        std::fs::write(&big, "name: x\n").unwrap();
        assert_eq!(read_config(&big).unwrap(), "name: x\n");
    }

    #[test]
    fn a_directory_and_binary_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_config(dir.path()),
            Err(InputFileError::Directory { .. })
        ));
        let binary = dir.path().join("b");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_config(&binary),
            Err(InputFileError::NotText { .. })
        ));
    }
}
