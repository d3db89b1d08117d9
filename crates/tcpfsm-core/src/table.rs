//! The connection table: every connection and half-open entry in one slab of slots, and one
//! index from 4-tuple to slot. A segment costs one hash lookup; an application call none (a
//! handle *is* a slot number, with the slot's generation so that a stale handle never reaches a
//! newer connection).

use crate::conn::Conn;
use crate::listener::HalfOpen;
use crate::tuple::CompactTuple;
use crate::ConnHandle;
use hashbrown::HashTable;

pub(crate) enum Entry {
    Free,
    Conn(Box<Conn>),
    HalfOpen(HalfOpen),
}

pub(crate) struct Slot {
    gen: u32,
    /// The slot is in the tuple index under this key.
    indexed: bool,
    pub(crate) key: CompactTuple,
    pub(crate) entry: Entry,
}

impl Slot {
    pub(crate) fn indexed(&self) -> bool {
        self.indexed
    }
}

pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    half_open: usize,
    /// The slot the last successful `find` returned (4.4BSD's `tcp_last_inpcb`): a bulk
    /// transfer's segments all go to one connection, and a key compare is cheaper than a hash
    /// and a probe (`Table::find` was 4.5% of bulk transfer). Never stale: a hit is checked
    /// against the slot's own key and index flag, so removal needs no invalidation.
    last: u32,
}

fn handle(slot: u32, gen: u32) -> ConnHandle {
    ConnHandle((gen as u64) << 32 | slot as u64)
}

impl Table {
    pub(crate) fn new(hasher: ahash::RandomState) -> Table {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher,
            half_open: 0,
            last: u32::MAX,
        }
    }

    pub(crate) fn half_open_count(&self) -> usize {
        self.half_open
    }

    pub(crate) fn handle_of(&self, slot: u32) -> ConnHandle {
        handle(slot, self.slots[slot as usize].gen)
    }

    /// The slot a handle names, if it still names something.
    pub(crate) fn slot_of(&self, h: ConnHandle) -> Option<u32> {
        let slot = (h.0 & 0xffff_ffff) as u32;
        let s = self.slots.get(slot as usize)?;
        (s.gen == (h.0 >> 32) as u32 && !matches!(s.entry, Entry::Free)).then_some(slot)
    }

    /// A new slot, indexed under `key`, holding what `make` builds from the slot's handle.
    pub(crate) fn insert_with(
        &mut self,
        key: CompactTuple,
        make: impl FnOnce(ConnHandle) -> Entry,
    ) -> ConnHandle {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    indexed: false,
                    key,
                    entry: Entry::Free,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let h = self.handle_of(slot);
        let entry = make(h);
        if matches!(entry, Entry::HalfOpen(_)) {
            self.half_open += 1;
        }
        let sl = &mut self.slots[slot as usize];
        sl.key = key;
        sl.entry = entry;
        self.index(slot);
        h
    }

    fn index(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.indexed {
            return;
        }
        s.indexed = true;
        let h = self.hasher.hash_one(s.key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(h, slot, |&i| hasher.hash_one(slots[i as usize].key));
    }

    /// Takes the slot out of the tuple index (TIME_WAIT or CLOSED connections the application
    /// still holds: their tuple belongs to someone else now).
    pub(crate) fn unindex(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !s.indexed {
            return;
        }
        s.indexed = false;
        let h = self.hasher.hash_one(s.key);
        if let Ok(e) = self.index.find_entry(h, |&i| i == slot) {
            e.remove();
        }
    }

    /// The slot holding `key`.
    #[inline(always)]
    pub(crate) fn find(&mut self, key: &CompactTuple) -> Option<u32> {
        let last = self.last;
        if let Some(s) = self.slots.get(last as usize) {
            if s.indexed && s.key == *key {
                return Some(last);
            }
        }
        // The probe in its own function: a hit on `last` then does not pay for the hashing
        // path's saved registers (a third of a hit's instructions).
        self.find_hashed(key)
    }

    #[inline(never)]
    fn find_hashed(&mut self, key: &CompactTuple) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        let found = self
            .index
            .find(h, |&i| self.slots[i as usize].key == *key)
            .copied();
        if let Some(slot) = found {
            self.last = slot;
        }
        found
    }

    pub(crate) fn slot(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize]
    }

    pub(crate) fn conn(&self, slot: u32) -> Option<&Conn> {
        match &self.slots.get(slot as usize)?.entry {
            Entry::Conn(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn conn_mut(&mut self, slot: u32) -> Option<&mut Conn> {
        match &mut self.slots.get_mut(slot as usize)?.entry {
            Entry::Conn(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn half_open_mut(&mut self, slot: u32) -> Option<&mut HalfOpen> {
        match &mut self.slots.get_mut(slot as usize)?.entry {
            Entry::HalfOpen(h) => Some(h),
            _ => None,
        }
    }

    /// Replaces a slot's entry (a half-open entry becoming a connection keeps its handle).
    pub(crate) fn replace(&mut self, slot: u32, entry: Entry) -> Entry {
        let s = &mut self.slots[slot as usize];
        let was_half = matches!(s.entry, Entry::HalfOpen(_));
        let is_half = matches!(entry, Entry::HalfOpen(_));
        self.half_open = self.half_open + is_half as usize - was_half as usize;
        std::mem::replace(&mut s.entry, entry)
    }

    /// Frees the slot; its handle goes stale.
    pub(crate) fn remove(&mut self, slot: u32) -> Entry {
        self.unindex(slot);
        let e = self.replace(slot, Entry::Free);
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        self.free.push(slot);
        e
    }

    /// Every occupied slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s.entry, Entry::Free))
            .map(|(i, s)| (i as u32, s))
    }
}
