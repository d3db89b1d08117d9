//! `tcpfsm sim --pcap`: the capture opens in tshark, and tshark's reading of every frame —
//! addresses, flags, sequence numbers, and its own `tcp.analysis` verdicts — agrees with our
//! JSON trace of the same run.

use std::collections::BTreeSet;
use std::process::Command;

use super::tcpfsm;

/// The fields asked of tshark, in column order.
const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.seq",
    "tcp.ack",
    "tcp.len",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.duplicate_ack_num",
    "tcp.analysis.duplicate_ack_frame",
    "tcp.analysis.zero_window",
    "tcp.analysis.zero_window_probe",
    "tcp.analysis.zero_window_probe_ack",
    "tcp.analysis.window_update",
    "tcp.analysis.window_full",
    "tcp.analysis.keep_alive",
    "tcp.analysis.keep_alive_ack",
    "tcp.analysis.reused_ports",
];

/// tshark's marks named as our JSON names them (`retransmission` stands for tshark's
/// `tcp.analysis.retransmission`, which it sets for fast and spurious ones too).
fn tshark_marks(col: &dyn Fn(&str) -> String) -> BTreeSet<String> {
    let mut m = BTreeSet::new();
    for (field, name) in [
        ("tcp.analysis.retransmission", "retransmission"),
        ("tcp.analysis.fast_retransmission", "fast_retransmission"),
        (
            "tcp.analysis.spurious_retransmission",
            "spurious_retransmission",
        ),
        ("tcp.analysis.out_of_order", "out_of_order"),
        ("tcp.analysis.zero_window", "zero_window"),
        ("tcp.analysis.zero_window_probe", "zero_window_probe"),
        (
            "tcp.analysis.zero_window_probe_ack",
            "zero_window_probe_ack",
        ),
        ("tcp.analysis.window_update", "window_update"),
        ("tcp.analysis.window_full", "window_full"),
        ("tcp.analysis.keep_alive", "keep_alive"),
        ("tcp.analysis.keep_alive_ack", "keep_alive_ack"),
        ("tcp.analysis.reused_ports", "reused_ports"),
    ] {
        if !col(field).is_empty() {
            m.insert(name.to_string());
        }
    }
    let dup = col("tcp.analysis.duplicate_ack_num");
    if !dup.is_empty() {
        m.insert(format!(
            "dup_ack {dup} of {}",
            col("tcp.analysis.duplicate_ack_frame")
        ));
    }
    m
}

fn our_marks(seg: &serde_json::Value) -> BTreeSet<String> {
    let mut m = BTreeSet::new();
    for a in seg["analysis"].as_array().expect("analysis array") {
        let a = a.as_str().unwrap();
        match a {
            // What only the sender can know; tshark has no field for it.
            "challenge_ack" | "syn_cookie" => {}
            "fast_retransmission" | "spurious_retransmission" => {
                m.insert("retransmission".to_string());
                m.insert(a.to_string());
            }
            d if d.starts_with("dup_ack ") => {
                m.insert(format!("{d} of {}", seg["dup_ack_of"]));
            }
            other => {
                m.insert(other.to_string());
            }
        }
    }
    m
}

/// Whether tshark can be run; in CI it must be (`.ci/run` installs it).
fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is missing in CI: .ci/run installs Debian's tshark"
        );
        tcpfsm_testkit::skip("tshark not installed", "sim --pcap checked against tshark");
    }
    ok
}

