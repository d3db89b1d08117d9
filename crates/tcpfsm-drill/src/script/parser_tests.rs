use super::*;

fn defines() -> BTreeMap<String, Option<String>> {
    let mut d = BTreeMap::new();
    d.insert("Linux".to_string(), None);
    d
}

fn ok(src: &str) -> Script {
    parse("t.pkt", src, &defines()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> String {
    parse("t.pkt", src, &defines()).unwrap_err().to_string()
}

fn packet(src: &str) -> Packet {
    let s = ok(&format!("0 {src}"));
    match &s.events[0].action {
        Action::Packet(p) => p.clone(),
        other => panic!("not a packet: {other:?}"),
    }
}

fn syscall(src: &str) -> Syscall {
    let s = ok(&format!("0 {src}"));
    match &s.events[0].action {
        Action::Syscall(c) => c.clone(),
        other => panic!("not a syscall: {other:?}"),
    }
}

#[test]
fn header_options_and_init_and_cleanup_commands() {
    let s = ok("--ip_version=ipv6\n--tolerance_usecs=75000\n`./defaults.sh`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`echo done`\n");
    assert_eq!(s.options.len(), 2);
    assert_eq!(s.options[0].name, "ip_version");
    assert_eq!(s.options[0].value.as_deref(), Some("ipv6"));
    assert_eq!(s.options[1].value.as_deref(), Some("75000"));
    assert_eq!(s.init_command.as_ref().unwrap().text, "./defaults.sh");
    assert_eq!(s.cleanup_command.as_ref().unwrap().text, "echo done");
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].pos, Pos { line: 4, col: 1 });
    assert_eq!(s.line(4), "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3");
}

#[test]
fn event_times_absolute_relative_ranges_and_star() {
    let s = ok("0 `a`\n+.1 `b`\n 1.25 `c`\n+0 > S 0:0(0)\n0.1~0.2 > . 1:1(0)\n+0~+2 > . 1:1(0)\n* > . 1:1(0)\n2 `d`");
    let times: Vec<EventTime> = s.events.iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        vec![
            EventTime::Absolute(0),
            EventTime::Relative(100_000),
            EventTime::Absolute(1_250_000),
            EventTime::Relative(0),
            EventTime::AbsoluteRange(100_000, 200_000),
            EventTime::RelativeRange(0, 2_000_000),
            EventTime::Any,
            EventTime::Absolute(2_000_000),
        ]
    );
}

#[test]
fn inbound_packet_with_every_field() {
    let p = packet("< [ect0] 40000>8080 P. 1:1001(1000) ack 7 win 257 urg 3 <nop,nop,TS val 100 ecr 200,sack 1:2 3:4,mss 1460,wscale 7,sackOK,eol>");
    assert_eq!(p.direction, Direction::Inbound);
    assert_eq!(p.ecn, Some(Ecn::Ect0));
    assert_eq!(p.ports, Some((40000, 8080)));
    assert_eq!(p.flags, Flags(Flags::PSH | Flags::ACK));
    assert_eq!(
        p.seq,
        SeqSpec {
            start: 1,
            len: 1000,
            any: false,
            absolute: false
        }
    );
    assert_eq!((p.ack, p.win, p.urg), (Some(7), Some(257), Some(3)));
    assert_eq!(
        p.options.unwrap(),
        vec![
            TcpOpt::Nop,
            TcpOpt::Nop,
            TcpOpt::Timestamp { val: 100, ecr: 200 },
            TcpOpt::Sack(vec![(1, 2), (3, 4)]),
            TcpOpt::Mss(1460),
            TcpOpt::WScale(7),
            TcpOpt::SackOk,
            TcpOpt::Eol,
        ]
    );
    assert!(p.unsupported.is_none());
}

#[test]
fn outbound_flags_wildcards_and_absolute_sequence_numbers() {
    let p = packet("> S. 0:0(0) ack 1 <...>");
    assert_eq!(p.flags, Flags(Flags::SYN | Flags::ACK));
    assert_eq!(p.options, None);
    assert_eq!(packet("> . 1:1(0) ack 1").flags, Flags(Flags::ACK));
    assert_eq!(packet("> - 1:1(0)").flags, Flags(0));
    assert_eq!(
        packet("> SEW 0:0(0)").flags,
        Flags(Flags::SYN | Flags::ECE | Flags::CWR)
    );
    assert_eq!(packet("> R 5:5(0)").flags.to_string(), "R");
    assert_eq!(packet("> F. 5:5(0) ack 1").flags.to_string(), "F.");
    let p = packet("> S. ...(0) ack 65538");
    assert!(p.seq.any);
    assert!(packet("> . 1000:1000(0)!").seq.absolute);
    assert_eq!(packet("> [ect01] . 1:1(0)").ecn, Some(Ecn::Ect01));
    assert_eq!(packet("> (tos 0x3) . 1:1(0)").ecn, Some(Ecn::Ce));
}

