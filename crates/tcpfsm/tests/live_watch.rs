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

/// Every box in a frame is whole: each `┌` has its `┐` on the same row and its `└`/`┘`
/// below, with `│` on both sides in between. A panel cut by the terminal's edge fails this.
fn assert_every_panel_closed(frame: &str) {
    let g: Vec<Vec<char>> = frame.lines().map(|l| l.chars().collect()).collect();
    let mut panels = 0;
    for (y, row) in g.iter().enumerate() {
        for (x, _) in row.iter().enumerate().filter(|(_, c)| **c == '┌') {
            let right = (x + 1..row.len())
                .find(|&r| row[r] == '┐')
                .unwrap_or_else(|| panic!("box at {x},{y} has no ┐:\n{frame}"));
            let bottom = (y + 1..g.len())
                .find(|&b| g[b].get(x) == Some(&'└'))
                .unwrap_or_else(|| panic!("box at {x},{y} has no bottom:\n{frame}"));
            assert_eq!(g[bottom].get(right), Some(&'┘'), "box at {x},{y}:\n{frame}");
            for r in &g[y + 1..bottom] {
                assert_eq!(r.get(x), Some(&'│'), "box at {x},{y}:\n{frame}");
                assert_eq!(r.get(right), Some(&'│'), "box at {x},{y}:\n{frame}");
            }
            panels += 1;
        }
    }
    assert!(panels >= 4, "{panels} panels:\n{frame}");
}

/// Issue 12 item 12, as a user runs it: `tcpfsm watch --netns NS` at 80×24 draws 24 lines of
/// at most 80 columns, every panel closed, with all eleven states and their counts, the
/// CLOSE_WAIT owner and the no-owner row (a CLOSE_WAIT still in an accept queue has no file).
#[test]
fn watch_80x24_with_netns_fits_every_panel_whole_with_counts_owner_and_no_owner_row() {
    let Some(ns) = Netns::new("watch_80x24_with_netns_fits_every_panel") else {
        return;
    };
    let _sockets = close_wait_sockets(&ns);
    // One more CLOSE_WAIT nobody accepted: the kernel alone holds it.
    let _queued = ns.run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        (l, c)
    });
    assert!(
        wait_until(Duration::from_secs(5), || ns.ss_count("close-wait") == 4),
        "no 4 CLOSE_WAIT"
    );
    let out = run_bounded(
        {
            // From the host's namespace: --netns alone must reach the sockets.
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tcpfsm"));
            c.args(["watch", "--once", "--width", "80", "--height", "24"])
                .args(["--netns", &ns.name]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let frame = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = frame.lines().collect();
    assert_eq!(lines.len(), 24, "{frame}");
    for l in &lines {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    assert_every_panel_closed(&frame);
    let count_after = |name: &str| -> Option<u64> {
        lines.iter().find_map(|l| {
            let at = l.find(&format!(" {name} "))?;
            l[at + name.len() + 1..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    for name in ALL_NAMES {
        assert!(count_after(name).is_some(), "{name} has no count:\n{frame}");
    }
    assert_eq!(count_after("CLOSE_WAIT"), Some(4), "{frame}");
    assert_eq!(count_after("LISTEN"), Some(2), "{frame}");
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let row = |who: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("│{who} ")))
            .copied()
    };
    let mine = row(me.trim()).unwrap_or_else(|| panic!("no owner row for {me:?}:\n{frame}"));
    assert!(mine.contains(&std::process::id().to_string()), "{mine}");
    assert!(
        mine.split('│').nth(1).unwrap().trim_end().ends_with(" 3"),
        "{mine}"
    );
    let none = row(tcpfsm_observe::NO_OWNER).unwrap_or_else(|| panic!("no no-owner row:\n{frame}"));
    assert!(
        none.split('│').nth(1).unwrap().trim_end().ends_with(" 1"),
        "{none}"
    );
}
