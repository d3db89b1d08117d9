//! Per-connection memory against the targets (and Linux's sizes, in the comments).

#[test]
fn records_meet_their_size_targets() {
    let m = tcpfsm_core::memory_footprint();
    eprintln!("{m:#?}");
    assert!(
        m.time_wait_record <= 64,
        "TIME_WAIT record: {} bytes (Linux 248)",
        m.time_wait_record
    );
    assert!(
        m.half_open <= 128,
        "half-open entry: {} bytes (Linux 312)",
        m.half_open
    );
    assert!(m.conn <= 512, "connection: {} bytes", m.conn);
}
