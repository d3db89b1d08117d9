//! Every knob the texts name, with the Linux kernel's defaults.

use crate::time::Duration;

/// When SYN cookies are used (Linux `net.ipv4.tcp_syncookies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynCookies {
    /// 0: never; a full SYN queue drops new SYNs.
    Off,
    /// 1 (Linux default): only when a listener's SYN queue overflows.
    OnOverflow,
    /// 2: for every SYN.
    Always,
}

/// Reuse of a TIME_WAIT 4-tuple for a new outgoing connection (Linux `net.ipv4.tcp_tw_reuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwReuse {
    /// 0: never.
    Off,
    /// 1: when both sides use timestamps and the TIME_WAIT is older than one second.
    On,
    /// 2 (Linux default): as `On`, for loopback traffic only.
    LoopbackOnly,
}

/// Builds a user's congestion controller for a new connection (given its SMSS and the
/// endpoint's configuration).
pub type CcFactory = fn(mss: u32, cfg: &Config) -> Box<dyn crate::cc::CongestionControl>;

/// Congestion control algorithm for new connections (Linux `tcp_congestion_control`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum CongestionAlgorithm {
    /// RFC 9438 CUBIC with RFC 9406 HyStart++ (Linux's default).
    Cubic,
    /// RFC 5681 with RFC 6582 fast recovery.
    NewReno,
    /// An algorithm of the user's own, behind the public [`crate::cc::CongestionControl`].
    Custom(CcFactory),
}

