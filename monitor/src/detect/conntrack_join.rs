//! The joins of conntrack entries with flows, indexed: each poll hashes the few flows a
//! join can match (signalling) by their numeric 5-tuple once, and every conntrack entry
//! is then one look-up, instead of a scan of all flows per entry (which made 5,000
//! entries and 900 flows cost most of a core).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::system::Tuple;
use crate::status::model::FlowStatus;

/// Transport, then one end's address and port, then the other's.
type Key = (&'static str, IpAddr, u16, IpAddr, u16);

/// The flows conntrack entries are joined with, by numeric 5-tuple.
#[derive(Debug, Default)]
pub struct Joins<'a> {
    /// Signalling flows entering a LAN interface, by (protocol, src, dst): the LAN-side
    /// copy of a connection before NAT (`sip_alg`).
    lan_signalling: HashMap<Key, &'a FlowStatus>,
    /// Signalling flows by (protocol, inner end, peer end) (`nat_timeout_short`).
    signalling: HashSet<Key>,
}

/// "udp"/"tcp" as the static names conntrack entries carry; other transports never
/// join.
fn transport(protocol: &str) -> Option<&'static str> {
    match protocol {
        "udp" => Some("udp"),
        "tcp" => Some("tcp"),
        _ => None,
    }
}

fn key(protocol: &str, a: (&str, u16), b: (&str, u16)) -> Option<Key> {
    Some((
        transport(protocol)?,
        a.0.parse().ok()?,
        a.1,
        b.0.parse().ok()?,
        b.1,
    ))
}

impl<'a> Joins<'a> {
    /// Indexes the signalling flows of `flows`; `is_lan` tells a LAN interface's flows.
    pub fn new(
        flows: impl Iterator<Item = &'a FlowStatus>,
        is_lan: impl Fn(&FlowStatus) -> bool,
    ) -> Joins<'a> {
        let mut j = Joins::default();
        for f in flows.filter(|f| f.class == "sip_signalling") {
            if let Some(k) = key(
                &f.protocol,
                (&f.inner_addr, f.inner_port),
                (&f.peer_addr, f.peer_port),
            ) {
                j.signalling.insert(k);
            }
            if is_lan(f)
                && f.direction == "ingress"
                && let Some(k) = key(
                    &f.protocol,
                    (&f.src_addr, f.src_port),
                    (&f.dst_addr, f.dst_port),
                )
            {
                j.lan_signalling.entry(k).or_insert(f);
            }
        }
        j
    }

    /// The signalling flow entering a LAN interface as `orig` (src to dst).
    pub fn lan_signalling(&self, protocol: &'static str, orig: &Tuple) -> Option<&'a FlowStatus> {
        self.lan_signalling
            .get(&(protocol, orig.src, orig.sport, orig.dst, orig.dport))
            .copied()
    }

    /// True when a signalling flow has `orig`'s source as its inner end and its
    /// destination as its peer.
    pub fn is_signalling(&self, protocol: &'static str, orig: &Tuple) -> bool {
        self.signalling
            .contains(&(protocol, orig.src, orig.sport, orig.dst, orig.dport))
    }
}
