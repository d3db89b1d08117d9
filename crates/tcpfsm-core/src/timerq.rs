//! The endpoint's timer queue: one deadline per table slot (a connection's earliest timer, or
//! a half-open entry's SYN-ACK retransmission) in a binary min-heap that knows where each slot
//! sits, so a deadline is moved or removed in place. Nothing stale is ever left behind: the
//! heap holds exactly the armed slots, and its memory follows them.

use crate::time::Instant;

const NOT_QUEUED: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    /// `(deadline in µs, slot)`, a min-heap on the deadline.
    heap: Vec<(u64, u32)>,
    /// Where each slot's entry is in `heap`, or `NOT_QUEUED`.
    pos: Vec<u32>,
}

impl TimerQueue {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    fn pos_of(&self, slot: u32) -> u32 {
        self.pos.get(slot as usize).copied().unwrap_or(NOT_QUEUED)
    }

    /// The slot's deadline, if queued.
    pub(crate) fn get(&self, slot: u32) -> Option<Instant> {
        let p = self.pos_of(slot);
        (p != NOT_QUEUED).then(|| Instant::from_micros(self.heap[p as usize].0))
    }

    /// Sets (`Some`) or removes (`None`) the slot's deadline.
    ///
    /// Inlined, as are the sifts: a connection's deadline moves after nearly every segment it
    /// handles or sends, in a heap that is mostly shallow, so the calls' frames cost about as
    /// much as the work (lifecycle −121 instructions per connection, bulk −2.7k/MiB).
    #[inline]
    pub(crate) fn set(&mut self, slot: u32, at: Option<Instant>) {
        match at {
            Some(at) => self.schedule(slot, at),
            None => self.remove(slot),
        }
    }

    fn schedule(&mut self, slot: u32, at: Instant) {
        let t = at.as_micros();
        let p = self.pos_of(slot);
        if p == NOT_QUEUED {
            if self.pos.len() <= slot as usize {
                self.pos.resize(slot as usize + 1, NOT_QUEUED);
            }
            self.heap.push((t, slot));
            let i = self.heap.len() - 1;
            self.pos[slot as usize] = i as u32;
            self.sift_up(i);
            return;
        }
        let i = p as usize;
        let old = self.heap[i].0;
        self.heap[i].0 = t;
        if t < old {
            self.sift_up(i);
        } else if t > old {
            self.sift_down(i);
        }
    }

    pub(crate) fn remove(&mut self, slot: u32) {
        let p = self.pos_of(slot);
        if p == NOT_QUEUED {
            return;
        }
        let i = p as usize;
        self.pos[slot as usize] = NOT_QUEUED;
        let last = self.heap.len() - 1;
        if i != last {
            self.heap.swap(i, last);
            self.heap.pop();
            self.pos[self.heap[i].1 as usize] = i as u32;
            self.sift_down(i);
            self.sift_up(i);
        } else {
            self.heap.pop();
        }
        if self.heap.is_empty() && self.heap.capacity() > 1024 {
            // After a flood, give the memory back.
            self.heap = Vec::new();
            self.pos = Vec::new();
        }
    }

    /// The earliest deadline.
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.first().map(|&(t, _)| Instant::from_micros(t))
    }

    /// Takes the slot of the earliest deadline if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u32> {
        let &(t, slot) = self.heap.first()?;
        if t > now.as_micros() {
            return None;
        }
        self.remove(slot);
        Some(slot)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && self.heap[r].0 < self.heap[l].0 {
                r
            } else {
                l
            };
            if self.heap[i].0 <= self.heap[c].0 {
                break;
            }
            self.swap(i, c);
            i = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn behaves_like_a_sorted_map_under_random_operations() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut q = TimerQueue::default();
        let mut model = std::collections::BTreeMap::<u32, u64>::new();
        for _ in 0..20_000 {
            let slot = rng.gen_range(0..200u32);
            match rng.gen_range(0..4) {
                0 => {
                    q.set(slot, None);
                    model.remove(&slot);
                }
                _ => {
                    let t = rng.gen_range(0..1_000_000u64);
                    q.set(slot, Some(Instant::from_micros(t)));
                    model.insert(slot, t);
                }
            }
            let min = model.values().min().copied();
            assert_eq!(q.peek().map(|i| i.as_micros()), min);
            assert_eq!(q.len(), model.len());
            assert_eq!(
                q.get(slot).map(|i| i.as_micros()),
                model.get(&slot).copied()
            );
        }
        let mut now = 0;
        while let Some(t) = q.peek() {
            now = now.max(t.as_micros());
            let s = q.pop_due(Instant::from_micros(now)).unwrap();
            assert_eq!(model.remove(&s), Some(t.as_micros()));
        }
        assert!(model.is_empty());
    }
}
