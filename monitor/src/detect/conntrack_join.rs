//! The joins of conntrack entries with flows, indexed: each poll hashes the few flows a
//! join can match (signalling) by their numeric 5-tuple once, and every conntrack entry
//! is then one look-up, instead of a scan of all flows per entry (which made 5,000
//! entries and 900 flows cost most of a core).

use crate::fasthash::{HashMap, HashSet};
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

    /// Every tuple a conntrack entry can join on, each once or more.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.lan_signalling
            .keys()
            .chain(self.signalling.iter())
            .copied()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::render::tests::sample_report;

    fn flow(iface: &str, dir: &str, class: &str, src: (&str, u16), dst: (&str, u16)) -> FlowStatus {
        let mut f = sample_report().flows[0].clone();
        f.interface = iface.into();
        f.direction = dir.into();
        f.protocol = "udp".into();
        f.class = class.into();
        (f.src_addr, f.src_port, f.dst_addr, f.dst_port) =
            (src.0.into(), src.1, dst.0.into(), dst.1);
        (f.inner_addr, f.inner_port, f.peer_addr, f.peer_port) =
            (src.0.into(), src.1, dst.0.into(), dst.1);
        f
    }

    fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
        }
    }

    #[test]
    fn entries_find_their_signalling_flows_by_numeric_tuple() {
        let flows = [
            flow(
                "lan0",
                "ingress",
                "sip_signalling",
                ("192.0.2.10", 5060),
                ("203.0.113.10", 5060),
            ),
            flow(
                "wan0",
                "egress",
                "sip_signalling",
                ("198.51.100.1", 40000),
                ("203.0.113.10", 5060),
            ),
            flow(
                "lan0",
                "ingress",
                "media",
                ("192.0.2.10", 52000),
                ("203.0.113.10", 5004),
            ),
            flow(
                "lan0",
                "ingress",
                "sip_signalling",
                ("2001:db8:1::10", 5060),
                ("2001:db8:ff::10", 5060),
            ),
        ];
        let j = Joins::new(flows.iter(), |f| f.interface == "lan0");
        let lan = j.lan_signalling("udp", &tuple("192.0.2.10", 5060, "203.0.113.10", 5060));
        assert_eq!(lan.map(|f| f.interface.as_str()), Some("lan0"));
        // IPv6 text forms are compared as addresses.
        let v6 = tuple("2001:db8:1:0::10", 5060, "2001:0db8:ff::10", 5060);
        assert!(j.lan_signalling("udp", &v6).is_some());
        assert!(j.is_signalling("udp", &v6));
        // Not signalling, not on the LAN side, or another transport: no match.
        assert!(
            j.lan_signalling("udp", &tuple("192.0.2.10", 52000, "203.0.113.10", 5004))
                .is_none()
        );
        assert!(
            j.lan_signalling("udp", &tuple("198.51.100.1", 40000, "203.0.113.10", 5060))
                .is_none()
        );
        assert!(j.is_signalling("udp", &tuple("198.51.100.1", 40000, "203.0.113.10", 5060)));
        assert!(!j.is_signalling("tcp", &tuple("192.0.2.10", 5060, "203.0.113.10", 5060)));
    }
}
