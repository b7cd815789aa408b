//! Anomalies as status and export show them (`anomalies[]`, README "Anomalies").

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// An open (or recently cleared) anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub id: String,
    pub severity: Severity,
    pub subject: String,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub remediation: String,
    pub first_seen_unix_s: u64,
    /// The last poll whose window still showed the condition.
    pub last_seen_unix_s: u64,
    /// When it was cleared (the condition absent for the clear hold-down); `None` while
    /// it is open.
    pub cleared_unix_s: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

/// How an anomaly changed in one poll (README "Anomalies": transitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Opened,
    Escalated,
    DeEscalated,
    Cleared,
}

impl Event {
    /// The name in log records (`monitor.anomaly.<name>`) and journal lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Escalated => "escalated",
            Self::DeEscalated => "de-escalated",
            Self::Cleared => "cleared",
        }
    }
}
