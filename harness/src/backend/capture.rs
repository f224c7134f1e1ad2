//! Bounded capture of process output: a stream of any length costs at most
//! `max_bytes` of memory, and the tail (what people need) is always kept.
//! Optionally the whole stream is written to a file as it arrives, so nothing
//! is lost and nothing beyond the tail is held in memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Output collected so far.
#[derive(Debug)]
pub struct Capture {
    /// The last `max_bytes` bytes, as a ring: dropping the oldest bytes is
    /// O(dropped), not O(kept), so a long stream costs time linear in its length.
    tail: VecDeque<u8>,
    max_bytes: usize,
    total: u64,
    file: Option<CaptureFile>,
}

#[derive(Debug)]
struct CaptureFile {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    error: Option<String>,
}

impl Capture {
    /// Keep at most the last `max_bytes` bytes in memory.
    pub fn new(max_bytes: usize) -> Self {
        Capture {
            tail: VecDeque::new(),
            max_bytes: max_bytes.max(1),
            total: 0,
            file: None,
        }
    }

    /// Also write the whole stream to `path` (created or truncated).
    pub fn with_file(mut self, path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        self.file = Some(CaptureFile {
            path: path.to_path_buf(),
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
            error: None,
        });
        Ok(self)
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            file.write(bytes);
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.max_bytes)..];
        let excess = (self.tail.len() + bytes.len()).saturating_sub(self.max_bytes);
        self.tail.drain(..excess);
        let needed = self.tail.len() + bytes.len();
        if needed > self.tail.capacity() {
            // Grow geometrically, but never past the limit.
            let wanted = needed.max(self.tail.capacity() * 2).min(self.max_bytes);
            self.tail.reserve_exact(wanted - self.tail.len());
        }
        self.tail.extend(bytes);
    }

    /// Bytes of memory the kept tail holds (never more than the limit).
    pub fn retained_capacity(&self) -> usize {
        self.tail.capacity()
    }

    pub fn finish(mut self) -> Captured {
        let truncated = self.total > self.tail.len() as u64;
        let (front, back) = self.tail.as_slices();
        let mut bytes = Vec::with_capacity(front.len() + back.len());
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        drop(std::mem::take(&mut self.tail));
        let mut text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        if truncated {
            // Drop the partial first line so the tail starts on a line boundary.
            if let Some(newline) = text.find('\n') {
                text.drain(..=newline);
            }
        }
        let (file, file_error) = match self.file.take() {
            Some(file) => file.close(),
            None => (None, None),
        };
        Captured {
            text,
            total_bytes: self.total,
            truncated,
            file,
            file_error,
        }
    }
}

impl CaptureFile {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(writer) = &mut self.writer
            && let Err(error) = writer.write_all(bytes)
        {
            self.error = Some(format!("cannot write {}: {error}", self.path.display()));
            self.writer = None;
        }
    }

    fn close(mut self) -> (Option<PathBuf>, Option<String>) {
        if let Some(mut writer) = self.writer.take()
            && let Err(error) = writer.flush()
        {
            self.error = Some(format!("cannot write {}: {error}", self.path.display()));
        }
        (Some(self.path), self.error)
    }
}

/// A captured stream: its (tail of) text and how long it really was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    pub text: String,
    pub total_bytes: u64,
    /// Whether only the tail was kept.
    pub truncated: bool,
    /// The file holding the whole stream, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Why that file is incomplete, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_error: Option<String>,
}

impl Captured {
    /// Captured text that was never truncated (for tests and fakes).
    pub fn from_text(text: impl Into<String>) -> Self {
        let text = text.into();
        Captured {
            total_bytes: text.len() as u64,
            text,
            ..Captured::default()
        }
    }

    /// The last `count` lines.
    pub fn tail_lines(&self, count: usize) -> Vec<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(count)..]
            .iter()
            .map(|line| (*line).to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_limit() {
        let mut capture = Capture::new(100);
        capture.push(b"a\nb\n");
        let captured = capture.finish();
        assert_eq!(captured.text, "a\nb\n");
        assert!(!captured.truncated);
        assert_eq!(captured.tail_lines(1), vec!["b"]);
    }

    #[test]
    fn keeps_the_tail_over_the_limit() {
        let mut capture = Capture::new(8);
        for line in ["one\n", "two\n", "three\n", "four\n"] {
            capture.push(line.as_bytes());
        }
        let captured = capture.finish();
        assert!(captured.truncated);
        assert_eq!(captured.total_bytes, 19);
        assert_eq!(captured.text, "four\n");
    }

    #[test]
    fn a_chunk_longer_than_the_limit_keeps_its_end() {
        let mut capture = Capture::new(6);
        capture.push(b"x\n");
        capture.push(b"aaaa\nbbbb\ncc\n");
        let captured = capture.finish();
        assert_eq!(captured.total_bytes, 15);
        assert_eq!(captured.text, "cc\n");
    }

    /// 16 MiB through a 64 KiB capture: memory stays at the limit, the tail is
    /// the stream's last lines, and the file holds every byte in order.
    #[test]
    fn a_long_stream_is_bounded_in_memory_and_complete_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let limit = 64 * 1024;
        let mut capture = Capture::new(limit).with_file(&path).unwrap();
        let mut expected = sha2::Sha256::default();
        let mut written = 0u64;
        let mut line_number = 0u64;
        while written < 16 << 20 {
            // Chunks of uneven size, as pipes deliver them.
            let mut chunk = String::new();
            for _ in 0..(line_number % 7 + 1) * 50 {
                chunk.push_str(&format!("line {line_number:08}\n"));
                line_number += 1;
            }
            sha2::Digest::update(&mut expected, chunk.as_bytes());
            capture.push(chunk.as_bytes());
            written += chunk.len() as u64;
            assert!(
                capture.retained_capacity() <= limit,
                "{} > {limit}",
                capture.retained_capacity()
            );
        }
        let captured = capture.finish();
        assert!(captured.truncated);
        assert_eq!(captured.total_bytes, written);
        assert!(captured.text.len() <= limit);
        assert_eq!(
            captured.tail_lines(2),
            vec![
                format!("line {:08}", line_number - 2),
                format!("line {:08}", line_number - 1)
            ]
        );
        assert_eq!(captured.file.as_deref(), Some(path.as_path()));
        assert_eq!(captured.file_error, None);
        let (bytes, sha256) = crate::workspace::sha256_file(&path).unwrap();
        assert_eq!(bytes, written);
        assert_eq!(sha256, hex::encode(sha2::Digest::finalize(expected)));
    }
}
