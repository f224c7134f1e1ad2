//! Bounded capture of process output: a stream of any length costs at most
//! `max_bytes` of memory, and the tail (what people need) is always kept.
//! A [`LogCapture`] also writes the whole stream to a file as it arrives, so nothing
//! is lost and nothing beyond the tail is held in memory; secret values are
//! masked on the way to that file (a [`StreamMasker`]), so the file never holds
//! one in clear, even when the stream is cut short. The masking and the writing (up to
//! gigabytes of a job's log) run on a blocking thread, fed through a bounded channel:
//! the async worker that reads the stream only copies chunks, and waits (without
//! blocking its thread) when the writer is behind.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::secrets::{Masker, StreamMasker};

/// Chunks on their way to a log file's writer: with pipe-sized chunks (64 KiB) at most
/// 1 MiB waits in memory, whatever the stream's length.
const FILE_QUEUE: usize = 16;

/// Output collected so far, in memory.
#[derive(Debug)]
pub struct Capture {
    /// The last `max_bytes` bytes, as a ring: dropping the oldest bytes is
    /// O(dropped), not O(kept), so a long stream costs time linear in its length.
    tail: VecDeque<u8>,
    max_bytes: usize,
    total: u64,
}

/// A stream's bytes written to a file with every secret value masked (synchronous: the
/// [`LogCapture`] runs it on a blocking thread).
#[derive(Debug)]
pub struct MaskedFile {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    error: Option<String>,
    /// Masks secret values before they reach the file.
    masker: StreamMasker,
    /// Masked bytes on their way to the writer (at most one chunk).
    masked: Vec<u8>,
}

impl Capture {
    /// Keep at most the last `max_bytes` bytes in memory.
    pub fn new(max_bytes: usize) -> Self {
        Capture {
            tail: VecDeque::new(),
            max_bytes: max_bytes.max(1),
            total: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
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

    pub fn finish(self) -> Captured {
        self.finish_with((None, None))
    }

    fn finish_with(mut self, (file, file_error): (Option<PathBuf>, Option<String>)) -> Captured {
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
        Captured {
            text,
            total_bytes: self.total,
            truncated,
            file,
            file_error,
        }
    }
}

impl MaskedFile {
    /// Create (or truncate) `path`; every value `masker` knows is replaced as it is written.
    pub fn create(path: &Path, masker: &Masker) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(MaskedFile {
            path: path.to_path_buf(),
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
            error: None,
            masker: masker.stream(),
            masked: Vec::new(),
        })
    }

    /// Mask and write `bytes` (a failed write is kept for [`MaskedFile::close`]; later
    /// bytes are dropped).
    pub fn write(&mut self, bytes: &[u8]) {
        // A slice at a time: one huge chunk costs no more memory than a pipe's worth.
        for slice in bytes.chunks(64 * 1024) {
            if self.writer.is_none() {
                return;
            }
            self.masker.push(slice, &mut self.masked);
            self.write_masked();
        }
    }

    /// Bytes of memory the masking holds (the longest secret pattern plus one chunk).
    pub fn masking_capacity(&self) -> usize {
        self.masker.retained_capacity() + self.masked.capacity()
    }

    fn write_masked(&mut self) {
        if let Some(writer) = &mut self.writer
            && let Err(error) = writer.write_all(&self.masked)
        {
            self.error = Some(format!("cannot write {}: {error}", self.path.display()));
            self.writer = None;
        }
        self.masked.clear();
    }

    /// The stream ended: write what the masker held back and flush. Dropped without
    /// this (a stream cut short), the file keeps what was masked so far and nothing of
    /// the bytes held back (they could be the start of a secret).
    pub fn close(mut self) -> (Option<PathBuf>, Option<String>) {
        if self.writer.is_some() {
            self.masker.finish(&mut self.masked);
            self.write_masked();
        }
        if let Some(mut writer) = self.writer.take()
            && let Err(error) = writer.flush()
        {
            self.error = Some(format!("cannot write {}: {error}", self.path.display()));
        }
        (Some(self.path), self.error)
    }
}

/// A [`Capture`] that may also write the whole stream, masked, to a file: the file's
/// work runs on a blocking thread (see the module's documentation).
#[derive(Debug)]
pub struct LogCapture {
    tail: Capture,
    file: Option<FileSink>,
}

#[derive(Debug)]
struct FileSink {
    chunks: tokio::sync::mpsc::Sender<FileMessage>,
    writer: tokio::task::JoinHandle<(Option<PathBuf>, Option<String>)>,
}

#[derive(Debug)]
enum FileMessage {
    Chunk(Vec<u8>),
    /// The stream ended: close the file (a channel closed without this is a stream cut short).
    End,
}

impl LogCapture {
    /// Keep the last `max_bytes` in memory, no file.
    pub fn new(max_bytes: usize) -> Self {
        LogCapture {
            tail: Capture::new(max_bytes),
            file: None,
        }
    }

