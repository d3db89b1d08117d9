//! Which 4-tuple a new connection may use: ephemeral ports per RFC 6056, TIME_WAIT's hold on
//! its tuple, and Linux's `tcp_tw_reuse` exception.

use super::Endpoint;
use crate::time_wait::TimeWaitRecord;
use crate::tuple::{is_loopback, CompactTuple};
use crate::{ConnectError, Duration, FourTuple, Instant, TwReuse};
use std::net::{IpAddr, SocketAddr};

impl Endpoint {
    /// Whether `tuple` can carry a new connection: `Some(None)` free, `Some(Some(rec))` free by
    /// taking over a TIME_WAIT record under tw_reuse, `None` in use.
    pub(super) fn tuple_free(
        &mut self,
        now: Instant,
        tuple: &FourTuple,
    ) -> Option<Option<TimeWaitRecord>> {
        let key = CompactTuple::new(tuple);
        if self.table.find(&key).is_some() {
            return None;
        }
        let Some(slot) = self.time_wait.find(&key) else {
            return Some(None);
        };
        let rec = self.time_wait.get(slot);
        // Linux tcp_twsk_unique(): reuse needs timestamps on the old connection, the sysctl,
        // and a TIME_WAIT at least one second old, so the new TSval is surely larger and
        // the peer's PAWS rejects old duplicates.
        let allowed = match self.config.tw_reuse {
            TwReuse::Off => false,
            TwReuse::On => true,
            TwReuse::LoopbackOnly => is_loopback(tuple),
        };
        let age = self
            .config
            .time_wait_duration()
            .saturating_sub(rec.remaining(now));
        if allowed
            && self.config.timestamps
            && rec.ts_recent().is_some()
            && age >= Duration::from_secs(1)
        {
            return Some(Some(self.time_wait.remove(slot)));
        }
        None
    }

    /// RFC 6056 §3.3.3 Algorithm 3: start at a keyed hash of the destination plus a counter,
    /// then search the range linearly.
    pub(super) fn pick_ephemeral(
        &mut self,
        now: Instant,
        local_ip: IpAddr,
        remote: SocketAddr,
    ) -> Result<(FourTuple, Option<TimeWaitRecord>), ConnectError> {
        let (lo, hi) = self.config.ephemeral_ports;
        if lo == 0 || hi < lo {
            return Err(ConnectError::AddrNotAvailable);
        }
        let n = (hi - lo) as u32 + 1;
        // The offset depends only on the destination (and the key): kept for the last one,
        // since a client tends to connect to the same server again and again.
        let offset = match self.port_offset_memo {
            Some((ip, r, off)) if ip == local_ip && r == remote => off,
            _ => {
                let lbytes = CompactTuple::new(&FourTuple {
                    local: SocketAddr::new(local_ip, 0),
                    remote,
                })
                .hash_input();
                let off = self
                    .secrets
                    .port_offset(&lbytes[..16], &lbytes[16..32], remote.port());
                self.port_offset_memo = Some((local_ip, remote, off));
                off
            }
        };
        for i in 0..n {
            let port = lo + ((offset.wrapping_add(self.port_counter).wrapping_add(i)) % n) as u16;
            let local = SocketAddr::new(local_ip, port);
            // A port bound by a listener is not ephemeral.
            if self.listeners.iter().any(|l| l.matches(local)) {
                continue;
            }
            let tuple = FourTuple { local, remote };
            if let Some(reused) = self.tuple_free(now, &tuple) {
                self.port_counter = self.port_counter.wrapping_add(i + 1);
                return Ok((tuple, reused));
            }
        }
        Err(ConnectError::AddrNotAvailable)
    }
}
