//! The CI corpus: our scripts (tests/drill) and the FreeBSD tcp-testsuite's state-event-engine
//! directory, judged against tests/drill-expectations.toml.
//!
//! - On the engine (no root): every script passes or fails as the expectations say, and of the
//!   FreeBSD scripts whose behaviour Linux shares at least 95% pass.
//! - On Linux (root): our corpus passes (it describes Linux), and engine and Linux give the
//!   same verdict on each of our scripts unless the expectations file documents the engine's
//!   difference; the FreeBSD/Linux differences in the expectations file still hold.
//! - On tcpfsm-tun (root): our corpus gets the engine's verdicts, failures at the same lines.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use tcpfsm_drill::expect::Expectations;
use tcpfsm_drill::outcome::Verdict;
use tcpfsm_drill::report::{self, ScriptResult, Status};
use tcpfsm_drill::{DrillOptions, StackKind};

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn expectations() -> Expectations {
    Expectations::load(&tests_dir().join("drill-expectations.toml")).expect("expectations file")
}

/// Real-time runs on a shared machine: a scheduling hiccup of a few milliseconds must not
/// fail a script whose protocol behaviour is right.
const LINUX_TOLERANCE_FLOOR_US: i64 = 20_000;

/// Real-time runs one corpus at a time: two at once on a small machine make each other late.
static REAL_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(dir: &str, stack: StackKind, jobs: usize) -> Vec<ScriptResult> {
    let _one_at_a_time =
        (stack != StackKind::Engine).then(|| REAL_TIME.lock().unwrap_or_else(|e| e.into_inner()));
    let paths = report::collect(&[tests_dir().join(dir)]).expect("corpus");
    let mut opts = DrillOptions::default();
    if stack != StackKind::Engine {
        opts.run.tolerance_floor_usecs = LINUX_TOLERANCE_FLOOR_US;
    }
    let mut results: Vec<ScriptResult> =
        report::run_all(&paths, &[stack], &opts, &expectations(), jobs)
            .expect("every corpus script parses")
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect();
    if stack != StackKind::Engine {
        // A real-time failure is tried again, up to twice (as the FreeBSD suite's
        // double-check.sh does); a script that fails three times fails.
        for _ in 0..2 {
            let again: Vec<PathBuf> = results
                .iter()
                .filter(|r| matches!(r.status(), Status::Fail | Status::Xpass | Status::Xfail))
                .map(|r| r.path.clone())
                .collect();
            if again.is_empty() {
                break;
            }
            let redo = report::run_all(&again, &[stack], &opts, &expectations(), jobs)
                .expect("parses")
                .into_iter()
                .flat_map(|(_, r)| r);
            for r in redo {
                let keep_new =
                    !matches!(r.outcome.verdict, Verdict::Fail(_)) || r.expected_failure.is_some();
                if keep_new {
                    if let Some(old) = results.iter_mut().find(|o| o.path == r.path) {
                        *old = r;
                    }
                }
            }
        }
    }
    results
}

fn unexpected(results: &[ScriptResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| matches!(r.status(), Status::Fail | Status::Xpass))
        .map(|r| report::text(r, false))
        .collect()
}

#[test]
fn our_corpus_passes_on_the_engine_or_fails_as_documented() {
    let results = run("drill", StackKind::Engine, 1);
    assert!(
        results.len() >= 88 + 21,
        "corpus too small: {}",
        results.len()
    );
    let bad = unexpected(&results);
    assert!(bad.is_empty(), "{}", bad.join(""));
    let skipped: Vec<_> = results
        .iter()
        .filter(|r| r.status() == Status::Skip)
        .map(|r| report::text(r, false))
        .collect();
    assert!(
        skipped.is_empty(),
        "our corpus uses only supported features:\n{}",
        skipped.join("")
    );
}

