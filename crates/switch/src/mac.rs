//! Learned MAC addresses per logical switch: learning, aging, a size limit and move detection.
//!
//! The table belongs to the forwarding worker (one owner, no locks); the control socket reads
//! copies it publishes. Time is passed in as the time since the switch started.

use core::time::Duration;

use hashbrown::HashMap;
use wire::MacAddr;

use crate::tables::{Location, LsId};

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry.
    New,
    /// An existing entry was seen again where it was.
    Refreshed,
    /// The address moved (a VM migrated, or someone is spoofing it).
    Moved {
        /// Where it was before.
        from: Location,
    },
    /// The logical switch already holds its limit of addresses; nothing was learned.
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    location: Location,
    seen: Duration,
}

/// The learned addresses of every logical switch on the host.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<(LsId, MacAddr), Entry>,
    counts: Vec<usize>,
    aging: Duration,
    moves: u64,
}

impl MacTable {
    /// An empty table whose entries expire `aging` after they were last seen.
    pub fn new(aging: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            counts: Vec::new(),
            aging,
            moves: 0,
        }
    }

    /// Changes how long entries live without being seen (existing entries keep their time).
    pub fn set_aging(&mut self, aging: Duration) {
        self.aging = aging;
    }

    /// Learns that `mac` on `ls` was just seen at `location`, holding at most `limit` entries
    /// for that logical switch.
    pub fn learn(
        &mut self,
        ls: LsId,
        mac: MacAddr,
        location: Location,
        now: Duration,
        limit: usize,
    ) -> Learned {
        if let Some(entry) = self.entries.get_mut(&(ls, mac)) {
            let was = entry.location;
            let expired = now.saturating_sub(entry.seen) > self.aging;
            entry.seen = now;
            if was == location {
                return Learned::Refreshed;
            }
            entry.location = location;
            if expired {
                return Learned::New;
            }
            self.moves += 1;
            return Learned::Moved { from: was };
        }
        let slot = usize::from(ls.0);
        if self.counts.len() <= slot {
            self.counts.resize(slot + 1, 0);
        }
        if self.counts[slot] >= limit {
            // Make room from expired entries of this switch before refusing.
            if self.expire_switch(ls, now) == 0 {
                return Learned::Full;
            }
        }
        self.entries.insert(
            (ls, mac),
            Entry {
                location,
                seen: now,
            },
        );
        self.counts[slot] += 1;
        Learned::New
    }

    /// Where `mac` on `ls` was last seen, unless that has aged out.
    pub fn lookup(&self, ls: LsId, mac: MacAddr, now: Duration) -> Option<Location> {
        let entry = self.entries.get(&(ls, mac))?;
        (now.saturating_sub(entry.seen) <= self.aging).then_some(entry.location)
    }

    /// Removes every aged-out entry; returns how many.
    pub fn expire(&mut self, now: Duration) -> usize {
        let aging = self.aging;
        let counts = &mut self.counts;
        let before = self.entries.len();
        self.entries.retain(|(ls, _), entry| {
            let keep = now.saturating_sub(entry.seen) <= aging;
            if !keep {
                counts[usize::from(ls.0)] -= 1;
            }
            keep
        });
        before - self.entries.len()
    }

    fn expire_switch(&mut self, ls: LsId, now: Duration) -> usize {
        let aging = self.aging;
        let before = self.entries.len();
        self.entries
            .retain(|(id, _), entry| *id != ls || now.saturating_sub(entry.seen) <= aging);
        let removed = before - self.entries.len();
        self.counts[usize::from(ls.0)] -= removed;
        removed
    }

    /// Forgets everything learned (after the logical switches were renumbered).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.counts.clear();
    }

    /// Carries every entry over to new ids: `map` gives an entry's logical switch and location
    /// under the new numbering, or `None` to forget it (its network or port is gone). Ages are
    /// kept; so are entries beyond a new, lower limit until they age out.
    pub fn remap(&mut self, mut map: impl FnMut(LsId, Location) -> Option<(LsId, Location)>) {
        let old = core::mem::take(&mut self.entries);
        self.counts.clear();
        for ((ls, mac), entry) in old {
            let Some((ls, location)) = map(ls, entry.location) else {
                continue;
            };
            self.entries.insert(
                (ls, mac),
                Entry {
                    location,
                    seen: entry.seen,
                },
            );
            let slot = usize::from(ls.0);
            if self.counts.len() <= slot {
                self.counts.resize(slot + 1, 0);
            }
            self.counts[slot] += 1;
        }
    }

    /// How many times an address moved.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// The number of entries (aged-out ones not yet swept included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry with its age at `now`, for listing.
    pub fn entries(
        &self,
        now: Duration,
    ) -> impl Iterator<Item = (LsId, MacAddr, Location, Duration)> + '_ {
        self.entries
            .iter()
            .map(move |((ls, mac), e)| (*ls, *mac, e.location, now.saturating_sub(e.seen)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::PortId;

    const LS: LsId = LsId(0);
    const MAC: MacAddr = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn test_learn_lookup_age() {
        let mut table = MacTable::new(secs(300));
        assert_eq!(
            table.learn(LS, MAC, Location::Local(PortId(1)), secs(0), 10),
            Learned::New
        );
        assert_eq!(
            table.lookup(LS, MAC, secs(300)),
            Some(Location::Local(PortId(1)))
        );
        assert_eq!(table.lookup(LS, MAC, secs(301)), None);
        assert_eq!(
            table.lookup(LsId(1), MAC, secs(0)),
            None,
            "per logical switch"
        );
        assert_eq!(table.expire(secs(301)), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn test_move_detection() {
        let mut table = MacTable::new(secs(300));
        table.learn(LS, MAC, Location::Local(PortId(1)), secs(0), 10);
        let remote = Location::Remote("192.0.2.2".parse().unwrap());
        assert_eq!(
            table.learn(LS, MAC, remote, secs(1), 10),
            Learned::Moved {
                from: Location::Local(PortId(1))
            }
        );
        assert_eq!(table.moves(), 1);
        assert_eq!(
            table.learn(LS, MAC, remote, secs(2), 10),
            Learned::Refreshed
        );
        // After aging, reappearing elsewhere is not a move.
        assert_eq!(
            table.learn(LS, MAC, Location::Local(PortId(3)), secs(400), 10),
            Learned::New
        );
        assert_eq!(table.moves(), 1);
    }

    #[test]
    fn test_remap_renumbers_and_forgets() {
        let mut table = MacTable::new(secs(300));
        let remote = Location::Remote("192.0.2.2".parse().unwrap());
        table.learn(LsId(0), MAC, Location::Local(PortId(1)), secs(0), 10);
        table.learn(LsId(1), MAC, remote, secs(1), 10);
        table.learn(LsId(2), MAC, Location::Uplink(PortId(4)), secs(2), 10);
        // Switch 0 became 1, switch 1 became 0, switch 2 is gone; port 1 became port 7.
        table.remap(|ls, location| {
            let ls = [Some(LsId(1)), Some(LsId(0)), None][usize::from(ls.0)]?;
            let location = match location {
                Location::Local(PortId(1)) => Location::Local(PortId(7)),
                other => other,
            };
            Some((ls, location))
        });
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.lookup(LsId(1), MAC, secs(3)),
            Some(Location::Local(PortId(7)))
        );
        assert_eq!(table.lookup(LsId(0), MAC, secs(3)), Some(remote));
        // Ages and per-switch counts came along: it still ages out on time.
        assert_eq!(table.lookup(LsId(1), MAC, secs(301)), None);
        assert_eq!(table.expire(secs(302)), 2);
        assert!(table.is_empty());
    }

    #[test]
    fn test_limit_and_reclaim() {
        let mut table = MacTable::new(secs(10));
        let mac = |i: u8| MacAddr([2, 0, 0, 0, 0, i]);
        for i in 0..3 {
            assert_eq!(
                table.learn(LS, mac(i), Location::Local(PortId(1)), secs(0), 3),
                Learned::New
            );
        }
        assert_eq!(
            table.learn(LS, mac(9), Location::Local(PortId(1)), secs(5), 3),
            Learned::Full
        );
        // Another logical switch has its own budget.
        assert_eq!(
            table.learn(LsId(1), mac(9), Location::Local(PortId(2)), secs(5), 3),
            Learned::New
        );
        // Once the old ones age out there is room again.
        assert_eq!(
            table.learn(LS, mac(9), Location::Local(PortId(1)), secs(11), 3),
            Learned::New
        );
        assert_eq!(table.len(), 2);
    }
}
