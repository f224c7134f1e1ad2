//! What the fake prints: docker's stdout and stderr, never a panic on a closed pipe. A
//! leaf module, so every module can print without importing `commands`.

use std::io::Write;

/// Prints to stdout, ignoring a closed pipe.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Prints to stderr.
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.flush());
}

/// `Error response from daemon: ...` on its own line.
pub fn daemon_error(message: &str) {
    err(&format!("Error response from daemon: {message}\n"));
}
