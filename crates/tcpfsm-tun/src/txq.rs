//! Outbound datagrams are written to the TUN outside the endpoint's lock.
//!
//! A write to a TUN device runs the kernel's receive path inside the syscall
//! (`tun_get_user` → `netif_receive_skb` → `tcp_v4_rcv`): an ACK we write makes the kernel's
//! TCP transmit its next segments there and then (`tcp_rcv_established` →
//! `__tcp_push_pending_frames`). Done under the lock, that work stalled every other thread
//! wanting the endpoint (the driver with a batch of input, a reader wanting its data).
//!
//! So the endpoint's output is queued under the lock ([`TxQueue::push`]), and the thread
//! releasing the lock writes the queue out after unlocking ([`Locked`]'s `Drop`). One thread
//! writes at a time (`writing`), and it keeps writing until the queue is empty, so datagrams
//! reach the wire in the order the endpoint emitted them whichever thread queued them (TCP
//! tolerates reordering, but the peer would read it as loss: RFC 5681 §3.2 duplicate ACKs).

use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;

use crate::stack::{Inner, Shared};

/// Datagrams waiting for the wire, in emission order, in buffers that are reused.
#[derive(Default)]
pub(crate) struct TxQueue {
    /// Each datagram is `buf[..len]`.
    pending: Vec<(Vec<u8>, usize)>,
    /// The writer's batch vector, kept to reuse its allocation.
    spare: Vec<(Vec<u8>, usize)>,
    /// Emptied datagram buffers.
    pool: Vec<Vec<u8>>,
    /// A thread is writing a batch outside the lock.
    writing: bool,
    /// Capacity of a new buffer: the largest datagram plus room.
    buf_cap: usize,
}

impl TxQueue {
    pub(crate) fn new(mtu: u32) -> TxQueue {
        TxQueue {
            buf_cap: mtu as usize + 64,
            ..TxQueue::default()
        }
    }

    /// A buffer for the next datagram (from the pool when one is free).
    pub(crate) fn take_buf(&mut self) -> Vec<u8> {
        self.pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buf_cap))
    }

    /// Gives back a buffer whose datagram is not sent (none made, or filtered out).
    pub(crate) fn give_back(&mut self, buf: Vec<u8>) {
        self.pool.push(buf);
    }

    /// Queues `buf[..len]` behind everything queued before it.
    pub(crate) fn push(&mut self, buf: Vec<u8>, len: usize) {
        self.pending.push((buf, len));
    }
}

/// The endpoint's lock. Dereferences to [`Inner`]; releasing it (drop) first writes out what
/// the holder queued, as the module documentation says.
pub(crate) struct Locked<'a> {
    shared: &'a Shared,
    guard: Option<MutexGuard<'a, Inner>>,
}

impl<'a> Locked<'a> {
    pub(crate) fn new(shared: &'a Shared, guard: MutexGuard<'a, Inner>) -> Locked<'a> {
        Locked {
            shared,
            guard: Some(guard),
        }
    }

    /// Writes the queue out, unless another thread is already doing so (it will write ours
    /// too before it stops). Returns with the lock held again, and whether it was released
    /// meanwhile (then other threads may have changed anything, e.g. dispatched a wakeup).
    pub(crate) fn flush(&mut self) -> bool {
        let g = self.guard.as_mut().expect("held");
        if g.txq.writing || g.txq.pending.is_empty() {
            return false;
        }
        g.txq.writing = true;
        let mut batch = std::mem::take(&mut g.txq.spare);
        loop {
            let g = self.guard.as_mut().expect("held");
            std::mem::swap(&mut batch, &mut g.txq.pending);
            self.guard = None;
            // A refused write counts its segments as lost; TCP recovers them.
            let (sent, failed, merged) = self.shared.dev.send_batch(&batch);
            let g = self.guard.insert(self.shared.lock_raw());
            g.count_tx(sent, failed, merged);
            g.txq.pool.extend(batch.drain(..).map(|(buf, _)| buf));
            if g.txq.pending.is_empty() {
                g.txq.writing = false;
                g.txq.spare = batch;
                return true;
            }
        }
    }

    /// Runs `f` without the lock (after writing out the queue), then takes the lock again.
    pub(crate) fn unlocked<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.flush();
        self.guard = None;
        let r = f();
        self.guard = Some(self.shared.lock_raw());
        r
    }

    /// Hands over the bare guard (to wait on a condition variable with it). The queue must
    /// have been written first ([`Locked::flush`] returning `false`): writing releases the
    /// lock, and a notification sent then, before the wait, would be lost.
    pub(crate) fn into_guard(mut self) -> MutexGuard<'a, Inner> {
        debug_assert!(
            self.guard
                .as_ref()
                .is_some_and(|g| g.txq.pending.is_empty() || g.txq.writing),
            "flush before waiting, and look again if it wrote"
        );
        self.guard.take().expect("held")
    }
}

impl Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.guard.as_ref().expect("held")
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.guard.as_mut().expect("held")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // While unwinding (a panicking filter or observer) leave the queue to the next holder.
        if self.guard.is_some() && !std::thread::panicking() {
            self.flush();
        }
    }
}