    /// Keep the last `max_bytes` in memory and write the whole stream to `path` (created
    /// or truncated), masked by `masker`, on a blocking thread. Needs a tokio runtime.
    pub fn with_file(max_bytes: usize, path: &Path, masker: &Masker) -> io::Result<Self> {
        let mut file = MaskedFile::create(path, masker)?;
        let (chunks, mut receiver) = tokio::sync::mpsc::channel(FILE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(message) = receiver.blocking_recv() {
                match message {
                    FileMessage::Chunk(bytes) => file.write(&bytes),
                    FileMessage::End => return file.close(),
                }
            }
            // Cut short: what was masked stays on disk (flushed as the writer drops).
            (Some(file.path.clone()), None)
        });
        Ok(LogCapture {
            tail: Capture::new(max_bytes),
            file: Some(FileSink { chunks, writer }),
        })
    }

    /// Keep `bytes`: the tail at once, the file's copy queued for its writer (waiting,
    /// without blocking the thread, while the writer is behind).
    pub async fn push(&mut self, bytes: &[u8]) {
        self.tail.push(bytes);
        if let Some(file) = &self.file {
            // A writer that is gone (it panicked) reports that when the capture finishes.
            let _ = file.chunks.send(FileMessage::Chunk(bytes.to_vec())).await;
        }
    }

    /// The captured stream, once its file (if any) is complete on disk.
    pub async fn finish(self) -> Captured {
        let file = match self.file {
            Some(FileSink { chunks, writer }) => {
                let _ = chunks.send(FileMessage::End).await;
                drop(chunks);
                match writer.await {
                    Ok(closed) => closed,
                    Err(error) => (None, Some(format!("the log file's writer failed: {error}"))),
                }
            }
            None => (None, None),
        };
        self.tail.finish_with(file)
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
        let mut capture = Capture::new(limit);
        let mut file = MaskedFile::create(&path, &Masker::default()).unwrap();
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
            file.write(chunk.as_bytes());
            written += chunk.len() as u64;
            assert!(
                capture.retained_capacity() <= limit,
                "{} > {limit}",
                capture.retained_capacity()
            );
        }
        let captured = capture.finish_with(file.close());
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

