//! DSCP in userspace: how each flow was classified (port range, port rule or measured
//! profile), its expected mark and counters for status, per-class compliance, and the
//! detectors (`dscp_missing`, `dscp_wrong`, `dscp_lost`, `dscp_bleached`).
//!
//! The kernel does the per-packet work (see `monitor-ebpf/src/dscp.rs`); everything here
//! reads the flow counters of one poll.

pub mod detect;
pub mod model;
pub mod profile;

use monitor_common::{Class, FlowStats};

use crate::config::{DscpConfig, DscpMode, Role, ValidatedConfig};
use model::FlowDscp;

/// The DSCP part of the config, as the report and the detectors need it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Setup {
    pub marks: DscpConfig,
    /// `webex.dedicated_port_ranges`: audio/video come from the source port ranges.
    pub dedicated_port_ranges: bool,
    pub interfaces: Vec<InterfaceDscp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceDscp {
    pub name: String,
    pub role: Role,
    pub ingress: DscpMode,
    pub egress: DscpMode,
}

impl Setup {
    pub fn from_config(cfg: &ValidatedConfig) -> Setup {
        Setup {
            marks: cfg.config.dscp.clone(),
            dedicated_port_ranges: cfg.config.webex.dedicated_port_ranges,
            interfaces: cfg
                .config
                .interfaces
                .iter()
                .map(|i| InterfaceDscp {
                    name: i.name.clone(),
                    role: i.role,
                    ingress: i.dscp_ingress,
                    egress: i.dscp_egress,
                })
                .collect(),
        }
    }

    /// The mode of `interface` in `direction` ("ingress"/"egress"); off when unknown.
    pub fn mode(&self, interface: &str, direction: &str) -> DscpMode {
        self.interfaces
            .iter()
            .find(|i| i.name == interface)
            .map(|i| match direction {
                "ingress" => i.ingress,
                _ => i.egress,
            })
            .unwrap_or(DscpMode::Off)
    }

    pub fn role(&self, interface: &str) -> Option<Role> {
        self.interfaces
            .iter()
            .find(|i| i.name == interface)
            .map(|i| i.role)
    }
}

/// How a flow got the class its mark is judged by.
pub const BY_PORT_RANGE: &str = "port_range";
pub const BY_PROFILE: &str = "profile";
pub const BY_PORT_RULE: &str = "port_rule";

/// The class a flow's mark is judged by, and how it was found: the kernel's class,
/// except that media of unknown kind gets audio or video from its measured profile.
pub fn effective_class(stats: &FlowStats) -> (Class, &'static str) {
    let class = Class::from_u32(stats.class).unwrap_or(Class::OtherWebex);
    match class {
        // The kernel only splits media by the dedicated source port ranges.
        Class::Audio | Class::Video => (class, BY_PORT_RANGE),
        Class::Media => match profile::kind(stats.packets, stats.bytes) {
            Some(kind) => (kind, BY_PROFILE),
            None => (class, BY_PORT_RULE),
        },
        _ => (class, BY_PORT_RULE),
    }
}

/// The per-flow DSCP fields of the status report. `None` for flows that are not Webex.
pub fn flow_dscp(stats: &FlowStats, marks: &DscpConfig, effective: Class) -> Option<FlowDscp> {
    if stats.class == Class::NotWebex as u32 {
        return None;
    }
    Some(FlowDscp {
        expected: marks.expected(effective),
        matched: stats.dscp_match,
        mismatched: stats.dscp_mismatch,
        rewritten: stats.dscp_rewritten,
        seen: (0..64u8)
            .filter(|m| stats.dscp_seen & (1u64 << m) != 0)
            .collect(),
    })
}

/// A flow's DSCP counters for compliance; `None` for flows that are not Webex.
pub fn marks(f: &crate::status::model::FlowStatus) -> Option<model::FlowMarks<'_>> {
    let d = f.dscp.as_ref()?;
    Some(model::FlowMarks {
        interface: &f.interface,
        direction: &f.direction,
        class: f.dscp_class.as_deref().unwrap_or(&f.class),
        expected: d.expected,
        matched: d.matched,
        mismatched: d.mismatched,
        rewritten: d.rewritten,
    })
}

/// Per-class compliance of one poll's flows (the first report, before any totals).
pub fn compliance(flows: &[crate::status::model::FlowStatus]) -> Vec<model::DscpCompliance> {
    model::compliance(flows.iter().filter_map(marks))
}

/// Fills the DSCP fields of a flow's status from its kernel counters.
pub fn annotate(f: &mut crate::status::model::FlowStatus, stats: &FlowStats, marks: &DscpConfig) {
    if stats.class == Class::NotWebex as u32 {
        return;
    }
    let (class, by) = effective_class(stats);
    f.classified_by = Some(by.into());
    f.dscp_class = Some(class.as_str().into());
    f.dscp = flow_dscp(stats, marks, class);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_source() {
        let s = |class: Class, packets, bytes| FlowStats {
            class: class as u32,
            packets,
            bytes,
            ..Default::default()
        };
        assert_eq!(
            effective_class(&s(Class::Audio, 1, 100)),
            (Class::Audio, BY_PORT_RANGE)
        );
        assert_eq!(
            effective_class(&s(Class::Media, 100, 100 * 200)),
            (Class::Audio, BY_PROFILE)
        );
        assert_eq!(
            effective_class(&s(Class::Media, 100, 100 * 1100)),
            (Class::Video, BY_PROFILE)
        );
        assert_eq!(
            effective_class(&s(Class::Media, 3, 300)),
            (Class::Media, BY_PORT_RULE)
        );
        assert_eq!(
            effective_class(&s(Class::SipSignalling, 3, 300)),
            (Class::SipSignalling, BY_PORT_RULE)
        );
    }

    #[test]
    fn flow_fields() {
        let stats = FlowStats {
            class: Class::Audio as u32,
            dscp_match: 5,
            dscp_mismatch: 2,
            dscp_rewritten: 1,
            dscp_seen: (1 << 46) | 1,
            ..Default::default()
        };
        let f = flow_dscp(&stats, &DscpConfig::default(), Class::Audio).unwrap();
        assert_eq!(f.expected, Some(46));
        assert_eq!((f.matched, f.mismatched, f.rewritten), (5, 2, 1));
        assert_eq!(f.seen, vec![0, 46]);
        let dns = flow_dscp(&stats, &DscpConfig::default(), Class::Dns).unwrap();
        assert_eq!(dns.expected, None);
        let not_webex = FlowStats::default();
        assert!(flow_dscp(&not_webex, &DscpConfig::default(), Class::NotWebex).is_none());
    }
}
