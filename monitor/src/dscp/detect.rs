//! DSCP detectors, from one poll's flows:
//!
//! - `dscp_bleached`: Webex packets arriving on a WAN interface without their mark
//!   (DSCP 0 seen) on a flow whose outbound packets on that interface left marked: the
//!   marks are cleared somewhere on the way back.
//! - `dscp_missing`: packets of a class with an expected mark arrive or leave unmarked
//!   (DSCP 0), e.g. phones without QoS enabled.
//! - `dscp_wrong`: packets carry a mark other than the expected one.
//!
//! One anomaly per (interface, direction, class), with the flows as evidence, so a site
//! with a hundred phones gets one line per problem, not a hundred.

use std::collections::BTreeMap;

use super::Setup;
use crate::{
    anomaly::{Finding, Severity},
    config::{DscpMode, Role},
    status::model::FlowStatus,
};

pub const BLEACHED: &str = "dscp_bleached";
pub const MISSING: &str = "dscp_missing";
pub const WRONG: &str = "dscp_wrong";

/// Flows named in a finding's evidence.
const MAX_FLOWS_NAMED: usize = 3;

const REMEDIATION_BLEACHED: &str = "QoS marks are cleared on the way in from Webex, so \
    the WAN and LAN queue the media as best effort and quality drops with load. Ask the \
    WAN/ISP provider to preserve DSCP (EF 46 audio, AF41 34 video, CS3 24 signalling) or \
    re-mark Webex traffic at the site edge on ingress, and prioritise those queues.";
const REMEDIATION_MISSING: &str = "Webex traffic is not marked, so it is not prioritised \
    and call quality varies with network load. Enable QoS in Control Hub (Calling > \
    Settings > Quality of Service) for phones and devices, a GPO for Webex App on Windows \
    (DSCP 46 on audio ports 52000-52049, 34 on video 52100-52199), or set dscp_egress = \
    \"rewrite\" on this monitor's WAN interface.";
const REMEDIATION_WRONG: &str = "Webex traffic carries a different mark than the Webex \
    requirements (EF 46 audio, AF41 34 video, CS3 24 signalling and call control): fix \
    the marking policy (GPO, Control Hub, switch or router re-marking), or set \
    dscp_egress = \"rewrite\" on this monitor's WAN interface.";

#[derive(Default)]
struct Group<'a> {
    flows: Vec<&'a FlowStatus>,
    mismatched: u64,
    checked: u64,
    /// For bleaching: outbound packets that left marked.
    outbound_marked: u64,
}

pub fn detect(flows: &[FlowStatus], setup: &Setup) -> Vec<Finding> {
    let mut bleached: BTreeMap<(String, String), Group> = BTreeMap::new();
    let mut missing: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    let mut wrong: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for f in flows {
        let Some(d) = &f.dscp else { continue };
        let Some(expected) = d.expected else { continue };
        if d.mismatched == 0 || setup.mode(&f.interface, &f.direction) == DscpMode::Off {
            continue;
        }
        let class = f.dscp_class.clone().unwrap_or_else(|| f.class.clone());
        let unmarked = d.seen.contains(&0) && expected != 0;
        let other_mark = d.seen.iter().any(|&m| m != 0 && m != expected);
        if unmarked
            && f.direction == "ingress"
            && setup.role(&f.interface) == Some(Role::Wan)
            && let Some(out) = reverse(flows, f)
            && out.dscp.as_ref().is_some_and(|o| o.matched > 0)
        {
            let g = bleached
                .entry((f.interface.clone(), class.clone()))
                .or_default();
            g.flows.push(f);
            g.mismatched += d.mismatched;
            g.checked += d.matched + d.mismatched;
            g.outbound_marked += out.dscp.as_ref().map_or(0, |o| o.matched);
            continue;
        }
        let key = (f.interface.clone(), f.direction.clone(), class);
        for (yes, map) in [(unmarked, &mut missing), (other_mark, &mut wrong)] {
            if yes {
                let g = map.entry(key.clone()).or_default();
                g.flows.push(f);
                g.mismatched += d.mismatched;
                g.checked += d.matched + d.mismatched;
            }
        }
    }

    let mut findings = Vec::new();
    for ((interface, class), g) in bleached {
        let mut evidence = vec![
            ("flows".to_string(), g.flows.len().to_string()),
            ("inbound_packets_checked".into(), g.checked.to_string()),
            (
                "inbound_packets_without_mark".into(),
                g.mismatched.to_string(),
            ),
            (
                "outbound_packets_marked".into(),
                g.outbound_marked.to_string(),
            ),
        ];
        evidence.extend(name_flows(&g.flows));
        findings.push(Finding {
            id: BLEACHED,
            severity: Severity::Warning,
            subject: format!("{interface} ingress {class}"),
            summary: format!(
                "{} of {} inbound {class} packets on {interface} arrived without their mark \
                 although the outbound packets left marked",
                g.mismatched, g.checked
            ),
            evidence,
            remediation: REMEDIATION_BLEACHED,
        });
    }
    for (id, what, map, remediation) in [
        (MISSING, "unmarked", missing, REMEDIATION_MISSING),
        (WRONG, "with a wrong mark", wrong, REMEDIATION_WRONG),
    ] {
        for ((interface, direction, class), g) in map {
            let mut evidence = vec![
                ("flows".to_string(), g.flows.len().to_string()),
                ("packets_checked".into(), g.checked.to_string()),
                ("packets_mismatched".into(), g.mismatched.to_string()),
            ];
            evidence.extend(name_flows(&g.flows));
            findings.push(Finding {
                id,
                severity: Severity::Warning,
                subject: format!("{interface} {direction} {class}"),
                summary: format!(
                    "{} of {} {class} packets {direction} on {interface} {what}",
                    g.mismatched, g.checked
                ),
                evidence,
                remediation,
            });
        }
    }
    findings
}

