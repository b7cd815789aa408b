//! `udp_media_blocked` and `one_way_media`: media that flows one way only.
//!
//! - `one_way_media`: media leaves the site towards a Webex peer (WAN egress, or LAN
//!   ingress when no WAN interface is monitored) and nothing comes back on the same
//!   interface for `[detect] media_silence_s`.
//! - `udp_media_blocked`: the peer's media reaches the WAN interface but the gateway
//!   forwards none of it to the LAN for `media_silence_s` (a firewall rule on this box
//!   drops it), or media is answered by ICMP destination unreachable / administratively
//!   prohibited.
//!
//! Only flows still active (a packet within `media_silence_s`) count, so both clear when
//! the call ends or the media starts flowing.

use std::collections::HashMap;

use crate::{
    anomaly::{Finding, Severity},
    config::detect::DetectConfig,
    status::model::FlowStatus,
};

use super::{View, is_media, subject};

pub const BLOCKED: &str = "udp_media_blocked";
pub const ONE_WAY: &str = "one_way_media";
/// Packets a flow needs before it is judged (a lone STUN probe is not a call).
pub const MIN_PACKETS: u64 = 10;

pub const BLOCKED_REMEDIATION: &str = "Allow inbound UDP media from the Webex media ranges \
     (UDP 5004, 9000, 19560-65535) back to the phones through this gateway's firewall; a \
     policy that allows TCP 443 but not UDP media passes connectivity tests and fails calls.";
pub const ONE_WAY_REMEDIATION: &str = "Media leaves but none returns: check the firewalls \
     and NAT upstream of this gateway for UDP media (5004, 9000, 19560-65535) from the Webex \
     ranges, and disable SIP ALG in the path; run CScan from this site.";

pub fn detect(view: &View<'_>, cfg: &DetectConfig) -> Vec<Finding> {
    let silence = cfg.media_silence_s as f64;
    let active = |f: &FlowStatus| f.idle_s < silence;
    let mut out = Vec::new();
    let udp_media = |f: &&FlowStatus| f.protocol == "udp" && is_media(f);

    // Outbound with nothing back on the same interface.
    let outbound_side = |f: &FlowStatus| {
        view.is_outbound(f)
            && if view.has_wan() {
                view.is_wan(f)
            } else {
                view.is_lan(f)
            }
    };
    for o in view.flows().filter(udp_media) {
        if !outbound_side(o) || !active(o) || o.packets < MIN_PACKETS || o.age_s < silence {
            continue;
        }
        let back = view.reverse(o);
        if back.is_some_and(active) {
            continue;
        }
        let (inbound_packets, inbound_idle) = match back {
            Some(b) => (b.packets, format!("{:.1}", b.idle_s)),
            None => (0, "never seen".into()),
        };
        out.push(Finding {
            id: ONE_WAY,
            severity: Severity::Critical,
            subject: subject(o),
            summary: format!(
                "one-way media: {} packets to {}:{} and no media back for {:.0} s",
                o.packets, o.peer_addr, o.peer_port, silence
            ),
            evidence: vec![
                ("outbound_packets".into(), o.packets.to_string()),
                ("inbound_packets".into(), inbound_packets.to_string()),
                ("inbound_idle_s".into(), inbound_idle),
                ("media_silence_s".into(), cfg.media_silence_s.to_string()),
            ],
            remediation: ONE_WAY_REMEDIATION,
        });
    }

    // Inbound at the WAN, not forwarded to the LAN: dropped on this gateway.
    if view.has_lan() {
        let mut forwarded: HashMap<(&str, u16), (u64, bool)> = HashMap::new();
        for f in view.flows().filter(udp_media) {
            if view.is_lan(f) && f.direction == "egress" && f.src_addr == f.peer_addr {
                let e = forwarded
                    .entry((&f.src_addr, f.src_port))
                    .or_insert((0, false));
                e.0 += f.packets;
                e.1 |= active(f);
            }
        }
        for i in view.flows().filter(udp_media) {
            if !(view.is_wan(i) && i.direction == "ingress" && i.src_addr == i.peer_addr) {
                continue;
            }
            if !active(i) || i.packets < MIN_PACKETS || i.age_s < silence {
                continue;
            }
            let (lan_packets, lan_active) = forwarded
                .get(&(i.src_addr.as_str(), i.src_port))
                .copied()
                .unwrap_or((0, false));
            if lan_active {
                continue;
            }
            out.push(Finding {
                id: BLOCKED,
                severity: Severity::Critical,
                subject: subject(i),
                summary: format!(
                    "inbound UDP media from {}:{} reaches {} but the gateway forwards none of \
                     it to the LAN",
                    i.src_addr, i.src_port, i.interface
                ),
                evidence: vec![
                    ("wan_inbound_packets".into(), i.packets.to_string()),
                    ("lan_forwarded_packets".into(), lan_packets.to_string()),
                    ("media_silence_s".into(), cfg.media_silence_s.to_string()),
                ],
                remediation: BLOCKED_REMEDIATION,
            });
        }
    }

    // Answered by ICMP unreachable / administratively prohibited.
    for f in view.flows().filter(udp_media) {
        if f.icmp_unreachable == 0 || !active(f) {
            continue;
        }
        out.push(Finding {
            id: BLOCKED,
            severity: Severity::Critical,
            subject: subject(f),
            summary: format!(
                "UDP media to {}:{} is answered by ICMP destination unreachable",
                f.peer_addr, f.peer_port
            ),
            evidence: vec![
                ("icmp_unreachable".into(), f.icmp_unreachable.to_string()),
                ("packets".into(), f.packets.to_string()),
            ],
            remediation: BLOCKED_REMEDIATION,
        });
    }
    out
}
