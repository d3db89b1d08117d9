//! Bad arguments are refused with a typed error before anything touches the system (these
//! run without root).

use std::io::ErrorKind;

use tcpfsm_tun::{Stack, StackConfig, TunDevice};

#[test]
fn interface_name_longer_than_ifnamsiz_is_invalid_input() {
    let err = TunDevice::open("a-name-longer-than-15").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn interface_name_with_a_slash_is_invalid_input() {
    let err = TunDevice::open("tun/0").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn mtu_below_the_ipv4_minimum_datagram_is_invalid_input() {
    // RFC 791: every host must accept 576-byte datagrams; less cannot carry our segments.
    let err = Stack::new(StackConfig {
        mtu: 500,
        ..StackConfig::default()
    })
    .err()
    .expect("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn opening_a_tun_without_root_says_root_is_needed() {
    if tcpfsm_tun::is_root() {
        // As root the open succeeds; the message only matters for unprivileged users. Check
        // the positive path instead (in a namespace of our own): a kernel-chosen name.
        let ns =
            tcpfsm_tun::netns::NetNs::create(&format!("tcpfsm-tun-cfg-{}", std::process::id()))
                .unwrap();
        let name = ns
            .run(|| TunDevice::open("").map(|d| d.name().to_string()))
            .unwrap()
            .expect("TUN as root");
        assert!(name.starts_with("tun"), "{name}");
        return;
    }
    let err = TunDevice::open("tfsmtest0").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("needs root"), "{err}");
}
