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
pub mod window;

pub use crate::report::anomaly::{Anomaly, Event, Evidence, Severity};

/// Every detector's id (README "Anomalies"), for series that exist before one opens.
pub const DETECTOR_IDS: [&str; 23] = [
    crate::detect::sip_alg::ID,
    crate::detect::media::BLOCKED,
    crate::detect::media::ONE_WAY,
    crate::detect::nat_timeout::ID,
    crate::detect::nat_exhaustion::ID,
    crate::detect::mtu::ID,
    crate::detect::blocked::HERE,
    crate::detect::blocked::SIGNALLING,
    crate::detect::dns::ID,
    crate::detect::vpn::HAIRPIN,
    crate::detect::tunnel::ID,
    crate::detect::ssl::ID,
    crate::dscp::detect::MISSING,
    crate::dscp::detect::WRONG,
    crate::dscp::detect::LOST,
    crate::dscp::detect::BLEACHED,
    crate::quality::detect::ID,
    crate::detect::interfaces::DOWN,
    crate::detect::interfaces::MISSING,
    crate::detect::interfaces::WAITING,
    crate::detect::interfaces::REFUSED,
    crate::detect::interfaces::ATTACH_FAILED,
    crate::detect::interfaces::XDP_FALLBACK,
];

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
