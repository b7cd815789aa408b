//! A snapshot's flows as the kernel's batch read writes them: the keys in one list and
//! the counters in another, at the same places. The read lands in place; pairs would
//! need a copy of every flow each poll (~45 ms at a million flows, a sixth of the
//! daemon's own work there).

use monitor_common::{FlowKey, FlowStats};

/// Flows by place: `keys()[i]` and `stats()[i]` are one flow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowTable {
    keys: Vec<FlowKey>,
    stats: Vec<FlowStats>,
}

/// The flows of a table in order, as pairs of references.
pub type Iter<'a> = std::iter::Zip<std::slice::Iter<'a, FlowKey>, std::slice::Iter<'a, FlowStats>>;

impl FlowTable {
    pub fn new() -> FlowTable {
        FlowTable::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[FlowKey] {
        &self.keys
    }

    pub fn stats(&self) -> &[FlowStats] {
        &self.stats
    }

    /// The flow at place `i`.
    pub fn get(&self, i: usize) -> Option<(&FlowKey, &FlowStats)> {
        Some((self.keys.get(i)?, self.stats.get(i)?))
    }

    pub fn iter(&self) -> Iter<'_> {
        self.keys.iter().zip(self.stats.iter())
    }

    /// Every flow, its counters writable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&FlowKey, &mut FlowStats)> {
        self.keys.iter().zip(self.stats.iter_mut())
    }

    pub fn push(&mut self, key: FlowKey, stats: FlowStats) {
        self.keys.push(key);
        self.stats.push(stats);
    }

    /// Empties the table, keeping its memory for the next read.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.stats.clear();
    }

    /// Room for `n` more flows.
    pub fn reserve(&mut self, n: usize) {
        self.keys.reserve(n);
        self.stats.reserve(n);
    }

    /// Keeps the flows `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &FlowStats) -> bool) {
        let mut kept = 0;
        for i in 0..self.keys.len() {
            if keep(&self.keys[i], &self.stats[i]) {
                self.keys.swap(kept, i);
                self.stats.swap(kept, i);
                kept += 1;
            }
        }
        self.keys.truncate(kept);
        self.stats.truncate(kept);
    }

    /// Lets `write` append to both lists (the batch reader's kernel writes), then cuts
    /// them to the flows both hold.
    pub fn append_with<R>(
        &mut self,
        write: impl FnOnce(&mut Vec<FlowKey>, &mut Vec<FlowStats>) -> R,
    ) -> R {
        let r = write(&mut self.keys, &mut self.stats);
        let n = self.keys.len().min(self.stats.len());
        self.keys.truncate(n);
        self.stats.truncate(n);
        r
    }
}

impl<'a> IntoIterator for &'a FlowTable {
    type Item = (&'a FlowKey, &'a FlowStats);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(FlowKey, FlowStats)> for FlowTable {
    fn from_iter<I: IntoIterator<Item = (FlowKey, FlowStats)>>(iter: I) -> FlowTable {
        let mut t = FlowTable::new();
        t.extend(iter);
        t
    }
}

impl Extend<(FlowKey, FlowStats)> for FlowTable {
    fn extend<I: IntoIterator<Item = (FlowKey, FlowStats)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.push(k, v);
        }
    }
}

impl From<Vec<(FlowKey, FlowStats)>> for FlowTable {
    fn from(pairs: Vec<(FlowKey, FlowStats)>) -> FlowTable {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u8, packets: u64) -> (FlowKey, FlowStats) {
        (
            FlowKey {
                src_addr: FlowKey::v4_mapped([192, 0, 2, n]),
                ..Default::default()
            },
            FlowStats {
                packets,
                ..Default::default()
            },
        )
    }

    #[test]
    fn places_pair_keys_with_their_counters_through_retain_and_append() {
        let mut t: FlowTable = (1..=5).map(|n| flow(n, n as u64 * 10)).collect();
        t.retain(|_, v| v.packets != 20 && v.packets != 40);
        let got: Vec<(FlowKey, FlowStats)> = t.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, vec![flow(1, 10), flow(3, 30), flow(5, 50)]);
        // A writer that left one list longer: cut to the whole flows.
        t.append_with(|keys, stats| {
            keys.push(flow(6, 60).0);
            keys.push(flow(7, 70).0);
            stats.push(flow(6, 60).1);
        });
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(3), Some((&flow(6, 60).0, &flow(6, 60).1)));
        assert_eq!(t.get(4), None);
        t.clear();
        assert!(t.is_empty());
    }
}
