//! The anomaly engine: detectors report findings on every poll; the book turns them into
//! open anomalies with first/last seen, and clears those whose condition ended.
//!
//! A detector is any code that, from one poll's view of the kernel and the system, returns
//! [`Finding`]s. Each has a stable `id` (e.g. `sip_alg`, `dscp_bleached`,
//! `quality_threshold`), a severity, a `subject` saying what it is about (a flow, a call, a
//! setting) so one detector can have several open anomalies, evidence, and the remediation
//! from the Webex network requirements.

pub mod book;
pub mod fold;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One detector's finding in one poll.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Stable detector id.
    pub id: &'static str,
    pub severity: Severity,
    /// What it is about, stable across polls (e.g. "wan0 egress 198.51.100.1:52000 ->
    /// 203.0.113.10:5004" or "net.netfilter.nf_conntrack_udp_timeout").
    pub subject: String,
    /// One line for humans.
    pub summary: String,
    /// Named numbers and settings that show it (ordered as given).
    pub evidence: Vec<(String, String)>,
    /// What to do, in one or two sentences.
    pub remediation: &'static str,
}

/// An open (or recently cleared) anomaly, as status and export show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub id: String,
    pub severity: Severity,
    pub subject: String,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub remediation: String,
    pub first_seen_unix_s: u64,
    pub last_seen_unix_s: u64,
    /// When the condition ended; `None` while it is open.
    pub cleared_unix_s: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}
