//! Learning Webex peers by name. The kernel copies DNS queries and responses, TLS
//! ClientHellos and the SYN-ACKs before them into a ring buffer
//! (monitor-ebpf/src/sample.rs); here they are judged ([`trust`]: side, matching query
//! or handshake, addresses never learned), put together when split (`reassembly`),
//! parsed ([`dns`], [`sni`]), and the addresses of names under `[learn] domains` become
//! Webex peers while their TTL runs or their flows are active: entries in the prefix
//! tries with the DNS or SNI bit, removed again when their time is up (see
//! `crate::kernel::learn` for the map side and README "Learning peers").
//!
//! [`Learner`] is the pure part (no kernel): samples in, peer changes out. The daemon
//! glue is in [`run`].

pub mod cert;
pub mod certs;
pub mod dns;
pub mod failures;
pub mod pending;
mod reassembly;
pub mod ring;
pub mod run;
pub mod sni;
mod stats;
pub mod trust;

pub use stats::{Changes, Peer, Stats};

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex},
};

use monitor_common::{
    flow::FAMILY_V4,
    learn::{
        KIND_DNS, KIND_DNS_QUERY, KIND_TLS, KIND_TLS_SERVER, KIND_TLS_SYNACK, LearnSample,
        SOURCE_DNS, SOURCE_SNI,
    },
};

use crate::config::learn::{Domains, LearnConfig};
use failures::{Code, DnsFailure, DnsFailures};
use pending::{Conn, Handshakes, Mismatch, Partial, Queries};
use trust::{Side, Site};

/// The same sample seen again within this window (the gateway sees a forwarded packet
/// on ingress and on egress) is counted once.
const DUPLICATE_WINDOW_NS: u64 = 2_000_000_000;
/// Bound of the duplicate filter's memory.
const MAX_RECENT: usize = 4096;
const TCP: u8 = 6;

pub struct Learner {
    cfg: LearnConfig,
    domains: Domains,
    site: Site,
    peers: HashMap<IpAddr, Peer>,
    recent: HashMap<u64, u64>,
    queries: Queries,
    handshakes: Handshakes,
    partial: Partial,
    /// Failed lookups of Webex names, drained by the detectors (shared with them).
    failures: Arc<Mutex<DnsFailures>>,
    /// Webex hellos waiting for their server's certificate, and the certificates read,
    /// drained by the detectors (`ssl_inspection`).
    waiting: certs::Waiting,
    certs: Arc<Mutex<certs::ServerCerts>>,
    pub stats: Stats,
}

impl Learner {
    pub fn new(cfg: &LearnConfig, site: Site) -> Learner {
        Learner {
            cfg: cfg.clone(),
            domains: Domains::new(&cfg.domains),
            site,
            peers: HashMap::new(),
            recent: HashMap::new(),
            queries: Queries::default(),
            handshakes: Handshakes::default(),
            partial: Partial::default(),
            failures: Arc::default(),
            waiting: certs::Waiting::default(),
            certs: Arc::default(),
            stats: Stats::default(),
        }
    }

    /// A new `[learn]` section (SIGHUP). Peers stay until they expire.
    pub fn set_config(&mut self, cfg: &LearnConfig) {
        self.cfg = cfg.clone();
        self.domains = Domains::new(&cfg.domains);
    }

    /// The site as found now (interfaces, own addresses, LAN prefixes).
    pub fn set_site(&mut self, site: Site) {
        self.site = site;
    }

    /// The ring of servers' certificates on Webex connections (`ssl_inspection`).
    pub fn server_certs(&self) -> Arc<Mutex<certs::ServerCerts>> {
        self.certs.clone()
    }

    /// Webex hellos waiting for their server's certificate.
    pub fn certs_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The ring of failed lookups of Webex names (`dns_blocks_webex`).
    pub fn dns_failures(&self) -> Arc<Mutex<DnsFailures>> {
        self.failures.clone()
    }

    fn record_failure(&self, name: String, code: Code, conn: &Conn, at_ns: u64) {
        if !self.domains.matches(&name) {
            return;
        }
        if let Ok(mut f) = self.failures.lock() {
            f.push(DnsFailure {
                name,
                code,
                resolver: conn.server,
                client: conn.client,
                at_ns,
            });
        }
    }

    pub fn peers(&self) -> &HashMap<IpAddr, Peer> {
        &self.peers
    }

    /// The idle time after which an active peer past its TTL goes.
    pub fn idle_ns(&self) -> u64 {
        self.cfg.idle_s as u64 * 1_000_000_000
    }

    /// Queries waiting for answers, handshakes waiting for hellos, partial messages.
    pub fn pending(&self) -> (usize, usize, usize) {
        (
            self.queries.len(),
            self.handshakes.len(),
            self.partial.len(),
        )
    }