#[test]
fn unmodelled_packet_kinds_parse_as_unsupported() {
    let s = ok("0 < udp (100)\n+0 > icmp unreachable port_unreachable [udp (100)]\n+0 `x`");
    for e in &s.events[..2] {
        let Action::Packet(p) = &e.action else {
            panic!()
        };
        assert!(p.unsupported.is_some());
    }
    assert!(matches!(s.events[2].action, Action::Command(_)));
    assert_eq!(
        packet("< S 0:0(0) win 1 <md5 0123,mss 1000>")
            .unsupported
            .as_deref(),
        Some("the TCP MD5 signature option")
    );
    assert_eq!(
        packet("< S 0:0(0) win 1 <FO abcd,nop,nop>")
            .unsupported
            .as_deref(),
        Some("the TCP Fast Open option")
    );
}

#[test]
fn syscalls_with_structures_errno_notes_and_blocking_end() {
    let c = syscall("connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)");
    assert_eq!(c.name, "connect");
    assert_eq!(c.args, vec![Expr::Int(3), Expr::Ellipsis, Expr::Ellipsis]);
    assert_eq!(c.result, Expr::Int(-1));
    assert_eq!(c.errno.as_deref(), Some("EINPROGRESS"));
    assert_eq!(c.note.as_deref(), Some("Operation now in progress"));

    let c = syscall("fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)");
    assert_eq!(c.result, Expr::Int(2));
    assert_eq!(c.errno, None);
    assert_eq!(c.note.as_deref(), Some("flags O_RDWR"));

    let c = syscall("fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0");
    assert_eq!(
        c.args[2],
        Expr::Or(
            Box::new(Expr::Word("O_RDWR".into())),
            Box::new(Expr::Word("O_NONBLOCK".into()))
        )
    );

    let c = syscall("setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0");
    assert_eq!(c.args[3].to_string(), "{onoff=1, linger=0}");

    let c = syscall("poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1");
    assert_eq!(
        c.args[0].to_string(),
        "[{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}]"
    );

    let c = syscall("bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.168.0.1\")}, 16) = 0");
    assert_eq!(
        c.args[1].to_string(),
        "{sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.168.0.1\")}"
    );

    let c = syscall("getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65536], [4]) = 0");
    assert_eq!(c.args[3], Expr::List(vec![Expr::Int(65536)]));

    let c = syscall("write(4, \"ab\" \"cd\"..., 4) = 4");
    assert_eq!(
        c.args[1],
        Expr::Str {
            text: "abcd".into(),
            ellipsis: true
        }
    );

    let c = syscall("readv(4, [{..., 500}, {..., 500}], 2) = 1000");
    assert_eq!(c.args[1].to_string(), "[{..., 500}, {..., 500}]");
    assert_eq!(syscall("getpid() = 1").args, vec![]);
    assert_eq!(
        syscall("read(4, ..., 1) = -1 EAGAIN").errno.as_deref(),
        Some("EAGAIN")
    );

    let s = ok("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0...0.100 read(4, ..., 2000) = 2000");
    let Action::Syscall(c) = &s.events[1].action else {
        panic!()
    };
    assert_eq!(c.end, Some(100_000));
    assert_eq!(s.events[1].time, EventTime::Relative(0));
}

#[test]
fn code_blocks_and_defines() {
    let s = ok("--define=PORT=8081\n0 %{ assert tcpi_state == 1 }%\n+0 bind(3, PORT, ...) = 0");
    assert_eq!(
        s.events[0].action,
        Action::Code("assert tcpi_state == 1".into())
    );
    let Action::Syscall(c) = &s.events[1].action else {
        panic!()
    };
    assert_eq!(c.args[1], Expr::Int(8081));
}

