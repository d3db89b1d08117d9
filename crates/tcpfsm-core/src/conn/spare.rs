//! Storage of finished connections kept for the next ones (as Linux keeps freed socket
//! memory in its slab caches): the boxed connection, its two ring buffers and its boxed
//! loss-recovery state. A short-lived connection then costs no allocation and no zeroing of
//! fresh buffers; the lifecycle benchmark spent about a tenth of its time in malloc, free and
//! memset before this.

use super::stats::Recovery;
use super::Conn;
use crate::table::Entry;

/// At most this many of each are kept, so that a burst of closes leaves little memory
/// behind: a kept connection holds at most two rings of 16 KiB (`Ring::trim_for_reuse`), a
/// kept recovery state collections of at most 64 entries (`Scoreboard::storage_is_small`).
const KEEP: usize = 16;

// The boxes themselves are what is kept: a kept box becomes the next connection's allocation.
#[allow(clippy::vec_box)]
#[derive(Default)]
pub(crate) struct Spare {
    conns: Vec<Box<Conn>>,
    recovery: Vec<Box<Recovery>>,
}

impl Spare {
    /// `conn`, boxed in a kept box if there is one, with that box's ring storage.
    pub(crate) fn boxed(&mut self, mut conn: Conn) -> Box<Conn> {
        match self.conns.pop() {
            Some(mut b) => {
                conn.adopt_storage(&mut b);
                *b = conn;
                b
            }
            None => Box::new(conn),
        }
    }

    /// `r`, boxed in a kept box if there is one.
    pub(crate) fn recovery(&mut self, mut r: Recovery) -> Box<Recovery> {
        match self.recovery.pop() {
            Some(mut b) => {
                r.adopt_storage(&mut b);
                *b = r;
                b
            }
            None => Box::new(r),
        }
    }

    /// A slot's entry has been removed from the table: keep what a connection can reuse.
    pub(crate) fn free(&mut self, entry: Entry) {
        let Entry::Conn(mut c) = entry else { return };
        if let Some(r) = c.lr.take() {
            if self.recovery.len() < KEEP && r.storage_is_small() {
                self.recovery.push(r);
            }
        }
        if self.conns.len() < KEEP {
            c.trim_for_reuse();
            self.conns.push(c);
        }
    }
}