    /// Takes over a peer found in the tries at start (a previous run learned it; its
    /// name and TTL are gone): it stays for `ttl_floor_s` and goes unless taught again.
    pub fn adopt(&mut self, addr: IpAddr, sources: u32, now_ns: u64) {
        let ttl = self.cfg.ttl_floor_s.max(1) as u64 * 1_000_000_000;
        self.peers.insert(
            addr,
            Peer {
                name: "(learned before the restart)".into(),
                sources,
                expires_ns: now_ns + ttl,
                active_ns: 0,
            },
        );
    }

    /// A Webex flow to `addr` carried a packet at `last_seen_ns`: it stays while active.
    pub fn touch(&mut self, addr: IpAddr, last_seen_ns: u64) {
        if let Some(p) = self.peers.get_mut(&addr) {
            p.active_ns = p.active_ns.max(last_seen_ns);
        }
    }

    fn refuse(&mut self, reason: &'static str) {
        *self.stats.refused.entry(reason).or_default() += 1;
    }

    /// Judges and parses one sample and learns from it.
    pub fn ingest(&mut self, s: &LearnSample, now_ns: u64) -> Changes {
        let mut changes = Changes::default();
        if !self.cfg.enabled {
            self.stats.ignored += 1;
            return changes;
        }
        let Some(side) = self.site.side(s.ifindex, s.direction) else {
            self.refuse("unknown_interface");
            return changes;
        };
        let len = (s.len as usize).min(s.data.len());
        let data = &s.data[..len];
        let cut = s.payload_len as usize > len;
        let src = addr(s.family, &s.src_addr);
        let dst = addr(s.family, &s.dst_addr);
        // Seen from the asker: queries and hellos go out from it, answers come back.
        let outward = Conn {
            ifindex: s.ifindex,
            protocol: s.protocol,
            client: src,
            client_port: s.src_port,
            server: dst,
            server_port: s.dst_port,
        };
        let back = Conn {
            ifindex: s.ifindex,
            protocol: s.protocol,
            client: dst,
            client_port: s.dst_port,
            server: src,
            server_port: s.src_port,
        };
        match (s.kind, side) {
            (KIND_DNS_QUERY, Side::Outbound) => {
                let Some((msg, _)) =
                    self.dns_message(KIND_DNS_QUERY, s.protocol, outward, data, cut, now_ns)
                else {
                    return changes;
                };
                self.stats.dns_queries += 1;
                match dns::parse_query(&msg) {
                    Ok(q) => {
                        if !self.queries.insert(outward, q.id, q.question, now_ns) {
                            self.refuse("too_many_queries");
                        }
                    }
                    Err(e) => *self.stats.dns_malformed.entry(e.as_str()).or_default() += 1,
                }
            }
            (KIND_DNS, Side::Inbound) => {
                let Some((msg, cut)) =
                    self.dns_message(KIND_DNS, s.protocol, back, data, cut, now_ns)
                else {
                    return changes;
                };
                self.stats.dns_responses += 1;
                let resp = match dns::parse_response(&msg, cut) {
                    Ok(r) => r,
                    Err(e) => {
                        *self.stats.dns_malformed.entry(e.as_str()).or_default() += 1;
                        return changes;
                    }
                };
                match self.queries.answer(&back, resp.id, &resp.question, now_ns) {
                    Ok(()) => {}
                    Err(Mismatch::Unsolicited) => {
                        self.refuse("unsolicited");
                        return changes;
                    }
                    Err(Mismatch::OtherQuery) => {
                        self.refuse("other_query");
                        return changes;
                    }
                }
                if self.duplicate(KIND_DNS, src, s.src_port, &msg, now_ns) {
                    self.stats.duplicates += 1;
                    return changes;
                }
                if resp.rcode != 0 {
                    self.stats.dns_negative += 1;
                    if let Some(code) = Code::of_rcode(resp.rcode) {
                        self.record_failure(resp.question, code, &back, now_ns);
                    }
                    return changes;
                }
                if resp.cut {
                    self.stats.dns_cut += 1;
                }
                let floor = self.cfg.ttl_floor_s;
                let cap = self.cfg.ttl_cap_s;
                for l in dns::learn(&resp, |n| self.domains.matches(n)) {
                    let ttl = l.ttl.clamp(floor, cap);
                    if self.teach(l.addr, l.name, SOURCE_DNS, ttl, now_ns, &mut changes) {
                        self.stats.learned_dns += 1;
                    }
                }
            }
            (KIND_TLS_SYNACK, Side::Inbound) => {
                self.stats.handshakes += 1;
                if !self.handshakes.insert(back, now_ns) {
                    self.refuse("too_many_handshakes");
                }
            }
            (KIND_TLS, Side::Outbound) => {
                let Some(hello) = self.hello(outward, data, cut, now_ns) else {
                    return changes;
                };
                self.stats.client_hellos += 1;
                if !self.handshakes.seen(&outward, now_ns) {
                    self.refuse("no_handshake");
                    return changes;
                }
                let name = sni::server_name(&hello);
                // Every copy (LAN and WAN side) waits for its own server flight.
                if let Ok(n) = &name
                    && self.domains.matches(n)
                    && !self.waiting.insert(outward, n.clone(), now_ns)
                {
                    self.refuse("too_many_certificate_waits");
                }
                if self.duplicate(KIND_TLS, dst, s.dst_port, &hello, now_ns) {
                    self.stats.duplicates += 1;
                    return changes;
                }
                match name {
                    Ok(name) if self.domains.matches(&name) => {
                        let ttl = self.cfg.sni_ttl_s;
                        if self.teach(dst, name, SOURCE_SNI, ttl, now_ns, &mut changes) {
                            self.stats.learned_sni += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => *self.stats.sni_malformed.entry(e.as_str()).or_default() += 1,
                }
            }
            (KIND_TLS_SERVER, Side::Inbound) => self.server_flight(back, data, cut, now_ns),
            // A server on the site answering a client outside: not a Webex connection
            // of the site's, and nothing forged about it.
            (KIND_TLS_SERVER, Side::Outbound) => {}
            // An answer or SYN-ACK going out, a query or hello coming in: not the
            // site's own conversation (a forged packet from the internet, or a LAN host
            // answering for a resolver).
            _ => self.refuse("wrong_side"),
        }
        changes
    }

    /// Learns `addr` for `name` unless the site forbids it. Whether it was taught (new or
    /// refreshed).
    fn teach(
        &mut self,
        addr: IpAddr,
        name: String,
        source: u32,
        ttl_s: u32,
        now_ns: u64,
        changes: &mut Changes,
    ) -> bool {
        if let Some(reason) = self.site.refuse(addr) {
            self.refuse(reason);
            return false;
        }
        let expires_ns = now_ns + ttl_s as u64 * 1_000_000_000;
        let full = self.peers.len() >= self.cfg.max_peers as usize;
        match self.peers.get_mut(&addr) {
            Some(p) => {
                p.name = name;
                p.expires_ns = p.expires_ns.max(expires_ns);
                if p.sources & source == 0 {
                    p.sources |= source;
                    changes.added.push((addr, p.sources));
                }
                true
            }
            None if full => {
                self.stats.refused_full += 1;
                false
            }
            None => {
                self.peers.insert(
                    addr,
                    Peer {
                        name,
                        sources: source,
                        expires_ns,
                        active_ns: 0,
                    },
                );
                changes.added.push((addr, source));
                true
            }
        }
    }

    /// Removes the peers whose time is up (TTL over and idle for `idle_s`); returns them
    /// with the bits to clear. Also forgets stale queries, handshakes and partials.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(IpAddr, u32)> {
        let idle = self.idle_ns();
        let gone: Vec<(IpAddr, u32)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.deadline_ns(idle) <= now_ns)
            .map(|(a, p)| (*a, p.sources))
            .collect();
        for (a, _) in &gone {
            self.peers.remove(a);
        }
        self.stats.expired += gone.len() as u64;
        self.recent
            .retain(|_, seen| now_ns.saturating_sub(*seen) < DUPLICATE_WINDOW_NS);
        for (conn, id, name) in self.queries.purge(now_ns) {
            // A forwarded query waits on the LAN and on the WAN side: one failure. The
            // two copies share the resolver, ID and name, and time out in one poll.
            let key = [&id.to_be_bytes()[..], name.as_bytes()].concat();
            if self.domains.matches(&name)
                && !self.duplicate(KIND_DNS_QUERY, conn.server, conn.server_port, &key, now_ns)
            {
                self.record_failure(name, Code::Unanswered, &conn, now_ns);
            }
        }
        self.handshakes.purge(now_ns);
        self.partial.purge(now_ns);
        self.waiting.purge(now_ns);
        gone
    }

    /// Whether the same message from (answers) or to (hellos) the same server was seen
    /// within the window: one packet seen on both interfaces of the gateway.
    fn duplicate(&mut self, kind: u8, server: IpAddr, port: u16, data: &[u8], now_ns: u64) -> bool {
        let mut h = DefaultHasher::new();
        (kind, server, port, data).hash(&mut h);
        let key = h.finish();
        if let Some(seen) = self.recent.get(&key)
            && now_ns.saturating_sub(*seen) < DUPLICATE_WINDOW_NS
        {
            return true;
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
        }
        self.recent.insert(key, now_ns);
        false
    }
}

/// An address of a sample (IPv4 v4-mapped, as in `FlowKey`).
pub fn addr(family: u8, a: &[u8; 16]) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    }
}

#[cfg(test)]
#[path = "learner_tests.rs"]
mod tests;
