//! The `quality_threshold` detector: a call whose health (judged on its recent window,
//! with hysteresis: `super::health`) is not ok is an anomaly, with the window's figures as
//! evidence and a fix that fits the segment where the loss happens. It clears when the
//! call's health does (README "Call quality: health") or when the call ends.

use crate::{
    anomaly::{Finding, Severity},
    report::calls::CallStatus,
};

pub const ID: &str = "quality_threshold";

const GENERIC: &str = "Webex Calling needs one-way latency under 150 ms, jitter under 30 ms \
and loss under 1 % between the endpoint and the Webex media node. Check the path from the \
leg measured (see the call's legs): congestion on the WAN link (apply QoS: EF for audio, \
AF41 for video, and shape below the line rate), Wi-Fi on the LAN side, or a VPN/proxy \
hairpin lengthening the path; run Cisco's CScan from the site to compare.";

const PHONE_TO_GATEWAY: &str = "Packets are lost between the phone and this gateway (gaps \
in what arrives on the LAN interface): check the LAN path of this host - Wi-Fi signal and \
roaming, duplex mismatches and errors on switch ports (interface counters), an overloaded \
access switch or uplink, and that voice is queued first on the LAN (EF trusted on the \
access ports).";

const GATEWAY: &str = "Packets of this call enter this gateway and do not leave it: the \
gateway itself drops them. Check its firewall and NAT rules for this flow, queue drops on \
the egress interface (tc -s qdisc: drops and overlimits; shape below the line rate with \
EF in a priority queue), CPU saturation (softirq), and conntrack table limits.";

const ISP_FROM_WEBEX: &str = "Packets from the Webex media node arrive at the WAN \
interface with gaps: they are lost on the ISP path, before this site. Open a case with \
the ISP with the call's times and loss, check the WAN link's own errors and saturation \
(downstream traffic bursts), and compare with Cisco's CScan from the site.";

/// The fix for the segment the loss is on.
pub fn remediation(bad_segment: Option<&str>) -> &'static str {
    match bad_segment {
        Some("phone_to_gateway") => PHONE_TO_GATEWAY,
        Some("gateway") => GATEWAY,
        Some("isp_from_webex") => ISP_FROM_WEBEX,
        _ => GENERIC,
    }
}

pub fn detect(calls: &[CallStatus]) -> Vec<Finding> {
    calls
        .iter()
        .filter(|c| c.health != "ok")
        .map(|c| {
            let severity = if c.health == "critical" {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let w = &c.window;
            let mut evidence = vec![
                ("call".to_string(), c.id.clone()),
                ("kind".to_string(), c.kind.clone()),
                (
                    format!("window {} s loss_pct", w.seconds),
                    format!("{:.2} ({} of {})", w.loss_pct, w.lost, w.expected),
                ),
                (
                    format!("window {} s jitter_ms", w.seconds),
                    format!("{:.1}", w.jitter_ms),
                ),
                (
                    "rtt_ms".to_string(),
                    c.rtt_ms.map(|r| format!("{r:.1}")).unwrap_or("-".into()),
                ),
                (
                    "mos".to_string(),
                    c.mos.map(|m| format!("{m:.2}")).unwrap_or("-".into()),
                ),
                ("call loss_pct".to_string(), format!("{:.2}", c.loss_pct)),
            ];
            if let Some(seg) = &c.bad_segment {
                evidence.push(("loss segment".to_string(), seg.clone()));
            }
            for s in c.segments.iter().filter(|s| s.window_expected > 0) {
                evidence.push((
                    format!("{} {}", s.segment, s.direction),
                    format!(
                        "{:.2} % in window ({} of {}), measured {}",
                        s.window_loss_pct, s.window_lost, s.window_expected, s.measured
                    ),
                ));
            }
            Finding {
                id: ID,
                severity,
                subject: format!(
                    "call {} {}:{} <-> {}:{}",
                    c.id, c.inner_addr, c.inner_port, c.peer_addr, c.peer_port
                ),
                summary: c.breaches.join("; "),
                evidence,
                remediation: remediation(c.bad_segment.as_deref()),
            }
        })
        .collect()
}