    /// The log file is masked as it is written: a value split across chunks and a
    /// multi-line value are masked, and a capture dropped mid-stream (an interrupted
    /// run) leaves a file with no value in clear.
    #[test]
    fn the_file_is_masked_as_it_is_written_even_when_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "s3cr3t-value".to_owned();
        let pem =
            "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nEEEEFFFFGGGG\n-----END KEY-----\n".to_owned();
        let masker = Masker::new([&secret, &pem]).unwrap();
        let path = dir.path().join("step-0.stdout.log");
        let mut capture = Capture::new(1 << 20);
        let mut file = MaskedFile::create(&path, &masker).unwrap();
        for chunk in [
            &b"token=s3cr"[..],
            b"3t-value\n\xff binary s3cr3t-value\n",
            pem.as_bytes(),
            b"last line without newline s3cr3t-val",
            b"ue",
        ] {
            capture.push(chunk);
            file.write(chunk);
        }
        let captured = capture.finish_with(file.close());
        assert_eq!(captured.file_error, None);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"token=***\n\xff binary ***\n***last line without newline ***"
        );
        assert!(
            captured.text.contains("s3cr3t-value"),
            "the tail is for checks, masked later"
        );

        // Interrupted: dropped without finish after the key, more output, and the first
        // bytes of a value (held back: they could be the start of it).
        let path = dir.path().join("step-1.stdout.log");
        let mut file = MaskedFile::create(&path, &masker).unwrap();
        file.write(b"starting\n");
        file.write(&pem.as_bytes()[..30]);
        file.write(&pem.as_bytes()[30..]);
        file.write(b"x".repeat(300_000).as_slice());
        file.write(b"s3cr3t-v");
        drop(file);
        let written = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&written);
        assert!(text.starts_with("starting\n"), "{}", &text[..40]);
        assert!(
            written.len() > 250_000,
            "what was streamed is on disk: {}",
            written.len()
        );
        for piece in ["AAAABBBB", "s3cr3t-v", "BEGIN"] {
            assert!(!text.contains(piece), "{piece} in the interrupted file");
        }
    }

    /// One long line (no newline) of 64 MiB with a secret in it, in pipe-sized and
    /// in large chunks: the tail, the masker and its output buffer stay bounded.
    #[test]
    fn a_long_line_with_a_secret_costs_bounded_memory_on_the_way_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        let secret = "s3cr3t-value-abcdef".to_owned();
        let masker = Masker::new([&secret]).unwrap();
        let limit = 64 * 1024;
        let mut capture = Capture::new(limit);
        let mut file = MaskedFile::create(&path, &masker).unwrap();
        let chunk = [
            b"y".repeat(65_536 - secret.len()),
            secret.clone().into_bytes(),
        ]
        .concat();
        for round in 0..1024 {
            let pushed = if round % 256 == 0 {
                chunk.repeat(16)
            } else {
                chunk.clone()
            };
            capture.push(&pushed);
            file.write(&pushed);
            assert!(capture.retained_capacity() <= limit);
            assert!(
                file.masking_capacity() <= 4 * 65_536,
                "{}",
                file.masking_capacity()
            );
        }
        let captured = capture.finish_with(file.close());
        assert_eq!(captured.file_error, None);
        let (bytes, _) = crate::workspace::sha256_file(&path).unwrap();
        let occurrences = 1020 + 4 * 16;
        assert_eq!(
            bytes,
            captured.total_bytes - (occurrences * (secret.len() - 3)) as u64
        );
    }

    /// A log capture's file is masked and complete once `finish` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_log_capture_file_is_masked_and_complete_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step-0.stdout.log");
        let masker = Masker::new([&"hunter2-secret".to_owned()]).unwrap();
        let mut capture = LogCapture::with_file(16, &path, &masker).unwrap();
        let mut expected = 0u64;
        for round in 0..2_000u32 {
            let chunk = format!("line {round} hunter2-sec");
            capture.push(chunk.as_bytes()).await;
            capture.push(b"ret\n").await;
            expected += (chunk.len() + 4) as u64;
        }
        let captured = capture.finish().await;
        assert_eq!(captured.total_bytes, expected);
        assert!(captured.truncated);
        assert_eq!(captured.file.as_deref(), Some(path.as_path()));
        assert_eq!(captured.file_error, None);
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 2_000);
        assert!(!written.contains("hunter2"), "a secret reached the file");
        assert!(
            written.ends_with("line 1999 ***\n"),
            "{}",
            &written[written.len() - 30..]
        );
    }

    /// Dropped mid-stream (a cancelled step), the writer ends and keeps what was masked;
    /// held-back bytes that could start a secret never reach the file.
    #[tokio::test]
    async fn a_log_capture_cut_short_leaves_a_masked_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.log");
        let masker = Masker::new([&"s3cr3t-value".to_owned()]).unwrap();
        let mut capture = LogCapture::with_file(1 << 10, &path, &masker).unwrap();
        capture.push(b"starting s3cr3t-value\n").await;
        capture.push(b"s3cr3t-v").await;
        drop(capture);
        // The writer thread ends on its own; wait for its last flush (bounded).
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap();
            if text.starts_with("starting") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The line break is held back with the bytes after it: they could still have
        // been the start of a value.
        assert_eq!(text, "starting ***");
    }
}
