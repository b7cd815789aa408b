//! The learning part of the status report (README "Learning peers").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One learned Webex peer (`learned_peers` in the status report).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LearnedPeer {
    /// The peer's address.
    pub addr: String,
    /// The name that taught it: the name under `[learn] domains` (for DNS, the head of
    /// the CNAME chain that led to the address).
    pub name: String,
    /// "dns", "sni" or "dns+sni".
    pub source: String,
    /// Seconds until it is forgotten (unless taught again).
    pub expires_in_s: u64,
}

/// Learning counters (`learn` in the status report).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LearnStatus {
    /// `[learn] enabled`.
    pub enabled: bool,
    /// Samples (DNS responses, ClientHellos) the kernel copied to the daemon.
    pub samples: u64,
    /// Samples lost because the ring buffer was full.
    pub sample_drops: u64,
    /// Samples seen twice (ingress and egress of the gateway) and counted once.
    pub duplicates: u64,
    pub dns_responses: u64,
    /// DNS responses that taught nothing because they were malformed, by reason.
    pub dns_malformed: BTreeMap<String, u64>,
    /// DNS responses cut by the 1024-byte sample bound.
    pub dns_cut: u64,
    pub client_hellos: u64,
    /// ClientHellos without a usable server name, by reason.
    pub sni_malformed: BTreeMap<String, u64>,
    /// Addresses taught (new or refreshed) by DNS answers and by server names.
    pub learned_dns: u64,
    pub learned_sni: u64,
    /// Addresses not learned because `max_peers` were learned already.
    pub refused_full: u64,
    /// Peers forgotten when their time was up.
    pub expired: u64,
    /// Flows deleted from the flow map because the learned peer that made them Webex
    /// expired (kept across restarts). `counters.flows_evicted` excludes them.
    pub flows_deleted: u64,
    /// Peers learned now.
    pub peers: u64,
}
