//! Running `tcpfsm export` in a namespace and reading its page, for the export tests.

use super::support::Netns;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The exporter running in a namespace; killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_exporter(ns: &Netns) -> Exporter {
    start_exporter_with(ns, &[])
}

/// The exporter with extra arguments.
pub fn start_exporter_with(ns: &Netns, extra: &[&str]) -> Exporter {
    let mut args = vec![
        "export",
        "--listen",
        "127.0.0.1:0",
        "--header-timeout",
        "2s",
    ];
    args.extend_from_slice(extra);
    let mut child = ns
        .command(env!("CARGO_BIN_EXE_tcpfsm"), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpfsm export");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.trim().strip_prefix("tcpfsm: serving http://") {
                let addr = rest.trim_end_matches("/metrics").to_string();
                let _ = tx.send(addr);
            } else {
                eprint!("export: {line}");
            }
            line.clear();
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a.parse().expect("address"),
        Err(_) => {
            let _ = child.kill();
            panic!("exporter never said where it listens");
        }
    };
    Exporter { child, addr }
}

/// The node exporter's spelling of the eleven states (`node_tcp_connection_states{state}`),
/// written out as an oracle.
pub const NODE_STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

/// One HTTP exchange from inside the namespace: all the bytes the exporter sent back.
fn exchange(ns: &Netns, addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let request = request.to_vec();
    ns.run(move || {
        let mut s = TcpStream::connect(addr).expect("connect to exporter");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
}

/// One HTTP exchange: (head, lower-cased; body bytes).
pub fn http_raw(ns: &Netns, addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let out = exchange(ns, addr, request);
    match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (
            String::from_utf8_lossy(&out[..at]).to_ascii_lowercase(),
            out[at + 4..].to_vec(),
        ),
        None => (
            String::from_utf8_lossy(&out).to_ascii_lowercase(),
            Vec::new(),
        ),
    }
}

/// One HTTP exchange; the raw response as text.
pub fn http(ns: &Netns, addr: SocketAddr, request: &[u8]) -> String {
    String::from_utf8_lossy(&exchange(ns, addr, request)).into_owned()
}

pub fn scrape(ns: &Netns, addr: SocketAddr) -> String {
    let r = http(
        ns,
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
    r.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// A strict reader of the text exposition format: every sample belongs to a family declared
/// by `# TYPE` before it, families are contiguous and declared once, names and label names are
/// valid, label values are quoted and escaped, values parse as floats. Returns
/// `series -> value` with series written `name{k="v",…}` as on the wire.
pub fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let valid = |n: &str, colon: bool| {
        let mut cs = n.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    };
    let mut declared = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let name = w.next().unwrap();
            let kind = w.next().unwrap_or("");
            assert!(valid(name, true), "bad name {}", at());
            assert!(
                ["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind),
                "bad type {}",
                at()
            );
            assert!(declared.insert(name.to_string()), "family twice {}", at());
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {}", at());
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value {}", at()));
        let name = &line[..name_end];
        assert_eq!(
            Some(name),
            current.as_deref(),
            "sample outside its family {}",
            at()
        );
        let mut rest = &line[name_end..];
        let mut key = name.to_string();
        if rest.starts_with('{') {
            // Labels: k="v" pairs, comma separated, with \\ \" \n escapes in values.
            let bytes = rest.as_bytes();
            let mut j = 1;
            let mut labels = Vec::new();
            while bytes[j] != b'}' {
                let eq = rest[j..]
                    .find('=')
                    .unwrap_or_else(|| panic!("label {}", at()))
                    + j;
                let lname = &rest[j..eq];
                assert!(valid(lname, false), "bad label name {}", at());
                assert_eq!(bytes[eq + 1], b'"', "unquoted label {}", at());
                let mut k = eq + 2;
                let mut value = String::new();
                loop {
                    match bytes[k] {
                        b'\\' => {
                            match bytes[k + 1] {
                                b'\\' => value.push('\\'),
                                b'"' => value.push('"'),
                                b'n' => value.push('\n'),
                                _ => panic!("bad escape {}", at()),
                            }
                            k += 2;
                        }
                        b'"' => break,
                        _ => {
                            let ch = rest[k..].chars().next().unwrap();
                            value.push(ch);
                            k += ch.len_utf8();
                        }
                    }
                }
                labels.push(format!("{lname}=\"{value}\""));
                j = k + 1;
                if bytes[j] == b',' {
                    j += 1;
                }
            }
            key = format!("{name}{{{}}}", labels.join(","));
            rest = &rest[j + 1..];
        }
        let value = rest.trim();
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {}", at())),
        };
        assert!(series.insert(key, v).is_none(), "duplicate series {}", at());
    }
    series
}
