//! `sip_alg`: the gateway's own SIP ALG. Two independent signs:
//!
//! 1. a conntrack entry with the SIP helper attached (`helper=sip`): the kernel's
//!    nf_conntrack_sip / nf_nat_sip inspect and rewrite that connection;
//! 2. a signalling packet changed in size between its LAN-side and WAN-side copy: the
//!    same number of packets on both sides of the NAT (paired through the conntrack
//!    entry) but different byte counts. Address/port translation never changes the IP
//!    length; an ALG rewriting SDP/SIP headers does. Judged on the packets counted since
//!    the daemon started (per-poll deltas, summed until both sides have counted the same
//!    packets: a poll may fall between a packet's two copies), so sizes counted before a
//!    restart or a rewrite long ago do not count; it stays open [`REWRITE_HOLD_S`] after
//!    the last rewritten packet.
//!
//! The helper sign is the conntrack table as it is now: it clears when the entry goes.

use crate::fasthash::{HashMap, HashSet};

use crate::anomaly::{Finding, Severity};

use super::{FlowId, View, subject};

pub const ID: &str = "sip_alg";
pub const REMEDIATION: &str = "Disable SIP ALG on this gateway: remove the nftables `ct helper` \
     rules/objects of type \"sip\" (and keep net.netfilter.nf_conntrack_helper at 0), or \
     unload nf_nat_sip/nf_conntrack_sip; then check every other firewall in the path.";

/// Seconds the rewrite sign stays open after the last rewritten packet.
pub const REWRITE_HOLD_S: u64 = 120;

/// Per LAN-side signalling flow (by subject): when a packet was last rewritten, and the
/// deltas of both copies not judged yet (LAN packets, bytes, WAN packets, bytes).
#[derive(Default)]
pub struct Rewrites {
    last: HashMap<String, u64>,
    pending: HashMap<String, [u64; 4]>,
}