impl CongestionAlgorithm {
    /// Linux's spelling (`cubic`, `reno`), or `custom`.
    pub fn name(self) -> &'static str {
        match self {
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::NewReno => "reno",
            CongestionAlgorithm::Custom(_) => "custom",
        }
    }

    /// A controller for a connection with send MSS `mss`.
    pub(crate) fn build(self, mss: u32, cfg: &Config) -> Box<dyn crate::cc::CongestionControl> {
        use crate::cc::{Cubic, CubicConfig, NewReno, NewRenoConfig};
        match self {
            CongestionAlgorithm::Cubic => {
                let c = CubicConfig {
                    initial_window: cfg.initial_cwnd,
                    ..CubicConfig::default()
                };
                Box::new(Cubic::new(c, mss))
            }
            CongestionAlgorithm::NewReno => {
                let c = NewRenoConfig {
                    initial_window: cfg.initial_cwnd,
                    ..NewRenoConfig::default()
                };
                Box::new(NewReno::new(c, mss))
            }
            CongestionAlgorithm::Custom(f) => f(mss, cfg),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Maximum segment lifetime; TIME_WAIT lasts 2×MSL. Linux fixes TIME_WAIT at 60 s.
    pub msl: Duration,
    /// How long an orphaned FIN_WAIT_2 connection waits for the peer's FIN (`tcp_fin_timeout`).
    pub fin_timeout: Duration,
    pub syncookies: SynCookies,
    /// Upper bound on any listener's SYN queue (`tcp_max_syn_backlog`).
    pub max_syn_backlog: u32,
    /// Upper bound on any listener's accept queue (`net.core.somaxconn`).
    pub somaxconn: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped (`tcp_synack_retries`).
    pub synack_retries: u32,
    /// SYN retransmissions before connect() gives up (`tcp_syn_retries`).
    pub syn_retries: u32,
    /// Data retransmissions before an established connection is dropped (`tcp_retries2`).
    pub retries2: u32,
    /// Retransmissions of an orphaned connection's data or FIN (`tcp_orphan_retries`, 0 means 8).
    pub orphan_retries: u32,
    pub tw_reuse: TwReuse,
    /// Most TIME_WAIT records kept; beyond it a closing connection skips TIME_WAIT
    /// (`tcp_max_tw_buckets`).
    pub max_tw_buckets: u32,
    /// Inclusive ephemeral port range for connect() (`ip_local_port_range`).
    pub ephemeral_ports: (u16, u16),
    /// RFC 7323 timestamps (`tcp_timestamps`).
    pub timestamps: bool,
    /// RFC 7323 window scaling (`tcp_window_scaling`).
    pub window_scaling: bool,
    /// RFC 2018 selective acknowledgements (`tcp_sack`).
    pub sack: bool,
    /// Our MSS for IPv4 (MTU 1500 − 40); IPv6 uses 20 bytes less.
    pub mss: u16,
    pub recv_buffer: usize,
    pub send_buffer: usize,
    /// RFC 9293 §3.7.4 Nagle algorithm (disabled by TCP_NODELAY).
    pub nagle: bool,
    /// RFC 9293 §3.8.6.3 delayed ACK; `None` ACKs every segment at once.
    pub delayed_ack: Option<Duration>,
    /// RFC 6298 §2.1 initial RTO (Linux: 1 s).
    pub rto_initial: Duration,
    /// RFC 6298 §2.4 lower bound (Linux: 200 ms).
    pub rto_min: Duration,
    /// Upper bound on the backed-off RTO (Linux: 120 s).
    pub rto_max: Duration,
    pub congestion: CongestionAlgorithm,
    /// RACK-TLP time-based loss detection (RFC 8985; Linux `tcp_recovery` bit 0). Off: RFC
    /// 6675's duplicate-threshold rule only.
    pub rack: bool,
    /// Tail loss probes (RFC 8985 §7; Linux `tcp_early_retrans=3`).
    pub tail_loss_probe: bool,
    /// Undo a window reduction shown spurious by D-SACK (RFC 3708) or timestamps (RFC 3522),
    /// as Linux does.
    pub recovery_undo: bool,
    /// Initial congestion window in segments (RFC 6928; Linux: 10).
    pub initial_cwnd: u32,
    /// Keep-alive idle time (SO_KEEPALIVE with `tcp_keepalive_time`, Linux 7200 s); `None`
    /// disables keep-alives, the socket default (RFC 1122 §4.2.3.6: off unless asked for).
    pub keepalive: Option<Duration>,
    /// Time between unanswered keep-alive probes (`tcp_keepalive_intvl`).
    pub keepalive_interval: Duration,
    /// Unanswered probes before the connection is dropped (`tcp_keepalive_probes`).
    pub keepalive_probes: u32,
    /// RFC 5961 §7: at most one ACK per connection per this interval in answer to segments it
    /// cannot accept (Linux `tcp_invalid_ratelimit`, 500 ms).
    pub invalid_ratelimit: Duration,
    /// RFC 5961 §7: about this many challenge ACKs per second for the whole endpoint (Linux
    /// `tcp_challenge_ack_limit`, 1000 before 6.0); the per-second budget is randomised.
    pub challenge_ack_limit: u32,
    /// Most control segments (RSTs, challenge ACKs, SYN-ACKs, TIME_WAIT ACKs) waiting for
    /// `poll_transmit`; beyond it they are dropped and counted.
    pub max_ctl_queue: usize,
    /// Which TCP checksums the device computes or verifies (ethtool's `rx`/`tx` checksumming),
    /// so the engine skips them. Default: none, every checksum in software. Turn it on only
    /// for links that really check (a TUN with offload, an in-memory link in a benchmark).
    pub checksum_offload: crate::wire::ChecksumOffload,
    /// Header prediction for ESTABLISHED (Linux `tcp_rcv_established`), on by default. Off
    /// sends every segment down the full RFC 9293 §3.10.7.4 steps; only the differential test
    /// that holds the two paths equal turns it off. Not a tuning knob.
    #[doc(hidden)]
    pub header_prediction: bool,
    /// Loss recovery's shortcuts for ACKs that provably change nothing (`RecoveryConfig::
    /// shortcuts`), on by default; only the differential test that holds them equal to the
    /// full steps turns them off. Not a tuning knob.
    #[doc(hidden)]
    pub recovery_shortcuts: bool,
    /// The output path's shortcut (`Conn::plan_idle`): a connection with nothing waiting to
    /// go skips choosing a segment. On by default; only the differential test that holds it
    /// equal to the full choice turns it off. Not a tuning knob.
    #[doc(hidden)]
    pub output_shortcut: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            header_prediction: true,
            recovery_shortcuts: true,
            output_shortcut: true,
            msl: Duration::from_secs(30),
            fin_timeout: Duration::from_secs(60),
            syncookies: SynCookies::OnOverflow,
            max_syn_backlog: 256,
            somaxconn: 4096,
            synack_retries: 5,
            syn_retries: 6,
            retries2: 15,
            orphan_retries: 0,
            tw_reuse: TwReuse::LoopbackOnly,
            max_tw_buckets: 262_144,
            ephemeral_ports: (32768, 60999),
            timestamps: true,
            window_scaling: true,
            sack: true,
            mss: 1460,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            nagle: true,
            delayed_ack: Some(Duration::from_millis(40)),
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            congestion: CongestionAlgorithm::Cubic,
            rack: true,
            tail_loss_probe: true,
            recovery_undo: true,
            initial_cwnd: 10,
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            invalid_ratelimit: Duration::from_millis(500),
            challenge_ack_limit: 1000,
            max_ctl_queue: 4096,
            checksum_offload: crate::wire::ChecksumOffload::NONE,
        }
    }
}

