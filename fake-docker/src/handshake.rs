//! The handshake pipes on fd 1 between `start`, the supervisor and the container's
//! program: the supervisor answers `start` once the container runs, and the program tells
//! the supervisor whether it already ended. A leaf, so that `replay` (whose programs
//! handshake too) need not import `supervisor`.

use std::io::Write;

use crate::program::Ready;

/// The supervisor's side: tell `start` how it went (`ok` or `error …`), then close the pipe.
pub fn answer(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    close_stdout();
}

/// What a program writes on its handshake pipe when it ended without ever blocking.
pub const ENDED: &[u8] = b"ended";

/// The program's side of the handshake: say whether it already ended, then close the pipe.
pub fn program_ready(why: Ready) {
    if why == Ready::Ended {
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(ENDED).and_then(|()| stdout.flush());
    }
    close_stdout();
}

/// A replayed program that ended without blocking tells the supervisor so.
pub fn program_ready_ended() {
    program_ready(Ready::Ended);
}

/// A replayed program that keeps running (until stopped) tells the supervisor so.
pub fn program_ready_blocked() {
    program_ready(Ready::Blocked);
}

/// Points fd 1 at /dev/null, closing a handshake pipe while keeping fd 1 valid.
pub fn close_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open descriptor.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}
