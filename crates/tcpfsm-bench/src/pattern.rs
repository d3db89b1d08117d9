//! The bytes a bulk transfer carries: position `i` of the stream holds `i % 251`, so a
//! receiver can tell a misplaced byte from the right one (251 is prime, and no TCP quantity
//! is a multiple of it).

pub const PERIOD: usize = 251;

pub struct Pattern {
    buf: Vec<u8>,
    max: usize,
}

impl Pattern {
    /// A source for slices of up to `max` bytes at any stream offset.
    pub fn new(max: usize) -> Pattern {
        Pattern {
            buf: (0..max + PERIOD).map(|i| (i % PERIOD) as u8).collect(),
            max,
        }
    }

    /// The `len` bytes (at most `max`) that start at stream offset `at`.
    pub fn slice(&self, at: u64, len: usize) -> &[u8] {
        let len = len.min(self.max);
        let start = (at % PERIOD as u64) as usize;
        &self.buf[start..start + len]
    }

    /// Whether `data`, received at stream offset `at`, starts and ends with the right bytes.
    /// Two bytes per call keep the check out of the measurement; `--quick` runs (the CI
    /// smoke test) check every byte with [`Pattern::verify_all`].
    pub fn verify_ends(at: u64, data: &[u8]) -> bool {
        let ok = |i: u64, b: u8| (i % PERIOD as u64) as u8 == b;
        match (data.first(), data.last()) {
            (Some(&f), Some(&l)) => ok(at, f) && ok(at + data.len() as u64 - 1, l),
            _ => true,
        }
    }

    pub fn verify_all(at: u64, data: &[u8]) -> bool {
        data.iter()
            .enumerate()
            .all(|(i, &b)| ((at + i as u64) % PERIOD as u64) as u8 == b)
    }
}

/// How a receiver checks what it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    Ends,
    Every,
}

impl Verify {
    pub fn check(self, at: u64, data: &[u8]) -> anyhow::Result<()> {
        let ok = match self {
            Verify::Ends => Pattern::verify_ends(at, data),
            Verify::Every => Pattern::verify_all(at, data),
        };
        anyhow::ensure!(
            ok,
            "received wrong bytes at stream offset {at} (+{})",
            data.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_continue_the_stream_and_verify() {
        let p = Pattern::new(1000);
        let a = p.slice(0, 700);
        let b = p.slice(700, 1000);
        let joined = [a, b].concat();
        assert!(Pattern::verify_all(0, &joined));
        assert!(Pattern::verify_ends(700, b));
        assert!(!Pattern::verify_ends(701, b));
        assert!(!Pattern::verify_all(1, a));
    }
}
