//! The daemon's own load and caps, in the status report (`scale`, README "Scale and
//! caps"): status socket clients, the conntrack read schedule and its cost, analysis
//! time, and anomaly folding. A leaf module: it imports nothing from the crate.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScaleStatus {
    /// Clients of the status socket.
    #[serde(default)]
    pub status_socket: StatusSocket,
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
    /// How long the last joins of the entries with the flows took, in milliseconds.
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
