//! The daemon's own load and caps, in the status report (`scale`, README "Scale and
//! caps"): status socket clients, the conntrack read schedule and its cost, analysis
//! time, and anomaly folding. A leaf module: it imports nothing from the crate.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScaleStatus {
    /// Clients of the status socket.
    #[serde(default)]
    pub status_socket: StatusSocket,
    /// The kernel's flow tables: media flows in their own, every other class in the
    /// main one, each with its fill and evictions.
    #[serde(default)]
    pub flow_tables: FlowTables,
    /// How the last poll's findings were folded before the anomaly book.
    #[serde(default)]
    pub anomalies: AnomalyFolding,
    /// The conntrack table read: when, how long it took, and its share of time.
    #[serde(default)]
    pub conntrack: ConntrackRead,
    /// How long the last poll's analysis (report and detectors, after the map read)
    /// took, in milliseconds.
    #[serde(default)]
    pub analysis_ms: f64,
    /// Flows whose report row (text addresses, class, DSCP fields) the last poll made:
    /// new flows and flows whose counters changed. Every other flow's row was kept from
    /// the poll before (README "Scale and caps").
    #[serde(default)]
    pub rows_made: u64,
    /// Every other bounded table and queue of the daemon (README "Scale and caps"): the
    /// detectors' state tables, the call records, the learned peers, the published
    /// report's flows.
    #[serde(default)]
    pub caps: Vec<Cap>,
}

/// One bounded table or queue: its limit, what it holds, and what the limit turned
/// away or dropped since the daemon started.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cap {
    /// E.g. "learn.peers" (README "Scale and caps" lists them).
    pub name: String,
    pub limit: u64,
    /// Held after the last poll.
    pub held: u64,
    /// Refused or dropped because the table was full, since start (for the report's
    /// flows: those the last poll did not keep).
    pub refused: u64,
}

impl Cap {
    pub fn new(name: &str, limit: usize, held: usize, refused: u64) -> Cap {
        Cap {
            name: name.to_string(),
            limit: limit as u64,
            held: held as u64,
            refused,
        }
    }
}

/// One poll's findings folded to a cap per detector id (README "Scale and caps").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AnomalyFolding {
    /// Findings per detector id passed on as they are.
    pub shown_per_id: u64,
    /// Anomalies per detector id at most (shown plus aggregates).
    pub cap_per_id: u64,
    /// Distinct findings (id and subject) in the last poll.
    pub findings: u64,
    /// Of those, passed on as they are.
    pub shown: u64,
    /// Of those, folded into aggregates: exactly `findings - shown`.
    pub folded: u64,
    /// Aggregate anomalies the folded findings became.
    pub aggregates: u64,
}

/// The conntrack table read by the failure detectors.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ConntrackRead {
    /// Entries (UDP and TCP) in the last read; `null` when conntrack cannot be read.
    pub entries: Option<u64>,
    /// Of those, source-NAT'd.
    pub nat_entries: u64,
    /// Reads so far.
    pub reads: u64,
    /// How long the last read took (tool or procfs, and parsing), in milliseconds.
    pub last_read_ms: f64,
    /// How long the last poll's joins of the entries with the flows took (the index and
    /// the sip_alg, nat_timeout_short and nat_port_exhaustion detectors), in
    /// milliseconds.
    pub last_join_ms: f64,
    /// Seconds between reads now: the last read's cost times the spacing factor (a read
    /// takes at most 1/spacing of the time), at least every poll.
    pub interval_s: f64,
    /// Seconds since the last read.
    pub age_s: f64,
}

/// The status socket's clients: the cap, what is held now, and what was turned away.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StatusSocket {
    /// Connections held at once (waiting for a request or taking a reply).
    pub max_clients: u64,
    /// Held now.
    pub clients: u64,
    /// Most held at once since the daemon started.
    pub peak_clients: u64,
    /// Status reports delivered.
    pub served: u64,
    /// Connections told "busy" because every slot held a client that had already sent
    /// its request (the client retries).
    pub refused_busy: u64,
    /// Connections closed while still silent, to make room for a new one.
    pub closed_idle: u64,
    /// Connections that sent no request within `request_timeout_ms`.
    pub request_timeouts: u64,
    /// Connections that did not take their reply within `reply_timeout_ms`.
    pub reply_timeouts: u64,
    pub request_timeout_ms: u64,
    pub reply_timeout_ms: u64,
}

/// The two flow tables (README "Scale and caps").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowTables {
    /// `MEDIA_FLOWS`: audio, video and media flows.
    pub media: FlowTable,
    /// `FLOWS`: every other class.
    pub other: FlowTable,
}

/// One flow table's fill and turnover.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowTable {
    pub entries: u64,
    pub max_entries: u64,
    /// Flows created in it since the maps were created (pinned: across restarts).
    pub created: u64,
    /// Of those, no longer present: evicted by the LRU when the table was full (or
    /// deleted when their learned peer expired).
    pub evicted: u64,
}

impl FlowTables {
    /// From the kernel's counters (`created` in all, `media_created` in the media
    /// table) and each table's (entries, max_entries).
    pub fn from_counts(
        created: u64,
        media_created: u64,
        other: (u64, u64),
        media: (u64, u64),
    ) -> FlowTables {
        let table = |created: u64, (entries, max_entries): (u64, u64)| FlowTable {
            entries,
            max_entries,
            created,
            evicted: created.saturating_sub(entries),
        };
        FlowTables {
            media: table(media_created, media),
            other: table(created.saturating_sub(media_created), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_per_table_are_created_minus_present() {
        let t = FlowTables::from_counts(10_000, 12, (4096, 4096), (12, 1024));
        assert_eq!(
            t.other,
            FlowTable {
                entries: 4096,
                max_entries: 4096,
                created: 9_988,
                evicted: 5_892
            }
        );
        assert_eq!(
            t.media,
            FlowTable {
                entries: 12,
                max_entries: 1024,
                created: 12,
                evicted: 0
            }
        );
    }
}
