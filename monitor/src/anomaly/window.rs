//! Per-poll deltas of every flow's counters: what detectors judge instead of lifetime
//! counters (README "Anomalies": windows).
//!
//! The previous poll's counters are kept per Webex flow (keyed by a hash of the flow's
//! identity, 64 bits: about 100 bytes a flow, not its strings; flows that are not Webex
//! are not judged and not kept). The first
//! poll after start is a baseline: every delta is zero, so counters pinned by an earlier
//! run never reopen a finding. A flow that is new since the last poll, or was evicted and
//! created again (its counters went down), counts all it has.

use std::hash::BuildHasher;

use crate::fasthash::HashMap;

use crate::status::model::FlowStatus;

/// The counters of one flow that detectors judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
    pub fragments: u64,
    pub icmp_unreachable: u64,
    pub icmp_frag_needed: u64,
    pub oversize: u64,
    pub dscp_matched: u64,
    pub dscp_mismatched: u64,
    pub dscp_rewritten: u64,
}

impl Counts {
    /// The counts of a Webex flow from its kernel counters: what [`Counts::of`] reads
    /// from its status.
    pub fn of_stats(v: &monitor_common::FlowStats) -> Counts {
        Counts {
            packets: v.packets,
            bytes: v.bytes,
            fragments: v.fragments,
            icmp_unreachable: v.icmp_unreachable,
            icmp_frag_needed: v.icmp_frag_needed,
            oversize: v.oversize,
            dscp_matched: v.dscp_match,
            dscp_mismatched: v.dscp_mismatch,
            dscp_rewritten: v.dscp_rewritten,
        }
    }

    pub fn of(f: &FlowStatus) -> Counts {
        let d = f.dscp.as_ref();
        Counts {
            packets: f.packets,
            bytes: f.bytes,
            fragments: f.fragments,
            icmp_unreachable: f.icmp_unreachable,
            icmp_frag_needed: f.icmp_frag_needed,
            oversize: f.oversize,
            dscp_matched: d.map_or(0, |d| d.matched),
            dscp_mismatched: d.map_or(0, |d| d.mismatched),
            dscp_rewritten: d.map_or(0, |d| d.rewritten),
        }
    }

    /// What was counted since `prev`; everything when the flow is not the one `prev`
    /// described any more (its packet count went down: evicted and created again).
    pub fn since(self, prev: Counts) -> Counts {
        if self.packets < prev.packets {
            return self;
        }
        let d = |a: u64, b: u64| a.saturating_sub(b);
        Counts {
            packets: d(self.packets, prev.packets),
            bytes: d(self.bytes, prev.bytes),
            fragments: d(self.fragments, prev.fragments),
            icmp_unreachable: d(self.icmp_unreachable, prev.icmp_unreachable),
            icmp_frag_needed: d(self.icmp_frag_needed, prev.icmp_frag_needed),
            oversize: d(self.oversize, prev.oversize),
            dscp_matched: d(self.dscp_matched, prev.dscp_matched),
            dscp_mismatched: d(self.dscp_mismatched, prev.dscp_mismatched),
            dscp_rewritten: d(self.dscp_rewritten, prev.dscp_rewritten),
        }
    }
}

/// The previous poll's counters of every flow.
#[derive(Debug, Default)]
pub struct Deltas {
    prev: HashMap<u64, Counts>,
    /// Seeded per process: flow identities come from the wire.
    hasher: foldhash::fast::RandomState,
    polls: u64,
}

impl Deltas {
    /// Per flow of `flows` (same order), what it counted since the last poll; all zero
    /// on the first poll (the baseline). Flows gone from `flows` are forgotten.
    pub fn update(&mut self, flows: &[FlowStatus]) -> Vec<Counts> {
        let baseline = self.polls == 0;
        self.polls += 1;
        let mut next = HashMap::with_capacity_and_hasher(flows.len(), Default::default());
        let out = flows
            .iter()
            .map(|f| {
                // No detector judges traffic that is not Webex: not kept (most of the
                // memory with a big flow table).
                if f.class == "not_webex" {
                    return Counts::default();
                }
                let now = Counts::of(f);
                let id = self.hasher.hash_one((
                    &f.interface,
                    &f.direction,
                    &f.protocol,
                    &f.src_addr,
                    f.src_port,
                    &f.dst_addr,
                    f.dst_port,
                ));
                let prev = self.prev.get(&id).copied();
                next.insert(id, now);
                match prev {
                    _ if baseline => Counts::default(),
                    Some(p) => now.since(p),
                    None => now,
                }
            })
            .collect();
        self.prev = next;
        out
    }

    /// True until the first poll was taken (the next one is the baseline).
    pub fn before_baseline(&self) -> bool {
        self.polls == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u16, packets: u64, icmp: u64) -> FlowStatus {
        let mut f = crate::status::render::tests::sample_report().flows[0].clone();
        f.src_port = port;
        f.packets = packets;
        f.icmp_unreachable = icmp;
        f
    }

    #[test]
    fn first_poll_is_a_baseline_then_deltas_and_new_flows_count_everything() {
        let mut d = Deltas::default();
        assert!(d.before_baseline());
        let v = d.update(&[flow(1, 100, 5)]);
        assert_eq!(v, [Counts::default()]);
        assert!(!d.before_baseline());
        let v = d.update(&[flow(1, 130, 5), flow(2, 7, 1)]);
        assert_eq!((v[0].packets, v[0].icmp_unreachable), (30, 0));
        assert_eq!((v[1].packets, v[1].icmp_unreachable), (7, 1));
        // Flow 1 evicted and created again with fewer packets: all of them are new.
        let v = d.update(&[flow(1, 4, 0), flow(2, 7, 1)]);
        assert_eq!(v[0].packets, 4);
        assert_eq!(v[1], Counts::default());
        // Gone flows are forgotten: back later, they count everything.
        d.update(&[flow(2, 8, 1)]);
        let v = d.update(&[flow(1, 9, 0), flow(2, 8, 1)]);
        assert_eq!(v[0].packets, 9);
        // Traffic that is not Webex is not judged.
        let mut other = flow(3, 50, 0);
        other.class = "not_webex".into();
        d.update(&[other.clone()]);
        other.packets = 80;
        assert_eq!(d.update(&[other]), [Counts::default()]);
    }
}