#[test]
fn freebsd_state_event_engine_passes_on_the_engine_where_linux_agrees() {
    let expect = expectations();
    let results = run(
        "freebsd-tcp-testsuite/state-event-engine",
        StackKind::Engine,
        1,
    );
    assert_eq!(results.len(), 614);
    let bad = unexpected(&results);
    assert!(bad.is_empty(), "{}", bad.join(""));
    // Scripts that use only supported features and whose behaviour Linux shares (not listed
    // as FreeBSD/Linux differences): the engine follows Linux, so it must pass them.
    let comparable: Vec<&ScriptResult> = results
        .iter()
        .filter(|r| {
            r.status() != Status::Skip && expect.reason(&r.path, StackKind::Linux).is_none()
        })
        .collect();
    let passed = comparable
        .iter()
        .filter(|r| r.status() == Status::Pass)
        .count();
    let share = passed as f64 / comparable.len() as f64;
    // Straight to stderr: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr().lock(),
        "FreeBSD state-event-engine on the engine: {passed} of {} Linux-agreeing scripts pass ({:.1}%); {} in total pass, {} expected failures, {} skipped",
        comparable.len(),
        share * 100.0,
        results.iter().filter(|r| r.status() == Status::Pass).count(),
        results.iter().filter(|r| r.status() == Status::Xfail).count(),
        results.iter().filter(|r| r.status() == Status::Skip).count(),
    );
    assert!(share >= 0.95, "only {:.1}% pass", share * 100.0);
}

