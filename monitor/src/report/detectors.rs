//! The failure detectors' own memory, in the status report (`detectors`, README "Failure
//! detectors"): each table a detector keeps between polls, its fill, its cap and what it
//! dropped because it was full. A leaf: it imports nothing from the crate.

use serde::{Deserialize, Serialize};

/// `detectors` in the status report.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DetectorsStatus {
    /// One row per detector table, in a fixed order.
    #[serde(default)]
    pub tables: Vec<DetectorTable>,
}

/// One table a detector keeps between polls.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DetectorTable {
    /// The anomaly id of the detector (`webex_blocked_here`, ...).
    pub detector: String,
    /// What the table holds (`lan_flows`, `tunnel_flows`, ...).
    pub table: String,
    /// Entries now.
    pub entries: u64,
    /// Entries at most.
    pub cap: u64,
    /// Entries not admitted, or the oldest forgotten, because the table was full, since
    /// the detector started (a config reload starts it again).
    pub dropped: u64,
}

impl DetectorTable {
    pub fn new(detector: &str, table: &str, entries: usize, cap: usize, dropped: u64) -> Self {
        DetectorTable {
            detector: detector.into(),
            table: table.into(),
            entries: entries as u64,
            cap: cap as u64,
            dropped,
        }
    }
}
