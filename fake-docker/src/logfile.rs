//! A container's log: framed records that keep stdout and stderr in one ordered stream.
//!
//! Each record is `tag (b'o' | b'e')`, a big-endian u32 length, then the bytes, written
//! with one `write` on an `O_APPEND` file, so the combined order is the order of output.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Which stream a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Appends records to a container log.
pub struct LogWriter {
    file: File,
}

impl LogWriter {
    /// Opens (creating if needed) the log for appending.
    pub fn open(path: &Path) -> std::io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogWriter { file })
    }

    /// Appends one record; large outputs are split so a record's length fits in u32.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        for chunk in bytes.chunks(1 << 20) {
            let mut frame = Vec::with_capacity(chunk.len() + 5);
            frame.push(match stream {
                Stream::Stdout => b'o',
                Stream::Stderr => b'e',
            });
            frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            frame.extend_from_slice(chunk);
            self.file.write_all(&frame)?;
        }
        Ok(())
    }
}

impl crate::program::Output for LogWriter {
    fn stdout(&mut self, bytes: &[u8]) {
        // Nowhere to report a failing log write from inside the container: drop it.
        let _ = self.write(Stream::Stdout, bytes);
    }
    fn stderr(&mut self, bytes: &[u8]) {
        let _ = self.write(Stream::Stderr, bytes);
    }
}

/// Splits complete records off the front of `buffer`; returns them and the bytes used.
pub fn parse_records(buffer: &[u8]) -> (Vec<(Stream, Vec<u8>)>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while buffer.len() >= offset + 5 {
        let stream = if buffer[offset] == b'e' {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let mut length_bytes = [0u8; 4];
        length_bytes.copy_from_slice(&buffer[offset + 1..offset + 5]);
        let length = u32::from_be_bytes(length_bytes) as usize;
        if buffer.len() < offset + 5 + length {
            // A record still being written; the next read completes it.
            break;
        }
        records.push((stream, buffer[offset + 5..offset + 5 + length].to_vec()));
        offset += 5 + length;
    }
    (records, offset)
}

/// Reads new records from `path` starting at `*offset`, advancing it past complete ones.
pub fn read_new(path: &Path, offset: &mut u64) -> std::io::Result<Vec<(Stream, Vec<u8>)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(*offset))?;
    let mut buffer = Vec::new();
    file.read_to_end(&mut buffer)?;
    let (records, used) = parse_records(&buffer);
    *offset += used as u64;
    Ok(records)
}

/// Turns records into lines (each ending in `\n`, except a final partial one per stream),
/// in the order they were completed, as docker's json-file log stores them.
pub fn lines(records: &[(Stream, Vec<u8>)]) -> Vec<(Stream, Vec<u8>)> {
    let mut pending_out = Vec::new();
    let mut pending_err = Vec::new();
    let mut lines = Vec::new();
    for (stream, bytes) in records {
        let pending = match stream {
            Stream::Stdout => &mut pending_out,
            Stream::Stderr => &mut pending_err,
        };
        for &byte in bytes {
            pending.push(byte);
            if byte == b'\n' {
                lines.push((*stream, std::mem::take(pending)));
            }
        }
    }
    if !pending_out.is_empty() {
        lines.push((Stream::Stdout, pending_out));
    }
    if !pending_err.is_empty() {
        lines.push((Stream::Stderr, pending_err));
    }
    lines
}

/// Streams a whole log as `docker logs` prints it (complete lines per stream,
/// in the order they were completed, then each stream's partial last line),
/// reading the file in chunks: memory stays small whatever the log's size.
/// Returns the offset past the last complete record.
pub fn stream_lines(
    path: &Path,
    emit: &mut dyn FnMut(Stream, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut pending_out = Vec::new();
    let mut pending_err = Vec::new();
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let read = file.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let (records, used) = parse_records(&buffer);
        buffer.drain(..used);
        offset += used as u64;
        for (stream, bytes) in records {
            let pending = match stream {
                Stream::Stdout => &mut pending_out,
                Stream::Stderr => &mut pending_err,
            };
            // Everything up to the record's last newline completes lines: emit it at once.
            match bytes.iter().rposition(|&byte| byte == b'\n') {
                Some(last) => {
                    pending.extend_from_slice(&bytes[..=last]);
                    emit(stream, pending)?;
                    pending.clear();
                    pending.extend_from_slice(&bytes[last + 1..]);
                }
                None => pending.extend_from_slice(&bytes),
            }
        }
    }
    if !pending_out.is_empty() {
        emit(Stream::Stdout, &pending_out)?;
    }
    if !pending_err.is_empty() {
        emit(Stream::Stderr, &pending_err)?;
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("log");
        let mut writer = LogWriter::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for (stream, text) in [
            (Stream::Stdout, "a\nb"),
            (Stream::Stderr, "x\n"),
            (Stream::Stdout, "c\n"),
            (Stream::Stdout, "tail"),
        ] {
            writer
                .write(stream, text.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut offset = 0;
        let records = read_new(&path, &mut offset).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 4);
        let lines: Vec<(Stream, String)> = lines(&records)
            .into_iter()
            .map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (Stream::Stdout, "a\n".to_string()),
                (Stream::Stderr, "x\n".to_string()),
                (Stream::Stdout, "bc\n".to_string()),
                (Stream::Stdout, "tail".to_string()),
            ]
        );
        assert!(read_new(&path, &mut offset).unwrap_or_default().is_empty());
    }

    #[test]
    fn streaming_prints_what_lines_prints() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("log");
        let mut writer = LogWriter::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let big = "0123456789\n".repeat(300_000);
        for (stream, text) in [
            (Stream::Stdout, "a\nb"),
            (Stream::Stderr, "x\n"),
            (Stream::Stdout, big.as_str()),
            (Stream::Stderr, "partial"),
            (Stream::Stdout, "tail"),
        ] {
            writer
                .write(stream, text.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut offset = 0;
        let records = read_new(&path, &mut offset).unwrap_or_else(|e| panic!("{e}"));
        let joined = |stream: Stream, items: &[(Stream, Vec<u8>)]| -> Vec<u8> {
            items
                .iter()
                .filter(|(s, _)| *s == stream)
                .flat_map(|(_, bytes)| bytes.clone())
                .collect()
        };
        let mut streamed = Vec::new();
        let end = stream_lines(&path, &mut |stream, bytes| {
            streamed.push((stream, bytes.to_vec()));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(end, offset);
        let expected = lines(&records);
        for stream in [Stream::Stdout, Stream::Stderr] {
            assert_eq!(joined(stream, &streamed), joined(stream, &expected));
        }
        assert_eq!(
            streamed.last().map(|(s, b)| (*s, b.as_slice())),
            Some((Stream::Stderr, &b"partial"[..]))
        );
    }

    #[test]
    fn partial_records_wait() {
        let (records, used) = parse_records(&[b'o', 0, 0, 0, 3, b'a']);
        assert!(records.is_empty());
        assert_eq!(used, 0);
    }
}