/// The flow of the opposite direction on the same interface (addresses and ports
/// swapped).
fn reverse<'a>(flows: &'a [FlowStatus], f: &FlowStatus) -> Option<&'a FlowStatus> {
    flows.iter().find(|o| {
        o.interface == f.interface
            && o.direction != f.direction
            && o.protocol == f.protocol
            && o.src_addr == f.dst_addr
            && o.src_port == f.dst_port
            && o.dst_addr == f.src_addr
            && o.dst_port == f.src_port
    })
}

fn name_flows(flows: &[&FlowStatus]) -> Vec<(String, String)> {
    flows
        .iter()
        .take(MAX_FLOWS_NAMED)
        .enumerate()
        .map(|(i, f)| {
            let d = f.dscp.clone().unwrap_or_default();
            (
                format!("flow{}", i + 1),
                format!(
                    "{} {}:{} -> {}:{} matched {} mismatched {} marks seen {:?}",
                    f.protocol,
                    f.src_addr,
                    f.src_port,
                    f.dst_addr,
                    f.dst_port,
                    d.matched,
                    d.mismatched,
                    d.seen
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{DscpConfig, DscpMode, Role},
        dscp::{InterfaceDscp, model::FlowDscp},
    };

    fn setup() -> Setup {
        let iface = |name: &str, role| InterfaceDscp {
            name: name.into(),
            role,
            ingress: DscpMode::Verify,
            egress: DscpMode::Rewrite,
        };
        Setup {
            marks: DscpConfig::default(),
            dedicated_port_ranges: true,
            interfaces: vec![iface("wan0", Role::Wan), iface("lan0", Role::Lan)],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn flow(
        interface: &str,
        direction: &str,
        src: (&str, u16),
        dst: (&str, u16),
        matched: u64,
        mismatched: u64,
        seen: Vec<u8>,
    ) -> FlowStatus {
        let mut f = crate::status::render::tests::sample_report().flows[0].clone();
        f.interface = interface.into();
        f.direction = direction.into();
        f.protocol = "udp".into();
        (f.src_addr, f.src_port) = (src.0.into(), src.1);
        (f.dst_addr, f.dst_port) = (dst.0.into(), dst.1);
        f.class = "audio".into();
        f.dscp_class = Some("audio".into());
        f.dscp = Some(FlowDscp {
            expected: Some(46),
            matched,
            mismatched,
            rewritten: matched,
            seen,
        });
        f
    }

    const GW: (&str, u16) = ("198.51.100.1", 52000);
    const NODE: (&str, u16) = ("203.0.113.10", 5004);

    #[test]
    fn unmarked_replies_to_marked_outbound_are_bleached() {
        let flows = vec![
            flow("wan0", "egress", GW, NODE, 100, 0, vec![0]),
            flow("wan0", "ingress", NODE, GW, 0, 100, vec![0]),
        ];
        let f = detect(&flows, &setup());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].id, f[0].subject.as_str()),
            (BLEACHED, "wan0 ingress audio")
        );
        let ev: Vec<(&str, &str)> = f[0]
            .evidence
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .take(4)
            .collect();
        assert_eq!(
            ev,
            [
                ("flows", "1"),
                ("inbound_packets_checked", "100"),
                ("inbound_packets_without_mark", "100"),
                ("outbound_packets_marked", "100")
            ]
        );
    }

    #[test]
    fn unmarked_replies_without_marked_outbound_are_missing_marks() {
        // Outbound unmarked too: the site does not mark, nothing was bleached.
        let flows = vec![
            flow("wan0", "egress", GW, NODE, 0, 100, vec![0]),
            flow("wan0", "ingress", NODE, GW, 0, 100, vec![0]),
            flow(
                "lan0",
                "ingress",
                ("192.0.2.10", 52000),
                NODE,
                0,
                7,
                vec![34],
            ),
        ];
        let mut ids: Vec<(&str, String)> = detect(&flows, &setup())
            .into_iter()
            .map(|f| (f.id, f.subject))
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                (MISSING, "wan0 egress audio".to_string()),
                (MISSING, "wan0 ingress audio".to_string()),
                (WRONG, "lan0 ingress audio".to_string()),
            ]
        );
    }

    #[test]
    fn compliant_flows_and_off_directions_find_nothing() {
        let mut s = setup();
        let flows = vec![
            flow("wan0", "egress", GW, NODE, 100, 0, vec![46]),
            flow("lan0", "egress", NODE, GW, 0, 5, vec![0]),
        ];
        s.interfaces[1].egress = DscpMode::Off;
        assert!(detect(&flows, &s).is_empty());
    }
}
