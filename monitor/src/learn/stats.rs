//! What the learner keeps and counts: learned peers, the changes a sample makes, and
//! the counters of README "Learning peers".

use std::{collections::BTreeMap, net::IpAddr};

/// A learned peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// The name that taught it (the latest).
    pub name: String,
    /// `SOURCE_DNS` and/or `SOURCE_SNI`.
    pub sources: u32,
    /// CLOCK_MONOTONIC when its TTL runs out.
    pub expires_ns: u64,
    /// CLOCK_MONOTONIC of the last packet of a Webex flow to it (0: none yet).
    pub active_ns: u64,
}

impl Peer {
    /// When it goes: at the end of its TTL, or `idle_ns` after its last flow packet,
    /// whichever is later.
    pub fn deadline_ns(&self, idle_ns: u64) -> u64 {
        let idle_end = if self.active_ns == 0 {
            0
        } else {
            self.active_ns + idle_ns
        };
        self.expires_ns.max(idle_end)
    }
}

/// What a sample did to the peers: addresses to add to the tries with these bits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub added: Vec<(IpAddr, u32)>,
}

/// Counters of the learning (README "Learning peers").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub duplicates: u64,
    pub dns_queries: u64,
    pub dns_responses: u64,
    /// Matched answers with an error code (NXDOMAIN, SERVFAIL, REFUSED, ...).
    pub dns_negative: u64,
    /// DNS samples that taught nothing because they were malformed, by reason.
    pub dns_malformed: BTreeMap<&'static str, u64>,
    /// DNS responses cut by the sample bound (the whole records before the cut count).
    pub dns_cut: u64,
    /// DNS-over-TCP messages and ClientHellos put together from two segments.
    pub reassembled: u64,
    pub client_hellos: u64,
    /// TLS handshakes (SYN-ACKs) seen, which ClientHellos must follow.
    pub handshakes: u64,
    /// ClientHellos without a usable server name, by reason.
    pub sni_malformed: BTreeMap<&'static str, u64>,
    /// Addresses taught (new or refreshed), by source.
    pub learned_dns: u64,
    pub learned_sni: u64,
    /// Samples and addresses not believed, by reason (README "Learning peers").
    pub refused: BTreeMap<&'static str, u64>,
    /// Addresses refused because `max_peers` were learned already.
    pub refused_full: u64,
    pub expired: u64,
    /// Samples dropped because learning is disabled.
    pub ignored: u64,
    /// TLS servers' first flights (ServerHello segments) answering a Webex hello.
    pub server_flights: u64,
    /// Of those, certificates read (or found encrypted, TLS 1.3) and handed to
    /// `ssl_inspection`.
    pub certificates: u64,
    /// Flights whose certificate could not be read, by reason.
    pub cert_unread: BTreeMap<&'static str, u64>,
}
