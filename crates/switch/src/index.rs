//! The snapshot's (logical switch, MAC) → value index: where every configured address is.
//!
//! Every frame from a VM looks its destination up here, and with 200,000 lookup records the
//! table is megabytes, so a lookup is a cache miss more often than not. This index is built
//! for that: a key is one `u64` (the logical switch in the top 16 bits, the MAC below), slots
//! are open-addressed with linear probing at most half full, so a lookup is one multiply, one
//! cache line and a compare or two, and [`MacIndex::prefetch`] lets a batch ask for all its
//! lines before the first frame needs one (the switch does that for every batch a VM port
//! hands over). The snapshot is immutable once built, so there is no removal.

use wire::MacAddr;

use crate::tables::LsId;

/// An unused slot's key: logical switch 0xffff with the broadcast address, which is never a
/// configured location (only unicast addresses are).
const EMPTY: u64 = u64::MAX;
/// Fibonacci hashing's multiplier (2^64 / golden ratio).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// A slot: `key` is `EMPTY` and `value` `None` until a key is stored (the key alone is what a
/// probe compares; the `Option` spares the table a placeholder value of every `V`).
#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    key: u64,
    value: Option<V>,
}

/// An insert-only hash map from (logical switch, MAC) to `V`.
#[derive(Debug, Clone)]
pub(crate) struct MacIndex<V> {
    slots: Box<[Slot<V>]>,
    /// 64 minus log2 of the slot count: a hash's top bits pick the first slot.
    shift: u32,
    len: usize,
}

impl<V: Copy> Default for MacIndex<V> {
    fn default() -> Self {
        Self::with_slots(16)
    }
}

/// The key of `mac` on `ls`.
#[inline]
fn key(ls: LsId, mac: MacAddr) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f]) | u64::from(ls.0) << 48
}

impl<V: Copy> MacIndex<V> {
    fn with_slots(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two() && slots >= 2);
        Self {
            slots: vec![
                Slot {
                    key: EMPTY,
                    value: None
                };
                slots
            ]
            .into_boxed_slice(),
            shift: 64 - slots.trailing_zeros(),
            len: 0,
        }
    }

    /// How many keys are stored.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn first_slot(&self, key: u64) -> usize {
        // The shift leaves at most log2(slots) bits, which fit a usize and index the slice.
        usize::try_from(key.wrapping_mul(MULTIPLIER) >> self.shift).unwrap_or(0)
    }

    /// The slot holding `key`, or the empty one where it would go: the probe every call
    /// shares. The table always has an empty slot (it is never more than half full).
    #[inline]
    fn find(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.first_slot(key);
        while self.slots[i].key != key && self.slots[i].key != EMPTY {
            i = (i + 1) & mask;
        }
        i
    }

    /// The value of `mac` on `ls`.
    #[inline]
    pub(crate) fn get(&self, ls: LsId, mac: MacAddr) -> Option<V> {
        let key = key(ls, mac);
        let slot = &self.slots[self.find(key)];
        // An empty slot's value is `None`, also when asked for the unstorable key.
        if slot.key == key { slot.value } else { None }
    }

    /// Asks the CPU to start loading the slot where `mac` on `ls` would be, so that a
    /// [`get`](Self::get) a little later finds it in cache. A hint only: it has no effect on
    /// what any call returns.
    #[inline]
    pub(crate) fn prefetch(&self, ls: LsId, mac: MacAddr) {
        let slot = &self.slots[self.first_slot(key(ls, mac))];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE, which `prefetcht0` belongs to, is part of every x86-64 CPU; and the
        // instruction only hints the cache (it never faults and changes no memory), here with
        // the address of a live slot.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                core::ptr::from_ref(slot).cast::<i8>(),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Sets the value of `mac` on `ls`, replacing any; returns the one it had. The broadcast
    /// address on logical switch 0xffff cannot be stored (it is never a configured location)
    /// and is ignored.
    pub(crate) fn insert(&mut self, ls: LsId, mac: MacAddr, value: V) -> Option<V> {
        let key = key(ls, mac);
        if key == EMPTY {
            return None;
        }
        // At most half full keeps probe runs short even with unlucky keys.
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.find(key);
        let slot = &mut self.slots[i];
        if slot.key == EMPTY {
            self.len += 1;
        }
        slot.key = key;
        slot.value.replace(value)
    }

    fn grow(&mut self) {
        let mut bigger = Self::with_slots(self.slots.len() * 2);
        for slot in self.slots.iter().filter(|slot| slot.key != EMPTY) {
            let i = bigger.find(slot.key);
            bigger.slots[i] = *slot;
            bigger.len += 1;
        }
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn mac(n: u32) -> MacAddr {
        let [a, b, c, d] = n.to_be_bytes();
        MacAddr([0xfa, 0x16, a, b, c, d])
    }

    #[test]
    fn test_agrees_with_a_hash_map_through_growth_and_replacement() {
        let mut index = MacIndex::default();
        let mut model = HashMap::new();
        // Keys that differ only in the logical switch, or only in the MAC, and replacements.
        for n in 0..5_000u32 {
            let (ls, m) = (LsId((n % 7) as u16), mac(n / 3));
            assert_eq!(index.insert(ls, m, n), model.insert((ls, m), n));
        }
        assert_eq!(index.len(), model.len());
        for n in 0..6_000u32 {
            for ls in 0..8 {
                let (ls, m) = (LsId(ls), mac(n / 3));
                index.prefetch(ls, m);
                assert_eq!(index.get(ls, m), model.get(&(ls, m)).copied());
            }
        }
        assert!(index.slots.len() >= 2 * index.len());
    }

    #[test]
    fn test_the_unstorable_key_is_absent_and_others_are_not_hurt() {
        let mut index = MacIndex::default();
        let broadcast = MacAddr([0xff; 6]);
        assert_eq!(index.insert(LsId(0xffff), broadcast, 1), None);
        assert_eq!(index.get(LsId(0xffff), broadcast), None);
        assert_eq!(index.len(), 0);
        index.insert(LsId(0xfffe), broadcast, 2);
        index.insert(LsId(0xffff), mac(1), 3);
        assert_eq!(index.get(LsId(0xfffe), broadcast), Some(2));
        assert_eq!(index.get(LsId(0xffff), mac(1)), Some(3));
        assert_eq!(index.get(LsId(0), MacAddr([0; 6])), None);
    }
}
