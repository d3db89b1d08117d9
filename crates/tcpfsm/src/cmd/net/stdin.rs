//! The send direction of `tcpfsm listen` / `tcpfsm connect`: stdin to the connection, with
//! the job-control rules a process that carries a live TCP stack needs.
//!
//! A stopped process freezes its stack (no ACKs, no timers: the peer sees retransmissions and
//! gives up), and a job started with `&` in an interactive shell is stopped ("Stopped (tty
//! input)") the moment it reads its terminal. So:
//! - SIGTTIN and SIGTTOU are ignored: a read of the terminal from the background fails with
//!   EIO instead of stopping us (POSIX), and output to it goes through even with `stty
//!   tostop`. Ctrl-Z (SIGTSTP) still stops us: that is the user's explicit choice.
//! - When stdin is our controlling terminal, it is read only while we are the terminal's
//!   foreground job; in the background we wait (and say so once), and `fg` lets the user
//!   type to the connection. Pipes and files are read as they are.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::unistd::{getpgrp, tcgetpgrp};
use tcpfsm_tun::TcpStream;

/// How often a background job looks whether it is in the foreground again.
const RECHECK: Duration = Duration::from_millis(100);

/// Job control must never stop the process (see the module docs).
pub fn ignore_tty_stops() {
    for sig in [Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: installs SIG_IGN, no handler code runs; done before any thread reads stdin.
        if let Err(e) = unsafe { signal(sig, SigHandler::SigIgn) } {
            eprintln!("tcpfsm: cannot ignore {sig}: {e}");
        }
    }
}

/// Whether we may read the terminal `fd` now: it is not our controlling terminal (tcgetpgrp
/// fails with ENOTTY, job control does not apply), or we are its foreground job.
fn in_foreground(fd: impl AsFd) -> bool {
    match tcgetpgrp(fd) {
        Ok(fg) => fg == getpgrp(),
        Err(_) => true,
    }
}

/// Copies stdin to the connection until stdin ends (`Ok`) or a read or send fails.
pub fn copy_to(conn: &TcpStream) -> io::Result<()> {
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    let mut told = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if tty {
            if !in_foreground(stdin.as_fd()) {
                if !told {
                    eprintln!(
                        "[tcpfsm] stdin is the terminal of a background job: not reading it \
                         (`fg` to type to the connection, or start with -d)"
                    );
                    told = true;
                }
                std::thread::sleep(RECHECK);
                continue;
            }
            // Read only what is there, so a read never waits long enough for the job to be
            // moved to the background in the middle of it.
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(RECHECK.as_millis() as u16)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match stdin.lock().read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let mut w = conn;
                w.write_all(&buf[..n])?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Moved to the background between the check and the read: SIGTTIN is ignored,
            // so the read says EIO; wait for the foreground again. In the foreground EIO is
            // a hangup (the terminal is gone): the end of input.
            Err(e) if tty && e.raw_os_error() == Some(nix::errno::Errno::EIO as i32) => {
                if in_foreground(stdin.as_fd()) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}
