//! Keyed hashes behind the numbers an off-path attacker must not guess: initial sequence numbers
//! (RFC 6528), ephemeral port offsets (RFC 6056), timestamp offsets (RFC 7323 §5.4) and SYN
//! cookies. One SipHash-2-4 key per purpose, all drawn from the endpoint's seed.

use crate::time::Instant;
use crate::tuple::CompactTuple;
use rand::{RngCore, SeedableRng};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

#[derive(Clone)]
pub(crate) struct Secrets {
    isn: [u8; 16],
    port: [u8; 16],
    ts: [u8; 16],
    cookie: [u8; 16],
}

fn hash(key: &[u8; 16], parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher24::new_with_key(key);
    for p in parts {
        h.write(p);
    }
    h.finish()
}

impl Secrets {
    pub(crate) fn from_seed(seed: u64) -> Secrets {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut s = Secrets {
            isn: [0; 16],
            port: [0; 16],
            ts: [0; 16],
            cookie: [0; 16],
        };
        rng.fill_bytes(&mut s.isn);
        rng.fill_bytes(&mut s.port);
        rng.fill_bytes(&mut s.ts);
        rng.fill_bytes(&mut s.cookie);
        s
    }

    /// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is
    /// a timer ticking every 4 microseconds.
    pub(crate) fn isn(&self, t: &CompactTuple, now: Instant) -> u32 {
        let m = (now.as_micros() / 4) as u32;
        m.wrapping_add(hash(&self.isn, &[&t.hash_input()]) as u32)
    }

    /// RFC 6056 §3.3.3 (Algorithm 3): a per-destination offset into the ephemeral range, so port
    /// choice is unpredictable off-path yet spreads across destinations.
    pub(crate) fn port_offset(&self, local: &[u8], remote: &[u8], remote_port: u16) -> u32 {
        hash(&self.port, &[local, remote, &remote_port.to_be_bytes()]) as u32
    }

    /// RFC 7323 §5.4: a per-connection random offset for TSval. Derived from the tuple (as Linux
    /// does) so that a reused 4-tuple continues the same monotonic timestamp clock, which is what
    /// makes tw_reuse and the RFC 6191 TIME_WAIT rule safe.
    pub(crate) fn ts_offset(&self, t: &CompactTuple) -> u32 {
        hash(&self.ts, &[&t.hash_input()]) as u32
    }

    /// A keyed pseudo-random number for `n` (the challenge-ACK budget of second `n`).
    pub(crate) fn mix(&self, n: u64) -> u32 {
        hash(&self.port, &[b"challenge", &n.to_be_bytes()]) as u32
    }

    pub(crate) fn cookie_hash(&self, t: &CompactTuple, irs: u32, counter: u32) -> u32 {
        hash(
            &self.cookie,
            &[&t.hash_input(), &irs.to_be_bytes(), &counter.to_be_bytes()],
        ) as u32
    }
}