#[test]
fn our_corpus_describes_linux_and_both_stacks_agree_unless_documented() {
    if !tcpfsm_testkit::require_root("our drill corpus on the Linux kernel (netns + TUN)") {
        return;
    }
    let expect = expectations();
    let linux = run("drill", StackKind::Linux, 6);
    let failed: Vec<String> = linux
        .iter()
        .filter(|r| !matches!(r.outcome.verdict, Verdict::Pass))
        .map(|r| report::text(r, false))
        .collect();
    assert!(
        failed.is_empty(),
        "the corpus must describe Linux:\n{}",
        failed.join("")
    );
    let engine = run("drill", StackKind::Engine, 1);
    let mut differ = Vec::new();
    for e in &engine {
        let l = linux
            .iter()
            .find(|l| l.path == e.path)
            .expect("same scripts");
        let same = e.outcome.verdict.name() == l.outcome.verdict.name();
        if !same && expect.reason(&e.path, StackKind::Engine).is_none() {
            differ.push(format!(
                "{}: engine {}, linux {}\n",
                e.path.display(),
                e.outcome.verdict.name(),
                l.outcome.verdict.name()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "undocumented engine/Linux differences:\n{}",
        differ.join("")
    );
}

#[test]
fn freebsd_differences_in_the_expectations_hold_on_linux() {
    if !tcpfsm_testkit::require_root("the FreeBSD corpus on the Linux kernel (netns + TUN)") {
        return;
    }
    let results = run(
        "freebsd-tcp-testsuite/state-event-engine",
        StackKind::Linux,
        8,
    );
    let bad = unexpected(&results);
    assert!(
        bad.is_empty(),
        "the expectations' FreeBSD/Linux differences no longer match Linux:\n{}",
        bad.join("")
    );
}

#[test]
fn our_corpus_on_tun_gives_the_engines_verdicts() {
    if !tcpfsm_testkit::require_root("our drill corpus on tcpfsm-tun (netns + TUN)") {
        return;
    }
    // The same engine behind tcpfsm-tun, on the wall clock: it passes and fails where the
    // sans-IO engine does; it skips only what tcpfsm-tun's sockets cannot do.
    let tun = run("drill", StackKind::Tun, 4);
    let bad = unexpected(&tun);
    assert!(bad.is_empty(), "{}", bad.join(""));
    let engine = run("drill", StackKind::Engine, 1);
    let mut differ = Vec::new();
    for t in &tun {
        let e = engine
            .iter()
            .find(|e| e.path == t.path)
            .expect("same scripts");
        let same = match (&t.outcome.verdict, &e.outcome.verdict) {
            (Verdict::Skip { reason, .. }, _) => {
                reason.contains("tcpfsm-tun's sockets do not offer")
            }
            (Verdict::Fail(a), Verdict::Fail(b)) => a.line == b.line,
            (a, b) => a.name() == b.name(),
        };
        if !same {
            differ.push(report::text(t, false));
        }
    }
    assert!(
        differ.is_empty(),
        "tun differs from the engine:\n{}",
        differ.join("")
    );
}

// ----- a planted bug: the runner must catch it -----

mod planted {
    use std::collections::{HashSet, VecDeque};
    use std::net::SocketAddr;
    use tcpfsm_drill::segment::Seg;
    use tcpfsm_drill::stack::{
        Applied, Fd, Micros, OptVal, Sent, SockOpt, Stack, State, StateCount, SysResult,
    };

    /// The engine with TIME_WAIT's re-ACK suppressed: a bare ACK sent for a connection that
    /// was already in TIME_WAIT before the segment or timer that caused it is dropped.
    pub struct NoTimeWaitReack<S: Stack> {
        pub inner: S,
        out: VecDeque<Sent>,
    }

    impl<S: Stack> NoTimeWaitReack<S> {
        pub fn new(inner: S) -> Self {
            NoTimeWaitReack {
                inner,
                out: VecDeque::new(),
            }
        }

        fn time_wait(&mut self) -> HashSet<(SocketAddr, SocketAddr)> {
            self.inner
                .states()
                .0
                .into_iter()
                .filter(|(s, _, _)| *s == State::TimeWait)
                .map(|(_, l, r)| (l, r))
                .collect()
        }

        /// Runs `f` on the inner stack and moves what it sent, minus the re-ACKs.
        fn filtered<T>(&mut self, f: impl FnOnce(&mut S) -> T) -> T {
            let before = self.time_wait();
            let r = f(&mut self.inner);
            while let Some(s) = self.inner.sent().pop_front() {
                let reack = Seg::parse(&s.bytes).is_ok_and(|g| {
                    g.flags == tcpfsm_drill::script::Flags::ACK
                        && g.payload.is_empty()
                        && before.contains(&(g.src, g.dst))
                });
                if !reack {
                    self.out.push_back(s);
                }
            }
            r
        }
    }

    impl<S: Stack> Stack for NoTimeWaitReack<S> {
        fn name(&self) -> &'static str {
            "engine-without-time-wait-reack"
        }
        fn apply(&mut self, k: &str, v: &str) -> SysResult<Applied> {
            self.inner.apply(k, v)
        }
        fn start(&mut self) -> SysResult<()> {
            self.inner.start()
        }
        fn now(&self) -> Micros {
            self.inner.now()
        }
        fn step(&mut self, limit: Micros, watch: &[(Fd, i16)]) -> bool {
            self.filtered(|s| s.step(limit, watch))
        }
        fn sent(&mut self) -> &mut VecDeque<Sent> {
            self.filtered(|_| ());
            &mut self.out
        }
        fn inject(&mut self, d: &[u8]) -> SysResult<()> {
            self.filtered(|s| s.inject(d))
        }
        fn socket(&mut self, v6: bool) -> SysResult<Fd> {
            self.filtered(|s| s.socket(v6))
        }
        fn bind(&mut self, fd: Fd, a: SocketAddr) -> SysResult<()> {
            self.filtered(|s| s.bind(fd, a))
        }
        fn listen(&mut self, fd: Fd, b: i32) -> SysResult<()> {
            self.filtered(|s| s.listen(fd, b))
        }
        fn accept(&mut self, fd: Fd) -> SysResult<Fd> {
            self.filtered(|s| s.accept(fd))
        }
        fn connect(&mut self, fd: Fd, a: SocketAddr) -> SysResult<()> {
            self.filtered(|s| s.connect(fd, a))
        }
        fn connect_result(&mut self, fd: Fd) -> Option<SysResult<()>> {
            self.filtered(|s| s.connect_result(fd))
        }
        fn local_addr(&mut self, fd: Fd) -> Option<SocketAddr> {
            self.inner.local_addr(fd)
        }
        fn read(&mut self, fd: Fd, n: usize) -> SysResult<Vec<u8>> {
            self.filtered(|s| s.read(fd, n))
        }
        fn write(&mut self, fd: Fd, d: &[u8]) -> SysResult<usize> {
            self.filtered(|s| s.write(fd, d))
        }
        fn close(&mut self, fd: Fd) -> SysResult<()> {
            self.filtered(|s| s.close(fd))
        }
        fn shutdown(&mut self, fd: Fd, how: i32) -> SysResult<()> {
            self.filtered(|s| s.shutdown(fd, how))
        }
        fn setsockopt(&mut self, fd: Fd, o: SockOpt, v: OptVal) -> SysResult<()> {
            self.filtered(|s| s.setsockopt(fd, o, v))
        }
        fn getsockopt(&mut self, fd: Fd, o: SockOpt) -> SysResult<OptVal> {
            self.inner.getsockopt(fd, o)
        }
        fn poll(&mut self, fd: Fd, ev: i16) -> SysResult<i16> {
            self.inner.poll(fd, ev)
        }
        fn fd_state(&mut self, fd: Fd) -> Option<State> {
            self.inner.fd_state(fd)
        }
        fn states(&mut self) -> StateCount {
            self.inner.states()
        }
    }
}

#[test]
fn planted_bug_without_time_wait_reack_fails_exactly_the_time_wait_ack_scripts() {
    use tcpfsm_drill::stack::engine::EngineStack;
    use tcpfsm_drill::stack::Net;
    let opts = DrillOptions::default();
    let expect = expectations();
    let paths = report::collect(&[tests_dir().join("drill")]).unwrap();
    let mut newly_failing = BTreeSet::new();
    for p in &paths {
        let script = tcpfsm_drill::load(p, &opts).unwrap();
        let cfg = tcpfsm_drill::config::ScriptConfig::from_script(&script).unwrap();
        let net = Net {
            local: cfg.local_ip,
            remote: cfg.remote_ip,
            mtu: cfg.mtu,
        };
        let engine = EngineStack::new(opts.engine_config.clone(), opts.seed, net);
        let out = tcpfsm_drill::run_with(
            planted::NoTimeWaitReack::new(engine),
            &script,
            p.parent().unwrap(),
            &opts,
        );
        let failed = matches!(out.verdict, Verdict::Fail(_));
        if failed && expect.reason(p, StackKind::Engine).is_none() {
            newly_failing.insert(
                p.strip_prefix(tests_dir().join("drill"))
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
    }
    // Every script that expects an ACK from an existing TIME_WAIT (the retransmitted FIN's
    // re-ACK, and the duplicate ACK for the matrix's out-of-window probe in each cell that
    // ends in TIME_WAIT), and no other.
    let want: BTreeSet<String> = [
        "lifecycle/time-wait-reack.pkt",
        "matrix/closing-ack.pkt",
        "matrix/closing-fin-ack.pkt",
        "matrix/fin-wait-1-fin-ack.pkt",
        "matrix/fin-wait-2-fin-ack.pkt",
        "matrix/time-wait-ack.pkt",
        "matrix/time-wait-fin.pkt",
        "matrix/time-wait-fin-ack.pkt",
        "matrix/time-wait-syn.pkt",
        "matrix/time-wait-syn-ack.pkt",
        "matrix/time-wait-syn-fin.pkt",
    ]
    .into_iter()
    // A script the engine fails anyway (an expected failure) cannot show the planted bug.
    .filter(|s| {
        expect
            .reason(&tests_dir().join("drill").join(s), StackKind::Engine)
            .is_none()
    })
    .map(String::from)
    .collect();
    assert!(
        want.len() >= 8,
        "too few scripts left to show the bug: {want:?}"
    );
    assert_eq!(newly_failing, want);
}
