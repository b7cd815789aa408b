//! The DSCP parts of the status report (README "DSCP"), and per-class compliance.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::status::model::FlowStatus;

/// DSCP of one flow (`flows[].dscp`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowDscp {
    /// The mark the flow's class should carry (`null`: none configured for the class).
    pub expected: Option<u8>,
    /// Packets that left with / arrived with the expected mark (rewritten ones included).
    pub matched: u64,
    /// Packets with another mark (on egress in rewrite mode: only if a rewrite failed).
    pub mismatched: u64,
    /// Packets whose mark this monitor set (TC egress, rewrite mode).
    pub rewritten: u64,
    /// Every DSCP value the flow's packets carried, as they reached the monitor (before
    /// any rewrite), ascending.
    pub seen: Vec<u8>,
}

/// Compliance of one class on one interface in one direction (`dscp[]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DscpCompliance {
    pub interface: String,
    /// "ingress" or "egress".
    pub direction: String,
    /// The class the marks are judged by (media profiled as audio/video counts there).
    pub class: String,
    pub expected: Option<u8>,
    pub flows: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub rewritten: u64,
    /// matched / (matched + mismatched) x 100: packets carrying the right mark on the
    /// wire; `null` when no packet was checked.
    pub compliance_pct: Option<f64>,
}

/// Sums the flows' counters per (interface, direction, class), in that order.
pub fn compliance(flows: &[FlowStatus]) -> Vec<DscpCompliance> {
    let mut rows: BTreeMap<(String, String, String), DscpCompliance> = BTreeMap::new();
    for f in flows {
        let Some(d) = &f.dscp else { continue };
        if d.expected.is_none() || d.matched + d.mismatched == 0 {
            continue;
        }
        let class = f.dscp_class.clone().unwrap_or_else(|| f.class.clone());
        let row = rows
            .entry((f.interface.clone(), f.direction.clone(), class.clone()))
            .or_insert_with(|| DscpCompliance {
                interface: f.interface.clone(),
                direction: f.direction.clone(),
                class,
                expected: d.expected,
                ..Default::default()
            });
        row.flows += 1;
        row.matched += d.matched;
        row.mismatched += d.mismatched;
        row.rewritten += d.rewritten;
    }
    rows.into_values()
        .map(|mut r| {
            let checked = r.matched + r.mismatched;
            r.compliance_pct = (checked > 0).then(|| r.matched as f64 * 100.0 / checked as f64);
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_sums_per_interface_direction_and_class() {
        let base = crate::status::render::tests::sample_report().flows[0].clone();
        let f = |iface: &str, class: &str, m: u64, mm: u64, rw: u64| {
            let mut f = base.clone();
            f.interface = iface.into();
            f.direction = "egress".into();
            f.dscp_class = Some(class.into());
            f.dscp = Some(FlowDscp {
                expected: Some(46),
                matched: m,
                mismatched: mm,
                rewritten: rw,
                seen: vec![0],
            });
            f
        };
        let mut unchecked = f("wan0", "dns", 0, 0, 0);
        unchecked.dscp.as_mut().unwrap().expected = None;
        let rows = compliance(&[
            f("wan0", "audio", 30, 10, 5),
            f("wan0", "audio", 50, 10, 0),
            f("lan0", "audio", 0, 4, 0),
            unchecked,
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].interface.as_str(), rows[0].compliance_pct),
            ("lan0", Some(0.0))
        );
        let w = &rows[1];
        assert_eq!(
            (w.flows, w.matched, w.mismatched, w.rewritten),
            (2, 80, 20, 5)
        );
        assert_eq!(w.compliance_pct, Some(80.0));
    }
}
