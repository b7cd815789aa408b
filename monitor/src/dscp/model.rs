//! The DSCP parts of the status report (README "DSCP"): the report types (a leaf module,
//! `crate::report::dscp`), per-class compliance of one poll's flows, and the totals a
//! running daemon keeps so its counters never go down.

use std::collections::BTreeMap;

pub use crate::report::dscp::{DscpCompliance, FlowDscp};

use crate::anomaly::window::Counts;

/// One flow's DSCP counters as compliance sums them: where, the class they are judged
/// by, the expected mark, and the counts.
pub struct FlowMarks<'a> {
    pub interface: &'a str,
    pub direction: &'a str,
    pub class: &'a str,
    pub expected: Option<u8>,
    pub matched: u64,
    pub mismatched: u64,
    pub rewritten: u64,
}

/// Sums one poll's flows per (interface, direction, class), in that order.
pub fn compliance<'a>(flows: impl IntoIterator<Item = FlowMarks<'a>>) -> Vec<DscpCompliance> {
    let mut rows = Rows::new();
    for f in flows {
        if f.expected.is_none() || f.matched + f.mismatched == 0 {
            continue;
        }
        let row = row(&mut rows, &f);
        row.flows += 1;
        row.matched += f.matched;
        row.mismatched += f.mismatched;
        row.rewritten += f.rewritten;
    }
    rows.into_values().map(with_pct).collect()
}

type Rows = BTreeMap<(String, String, String), DscpCompliance>;

/// The row of `f`'s interface, direction and class, made empty if new.
fn row<'r>(rows: &'r mut Rows, f: &FlowMarks) -> &'r mut DscpCompliance {
    rows.entry((f.interface.into(), f.direction.into(), f.class.into()))
        .or_insert_with(|| DscpCompliance {
            interface: f.interface.into(),
            direction: f.direction.into(),
            class: f.class.into(),
            expected: f.expected,
            ..Default::default()
        })
}

fn with_pct(mut r: DscpCompliance) -> DscpCompliance {
    let checked = r.matched + r.mismatched;
    r.compliance_pct = (checked > 0).then(|| r.matched as f64 * 100.0 / checked as f64);
    r
}

/// Per-class DSCP totals since the daemon started: each poll adds what every flow counted
/// since the last one, under the class the flow had then, so flows the kernel evicted
/// keep their packets and a row never goes down or disappears. `flows` is the flows of
/// the row in the map now.
#[derive(Debug, Default)]
pub struct Totals {
    rows: Rows,
}

impl Totals {
    /// Adds one poll. `counted[i]` is what flow `marks[i]` counted since the last poll
    /// (on the first poll: everything it has). `marks` carry the flows' counters as they
    /// are now (for `flows`).
    pub fn add<'a>(&mut self, marks: impl IntoIterator<Item = (FlowMarks<'a>, Counts)>) {
        for r in self.rows.values_mut() {
            r.flows = 0;
        }
        for (f, c) in marks {
            if f.expected.is_none() || f.matched + f.mismatched == 0 {
                continue;
            }
            let row = row(&mut self.rows, &f);
            row.flows += 1;
            row.expected = f.expected;
            row.matched += c.dscp_matched;
            row.mismatched += c.dscp_mismatched;
            row.rewritten += c.dscp_rewritten;
        }
    }

    pub fn rows(&self) -> Vec<DscpCompliance> {
        self.rows.values().cloned().map(with_pct).collect()
    }
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
        let flows = [
            f("wan0", "audio", 30, 10, 5),
            f("wan0", "audio", 50, 10, 0),
            f("lan0", "audio", 0, 4, 0),
            unchecked,
        ];
        let rows = compliance(flows.iter().filter_map(crate::dscp::marks));
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

    #[test]
    fn totals_keep_evicted_flows_and_the_class_of_when_they_were_counted() {
        let marks = |class, matched, mismatched| FlowMarks {
            interface: "lan0",
            direction: "ingress",
            class,
            expected: Some(46),
            matched,
            mismatched,
            rewritten: 0,
        };
        let counted = |m, mm| Counts {
            dscp_matched: m,
            dscp_mismatched: mm,
            ..Default::default()
        };
        let mut t = Totals::default();
        // Unsettled media first, then the same flow as audio.
        t.add([(marks("media", 0, 10), counted(0, 10))]);
        t.add([(marks("audio", 0, 25), counted(0, 15))]);
        let rows = t.rows();
        assert_eq!(
            rows.iter()
                .map(|r| (r.class.as_str(), r.flows, r.mismatched))
                .collect::<Vec<_>>(),
            [("audio", 1, 15), ("media", 0, 10)]
        );
        // The flow is evicted: its row stays, with its packets.
        t.add([]);
        let rows = t.rows();
        assert_eq!(rows[0].mismatched, 15);
        assert_eq!(rows[0].flows, 0);
        assert_eq!(rows[0].compliance_pct, Some(0.0));
    }
}
