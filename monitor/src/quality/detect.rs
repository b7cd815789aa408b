//! The `quality_threshold` detector: a call whose health is not ok is an anomaly, with
//! the breached thresholds as evidence.

use super::model::CallStatus;
use crate::anomaly::{Finding, Severity};

pub const ID: &str = "quality_threshold";

const REMEDIATION: &str = "Webex Calling needs one-way latency under 150 ms, jitter under \
30 ms and loss under 1 % between the endpoint and the Webex media node. Check the path \
from the leg measured (see the call's legs): congestion on the WAN link (apply QoS: EF \
for audio, AF41 for video, and shape below the line rate), Wi-Fi on the LAN side, or a \
VPN/proxy hairpin lengthening the path; run Cisco's CScan from the site to compare.";

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
            let mut evidence = vec![
                ("kind".to_string(), c.kind.clone()),
                ("loss_pct".to_string(), format!("{:.2}", c.loss_pct)),
                ("jitter_ms".to_string(), format!("{:.1}", c.jitter_ms)),
                (
                    "rtt_ms".to_string(),
                    c.rtt_ms.map(|r| format!("{r:.1}")).unwrap_or("-".into()),
                ),
                ("mos".to_string(), format!("{:.2}", c.mos)),
            ];
            for l in &c.legs {
                evidence.push((
                    format!("{} measured at", l.direction),
                    format!(
                        "{} ({:.2} % lost, {:.1} ms jitter)",
                        l.measured_at, l.loss_pct, l.jitter_ms
                    ),
                ));
            }
            Finding {
                id: ID,
                severity,
                subject: format!("call {} <-> {}:{}", c.inner_addr, c.peer_addr, c.peer_port),
                summary: c.breaches.join("; "),
                evidence,
                remediation: REMEDIATION,
            }
        })
        .collect()
}
