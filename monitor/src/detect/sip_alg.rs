//! `sip_alg`: the gateway's own SIP ALG. Two independent signs:
//!
//! 1. a conntrack entry with the SIP helper attached (`helper=sip`): the kernel's
//!    nf_conntrack_sip / nf_nat_sip inspect and rewrite that connection;
//! 2. a signalling packet changed in size between its LAN-side and WAN-side copy: the
//!    same number of packets on both sides of the NAT (paired through the conntrack
//!    entry) but different byte counts. Address/port translation never changes the IP
//!    length; an ALG rewriting SDP/SIP headers does.

use crate::anomaly::{Finding, Severity};

use super::{FlowId, View, subject};

pub const ID: &str = "sip_alg";
pub const REMEDIATION: &str = "Disable SIP ALG on this gateway: remove the nftables `ct helper` \
     rules/objects of type \"sip\" (and keep net.netfilter.nf_conntrack_helper at 0), or \
     unload nf_nat_sip/nf_conntrack_sip; then check every other firewall in the path.";

pub fn detect(view: &View<'_>) -> Vec<Finding> {
    let Some(entries) = view.conntrack else {
        return Vec::new();
    };
    let mut out = Vec::new();
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
        let Some(lan) = view.joins.lan_signalling(e.protocol, &e.orig) else {
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
        if lan.packets == wan.packets && lan.packets > 0 && lan.bytes != wan.bytes {
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
                ],
                remediation: REMEDIATION,
            });
        }
    }
    out
}
