//! `sip_alg`: the gateway's own SIP ALG. Two independent signs:
//!
//! 1. a conntrack entry with the SIP helper attached (`helper=sip`): the kernel's
//!    nf_conntrack_sip / nf_nat_sip inspect and rewrite that connection;
//! 2. a signalling packet changed in size between its LAN-side and WAN-side copy: the
//!    same number of packets on both sides of the NAT (paired through the conntrack
//!    entry) but different byte counts. Address/port translation never changes the IP
//!    length; an ALG rewriting SDP/SIP headers does. Judged on the packets of each poll
//!    (deltas), so sizes counted before a restart or a rewrite long ago do not count; it
//!    stays open [`REWRITE_HOLD_S`] after the last rewritten packet.
//!
//! The helper sign is the conntrack table as it is now: it clears when the entry goes.

use std::collections::HashMap;

use crate::anomaly::{Finding, Severity};

use super::{FlowId, View, subject};

pub const ID: &str = "sip_alg";
pub const REMEDIATION: &str = "Disable SIP ALG on this gateway: remove the nftables `ct helper` \
     rules/objects of type \"sip\" (and keep net.netfilter.nf_conntrack_helper at 0), or \
     unload nf_nat_sip/nf_conntrack_sip; then check every other firewall in the path.";

/// Seconds the rewrite sign stays open after the last rewritten packet.
pub const REWRITE_HOLD_S: u64 = 120;

/// When each LAN-side signalling flow (by subject) last had a packet rewritten.
pub type Rewrites = HashMap<String, u64>;

pub fn detect(view: &View<'_>, rewrites: &mut Rewrites, now: u64) -> Vec<Finding> {
    rewrites.retain(|_, t| now.saturating_sub(*t) <= REWRITE_HOLD_S);
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
        // The LAN-side copy (before NAT) and the WAN-side copy (after it).
        let (os, od, rs, rd) = (
            e.orig.src.to_string(),
            e.orig.dst.to_string(),
            e.reply.src.to_string(),
            e.reply.dst.to_string(),
        );
        let lan = view.report.flows.iter().find(|f| {
            view.is_lan(f)
                && f.direction == "ingress"
                && f.protocol == e.protocol
                && f.src_addr == os
                && f.src_port == e.orig.sport
                && f.dst_addr == od
                && f.dst_port == e.orig.dport
        });
        let Some(lan) = lan else { continue };
        if lan.class != "sip_signalling" {
            continue;
        }
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
        // This poll's packets: the same number on both sides, of other sizes.
        let (dl, dw) = (view.delta(lan), view.delta(wan));
        if dl.packets == dw.packets && dl.packets > 0 && dl.bytes != dw.bytes {
            rewrites.insert(subject(lan), now);
        }
        if rewrites.contains_key(&subject(lan)) {
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
