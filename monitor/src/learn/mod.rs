//! Learning Webex peers by name. The kernel copies DNS responses and TLS ClientHellos
//! into a ring buffer (monitor-ebpf/src/sample.rs); here they are parsed ([`dns`],
//! [`sni`]) and the addresses of names under `[learn] domains` become Webex peers for a
//! while: entries in the prefix tries with the DNS or SNI bit, removed again when their
//! time is up (see `crate::kernel::learn` for the map side and README "Learning peers").
//!
//! [`Learner`] is the pure part (no kernel): samples in, peer changes out. The daemon
//! glue is in [`run`].

pub mod dns;
pub mod model;
pub mod render;
pub mod run;
pub mod sni;

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use monitor_common::{
    flow::FAMILY_V4,
    learn::{KIND_DNS, KIND_TLS, LearnSample, SOURCE_DNS, SOURCE_SNI},
};

use crate::config::learn::{Domains, LearnConfig};

/// The same sample seen again within this window (the gateway sees a forwarded packet
/// on ingress and on egress) is counted once.
const DUPLICATE_WINDOW_NS: u64 = 2_000_000_000;
/// Bound of the duplicate filter's memory.
const MAX_RECENT: usize = 4096;

/// A learned peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// The name that taught it (the latest).
    pub name: String,
    /// `SOURCE_DNS` and/or `SOURCE_SNI`.
    pub sources: u32,
    /// CLOCK_MONOTONIC when it expires.
    pub expires_ns: u64,
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
    pub dns_responses: u64,
    /// DNS samples that taught nothing because they were malformed, by reason.
    pub dns_malformed: BTreeMap<&'static str, u64>,
    /// DNS responses cut by the sample bound (the whole records before the cut count).
    pub dns_cut: u64,
    pub client_hellos: u64,
    /// ClientHellos without a usable server name, by reason.
    pub sni_malformed: BTreeMap<&'static str, u64>,
    /// Addresses learned or refreshed, by source.
    pub learned_dns: u64,
    pub learned_sni: u64,
    /// Addresses refused because `max_peers` were learned already.
    pub refused_full: u64,
    pub expired: u64,
    /// Samples dropped because learning is disabled.
    pub ignored: u64,
}

pub struct Learner {
    cfg: LearnConfig,
    domains: Domains,
    peers: HashMap<IpAddr, Peer>,
    recent: HashMap<u64, u64>,
    pub stats: Stats,
}

impl Learner {
    pub fn new(cfg: &LearnConfig) -> Learner {
        Learner {
            cfg: cfg.clone(),
            domains: Domains::new(&cfg.domains),
            peers: HashMap::new(),
            recent: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// A new `[learn]` section (SIGHUP). Peers stay until they expire.
    pub fn set_config(&mut self, cfg: &LearnConfig) {
        self.cfg = cfg.clone();
        self.domains = Domains::new(&cfg.domains);
    }

    pub fn peers(&self) -> &HashMap<IpAddr, Peer> {
        &self.peers
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
            },
        );
    }

    /// Parses one sample and learns from it.
    pub fn ingest(&mut self, s: &LearnSample, now_ns: u64) -> Changes {
        let mut changes = Changes::default();
        if !self.cfg.enabled {
            self.stats.ignored += 1;
            return changes;
        }
        let len = (s.len as usize).min(s.data.len());
        let data = &s.data[..len];
        if self.duplicate(s.kind, data, now_ns) {
            self.stats.duplicates += 1;
            return changes;
        }
        let cut = s.payload_len as usize > len;
        match s.kind {
            KIND_DNS => {
                // Over TCP a message starts with its 2-byte length.
                let (msg, cut) = if s.protocol == 6 {
                    match data {
                        [hi, lo, rest @ ..] => {
                            let want = u16::from_be_bytes([*hi, *lo]) as usize;
                            (&rest[..want.min(rest.len())], cut || want > rest.len())
                        }
                        _ => (&data[..0], true),
                    }
                } else {
                    (data, cut)
                };
                self.stats.dns_responses += 1;
                match dns::parse_response(msg, cut) {
                    Ok(resp) => {
                        if resp.cut {
                            self.stats.dns_cut += 1;
                        }
                        let floor = self.cfg.ttl_floor_s;
                        let cap = self.cfg.ttl_cap_s;
                        for l in dns::learn(&resp, |n| self.domains.matches(n)) {
                            let ttl = l.ttl.clamp(floor, cap);
                            self.stats.learned_dns += 1;
                            self.teach(l.addr, l.name, SOURCE_DNS, ttl, now_ns, &mut changes);
                        }
                    }
                    Err(e) => *self.stats.dns_malformed.entry(e.as_str()).or_default() += 1,
                }
            }
            KIND_TLS => {
                self.stats.client_hellos += 1;
                match sni::server_name(data) {
                    Ok(name) if self.domains.matches(&name) => {
                        let addr = addr(s.family, &s.dst_addr);
                        self.stats.learned_sni += 1;
                        let ttl = self.cfg.sni_ttl_s;
                        self.teach(addr, name, SOURCE_SNI, ttl, now_ns, &mut changes);
                    }
                    Ok(_) => {}
                    Err(e) => *self.stats.sni_malformed.entry(e.as_str()).or_default() += 1,
                }
            }
            _ => {}
        }
        changes
    }

    fn teach(
        &mut self,
        addr: IpAddr,
        name: String,
        source: u32,
        ttl_s: u32,
        now_ns: u64,
        changes: &mut Changes,
    ) {
        if !usable(addr) {
            return;
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
            }
            None if full => {
                self.stats.refused_full += 1;
            }
            None => {
                self.peers.insert(
                    addr,
                    Peer {
                        name,
                        sources: source,
                        expires_ns,
                    },
                );
                changes.added.push((addr, source));
            }
        }
    }

    /// Removes the peers whose time is up; returns them with the bits to clear.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(IpAddr, u32)> {
        let gone: Vec<(IpAddr, u32)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.expires_ns <= now_ns)
            .map(|(a, p)| (*a, p.sources))
            .collect();
        for (a, _) in &gone {
            self.peers.remove(a);
        }
        self.stats.expired += gone.len() as u64;
        self.recent
            .retain(|_, seen| now_ns.saturating_sub(*seen) < DUPLICATE_WINDOW_NS);
        gone
    }

    fn duplicate(&mut self, kind: u8, data: &[u8], now_ns: u64) -> bool {
        let mut h = DefaultHasher::new();
        (kind, data).hash(&mut h);
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

/// Addresses that can never be a Webex peer are not learned: unspecified, loopback,
/// multicast, broadcast, link-local.
fn usable(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            !(v.is_unspecified()
                || v.is_loopback()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_link_local())
        }
        IpAddr::V6(v) => {
            !(v.is_unspecified()
                || v.is_loopback()
                || v.is_multicast()
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some())
        }
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