/// Per-connection socket options, the engine's `setsockopt` (SO_RCVBUF, SO_SNDBUF,
/// TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, SO_LINGER, TCP_MAXSEG). New
/// connections start from [`Config::conn_options`]; change them with
/// [`Endpoint::set_options`](crate::Endpoint::set_options), or give them to `connect_with` and
/// to a listener's [`ListenOptions`](crate::ListenOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnOptions {
    /// TCP_NODELAY: Nagle's algorithm (RFC 9293 §3.7.4) off.
    pub nodelay: bool,
    /// SO_KEEPALIVE with TCP_KEEPIDLE: probe after this much idle time; `None` is off.
    pub keepalive: Option<Duration>,
    /// TCP_KEEPINTVL.
    pub keepalive_interval: Duration,
    /// TCP_KEEPCNT.
    pub keepalive_probes: u32,
    /// SO_LINGER: `Some(0)` makes `close` an abort (RST, no TIME_WAIT); another value is how
    /// long a blocking driver lets `close` wait for the send queue to drain.
    pub linger: Option<Duration>,
    /// SO_RCVBUF. The window scale offered in the SYN follows the buffer at that moment
    /// (as Linux: set it before connect or listen to get a large window).
    pub recv_buffer: usize,
    /// SO_SNDBUF.
    pub send_buffer: usize,
    /// TCP_MAXSEG: a lower MSS to announce and use than the configured one.
    pub mss: Option<u16>,
}

impl ConnOptions {
    /// Defaults with the given buffer sizes (the rest filled in by the caller).
    pub(crate) fn from_parts(send_buffer: usize, recv_buffer: usize) -> ConnOptions {
        ConnOptions {
            nodelay: false,
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            linger: None,
            recv_buffer,
            send_buffer,
            mss: None,
        }
    }

    /// Checks the options as [`Config::validate`] checks the endpoint's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, problem: String| Err(ConfigError { field, problem });
        if self.recv_buffer < 88 || self.recv_buffer > (1 << 30) {
            return err(
                "recv_buffer",
                format!("{} must be between 88 bytes and 1 GiB", self.recv_buffer),
            );
        }
        if self.send_buffer == 0 || self.send_buffer > (1 << 30) {
            return err(
                "send_buffer",
                format!("{} must be between 1 byte and 1 GiB", self.send_buffer),
            );
        }
        if self.mss.is_some_and(|m| m < 88) {
            return err("mss", "TCP_MAXSEG must be at least 88 bytes".into());
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) || self.keepalive_interval.is_zero() {
            return err("keepalive", "keep-alive times must be non-zero".into());
        }
        Ok(())
    }
}

impl Config {
    /// The options a new connection starts with.
    pub fn conn_options(&self) -> ConnOptions {
        ConnOptions {
            nodelay: !self.nagle,
            keepalive: self.keepalive,
            keepalive_interval: self.keepalive_interval,
            keepalive_probes: self.keepalive_probes,
            linger: None,
            recv_buffer: self.recv_buffer,
            send_buffer: self.send_buffer,
            mss: None,
        }
    }

    /// 2×MSL: how long a TIME_WAIT record lives.
    pub fn time_wait_duration(&self) -> Duration {
        self.msl * 2
    }
}

