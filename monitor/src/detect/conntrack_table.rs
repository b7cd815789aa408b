//! The conntrack table as the detectors read it, indexed once per read (it is read on a
//! schedule, every poll only when small): entries by their original tuple, the entries
//! with a helper attached, and the public ports each NAT address uses. With 100,000
//! entries a poll then costs look-ups of the few flows that can join, not a pass over
//! every entry (issue #16).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::system::{Entry, Tuple};
use crate::fasthash::HashMap;

/// Transport, then the original tuple's source and port, destination and port.
pub type OrigKey = (&'static str, IpAddr, u16, IpAddr, u16);

fn orig_key(e: &Entry) -> OrigKey {
    (
        e.protocol,
        e.orig.src,
        e.orig.sport,
        e.orig.dst,
        e.orig.dport,
    )
}

#[derive(Debug, Default)]
pub struct ConntrackTable {
    pub entries: Vec<Entry>,
    /// Every entry by its original tuple (the first of duplicates).
    by_orig: HashMap<OrigKey, usize>,
    /// Entries with a connection-tracking helper attached.
    with_helper: Vec<usize>,
    /// Per (public address, transport): the source ports translated entries use.
    pub ports_used: BTreeMap<(IpAddr, &'static str), BTreeSet<u16>>,
    /// Source-NAT'd entries.
    pub nat_entries: u64,
}

impl ConntrackTable {
    pub fn new(entries: Vec<Entry>) -> ConntrackTable {
        let mut t = ConntrackTable {
            by_orig: HashMap::with_capacity_and_hasher(entries.len(), Default::default()),
            ..Default::default()
        };
        for (i, e) in entries.iter().enumerate() {
            t.by_orig.entry(orig_key(e)).or_insert(i);
            if e.helper.is_some() {
                t.with_helper.push(i);
            }
            if e.is_snat() {
                t.nat_entries += 1;
                t.ports_used
                    .entry((e.reply.dst, e.protocol))
                    .or_default()
                    .insert(e.reply.dport);
            }
        }
        t.entries = entries;
        t
    }

    /// The entry whose original tuple is `orig` on `protocol`.
    pub fn by_orig(&self, protocol: &'static str, orig: &Tuple) -> Option<&Entry> {
        self.by_orig
            .get(&(protocol, orig.src, orig.sport, orig.dst, orig.dport))
            .map(|&i| &self.entries[i])
    }

    /// The entry a UDP or TCP flow's packets made: the one whose original tuple is
    /// the flow's source and destination (on the LAN side of a NAT, before it).
    pub fn of_flow(&self, f: &crate::status::model::FlowStatus) -> Option<&Entry> {
        let protocol = match f.protocol.as_str() {
            "udp" => "udp",
            "tcp" => "tcp",
            _ => return None,
        };
        let orig = Tuple {
            src: f.src_addr.parse().ok()?,
            dst: f.dst_addr.parse().ok()?,
            sport: f.src_port,
            dport: f.dst_port,
        };
        self.by_orig(protocol, &orig)
    }

    /// The places of the entries with a helper attached and of those whose original
    /// tuple is one of `keys`, in table order, each once.
    pub fn helpers_and(&self, keys: impl Iterator<Item = OrigKey>) -> Vec<usize> {
        let mut out: Vec<usize> = self.with_helper.clone();
        out.extend(keys.filter_map(|k| self.by_orig.get(&k).copied()));
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry {
        super::super::system::parse_entry(line).expect("parses")
    }

    #[test]
    fn indexes_entries_by_original_tuple_with_helpers_and_nat_ports() {
        let t = ConntrackTable::new(vec![
            entry(
                "ipv4     2 udp      17 3599 src=192.0.2.10 dst=203.0.113.10 sport=5060 \
                 dport=5060 src=203.0.113.10 dst=198.51.100.1 sport=5060 dport=40000 [ASSURED] \
                 mark=0 use=1 helper=sip",
            ),
            entry(
                "ipv4     2 udp      17 29 src=192.0.2.11 dst=203.0.113.10 sport=6000 \
                 dport=5004 src=203.0.113.10 dst=198.51.100.1 sport=5004 dport=40001 mark=0 use=1",
            ),
            entry(
                "ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.7 dst=198.51.100.1 \
                 sport=1234 dport=22 src=198.51.100.1 dst=198.51.100.7 sport=22 dport=1234 \
                 [ASSURED] mark=0 use=1",
            ),
        ]);
        assert_eq!(t.nat_entries, 2);
        let public: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            t.ports_used
                .get(&(public, "udp"))
                .map(|p| p.iter().copied().collect::<Vec<_>>()),
            Some(vec![40000, 40001])
        );
        let orig = Tuple {
            src: "192.0.2.11".parse().unwrap(),
            dst: "203.0.113.10".parse().unwrap(),
            sport: 6000,
            dport: 5004,
        };
        assert_eq!(t.by_orig("udp", &orig).map(|e| e.reply.dport), Some(40001));
        // A flow finds the entry its packets made by its own tuple and transport.
        let mut f = crate::status::render::tests::sample_report().flows[0].clone();
        (f.protocol, f.src_addr, f.src_port, f.dst_addr, f.dst_port) = (
            "udp".into(),
            "192.0.2.11".into(),
            6000,
            "203.0.113.10".into(),
            5004,
        );
        assert_eq!(t.of_flow(&f).map(|e| e.reply.dport), Some(40001));
        f.protocol = "tcp".into();
        assert!(t.of_flow(&f).is_none());
        assert!(t.by_orig("tcp", &orig).is_none());
        // The helper entry always; the second by its tuple; nothing twice.
        let k = ("udp", orig.src, orig.sport, orig.dst, orig.dport);
        assert_eq!(t.helpers_and([k, k].into_iter()), vec![0, 1]);
        assert_eq!(t.helpers_and(std::iter::empty()), vec![0]);
    }
}
