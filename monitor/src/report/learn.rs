//! The learning part of the status report (README "Learning peers"). A leaf: it imports
//! nothing from the crate.

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
    /// Seconds until it is forgotten unless taught again or used: the later of its TTL's
    /// end and `idle_s` after the last packet of a Webex flow to it.
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
    /// DNS queries seen going out (answers must match one).
    #[serde(default)]
    pub dns_queries: u64,
    /// Matched answers with an error code (NXDOMAIN, SERVFAIL, REFUSED, ...): they teach
    /// nothing and are not malformed.
    #[serde(default)]
    pub dns_negative: u64,
    /// TLS handshakes (SYN-ACKs) seen coming back (ClientHellos must follow one).
    #[serde(default)]
    pub handshakes: u64,
    /// DNS-over-TCP messages and ClientHellos put together from two segments.
    #[serde(default)]
    pub reassembled: u64,
    /// Samples and addresses not believed, by reason (README "Learning peers").
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Samples the kernel did not copy because their client was over its rate.
    #[serde(default)]
    pub rate_limited: u64,
    /// Flows created before their peer was learned, made Webex when it was.
    #[serde(default)]
    pub flows_reclassified: u64,
    /// `[learn] idle_s`: a peer stays past its TTL while its flows were active within it.
    #[serde(default)]
    pub idle_s: u32,
    /// `[learn] client_rate_per_s`: samples per second one client may send (bursts of
    /// twice that); the kernel passes the rest uncopied (`rate_limited`).
    #[serde(default)]
    pub client_rate_per_s: u32,
    /// Queries waiting for their answer, handshakes waiting for their hello, and
    /// messages waiting for their second segment (each bounded).
    #[serde(default)]
    pub queries_waiting: u64,
    #[serde(default)]
    pub handshakes_waiting: u64,
    #[serde(default)]
    pub partial_waiting: u64,
    /// Failed lookups of Webex names (`dns_blocks_webex`) dropped because the ring the
    /// detectors drain each poll was full, since start; and the ring's size.
    #[serde(default)]
    pub dns_failures_dropped: u64,
    #[serde(default)]
    pub dns_failures_cap: u64,
    /// TLS servers' first flights answering a ClientHello for a Webex name, and of
    /// those the certificates read (names, or TLS 1.3: not in clear) for
    /// `ssl_inspection`; flights whose certificate could not be read, by reason.
    #[serde(default)]
    pub tls_server_flights: u64,
    #[serde(default)]
    pub tls_certificates: u64,
    #[serde(default)]
    pub tls_certificate_unread: BTreeMap<String, u64>,
    /// Certificates dropped because the ring the detectors drain each poll was full,
    /// since start; and the ring's size.
    #[serde(default)]
    pub tls_certificates_dropped: u64,
    #[serde(default)]
    pub tls_certificates_cap: u64,
    /// Webex hellos waiting for their server's certificate (at most the cap; the
    /// oldest goes first, counted in `refused.too_many_certificate_waits`).
    #[serde(default)]
    pub tls_hellos_waiting: u64,
    #[serde(default)]
    pub tls_hellos_waiting_cap: u64,
}
