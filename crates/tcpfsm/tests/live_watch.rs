//! `tcpfsm watch --once/--frames` (the built binary) renders the live view without a TTY,
//! inside a private network namespace with sockets in known states. Needs root (netns);
//! skips loudly otherwise.

mod live_support;

use live_support::support::ALL_NAMES;
use live_support::{run_bounded, wait_until, Netns};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Three connections whose client closed and whose server (this process) never does.
fn close_wait_sockets(ns: &Netns) -> (Vec<TcpStream>, TcpListener) {
    ns.run(|| live_support::sockets(0, 3))
}

/// The count drawn in a state's box: the line below the box's title line, same columns.
fn box_count(frame: &str, state: &str) -> Option<u64> {
    let lines: Vec<&str> = frame.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let Some(byte_at) = l.find(&format!("┌{state}─")) else {
            continue;
        };
        let col = l[..byte_at].chars().count();
        let below: String = lines.get(i + 1)?.chars().skip(col).take(16).collect();
        return below
            .trim_matches(|c: char| c == '│' || c.is_whitespace())
            .parse()
            .ok();
    }
    None
}

#[test]
fn watch_once_renders_all_eleven_states_with_live_counts_and_the_close_wait_owner() {
    let Some(ns) = Netns::new("watch_once_renders_all_eleven_states") else {
        return;
    };
    let _sockets = close_wait_sockets(&ns);
    // The peer ACKs a FIN with a delayed ACK (Linux enters ping-pong mode on FIN), so the
    // clients sit in FIN_WAIT_1 for up to a delayed-ACK timeout before FIN_WAIT_2.
    assert!(
        wait_until(Duration::from_secs(5), || ns.ss_count("fin-wait-2") == 3),
        "clients never reached FIN_WAIT_2"
    );
    let out = run_bounded(
        ns.command(
            env!("CARGO_BIN_EXE_tcpfsm"),
            &["watch", "--once", "--width", "130", "--height", "40"],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let frame = String::from_utf8_lossy(&out.stdout);
    for name in ALL_NAMES {
        assert!(frame.contains(name), "{name} missing:\n{frame}");
    }
    assert_eq!(box_count(&frame, "CLOSE_WAIT"), Some(3), "{frame}");
    assert_eq!(box_count(&frame, "FIN_WAIT_2"), Some(3), "{frame}");
    assert_eq!(box_count(&frame, "LISTEN"), Some(1), "{frame}");
    assert_eq!(box_count(&frame, "SYN_SENT"), Some(0), "{frame}");
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert!(
        frame.contains(me.trim()),
        "CLOSE_WAIT owner {me:?} not shown:\n{frame}"
    );
    assert!(frame.contains("alerts"));
}

#[test]
fn watch_frames_prints_that_many_frames_one_interval_apart() {
    let Some(ns) = Netns::new("watch_frames_prints_that_many_frames") else {
        return;
    };
    let t = std::time::Instant::now();
    let out = run_bounded(
        ns.command(
            env!("CARGO_BIN_EXE_tcpfsm"),
            &["watch", "--frames", "3", "--interval", "200ms"],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(t.elapsed() >= Duration::from_millis(400));
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = text.split('\x0c').collect();
    assert_eq!(frames.len(), 3);
    for f in frames {
        assert!(f.contains("ESTABLISHED") && f.contains("TIME_WAIT"));
    }
}

#[test]
fn watch_rejects_a_zero_interval() {
    // No namespace or root needed: the argument check comes first.
    let out = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tcpfsm"));
            c.args(["watch", "--once", "--interval", "0s"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}

#[test]
fn watch_without_a_terminal_says_to_use_once() {
    let out = run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tcpfsm"));
            c.arg("watch").stdin(std::process::Stdio::null());
            c
        },
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--once"), "{err}");
}