#[test]
fn ifdef_blocks_follow_the_defines() {
    let s = ok("0 `a`\n#ifdef FreeBSD\n+0 `b`\n#endif\n#ifdef Linux\n+0 `c`\n#endif\n");
    let cmds: Vec<&str> = s
        .events
        .iter()
        .map(|e| match &e.action {
            Action::Command(c) => c.text.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(cmds, vec!["a", "c"]);
}

#[test]
fn header_and_structure_errors() {
    assert_eq!(
        err("--define\n0 `x`"),
        "t.pkt:1:1: --define needs NAME or NAME=VALUE"
    );
    assert_eq!(
        err("0 `x`\n`y`\n+0 `z`"),
        "t.pkt:3:1: a command without a time must be the first or the last line"
    );
    assert_eq!(
        err("0 `x`\n--mss=1000"),
        "t.pkt:2:1: option --mss must come before the first event"
    );
    assert_eq!(
        err("0 `x`\nsocket(..., SOCK_STREAM, 0) = 3"),
        "t.pkt:2:1: expected an event time (e.g. 0, +0.1, 1.5~2.0 or *), found \"socket\""
    );
    assert_eq!(
        err("0 42"),
        "t.pkt:1:3: expected a packet (< or >), a system call, a `command` or a %{ code }% block, found number 42"
    );
    assert_eq!(err("+x `a`"), "t.pkt:1:2: expected a time, found \"x\"");
    assert_eq!(err("-0.5 `a`"), "t.pkt:1:1: negative time");
    assert_eq!(err("0 `a`\n+-1 `b`"), "t.pkt:2:2: negative time");
}

#[test]
fn event_time_errors() {
    assert_eq!(err("1 `a`"), "t.pkt:1:1: first event should be at time 0");
    assert_eq!(
        err("0 `a`\n0.2~0.1 > . 1:1(0)"),
        "t.pkt:2:1: time range is backwards"
    );
    assert_eq!(
        err("0 `a`\n0.1~0.2 `b`"),
        "t.pkt:2:1: event time range can only be used with outbound packets"
    );
    assert_eq!(
        err("0 `a`\n* < . 1:1(0) win 1"),
        "t.pkt:2:1: event time * can only be used with outbound packets"
    );
    assert_eq!(
        err("0 `a`\n+0.5...0.1 read(3, ..., 1) = 1"),
        "t.pkt:2:1: a blocking call cannot return before it starts"
    );
    assert_eq!(
        err("0 `a`\n+0~1 > . 1:1(0)"),
        "t.pkt:2:4: expected \"+\", found number 1"
    );
}

#[test]
fn packet_field_errors() {
    assert_eq!(
        err("0 < 70000>80 S 0:0(0)"),
        "t.pkt:1:5: src port out of range"
    );
    assert_eq!(
        err("0 < 7>80000 S 0:0(0)"),
        "t.pkt:1:7: dst port out of range"
    );
    assert_eq!(
        err("0 < 7 S 0:0(0)"),
        "t.pkt:1:7: expected \">\", found \"S\""
    );
    assert_eq!(
        err("0 < [ect01] S 0:0(0)"),
        "t.pkt:1:6: [ect01] can only be used with outbound packets"
    );
    assert_eq!(
        err("0 > (tos 0x100) S 0:0(0)"),
        "t.pkt:1:10: tos out of range for 8 bits"
    );
    assert_eq!(
        err("0 > [blue] S 0:0(0)"),
        "t.pkt:1:6: unknown IP information \"blue\" (expected noecn, ect0, ect1, ce, ect01, tos, flowlabel or ttl)"
    );
    assert_eq!(
        err("0 > [ect0 7] S 0:0(0)"),
        "t.pkt:1:11: expected IP information, found number 7"
    );
    assert_eq!(
        err("0 > \"S\" 0:0(0)"),
        "t.pkt:1:5: expected TCP flags (e.g. S, S., F., R, ., or -), found string \"S\""
    );
    assert_eq!(err("0 > SX 0:0(0)"), "t.pkt:1:6: unknown TCP flag 'X'");
    assert_eq!(
        err("0 > S ack 1"),
        "t.pkt:1:7: expected a sequence range start:end(length), found \"ack\""
    );
    assert_eq!(
        err("0 > S 0 0(0)"),
        "t.pkt:1:9: expected \":\", found number 0"
    );
    assert_eq!(
        err("0 > S 0:0 0"),
        "t.pkt:1:11: expected \"(\", found number 0"
    );
    assert_eq!(
        err("0 > S 0:0(0"),
        "t.pkt:1:12: expected \")\", found end of file"
    );
    assert_eq!(
        err("0 > S 4294967296:4294967296(0)"),
        "t.pkt:1:7: TCP start sequence number out of range"
    );
    assert_eq!(
        err("0 > S 4294967295:4294967296(1)"),
        "t.pkt:1:18: TCP end sequence number out of range"
    );
    assert_eq!(
        err("0 > S 0:65536(65536)"),
        "t.pkt:1:15: TCP payload size out of range"
    );
    assert_eq!(
        err("0 > S 0:10(5)"),
        "t.pkt:1:7: inconsistent TCP sequence numbers and payload size"
    );
    assert_eq!(
        err("0 > . 1:1(0) ack x"),
        "t.pkt:1:18: expected an ack number, found \"x\""
    );
    assert_eq!(
        err("0 > . 1:1(0) ack 4294967296"),
        "t.pkt:1:18: TCP ack sequence number out of range"
    );
    assert_eq!(
        err("0 > . 1:1(0) win 65536"),
        "t.pkt:1:18: TCP window value out of range"
    );
    assert_eq!(
        err("0 > . 1:1(0) urg 65536"),
        "t.pkt:1:18: urg_ptr value out of range"
    );
    assert_eq!(
        err("0 > S. ...(x)"),
        "t.pkt:1:12: expected a payload length, found \"x\""
    );
    assert_eq!(
        err("0 < S 0:0(0) win 1 <...>"),
        "t.pkt:1:20: <...> for TCP options can only be used with outbound packets"
    );
}

#[test]
fn tcp_option_errors() {
    assert_eq!(
        err("0 > S 0:0(0) <1>"),
        "t.pkt:1:15: expected a TCP option, found number 1"
    );
    assert_eq!(
        err("0 > S 0:0(0) <mss 70000>"),
        "t.pkt:1:19: mss value out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <wscale 300>"),
        "t.pkt:1:22: window scale shift count out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <sack>"),
        "t.pkt:1:19: expected a SACK block left:right, found \">\""
    );
    assert_eq!(
        err("0 > S 0:0(0) <sack 4294967296:1>"),
        "t.pkt:1:20: TCP SACK left sequence number out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <sack 1:4294967296>"),
        "t.pkt:1:22: TCP SACK right sequence number out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <TS 1 ecr 2>"),
        "t.pkt:1:18: expected \"val\", found number 1"
    );
    assert_eq!(
        err("0 > S 0:0(0) <TS val 4294967296 ecr 0>"),
        "t.pkt:1:22: ts val out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <TS val 1 ecr -1>"),
        "t.pkt:1:28: ecr val out of range"
    );
    assert_eq!(
        err("0 > S 0:0(0) <wsclae 7>"),
        "t.pkt:1:15: unknown TCP option \"wsclae\""
    );
    assert_eq!(
        err("0 > S 0:0(0) <mss 1 nop>"),
        "t.pkt:1:21: expected \">\", found \"nop\""
    );
    assert_eq!(
        err("0 > S 0:0(0) <sack 1:2 3:4 5:6 7:8 9:10>"),
        "t.pkt:1:14: TCP option list too long"
    );
    assert_eq!(
        err("0 > S 0:0(0) <mss 1,nop>"),
        "t.pkt:1:14: TCP options are not padded correctly to ensure TCP header is a multiple of 4 bytes: 1 excess bytes"
    );
    assert_eq!(
        err("0 < S 0:0(0) <mss 1460>"),
        "t.pkt:1:12: window must be specified for inbound packets"
    );
}

#[test]
fn syscall_errors() {
    assert_eq!(
        err("0 ...0.1 42() = 0"),
        "t.pkt:1:10: expected a system call name, found number 42"
    );
    assert_eq!(
        err("0 close 3 = 0"),
        "t.pkt:1:9: expected \"(\", found number 3"
    );
    assert_eq!(
        err("0 close(3) 0"),
        "t.pkt:1:12: expected \"=\", found number 0"
    );
    assert_eq!(
        err("0 close(3 = 0"),
        "t.pkt:1:11: expected \")\", found \"=\""
    );
    assert_eq!(
        err("0 close(3) = )"),
        "t.pkt:1:14: expected an expression, found \")\""
    );
    assert_eq!(
        err("0 close([3) = 0"),
        "t.pkt:1:11: expected \"]\", found \")\""
    );
    assert_eq!(
        err("0 close({3) = 0"),
        "t.pkt:1:11: expected \"}\", found \")\""
    );
    assert_eq!(
        err("0 close(3) = -1 EBADF (Bad file"),
        "t.pkt:1:23: unterminated ( note )"
    );
}
