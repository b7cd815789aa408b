//! The DSCP sections of the status report (README "DSCP"): per flow and per class.

use serde::{Deserialize, Serialize};

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

/// Compliance of one class on one interface in one direction (`dscp[]`). In a running
/// daemon the counters are totals since it started, flows gone from the map included;
/// they never go down.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DscpCompliance {
    pub interface: String,
    /// "ingress" or "egress".
    pub direction: String,
    /// The class the marks are judged by (media profiled as audio/video counts there),
    /// as it was when the packets were counted.
    pub class: String,
    pub expected: Option<u8>,
    /// Flows that contributed packets.
    pub flows: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub rewritten: u64,
    /// matched / (matched + mismatched) x 100: packets carrying the right mark on the
    /// wire; `null` when no packet was checked.
    pub compliance_pct: Option<f64>,
}