/// Runs `tcpfsm sim ARGS --format json --pcap`; compares every frame with tshark's reading
/// and returns how many segments tshark called retransmissions.
fn compare(tag: &str, args: &[&str]) -> usize {
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("tcpfsm-{tag}-{}.pcap", std::process::id()));
    let mut all: Vec<&str> = vec!["sim"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json", "--pcap", pcap.to_str().unwrap()]);
    let o = tcpfsm(&all);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{tag}: {o:?}");
    let segs: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "segment")
        .collect();
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r", pcap.to_str().unwrap(), "-T", "fields"]);
    cmd.args(["-E", "separator=/t", "-E", "occurrence=f"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let t = cmd.output().expect("run tshark");
    std::fs::remove_file(&pcap).ok();
    assert!(
        t.status.success(),
        "{tag}: tshark: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let text = String::from_utf8(t.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        rows.len(),
        segs.len(),
        "{tag}: one capture record per segment"
    );
    let mut retransmissions = 0;
    for (row, seg) in rows.iter().zip(&segs) {
        let col = |name: &str| -> String {
            let i = FIELDS.iter().position(|f| *f == name).unwrap();
            row.get(i).copied().unwrap_or("").to_string()
        };
        let frame = seg["frame"].as_u64().unwrap();
        let at = format!("{tag}: frame {frame}");
        assert_eq!(col("frame.number"), frame.to_string(), "{at}");
        let ts: f64 = col("frame.time_epoch").parse().unwrap();
        assert_eq!(
            (ts * 1e6).round() as u64,
            seg["t_us"].as_u64().unwrap(),
            "{at}: time"
        );
        let ip = |v4: &str, v6: &str| {
            let a = col(v4);
            if a.is_empty() {
                format!("[{}]", col(v6))
            } else {
                a
            }
        };
        let src = format!("{}:{}", ip("ip.src", "ipv6.src"), col("tcp.srcport"));
        let dst = format!("{}:{}", ip("ip.dst", "ipv6.dst"), col("tcp.dstport"));
        assert_eq!(src, seg["src"].as_str().unwrap(), "{at}: source");
        assert_eq!(dst, seg["dst"].as_str().unwrap(), "{at}: destination");
        let flags = u8::from_str_radix(col("tcp.flags").trim_start_matches("0x0"), 16).unwrap();
        let ours: BTreeSet<&str> = seg["flags"].as_str().unwrap().split(',').collect();
        for (bit, name) in [(1, "FIN"), (2, "SYN"), (4, "RST"), (8, "PSH"), (16, "ACK")] {
            assert_eq!(flags & bit != 0, ours.contains(name), "{at}: {name}");
        }
        assert_eq!(col("tcp.seq_raw"), seg["seq"].to_string(), "{at}: seq");
        if flags & 16 != 0 {
            assert_eq!(col("tcp.ack_raw"), seg["ack"].to_string(), "{at}: ack");
        }
        assert_eq!(col("tcp.len"), seg["len"].to_string(), "{at}: len");
        let mss = seg["options"]["mss"]
            .as_u64()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert_eq!(col("tcp.options.mss_val"), mss, "{at}: mss");
        let ws = seg["options"]["wscale"]
            .as_u64()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert_eq!(col("tcp.options.wscale.shift"), ws, "{at}: wscale");
        assert_eq!(tshark_marks(&col), our_marks(seg), "{at}: analysis");
        retransmissions += usize::from(!col("tcp.analysis.retransmission").is_empty());
    }
    retransmissions
}

/// A user's script, written to a temporary file for `--script`.
fn script(tag: &str, src: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("tcpfsm-{tag}-{}.tcpfsm", std::process::id()));
    std::fs::write(&p, src).unwrap();
    p
}

#[test]
fn sim_pcap_every_builtin_reads_in_tshark_as_in_our_trace() {
    if !have_tshark() {
        return;
    }
    let mut retx = 0;
    for b in super::NAMES {
        retx += compare(b, &[b]);
    }
    assert!(retx > 0, "lost-final-ack and syn-retry retransmit");
}

#[test]
fn sim_pcap_lossy_transfer_agrees_with_tshark_on_every_retransmission() {
    if !have_tshark() {
        return;
    }
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\n\
               link a <-> b delay 15ms jitter 4ms loss 8% dup 3% reorder 5%\n\
               b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
               a send c 200000 bytes\nb send s 50000 bytes\nb recv s 200000 timeout 10m\n\
               a recv c 50000 timeout 10m\na close c\nb recv-until-eof s timeout 10m\nb close s\n\
               wait until c CLOSED and s CLOSED timeout 20m\n";
    let path = script("lossy", src);
    let mut retx = 0;
    for seed in ["1", "2", "3", "4"] {
        retx += compare(
            &format!("lossy-{seed}"),
            &["--script", path.to_str().unwrap(), "--seed", seed],
        );
    }
    std::fs::remove_file(&path).ok();
    assert!(
        retx >= 4,
        "8% loss over four runs retransmitted only {retx} segments"
    );
}

#[test]
fn sim_pcap_zero_window_and_keepalive_agree_with_tshark() {
    if !have_tshark() {
        return;
    }
    // The server reads nothing for 5 s with a 4 KiB buffer that four 1024-byte segments
    // fill: the window closes, the client probes, the server reopens it. Then the idle
    // connection sends keep-alives.
    let src = "host a 10.0.0.1\nhost b 10.0.0.2\nlink a <-> b delay 10ms\n\
               set b recv_buffer 4096\nset a mss 1024\nset b mss 1024\n\
               set a timestamps off\nset b timestamps off\n\
               set a keepalive 20s\nset b keepalive 20s\n\
               b listen 80 as l\na connect b:80 as c\nb accept l as s\n\
               a send c 20000 bytes\nwait 5s\nb recv s 20000 timeout 1m\n\
               wait 2m\na close c\nb recv-until-eof s\nb close s\nwait until c CLOSED and s CLOSED\n";
    let path = script("zwin", src);
    compare("zwin", &["--script", path.to_str().unwrap()]);
    let o = tcpfsm(&[
        "sim",
        "--script",
        path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    std::fs::remove_file(&path).ok();
    let text = String::from_utf8(o.stdout).unwrap();
    // Our TCP probes a closed window the Linux way (an old sequence number, no data), which
    // Wireshark reads as a keep-alive; the trace says what the sender meant as well.
    for mark in [
        "\"zero_window\"",
        "\"window_full\"",
        "\"window_update\"",
        "\"keep_alive\"",
        "\"keep_alive_ack\"",
        "\"sent_as\":\"window_probe\"",
        "\"sent_as\":\"keep_alive\"",
    ] {
        assert!(text.contains(mark), "no {mark} segment in the run");
    }
}
