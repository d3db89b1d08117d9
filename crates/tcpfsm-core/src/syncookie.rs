//! SYN cookies: answering a SYN without keeping state, when the SYN queue is full.
//!
//! The cookie is our ISN. Its top 5 bits are a 64-second counter, the next 3 bits index the
//! peer's MSS in a small table, and the low 24 bits are a keyed hash of the 4-tuple, the peer's
//! ISN and the counter. The final ACK carries cookie+1; recomputing the hash proves we sent it
//! within the last two counter periods (as Linux's `MAX_SYNCOOKIE_AGE`). Window scale and SACK,
//! which the cookie has no room for, ride in the low bits of our TSval when the peer uses
//! timestamps — and are lost when it does not, as on Linux.

use crate::secrets::Secrets;
use crate::time::Instant;
use crate::tuple::CompactTuple;

/// MSS values a cookie can express (Linux's `msstab`); the peer's MSS rounds down to one.
const MSS_TABLE: [u16; 8] = [536, 1024, 1220, 1300, 1440, 1460, 4312, 8960];

const PERIOD_SECS: u64 = 64;

fn counter(now: Instant) -> u32 {
    (now.as_micros() / 1_000_000 / PERIOD_SECS) as u32
}

pub(crate) fn mss_index(mss: u16) -> u32 {
    MSS_TABLE.iter().rposition(|m| *m <= mss).unwrap_or(0) as u32
}

pub(crate) fn encode(s: &Secrets, t: &CompactTuple, irs: u32, mss: u16, now: Instant) -> u32 {
    let c = counter(now);
    ((c & 0x1f) << 27) | (mss_index(mss) << 24) | (s.cookie_hash(t, irs, c) & 0x00ff_ffff)
}

/// Checks the cookie in an ACK (`ack - 1`); returns the MSS it encodes.
pub(crate) fn decode(
    s: &Secrets,
    t: &CompactTuple,
    irs: u32,
    cookie: u32,
    now: Instant,
) -> Option<u16> {
    let now_c = counter(now);
    (0..2u32).find_map(|age| {
        let c = now_c.wrapping_sub(age);
        let ok = (cookie >> 27) == (c & 0x1f)
            && (cookie & 0x00ff_ffff) == (s.cookie_hash(t, irs, c) & 0x00ff_ffff);
        ok.then(|| MSS_TABLE[((cookie >> 24) & 7) as usize])
    })
}

/// Options packed into the low 6 bits of TSval: window scale (4 bits, 0xf = none) and SACK.
pub(crate) fn encode_ts_options(tsval: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let ws = wscale.map_or(0xf, |w| w.min(14) as u32);
    (tsval & !0x3f) | ws | if sack { 0x10 } else { 0 }
}

pub(crate) fn decode_ts_options(tsecr: u32) -> (Option<u8>, bool) {
    let ws = tsecr & 0xf;
    ((ws != 0xf).then_some(ws as u8), tsecr & 0x10 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FourTuple;

    fn tuple() -> CompactTuple {
        CompactTuple::new(&FourTuple {
            local: "10.0.0.2:80".parse().unwrap(),
            remote: "10.0.0.1:40000".parse().unwrap(),
        })
    }

    #[test]
    fn cookie_round_trips_within_two_periods() {
        let s = Secrets::from_seed(7);
        let now = Instant::from_micros(1_000_000_000);
        let c = encode(&s, &tuple(), 1234, 1460, now);
        assert_eq!(decode(&s, &tuple(), 1234, c, now), Some(1460));
        let later = Instant::from_micros(now.as_micros() + 64_000_000);
        assert_eq!(decode(&s, &tuple(), 1234, c, later), Some(1460));
        let too_late = Instant::from_micros(now.as_micros() + 3 * 64_000_000);
        assert_eq!(decode(&s, &tuple(), 1234, c, too_late), None);
    }

    #[test]
    fn cookie_rejects_other_tuple_or_isn() {
        let s = Secrets::from_seed(7);
        let now = Instant::from_micros(5_000_000);
        let c = encode(&s, &tuple(), 1234, 1460, now);
        assert_eq!(decode(&s, &tuple(), 1235, c, now), None);
        assert_eq!(decode(&s, &tuple(), 1234, c ^ 1, now), None);
    }

    #[test]
    fn mss_rounds_down_to_table() {
        assert_eq!(MSS_TABLE[mss_index(1400) as usize], 1300);
        assert_eq!(MSS_TABLE[mss_index(100) as usize], 536);
        assert_eq!(MSS_TABLE[mss_index(9000) as usize], 8960);
    }

    #[test]
    fn ts_options_round_trip() {
        let v = encode_ts_options(0xabcdef12, Some(7), true);
        assert_eq!(decode_ts_options(v), (Some(7), true));
        let v = encode_ts_options(0xabcdef12, None, false);
        assert_eq!(decode_ts_options(v), (None, false));
    }
}
