//! Bounded capture of process output: a stream of any length costs at most
//! `max_bytes` of memory, and the tail (what people need) is always kept.

use serde::Serialize;

/// Output collected so far.
#[derive(Debug)]
pub struct Capture {
    buffer: Vec<u8>,
    max_bytes: usize,
    total: u64,
}

impl Capture {
    pub fn new(max_bytes: usize) -> Self {
        Capture { buffer: Vec::new(), max_bytes: max_bytes.max(1), total: 0 }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= self.max_bytes {
            self.buffer.clear();
            self.buffer.extend_from_slice(&bytes[bytes.len() - self.max_bytes..]);
            return;
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > self.max_bytes {
            let excess = self.buffer.len() - self.max_bytes;
            self.buffer.drain(..excess);
        }
    }

    pub fn finish(self) -> Captured {
        let truncated = self.total > self.buffer.len() as u64;
        let mut text = String::from_utf8_lossy(&self.buffer).into_owned();
        if truncated {
            // Drop the partial first line so the tail starts on a line boundary.
            if let Some(newline) = text.find('\n') {
                text.drain(..=newline);
            }
        }
        Captured { text, total_bytes: self.total, truncated }
    }
}

/// A captured stream: its (tail of) text and how long it really was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    pub text: String,
    pub total_bytes: u64,
    /// Whether only the tail was kept.
    pub truncated: bool,
}

impl Captured {
    /// The last `count` lines.
    pub fn tail_lines(&self, count: usize) -> Vec<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(count)..].iter().map(|line| (*line).to_owned()).collect()
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
}
