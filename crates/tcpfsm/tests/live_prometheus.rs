//! The exporter, the recording and alert rules, and the Grafana dashboard, against a real
//! Prometheus server (Debian's `prometheus`), all inside a private network namespace on
//! loopback. The test puts the kernel's sockets into states that make some alerts' conditions
//! true, then evaluates through Prometheus's HTTP API every dashboard query, every recording
//! rule and every alert expression, and checks that each returns the series it should, with
//! values in the unit its panel claims. Grafana itself cannot be installed here; what it would
//! send Prometheus is what is evaluated. Needs root and `prometheus`; skips loudly otherwise.

mod live_support;

use live_support::exporter::{start_exporter_with, NODE_STATES};
use live_support::support::{holder_main, spawn_holder_with, HOLDER_COMM};
use live_support::{run_bounded, wait_until, Netns};
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

#[test]
#[ignore = "helper process for the netns tests, started by them"]
fn holder_process() {
    holder_main();
}

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel)
        .canonicalize()
        .unwrap()
}

/// A Prometheus server in the namespace; killed (and its data removed) on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_prometheus(ns: &Netns, target: SocketAddr) -> Prometheus {
    let dir = std::env::temp_dir().join(format!("tcpfsm-prom-{}-{}", std::process::id(), ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    // A free port in the (otherwise empty) namespace.
    let addr = ns.run(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    });
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n  - {}\n\
         scrape_configs:\n  - job_name: tcpfsm\n    static_configs:\n      - targets: [\"{target}\"]\n",
        deploy("prometheus/rules.yml").display(),
        deploy("prometheus/alerts.yml").display(),
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let child = ns
        .command(
            "prometheus",
            &[
                &format!("--config.file={}", dir.join("prometheus.yml").display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address={addr}"),
                "--log.level=warn",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prometheus");
    let mut p = Prometheus { child, addr, dir };
    let stderr = p.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("prometheus: {l}");
        }
    });
    p
}

/// A keep-alive HTTP/1.1 client for Prometheus's API (one connection: the namespace's
/// ephemeral range is narrowed to 20 ports during the test).
struct Api {
    ns_path: String,
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Api {
    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let (path, addr) = (self.ns_path.clone(), self.addr);
            let s = std::thread::spawn(move || {
                use std::os::fd::AsFd;
                let f = std::fs::File::open(path).unwrap();
                nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                TcpStream::connect(addr)
            })
            .join()
            .unwrap()?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            self.conn = Some(BufReader::new(s));
        }
        Ok(self.conn.as_mut().unwrap())
    }

    fn get(&mut self, path: &str) -> Result<Value, String> {
        for _attempt in 0..2 {
            match self.try_get(path) {
                Ok(v) => return Ok(v),
                Err(_) => self.conn = None, // closed while idle: once more on a new one
            }
        }
        self.try_get(path).map_err(|e| e.to_string())
    }

    fn try_get(&mut self, path: &str) -> std::io::Result<Value> {
        let c = self.connect()?;
        c.get_mut()
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: prometheus\r\n\r\n").as_bytes())?;
        let mut len = None;
        let mut chunked = false;
        let mut line = String::new();
        loop {
            line.clear();
            if c.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                c.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk"))?;
                let mut chunk = vec![0; n + 2];
                c.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let mut b = vec![0; len.ok_or_else(|| std::io::Error::other("no length"))?];
            c.read_exact(&mut b)?;
            body = b;
        }
        serde_json::from_slice(&body).map_err(std::io::Error::other)
    }

    /// An instant query's result vector; Err for a query Prometheus rejects.
    fn query(&mut self, q: &str) -> Result<Vec<Value>, String> {
        let v = self.get(&format!("/api/v1/query?query={}", url_encode(q)))?;
        if v["status"] != "success" {
            return Err(format!("{q}: {v}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// (labels without __name__, value) of each series of a result.
fn series(result: &[Value]) -> Vec<(BTreeMap<String, String>, f64)> {
    result
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let v = r["value"][1].as_str().unwrap();
            let v = match v {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap(),
            };
            (labels, v)
        })
        .collect()
}

/// The alert rules of alerts.yml: (alert, severity, expr).
fn alert_rules(api: &mut Api) -> Vec<(String, String, String)> {
    let v = api.get("/api/v1/rules").unwrap();
    let mut out = Vec::new();
    for g in v["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "rule {} is unhealthy: {r}", r["name"]);
            if r["type"] == "alerting" {
                out.push((
                    r["name"].as_str().unwrap().to_string(),
                    r["labels"]["severity"].as_str().unwrap().to_string(),
                    r["query"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// The recording rules Prometheus loaded from rules.yml.
fn recording_rules(api: &mut Api) -> Vec<String> {
    let v = api.get("/api/v1/rules?type=record").unwrap();
    v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            assert_eq!(r["health"], "ok", "{r}");
            r["name"].as_str().unwrap().to_string()
        })
        .collect()
}

/// An expression with every numeric comparison made always-true: the series it is built
/// from, whatever their values (proves a quiet alert is quiet for its values, not because a
/// name is misspelled).
fn relaxed(expr: &str) -> String {
    let mut out = String::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let op = [">=", "<=", "==", "!=", ">", "<"].into_iter().find(|op| {
            expr[i..].starts_with(op) && !expr[..i].ends_with('=') && !expr[..i].ends_with('!')
        });
        // `!=` and `=~` inside label matchers are not comparisons: they follow a label name
        // inside braces.
        let in_braces = expr[..i].matches('{').count() > expr[..i].matches('}').count();
        match op {
            Some(op) if !in_braces => {
                let rest = expr[i + op.len()..].trim_start();
                let num: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
                    .collect();
                if num.is_empty() {
                    out.push_str(op);
                    i += op.len();
                } else {
                    out.push_str(">= -Inf");
                    i = expr.len() - rest.len() + num.len();
                }
            }
            _ => {
                out.push(b[i] as char);
                i += 1;
            }
        }
    }
    out
}

/// What Grafana sends for a panel query: its variables resolved.
fn grafana_expr(e: &str) -> String {
    e.replace("$instance", ".*")
        .replace("$__rate_interval", "15s")
        .replace("$__interval", "15s")
}

fn is_count(v: f64) -> bool {
    v.is_finite() && v >= 0.0 && v.fract() == 0.0
}

/// `n` connections to a listener that this side closes first: TIME_WAIT here, towards the
/// listener's address. Returns the listener's address.
fn time_waits(n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    for _ in 0..n {
        let c = TcpStream::connect(addr).unwrap();
        let (mut s, _) = l.accept().unwrap();
        drop(c);
        let mut b = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(s.read(&mut b).unwrap(), 0);
        drop(s);
    }
    addr
}

/// Sets a per-namespace sysctl (`net.ipv4.x`), from a thread inside the namespace.
fn sysctl(ns: &Netns, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    ns.run(move || std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}")));
}

#[test]
fn every_dashboard_query_and_every_rule_returns_its_series_through_a_real_prometheus() {
    let Some(ns) = Netns::new("dashboard_and_rules_through_prometheus") else {
        return;
    };
    if run_bounded(
        {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", "command -v prometheus"]);
            c
        },
        Duration::from_secs(10),
    )
    .status
    .code()
        != Some(0)
    {
        tcpfsm_testkit::skip(
            "needs prometheus",
            "every_dashboard_query_and_every_rule_returns_its_series (apt-get install prometheus)",
        );
        return;
    }
    let me = std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string();
    // tcp_max_tw_buckets is per namespace: 15 TIME_WAIT will be 62% of it.
    sysctl(&ns, "net.ipv4.tcp_max_tw_buckets", "24");
    // A process at ~90% of its open-file limit: 20 spare descriptors, 18 of them taken.
    let holder = spawn_holder_with(
        &ns,
        "holder_process",
        &[("TCPFSM_TEST_HOLDER_SPARE_FDS", "20")],
    );
    let hport = holder.port;
    let _to_holder: Vec<TcpStream> = ns.run(move || {
        (0..18)
            .map(|_| TcpStream::connect(("127.0.0.1", hport)).unwrap())
            .collect()
    });
    // A listener nobody accepts from, backlog 1: the kernel admits 2 to its accept queue (over
    // full), and drops every later SYN (ListenOverflows). Those come from a prober that
    // closes each attempt before its first SYN retransmission, so the overflows go on without
    // retransmissions, which would make the retransmit-rate alert depend on timing.
    let (overflow_l, overflow_addr, _admitted) = ns.run(|| {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        l.listen(1).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let admitted: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        (l, addr, admitted)
    });
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (probing, path) = (probing.clone(), format!("/run/netns/{}", ns.name));
        std::thread::spawn(move || {
            use std::os::fd::AsFd;
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
                c.set_nonblocking(true).unwrap();
                let _ = c.connect(&overflow_addr.into());
                // The first SYN retransmission would come after 1 s.
                std::thread::sleep(Duration::from_millis(300));
                drop(c);
            }
        })
    };
    let exp = start_exporter_with(&ns, &["--owners-interval", "2s"]);
    let prom = start_prometheus(&ns, exp.addr);
    let mut api = Api {
        ns_path: format!("/run/netns/{}", ns.name),
        addr: prom.addr,
        conn: None,
    };
    // Prometheus is up and has a few samples of an empty CLOSE_WAIT.
    let up = wait_until(Duration::from_secs(60), || {
        api.query("count_over_time(node_tcp_connection_states{state=\"close_wait\"}[1m])")
            .ok()
            .and_then(|r| series(&r).first().map(|s| s.1))
            .is_some_and(|n| n >= 3.0)
    });
    assert!(up, "Prometheus never scraped the exporter three times");

    // Now CLOSE_WAIT jumps from 0 to 120 (a leak, and growth), and 15 TIME_WAIT towards one
    // remote fill 15 of the 20 ephemeral ports left.
    let (_cw, _cw_listener) = ns.run(|| live_support::sockets(0, 120));
    sysctl(&ns, "net.ipv4.ip_local_port_range", "50000 50019");
    let tw_remote = ns.run(|| time_waits(15));

    // Every recording rule loaded and healthy, every alert rule healthy.
    let recorded = recording_rules(&mut api);
    assert!(recorded.len() >= 6, "{recorded:?}");
    let alerts = alert_rules(&mut api);
    assert!(alerts.len() >= 20, "{alerts:?}");

    // Each alert whose condition the scene makes true, with the series it must return.
    let tw_remote_label = tw_remote.to_string();
    let holder_pid = holder.pid().to_string();
    let overflow_local = overflow_addr.to_string();
    let pid = std::process::id().to_string();
    let firing: BTreeMap<(&str, &str), Vec<(&str, &str)>> = [
        (
            ("TcpCloseWaitLeak", "warning"),
            vec![("state", "close_wait")],
        ),
        (
            ("TcpCloseWaitGrowing", "warning"),
            vec![("state", "close_wait")],
        ),
        (
            ("TcpCloseWaitLeakByProcess", "warning"),
            vec![("process", me.as_str()), ("pid", pid.as_str())],
        ),
        (
            ("TcpTimeWaitPortPressure", "warning"),
            vec![("remote", tw_remote_label.as_str())],
        ),
        (("TcpTimeWaitBuckets", "warning"), vec![]),
        (("TcpListenOverflow", "warning"), vec![]),
        (
            ("TcpListenQueueFull", "warning"),
            vec![("local", overflow_local.as_str())],
        ),
        (
            ("ProcessNearFdLimit", "warning"),
            vec![("process", HOLDER_COMM), ("pid", holder_pid.as_str())],
        ),
    ]
    .into_iter()
    .collect();
    let mut report = Vec::new();
    for (name, severity, expr) in &alerts {
        let key = (name.as_str(), severity.as_str());
        match firing.get(&key) {
            Some(want) => {
                // Rates and owners take some scrapes to show: give it time.
                let mut got = Vec::new();
                let ok = wait_until(Duration::from_secs(45), || {
                    got = series(&api.query(expr).unwrap());
                    got.iter().any(|(l, _)| {
                        want.iter()
                            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                    })
                });
                assert!(ok, "{name} ({severity}) should hold: {expr}\ngot {got:?}");
                report.push(format!("{name}/{severity}: holds"));
            }
            None => {
                let got = series(&api.query(expr).unwrap());
                assert!(
                    got.is_empty(),
                    "{name} ({severity}) should not hold: {expr}\n{got:?}"
                );
                // ...because of its values: the series it is built from are there.
                let probe = relaxed(expr);
                let base = series(&api.query(&probe).unwrap());
                assert!(
                    !base.is_empty(),
                    "{name} ({severity}): no series behind {probe}"
                );
                report.push(format!("{name}/{severity}: quiet"));
            }
        }
    }
    // Every alert the scene makes true was among the rules.
    let names: BTreeSet<(&str, &str)> = alerts
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_str()))
        .collect();
    for k in firing.keys() {
        assert!(names.contains(k), "no alert rule {k:?}");
    }

    // Every recording rule returns series, ratios in their domain.
    for r in &recorded {
        let got = series(&api.query(r).unwrap());
        assert!(!got.is_empty(), "recording rule {r} returned nothing");
        for (l, v) in &got {
            assert!(v.is_finite() && *v >= 0.0, "{r}{l:?} = {v}");
            if r.contains("retransmit") || r.contains("time_wait") || r.contains("open_fds") {
                assert!(*v <= 1.0, "{r}{l:?} = {v} is not a share");
            }
        }
    }

    // Every dashboard query, as Grafana would send it, in the unit its panel claims.
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/tcpfsm.json")).unwrap())
            .unwrap();
    let states: BTreeSet<&str> = NODE_STATES.into_iter().collect();
    let mut queries = 0;
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = grafana_expr(t["expr"].as_str().unwrap());
            let mut got = Vec::new();
            let ok = wait_until(Duration::from_secs(30), || {
                got = series(&api.query(&expr).unwrap());
                !got.is_empty()
            });
            assert!(ok, "panel {title:?}: {expr} returned nothing");
            queries += 1;
            for (l, v) in &got {
                let fits = match unit {
                    "short" | "bytes" => is_count(*v),
                    "percentunit" | "ops" | "s" => v.is_finite() && *v >= 0.0,
                    // The diagnosis stat: 0 ok, 1 warning, 2 critical.
                    "none" => [0.0, 1.0, 2.0].contains(v),
                    other => panic!("panel {title:?}: unit {other:?} not checked"),
                };
                assert!(fits, "panel {title:?} ({unit}): {expr} gave {l:?} = {v}");
            }
            if title == "Connections by state" {
                // The stacked panel holds exactly the eleven states, no byte totals.
                let got_states: BTreeSet<&str> =
                    got.iter().map(|(l, _)| l["state"].as_str()).collect();
                assert_eq!(got_states, states, "{expr}");
                let cw = got
                    .iter()
                    .find(|(l, _)| l["state"] == "close_wait")
                    .unwrap()
                    .1;
                assert_eq!(cw, 120.0, "{expr}");
            }
            if title == "Queued bytes" {
                let got_states: BTreeSet<&str> =
                    got.iter().map(|(l, _)| l["state"].as_str()).collect();
                assert_eq!(
                    got_states,
                    ["rx_queued_bytes", "tx_queued_bytes"].into(),
                    "{expr}"
                );
            }
            if title == "Diagnosis" {
                assert_eq!(got.len(), 7, "one verdict per rule: {got:?}");
                let cw = got
                    .iter()
                    .find(|(l, _)| l["rule"] == "close_wait_leak")
                    .unwrap()
                    .1;
                assert_eq!(cw, 1.0, "120 CLOSE_WAIT is a warning");
            }
        }
    }
    assert!(queries >= 20, "{queries} dashboard queries");
    let _ = writeln!(
        std::io::stderr().lock(),
        "MEASURED prometheus: {queries} dashboard queries, {} recording rules, {} alert rules: {}",
        recorded.len(),
        alerts.len(),
        report.join(", ")
    );
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = prober.join();
    drop(overflow_l);
}

#[test]
fn relaxed_expression_keeps_the_series_and_drops_only_numeric_comparisons() {
    assert_eq!(
        relaxed("node_tcp_connection_states{state=\"close_wait\"} > 100"),
        "node_tcp_connection_states{state=\"close_wait\"} >= -Inf"
    );
    assert_eq!(
        relaxed("a{b!=\"c\"} >= 0.8 and d > 10"),
        "a{b!=\"c\"} >= -Inf and d >= -Inf"
    );
    assert_eq!(relaxed("x / (y > 0)"), "x / (y >= -Inf)");
    assert_eq!(relaxed("deriv(x[30m]) > 0"), "deriv(x[30m]) >= -Inf");
}
