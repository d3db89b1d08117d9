//! Keyed hashes behind the numbers an off-path attacker must not guess: initial sequence numbers
//! (RFC 6528), ephemeral port offsets (RFC 6056), timestamp offsets (RFC 7323 §5.4) and SYN
//! cookies. SipHash-2-4 keys drawn from the endpoint's seed: one for the 4-tuple hash behind
//! both the ISN and the timestamp offset, one each for ports and cookies.

use crate::time::Instant;
use crate::tuple::CompactTuple;
use rand::{RngCore, SeedableRng};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

#[derive(Clone)]
pub(crate) struct Secrets {
    isn: [u8; 16],
    port: [u8; 16],
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
            cookie: [0; 16],
        };
        rng.fill_bytes(&mut s.isn);
        rng.fill_bytes(&mut s.port);
        // Formerly the timestamp key: drawn still, so the cookie key stays what a seed gave.
        let mut unused = [0u8; 16];
        rng.fill_bytes(&mut unused);
        rng.fill_bytes(&mut s.cookie);
        s
    }

    /// A new connection's ISN, RFC 6528 §3: ISN = M + F(localip, localport, remoteip,
    /// remoteport, secretkey), where M is a timer ticking every 4 microseconds; and its
    /// timestamp offset ([`Secrets::ts_offset`]). Both come from one keyed hash of the tuple: the low 32 bits of the 64-bit SipHash
    /// output are the ISN's F(), the high 32 the offset. Halves of a PRF's output are
    /// independent, so seeing one (an offset can be estimated from TSvals) tells nothing of
    /// the other, and a connection costs one hash instead of two.
    pub(crate) fn isn_and_ts_offset(&self, t: &CompactTuple, now: Instant) -> (u32, u32) {
        let m = (now.as_micros() / 4) as u32;
        let h = hash(&self.isn, &[&t.hash_input()]);
        (m.wrapping_add(h as u32), (h >> 32) as u32)
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
        (hash(&self.isn, &[&t.hash_input()]) >> 32) as u32
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FourTuple;

    fn tuple(port: u16) -> CompactTuple {
        CompactTuple::new(&FourTuple {
            local: "10.0.0.1:40000".parse().unwrap(),
            remote: format!("10.0.0.2:{port}").parse().unwrap(),
        })
    }

    /// Every segment of a connection (SYN-ACK, data, the TIME_WAIT ACK) must carry TSvals of
    /// one clock (RFC 7323 §5.4), whichever path computed the offset.
    #[test]
    fn ts_offset_is_the_same_alone_or_with_the_isn_rfc7323_5_4() {
        let s = Secrets::from_seed(9);
        for port in [1, 80, 443, 65535] {
            let t = tuple(port);
            let (_, off) = s.isn_and_ts_offset(&t, Instant::from_micros(123_456));
            assert_eq!(off, s.ts_offset(&t));
        }
    }

    /// RFC 6528 §3: ISN = M + F(tuple, key) with M a 4 µs clock; F differs per tuple and per
    /// key, and the ISN's half of the hash is not the offset's.
    #[test]
    fn isn_is_a_4us_clock_plus_a_keyed_tuple_hash_rfc6528_3() {
        let s = Secrets::from_seed(9);
        let t = tuple(80);
        let (a, off) = s.isn_and_ts_offset(&t, Instant::from_micros(1_000));
        let (b, _) = s.isn_and_ts_offset(&t, Instant::from_micros(1_400));
        assert_eq!(b.wrapping_sub(a), 100);
        assert_ne!(
            a,
            s.isn_and_ts_offset(&tuple(81), Instant::from_micros(1_000))
                .0
        );
        let other = Secrets::from_seed(10);
        assert_ne!(
            a,
            other.isn_and_ts_offset(&t, Instant::from_micros(1_000)).0
        );
        assert_ne!(
            a.wrapping_sub(250),
            off,
            "ISN and offset are different halves"
        );
    }
}