pub fn detect(view: &View<'_>, rewrites: &mut Rewrites, now: u64) -> Vec<Finding> {
    rewrites
        .last
        .retain(|_, t| now.saturating_sub(*t) <= REWRITE_HOLD_S);
    if view.conntrack.is_none() {
        return Vec::new();
    }
    // Entries with a helper and those a signalling flow joins: the others can give no
    // finding here.
    let entries = view.conntrack_candidates();
    let mut out = Vec::new();
    // Pairs seen in this poll: the pending deltas of the others are dropped.
    let mut judged = HashSet::default();
    let helpers = view
        .ruleset
        .map(|r| r.sip_helpers.join(", "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none found".into());
    let rules = view
        .ruleset
        .map(|r| r.helper_rules.join("; "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none found".into());
    for e in entries {
        if e.helper.as_deref().is_some_and(|h| h.starts_with("sip")) {
            out.push(Finding {
                id: ID,
                severity: Severity::Critical,
                subject: format!(
                    "conntrack {} {}:{} -> {}:{}",
                    e.protocol, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport
                ),
                summary: format!(
                    "the gateway's SIP helper is attached to {} {}:{} -> {}:{}",
                    e.protocol, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport
                ),
                evidence: vec![
                    (
                        "conntrack_helper".into(),
                        e.helper.clone().unwrap_or_default(),
                    ),
                    (
                        "original".into(),
                        format!(
                            "{}:{} -> {}:{}",
                            e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport
                        ),
                    ),
                    (
                        "reply".into(),
                        format!(
                            "{}:{} -> {}:{}",
                            e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport
                        ),
                    ),
                    ("nft_sip_helpers".into(), helpers.clone()),
                    ("nft_helper_rules".into(), rules.clone()),
                ],
                remediation: REMEDIATION,
            });
        }
        if !e.is_snat() {
            continue;
        }
        // The LAN-side copy (before NAT) and the WAN-side copy (after it): one look-up
        // per entry; text only for the few that match.
        let Some(lan) = view.joins().lan_signalling(e.protocol, &e.orig) else {
            continue;
        };
        let (rs, rd) = (e.reply.src.to_string(), e.reply.dst.to_string());
        let wan = view.wan_interfaces().find_map(|interface| {
            view.flow(&FlowId {
                interface,
                direction: "egress",
                protocol: e.protocol,
                src: (&rd, e.reply.dport),
                dst: (&rs, e.reply.sport),
            })
        });
        let Some(wan) = wan else { continue };
        // The packets since the last judgement: once both sides counted the same ones,
        // other sizes are a rewrite.
        let (dl, dw) = (view.delta(lan), view.delta(wan));
        judged.insert(subject(lan));
        let p = rewrites.pending.entry(subject(lan)).or_default();
        for (acc, d) in p
            .iter_mut()
            .zip([dl.packets, dl.bytes, dw.packets, dw.bytes])
        {
            *acc += d;
        }
        if p[0] == p[2] && p[0] > 0 {
            if p[1] != p[3] {
                rewrites.last.insert(subject(lan), now);
            }
            *p = [0; 4];
        }
        if rewrites.last.contains_key(&subject(lan)) {
            out.push(Finding {
                id: ID,
                severity: Severity::Critical,
                subject: subject(lan),
                summary: format!(
                    "signalling rewritten by the gateway: {} packets are {} bytes on the LAN \
                     side and {} bytes on the WAN side",
                    lan.packets, lan.bytes, wan.bytes
                ),
                evidence: vec![
                    ("packets".into(), lan.packets.to_string()),
                    ("lan_bytes".into(), lan.bytes.to_string()),
                    ("wan_bytes".into(), wan.bytes.to_string()),
                    ("wan_flow".into(), subject(wan)),
                    ("nft_sip_helpers".into(), helpers.clone()),
                    ("hold_s".into(), REWRITE_HOLD_S.to_string()),
                ],
                remediation: REMEDIATION,
            });
        }
    }
    rewrites.pending.retain(|k, _| judged.contains(k));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        anomaly::window::Deltas, detect::system::parse_entry, status::model::StatusReport,
    };

    /// One SIP message pair through a NAT without a helper: the LAN-side copy (LAN
    /// ingress) and the WAN-side copy (WAN egress, from the public binding).
    fn signalling() -> StatusReport {
        let mut r = crate::status::render::tests::sample_report();
        let (wan, lan) = (r.interfaces[0].name.clone(), r.interfaces[1].name.clone());
        let template = r.flows[0].clone();
        let flow = |iface: &str, dir: &str, src: (&str, u16)| {
            let mut f = template.clone();
            f.interface = iface.into();
            f.direction = dir.into();
            f.protocol = "udp".into();
            f.class = "sip_signalling".into();
            (f.src_addr, f.src_port) = (src.0.into(), src.1);
            (f.dst_addr, f.dst_port) = ("203.0.113.10".into(), 5060);
            (f.packets, f.bytes) = (0, 0);
            f
        };
        r.flows = vec![
            flow(&lan, "ingress", ("192.0.2.10", 5060)),
            flow(&wan, "egress", ("198.51.100.1", 40001)),
        ];
        r
    }

    #[test]
    fn a_rewrite_is_judged_once_both_copies_are_counted_and_history_is_not() {
        let entries = [parse_entry(
            "ipv4 2 udp 17 28 src=192.0.2.10 dst=203.0.113.10 sport=5060 dport=5060 \
             src=203.0.113.10 dst=198.51.100.1 sport=5060 dport=40001 [ASSURED] use=2",
        )
        .unwrap()];
        let mut r = signalling();
        // Counted before this daemon started, rewritten then: history.
        (r.flows[0].packets, r.flows[0].bytes) = (3, 1500);
        (r.flows[1].packets, r.flows[1].bytes) = (3, 1506);
        let mut deltas = Deltas::default();
        let mut rewrites = Rewrites::default();
        let mut poll = |r: &StatusReport, now: u64| {
            let baseline = deltas.before_baseline();
            let d = deltas.update(&r.flows);
            let view = View::new(r, &d, baseline, Some(&entries), 0.0, None);
            detect(&view, &mut rewrites, now)
        };
        assert!(poll(&r, 100).is_empty());
        // A message the NAT alone forwards, its WAN copy counted a poll later.
        r.flows[0].packets += 1;
        r.flows[0].bytes += 400;
        assert!(poll(&r, 101).is_empty());
        r.flows[1].packets += 1;
        r.flows[1].bytes += 400;
        assert!(poll(&r, 102).is_empty());
        // One rewritten (2 bytes longer), split across two polls the same way.
        r.flows[0].packets += 1;
        r.flows[0].bytes += 500;
        assert!(poll(&r, 103).is_empty());
        r.flows[1].packets += 1;
        r.flows[1].bytes += 502;
        let v = poll(&r, 104);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].subject, subject(&r.flows[0]));
        // Open for REWRITE_HOLD_S after it, then gone.
        assert_eq!(poll(&r, 104 + REWRITE_HOLD_S).len(), 1);
        assert!(poll(&r, 105 + REWRITE_HOLD_S).is_empty());
    }
}
