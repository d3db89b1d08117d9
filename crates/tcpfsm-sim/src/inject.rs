//! `inject N syn … [over D]`: spoofed SYNs from made-up sources, generated one at a time
//! when due — all at the statement's instant, or spread evenly over `D` while the script
//! goes on (a flood arrives at a rate) — so a million-SYN flood never holds a million
//! datagrams at once.

use std::net::{IpAddr, SocketAddr};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One `inject` statement's SYNs still to send.
#[derive(Debug, Clone)]
pub struct Injector {
    from: IpAddr,
    dst: SocketAddr,
    count: u32,
    sent: u32,
    start_us: u64,
    over_us: u64,
    rng: ChaCha8Rng,
}

/// `ip + k`, wrapping within the family.
pub fn add_to_ip(ip: IpAddr, k: u32) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(k).into()),
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(u128::from(k)).into()),
    }
}

impl Injector {
    /// `count` SYNs from `from`, `from + 1`, … (ports 1024, 1025, …) to `dst`, the first at
    /// `start_us`, the rest evenly over `over_us`; ISNs from `seed`.
    pub fn new(
        from: IpAddr,
        dst: SocketAddr,
        count: u32,
        start_us: u64,
        over_us: u64,
        seed: u64,
    ) -> Injector {
        Injector {
            from,
            dst,
            count,
            sent: 0,
            start_us,
            over_us,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// When the next SYN is due; `None` when all were sent.
    pub fn next_at(&self) -> Option<u64> {
        (self.sent < self.count).then(|| {
            self.start_us + self.over_us * u64::from(self.sent) / u64::from(self.count.max(1))
        })
    }

    /// The next SYN if it is due at or before `now_us`.
    pub fn pop(&mut self, now_us: u64) -> Option<Vec<u8>> {
        if self.next_at()? > now_us {
            return None;
        }
        let k = self.sent;
        self.sent += 1;
        let src = SocketAddr::new(add_to_ip(self.from, k), 1024 + (k % 60_000) as u16);
        let seq: u32 = self.rng.gen();
        crate::decode::build_syn(src, self.dst, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syns_are_spread_evenly_and_all_sent() {
        let dst: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let mut i = Injector::new("198.18.0.1".parse().unwrap(), dst, 4, 1000, 4000, 7);
        let mut at = Vec::new();
        while let Some(t) = i.next_at() {
            assert!(i.pop(t - 1).is_none(), "not before its time");
            assert!(i.pop(t).is_some());
            at.push(t);
        }
        assert_eq!(at, [1000, 2000, 3000, 4000]);
        let mut now = Injector::new("198.18.0.1".parse().unwrap(), dst, 3, 5, 0, 7);
        assert_eq!((0..3).filter(|_| now.pop(5).is_some()).count(), 3);
        assert!(now.next_at().is_none());
    }
}