/// A configuration value out of its meaningful range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field, as named in [`Config`] (and the scenario language's `set` keys).
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks every field against the range in which TCP can work with it. The endpoint also
    /// clamps what it uses, so an unchecked configuration degrades rather than wedges; this
    /// tells the user why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, problem: String| Err(ConfigError { field, problem });
        // RFC 9293 §3.7.1: an IPv4 host must accept 576-byte datagrams, i.e. MSS 536; our
        // IPv6 MSS is 20 less. The floor of 88 leaves room for 12 bytes of timestamps.
        if self.mss < 88 {
            return err(
                "mss",
                format!("{} is below the minimum of 88 bytes", self.mss),
            );
        }
        if self.recv_buffer < self.mss as usize || self.recv_buffer > (1 << 30) {
            return err(
                "recv_buffer",
                format!(
                    "{} must be between the MSS ({}) and 1 GiB",
                    self.recv_buffer, self.mss
                ),
            );
        }
        if self.send_buffer == 0 || self.send_buffer > (1 << 30) {
            return err(
                "send_buffer",
                format!("{} must be between 1 byte and 1 GiB", self.send_buffer),
            );
        }
        let (lo, hi) = self.ephemeral_ports;
        if lo == 0 || hi < lo {
            return err(
                "ephemeral_ports",
                format!("{lo}-{hi} is not a range of non-zero ports (low ≤ high)"),
            );
        }
        if self.initial_cwnd == 0 {
            return err("initial_cwnd", "must be at least one segment".into());
        }
        if self.rto_min.is_zero() || self.rto_min > self.rto_max {
            return err(
                "rto_min",
                format!(
                    "{:?} must be non-zero and at most rto_max ({:?})",
                    self.rto_min, self.rto_max
                ),
            );
        }
        if self.rto_initial < self.rto_min || self.rto_initial > self.rto_max {
            return err(
                "rto_initial",
                format!(
                    "{:?} must lie between rto_min and rto_max",
                    self.rto_initial
                ),
            );
        }
        if self.rto_max > Duration::from_secs(3600) {
            return err("rto_max", format!("{:?} is above one hour", self.rto_max));
        }
        if self.msl.is_zero() {
            return err("msl", "must be non-zero: TIME_WAIT lasts 2×MSL".into());
        }
        if self.msl > Duration::from_secs(24 * 3600) {
            // TIME_WAIT expiry is kept modulo 2^32 ms (49 days); stay far below.
            return err("msl", format!("{:?} is above one day", self.msl));
        }
        if self.somaxconn == 0 {
            return err(
                "somaxconn",
                "the accept queue limit must be at least 1".into(),
            );
        }
        if self.max_syn_backlog == 0 {
            return err(
                "max_syn_backlog",
                "the SYN queue limit must be at least 1".into(),
            );
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) || self.keepalive_interval.is_zero() {
            return err("keepalive", "keep-alive times must be non-zero".into());
        }
        if self.invalid_ratelimit > Duration::from_secs(60) {
            return err(
                "invalid_ratelimit",
                format!("{:?} is above one minute", self.invalid_ratelimit),
            );
        }
        if self.challenge_ack_limit == 0 {
            return err(
                "challenge_ack_limit",
                "0 would never answer an in-window RST or SYN".into(),
            );
        }
        if self.max_ctl_queue == 0 {
            return err("max_ctl_queue", "must hold at least one segment".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn nonsense_values_name_their_field() {
        let bad = [
            Config {
                mss: 0,
                ..Config::default()
            },
            Config {
                ephemeral_ports: (60000, 1000),
                ..Config::default()
            },
            Config {
                initial_cwnd: 0,
                ..Config::default()
            },
            Config {
                msl: Duration::ZERO,
                ..Config::default()
            },
            Config {
                recv_buffer: 10,
                ..Config::default()
            },
        ];
        let fields: Vec<_> = bad
            .iter()
            .map(|c| c.validate().unwrap_err().field)
            .collect();
        assert_eq!(
            fields,
            [
                "mss",
                "ephemeral_ports",
                "initial_cwnd",
                "msl",
                "recv_buffer"
            ]
        );
    }
}
