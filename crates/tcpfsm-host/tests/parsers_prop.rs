//! The host parsers take kernel and /proc text; whatever bytes they get, they return a value or
//! an error and never panic.

use proptest::prelude::*;
use tcpfsm_host::counters::{parse_port_range, parse_sockstat, parse_tables, RawCounters};
use tcpfsm_host::diag::{parse_batch, parse_inet_diag_msg};
use tcpfsm_host::procs::{parse_nofile_limit, socket_inode};

proptest! {
    #[test]
    fn netlink_batches_of_any_bytes_do_not_panic(buf in proptest::collection::vec(any::<u8>(), 0..600), seq in any::<u32>()) {
        let mut seen = 0usize;
        let _ = parse_batch(&buf, seq, &mut |p| {
            // Every payload handed out is at least one inet_diag_msg.
            assert!(p.len() >= 72);
            seen += 1;
        });
        prop_assert!(seen <= buf.len() / 88);
    }

    #[test]
    fn inet_diag_msgs_of_any_bytes_do_not_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(m) = parse_inet_diag_msg(&buf) {
            prop_assert!(buf.len() >= 72);
            let _ = m.row();
        }
    }

    #[test]
    fn proc_text_of_any_content_does_not_panic(text in "\\PC{0,400}") {
        let _ = parse_tables(&text);
        let _ = parse_sockstat(&text, "TCP");
        let _ = parse_port_range(&text);
        let _ = parse_nofile_limit(&text);
        let r = RawCounters::parse(&text, &text, &text, &text);
        let _ = r.sockstat();
        let _ = r.fields(tcpfsm_states::mib::Group::TcpExt).count();
        let _ = socket_inode(text.as_bytes());
    }

    #[test]
    fn proc_like_lines_with_random_numbers_parse_or_skip(vals in proptest::collection::vec(any::<i64>(), 1..20)) {
        let names: Vec<String> = (0..vals.len()).map(|i| format!("F{i}")).collect();
        let text = format!(
            "Tcp: {}\nTcp: {}\n",
            names.join(" "),
            vals.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
        );
        let t = parse_tables(&text);
        prop_assert_eq!(t.len(), 1);
        prop_assert_eq!(t[0].fields.len(), vals.len());
        for ((n, v), (name, got)) in names.iter().zip(&vals).zip(&t[0].fields) {
            prop_assert_eq!(n, name);
            prop_assert_eq!(*got, *v as u64, "negative values keep their two's complement");
        }
    }
}
