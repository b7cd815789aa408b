//! The monitor's own health on each interface: one that is down, missing, not there yet,
//! refused (a link type the parser cannot read) or failed to attach is an anomaly while
//! it lasts, as is an `auto` XDP attach that fell back to generic mode. Each clears on the
//! first poll after its cause ends (the daemon follows the interfaces every poll).

use crate::{
    anomaly::{Finding, Severity},
    kernel::attach,
    status::model::InterfaceStatus,
};

pub const DOWN: &str = "interface_down";
pub const MISSING: &str = "interface_missing";
pub const WAITING: &str = "interface_waiting";
pub const REFUSED: &str = "interface_refused";
pub const ATTACH_FAILED: &str = "interface_attach_failed";
pub const XDP_FALLBACK: &str = "xdp_generic_fallback";
/// Every id of this detector.
pub const IDS: [&str; 6] = [DOWN, MISSING, WAITING, REFUSED, ATTACH_FAILED, XDP_FALLBACK];

pub fn detect(interfaces: &[InterfaceStatus]) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in interfaces {
        if let Some(f) = state_finding(i) {
            out.push(f);
        }
        if i.xdp_fallback && i.state == attach::ATTACHED {
            out.push(Finding {
                id: XDP_FALLBACK,
                severity: Severity::Warning,
                subject: i.name.clone(),
                summary: format!(
                    "{}: the driver refused native XDP; generic XDP sees packets later and \
                     costs more CPU per packet",
                    i.name
                ),
                evidence: evidence(i),
                remediation: "Use a driver with native XDP support, or set xdp_mode = \
                              \"generic\" for this interface to accept the cost knowingly.",
            });
        }
    }
    out
}

fn state_finding(i: &InterfaceStatus) -> Option<Finding> {
    let (id, severity, summary, remediation) = match i.state.as_str() {
        attach::DOWN => (
            DOWN,
            Severity::Critical,
            format!(
                "{} ({}) is down or has no carrier: no traffic passes",
                i.name, i.role
            ),
            "Bring the link up (`ip link set <name> up`) and check the cable or the peer; \
             the programs stay attached and resume with it.",
        ),
        attach::MISSING => (
            MISSING,
            Severity::Critical,
            format!(
                "{} ({}) was deleted: nothing is monitored or rewritten there until it returns",
                i.name, i.role
            ),
            "Create the interface again (or fix what removed it); the monitor attaches within \
             one poll of its return.",
        ),
        attach::WAITING => (
            WAITING,
            Severity::Warning,
            format!(
                "waiting for interface {} ({}), which does not exist",
                i.name, i.role
            ),
            "If it is created later (PPP, WireGuard, a VLAN) this clears when it appears; \
             otherwise fix the name in [[interfaces]] (`ip link` lists them).",
        ),
        attach::REFUSED => (
            REFUSED,
            Severity::Critical,
            format!(
                "{} has link type {}, which the parser cannot read: not attached",
                i.name, i.link_type
            ),
            "Monitor the interface under it instead (the Ethernet one carrying the tunnel, \
             PPPoE or VLAN), or remove it from [[interfaces]].",
        ),
        attach::ATTACH_FAILED => (
            ATTACH_FAILED,
            Severity::Critical,
            format!("attaching to {} failed; tried again every poll", i.name),
            "See the daemon's log for the reason (another XDP program on the interface is the \
             usual one: `ip link show`).",
        ),
        _ => return None,
    };
    Some(Finding {
        id,
        severity,
        subject: i.name.clone(),
        summary,
        evidence: evidence(i),
        remediation,
    })
}

fn evidence(i: &InterfaceStatus) -> Vec<(String, String)> {
    let mut e = vec![
        ("state".to_string(), i.state.clone()),
        ("role".to_string(), i.role.clone()),
    ];
    if i.ifindex != 0 {
        e.push(("ifindex".to_string(), i.ifindex.to_string()));
    }
    if !i.xdp_mode.is_empty() {
        e.push(("xdp_mode".to_string(), i.xdp_mode.clone()));
    }
    if !i.link_type.is_empty() {
        e.push(("link_type".to_string(), i.link_type.clone()));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(state: &str) -> InterfaceStatus {
        InterfaceStatus {
            name: "wan0".into(),
            ifindex: 3,
            role: "wan".into(),
            xdp_mode: "native".into(),
            tc_attach: "tcx".into(),
            state: state.into(),
            link_type: "ethernet".into(),
            ..Default::default()
        }
    }

    fn ids(interfaces: Vec<InterfaceStatus>) -> Vec<(&'static str, Severity, String)> {
        detect(&interfaces)
            .into_iter()
            .map(|f| (f.id, f.severity, f.subject))
            .collect()
    }

    #[test]
    fn each_unhealthy_state_is_one_finding_and_attached_is_none() {
        assert!(ids(vec![iface("attached")]).is_empty());
        for (state, id, severity) in [
            ("down", DOWN, Severity::Critical),
            ("missing", MISSING, Severity::Critical),
            ("waiting", WAITING, Severity::Warning),
            ("refused", REFUSED, Severity::Critical),
            ("attach_failed", ATTACH_FAILED, Severity::Critical),
        ] {
            assert_eq!(
                ids(vec![iface(state)]),
                vec![(id, severity, "wan0".to_string())],
                "{state}"
            );
        }
    }

    #[test]
    fn a_generic_fallback_is_a_warning_but_configured_generic_is_not() {
        let mut fallback = iface("attached");
        fallback.xdp_mode = "generic".into();
        fallback.xdp_fallback = true;
        assert_eq!(
            ids(vec![fallback]),
            vec![(XDP_FALLBACK, Severity::Warning, "wan0".to_string())]
        );
        let mut configured = iface("attached");
        configured.xdp_mode = "generic".into();
        assert!(ids(vec![configured]).is_empty());
    }
}
