//! `mtu_fragmentation`: Webex packets that do not fit the path.
//!
//! - IP fragments of Webex flows (first and later fragments), summed per interface,
//!   direction and address pair: the kernel gives later fragments their first
//!   fragment's ports, but one whose first it did not see counts on a port-less flow;
//! - ICMP fragmentation-needed / ICMPv6 Packet Too Big answering a Webex flow (the kernel
//!   matches the header the error quotes and keeps the next-hop MTU it announces, the
//!   size the path takes);
//! - packets longer than `[mtu] path_mtu`;
//! - packets this gateway itself dropped as too big for the next hop, answering with
//!   fragmentation-needed / Packet Too Big (its own ICMP leaves through TC egress, where
//!   the kernel does not match errors to flows, so the gateway's IP counters tell it).
//!
//! The kernel's counters only grow, so an anomaly stays open while its counter grew within
//! the last [`HOLD_S`] seconds and clears after. The first poll after start is a baseline:
//! counts already there (maps pinned by an earlier run) are not growth.

use crate::fasthash::{HashMap, HashSet};
use std::collections::BTreeMap;

use crate::anomaly::{Finding, Severity};

use super::{View, subject};

pub const ID: &str = "mtu_fragmentation";
pub const REMEDIATION: &str = "Make Webex packets fit the path: set the endpoint/VPN MTU to \
     the path's effective MTU (1350-1400 bytes behind a VPN), let ICMP fragmentation-needed \
     through, and verify with ping -M do -s <size> towards the Webex media nodes.";
/// Seconds an anomaly stays open after its counter last grew.
pub const HOLD_S: u64 = 120;

#[derive(Default)]
pub struct State {
    /// Per subject: the counter at the last poll and when it last grew.
    seen: HashMap<String, (u64, u64)>,
    /// The gateway's too-big drop counter when the daemon started (drops before it are
    /// history, not findings).
    too_big_base: Option<u64>,
}

struct Sign {
    subject: String,
    count: u64,
    summary: String,
    evidence: Vec<(String, String)>,
}

impl State {
    /// `too_big_drops`: the gateway's own counter of packets dropped as too big for the
    /// next hop (see `system::too_big_drops`), when readable.
    pub fn detect(
        &mut self,
        view: &View<'_>,
        path_mtu: u32,
        too_big_drops: Option<u64>,
        now: u64,
    ) -> Vec<Finding> {
        let mut signs = Vec::new();
        if let Some(drops) = too_big_drops {
            let base = *self.too_big_base.get_or_insert(drops);
            let since = drops.saturating_sub(base);
            if since > 0 {
                signs.push(Sign {
                    subject: "gateway frag-needed".into(),
                    count: since,
                    summary: format!(
                        "this gateway dropped {since} packets too big for the next hop (DF \
                         set or IPv6) and answered with ICMP fragmentation-needed / Packet \
                         Too Big"
                    ),
                    evidence: vec![
                        ("dropped_too_big".into(), since.to_string()),
                        (
                            "counters".into(),
                            "/proc/net/snmp Ip FragFails + /proc/net/snmp6 Ip6InTooBigErrors"
                                .into(),
                        ),
                    ],
                });
            }
        }
        // Webex flows with fragments, frag-needed or oversize packets: the others give
        // no sign.
        let webex = view
            .of_interest(super::Interest::MtuSigns)
            .filter(|f| f.class != "not_webex");

        let mut fragments: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for f in webex {
            if f.fragments > 0 {
                let key = format!(
                    "fragments {} {} {} {} -> {}",
                    f.interface, f.direction, f.protocol, f.src_addr, f.dst_addr
                );
                let e = fragments.entry(key).or_default();
                e.0 += f.fragments;
                e.1 += f.packets;
            }
            if f.icmp_frag_needed > 0 {
                let hop = if f.next_hop_mtu == 0 {
                    "the sender stated no next-hop MTU".to_string()
                } else {
                    format!("next-hop MTU {}", f.next_hop_mtu)
                };
                signs.push(Sign {
                    subject: format!("frag-needed {}", subject(f)),
                    count: f.icmp_frag_needed,
                    summary: format!(
                        "{} ICMP fragmentation-needed / Packet Too Big answered packets to \
                         {}:{} ({hop})",
                        f.icmp_frag_needed, f.peer_addr, f.peer_port
                    ),
                    evidence: vec![
                        ("icmp_frag_needed".into(), f.icmp_frag_needed.to_string()),
                        ("packets".into(), f.packets.to_string()),
                        ("next_hop_mtu".into(), f.next_hop_mtu.to_string()),
                    ],
                });
            }
            if f.oversize > 0 {
                signs.push(Sign {
                    subject: format!("oversize {}", subject(f)),
                    count: f.oversize,
                    summary: format!(
                        "{} packets to or from {}:{} are longer than the {path_mtu}-byte path \
                         MTU",
                        f.oversize, f.peer_addr, f.peer_port
                    ),
                    evidence: vec![
                        ("oversize_packets".into(), f.oversize.to_string()),
                        ("packets".into(), f.packets.to_string()),
                        ("path_mtu".into(), path_mtu.to_string()),
                    ],
                });
            }
        }
        for (key, (frags, packets)) in fragments {
            signs.push(Sign {
                summary: format!("{frags} IP fragments of Webex packets ({key})"),
                subject: key,
                count: frags,
                evidence: vec![
                    ("fragments".into(), frags.to_string()),
                    ("packets".into(), packets.to_string()),
                ],
            });
        }

        let mut out = Vec::new();
        let mut present = HashSet::default();
        for s in signs {
            let grew = match self.seen.get(&s.subject) {
                Some(&(count, last_growth)) if count >= s.count => last_growth,
                // Counted before this daemon started (pinned maps): history, not growth.
                None if view.baseline => 0,
                _ => now,
            };
            self.seen.insert(s.subject.clone(), (s.count, grew));
            present.insert(s.subject.clone());
            if now.saturating_sub(grew) <= HOLD_S {
                let mut evidence = s.evidence;
                evidence.push(("hold_s".into(), HOLD_S.to_string()));
                out.push(Finding {
                    id: ID,
                    severity: Severity::Warning,
                    subject: s.subject,
                    summary: s.summary,
                    evidence,
                    remediation: REMEDIATION,
                });
            }
        }
        self.seen.retain(|k, _| present.contains(k));
        out
    }
}
