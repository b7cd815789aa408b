//! Learning in the daemon: reads the sample ring, applies what the [`Learner`] learns to
//! the prefix tries, re-classifies the flows of new peers, keeps peers with active flows,
//! expires the others on each poll and removes their flows, and keeps the view the
//! status report shows.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use log::{info, warn};
use monitor_common::{
    FlowKey, GlobalCounters,
    learn::{LearnSample, SOURCE_DNS, SOURCE_SNI},
};
use tokio::io::unix::AsyncFd;

use super::{Learner, trust::Site};
use crate::{
    config::{Config, learn::LearnConfig},
    kernel::{learn as maps, snapshot},
    report::learn::{LearnStatus, LearnedPeer},
    status::model::StatusReport,
};

/// Samples read per wake-up before yielding to the rest of the loop.
const MAX_PER_WAKE: usize = 4096;

/// What the status report shows, shared with the status server.
#[derive(Clone, Debug, Default)]
pub struct View {
    enabled: bool,
    /// Address, name, source bits, expiry (CLOCK_MONOTONIC ns: TTL or idle, the later).
    peers: Vec<(IpAddr, String, u32, u64)>,
    stats: super::Stats,
    flows_deleted: u64,
    flows_reclassified: u64,
    rate_limited: u64,
    idle_s: u32,
    client_rate_per_s: u32,
    /// `learn.max_peers`: the learned-peer table's cap.
    max_peers: u32,
    /// Queries, handshakes and partial messages waiting.
    pending: (usize, usize, usize),
    /// Failed lookups of Webex names, until the detectors take them.
    dns_failures: Arc<Mutex<super::failures::DnsFailures>>,
    /// Servers' certificates on Webex connections, until the detectors take them; and
    /// the hellos waiting for theirs.
    server_certs: Arc<Mutex<super::certs::ServerCerts>>,
    certs_waiting: usize,
}

impl View {
    /// Takes the failed lookups recorded since the last call, and how many the ring
    /// dropped since start (for `dns_blocks_webex`).
    pub fn take_dns_failures(&self) -> (Vec<super::failures::DnsFailure>, u64) {
        match self.dns_failures.lock() {
            Ok(mut f) => (f.take(), f.dropped()),
            Err(_) => (Vec::new(), 0),
        }
    }

    /// Takes the servers' certificates recorded since the last call, and how many the
    /// ring dropped since start (for `ssl_inspection`).
    pub fn take_server_certs(&self) -> (Vec<super::certs::ServerCert>, u64) {
        match self.server_certs.lock() {
            Ok(mut c) => (c.take(), c.dropped()),
            Err(_) => (Vec::new(), 0),
        }
    }

    /// Adds the learned peers and counters to a report built from `counters`, and
    /// keeps `flows_evicted` exact: flows the daemon deleted were not evicted.
    pub fn annotate(&self, r: &mut StatusReport, counters: &GlobalCounters, now_ns: u64) {
        r.counters.flows_evicted = r.counters.flows_evicted.saturating_sub(self.flows_deleted);
        let mut peers: Vec<LearnedPeer> = self
            .peers
            .iter()
            .map(|(addr, name, bits, expires)| LearnedPeer {
                addr: addr.to_string(),
                name: name.clone(),
                source: source_name(*bits).to_string(),
                expires_in_s: expires.saturating_sub(now_ns).div_ceil(1_000_000_000),
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.addr.cmp(&b.addr)));
        r.learned_peers = peers;
        r.scale.caps.push(crate::report::scale::Cap::new(
            "learn.peers",
            self.max_peers as usize,
            self.peers.len(),
            self.stats.refused_full,
        ));
        // The tables of what an answer or hello must match, and of split messages: when
        // one is full an entry is forgotten for the new one (counted as the refusal).
        let refused = |reason: &str| self.stats.refused.get(reason).copied().unwrap_or(0);
        for (name, cap, held, reason) in [
            (
                "learn.queries",
                super::pending::MAX_QUERIES,
                self.pending.0,
                "too_many_queries",
            ),
            (
                "learn.handshakes",
                super::pending::MAX_HANDSHAKES,
                self.pending.1,
                "too_many_handshakes",
            ),
            (
                "learn.partial",
                super::pending::MAX_PARTIAL,
                self.pending.2,
                "too_many_partial",
            ),
        ] {
            r.scale.caps.push(crate::report::scale::Cap::new(
                name,
                cap,
                held,
                refused(reason),
            ));
        }
        let s = &self.stats;
        let map = |m: &std::collections::BTreeMap<&'static str, u64>| {
            m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        r.learn = Some(LearnStatus {
            enabled: self.enabled,
            samples: counters.learn_samples,
            sample_drops: counters.learn_sample_drops,
            duplicates: s.duplicates,
            dns_responses: s.dns_responses,
            dns_malformed: map(&s.dns_malformed),
            dns_cut: s.dns_cut,
            client_hellos: s.client_hellos,
            sni_malformed: map(&s.sni_malformed),
            learned_dns: s.learned_dns,
            learned_sni: s.learned_sni,
            refused_full: s.refused_full,
            expired: s.expired,
            flows_deleted: self.flows_deleted,
            peers: self.peers.len() as u64,
            dns_queries: s.dns_queries,
            dns_negative: s.dns_negative,
            handshakes: s.handshakes,
            reassembled: s.reassembled,
            refused: map(&s.refused),
            rate_limited: self.rate_limited,
            flows_reclassified: self.flows_reclassified,
            idle_s: self.idle_s,
            client_rate_per_s: self.client_rate_per_s,
            queries_waiting: self.pending.0 as u64,
            handshakes_waiting: self.pending.1 as u64,
            partial_waiting: self.pending.2 as u64,
            dns_failures_dropped: self.dns_failures.lock().map_or(0, |f| f.dropped()),
            dns_failures_cap: super::failures::MAX_EVENTS as u64,
            tls_server_flights: s.server_flights,
            tls_certificates: s.certificates,
            tls_certificate_unread: map(&s.cert_unread),
            tls_certificates_dropped: self.server_certs.lock().map_or(0, |c| c.dropped()),
            tls_certificates_cap: super::certs::MAX_EVENTS as u64,
            tls_hellos_waiting: self.certs_waiting as u64,
            tls_hellos_waiting_cap: super::certs::MAX_WAITING as u64,
        });
    }
}

pub fn source_name(bits: u32) -> &'static str {
    match (bits & SOURCE_DNS != 0, bits & SOURCE_SNI != 0) {
        (true, true) => "dns+sni",
        (true, false) => "dns",
        _ => "sni",
    }
}

pub struct Learning {
    learner: Learner,
    config: Config,
    view: Arc<Mutex<View>>,
    /// Addresses expired this poll whose flows are to be deleted after the snapshot.
    gone: HashSet<[u8; 16]>,
    /// Addresses learned since the last snapshot whose older flows are to be
    /// re-classified after the next one.
    fresh: HashSet<[u8; 16]>,
    flows_deleted: u64,
    flows_reclassified: u64,
    rate_limited: u64,
    /// When the last snapshot was taken (CLOCK_MONOTONIC, before its read): a flow
    /// idle since then kept its peer with that snapshot already.
    touched_to_ns: u64,
}

/// The ring, registered with the runtime.
pub type Ring = AsyncFd<RingBuf<MapData>>;

impl Learning {
    /// Takes the sample ring and adopts peers a previous run left in the tries.
    pub fn start(ebpf: &mut Ebpf, config: &Config) -> anyhow::Result<(Learning, Ring)> {
        let cfg = &config.learn;
        let ring = maps::take_ring(ebpf)?;
        maps::set_client_rate(ebpf, cfg.client_rate_per_s)?;
        // SAFETY: the RingBuf owns its map fd and the AsyncFd owns the RingBuf, so the fd
        // stays open as long as it is registered.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }?;
        let mut learner = Learner::new(cfg, Site::discover(config));
        let now = snapshot::monotonic_ns();
        let adopted = maps::learned_entries(ebpf)?;
        if !adopted.is_empty() {
            info!(
                "{} learned peers from the previous run stay {} s unless taught again",
                adopted.len(),
                cfg.ttl_floor_s.max(1)
            );
        }
        for (addr, bits) in adopted {
            learner.adopt(addr, bits, now);
        }
        let flows_deleted = maps::flows_deleted(ebpf)?;
        let l = Learning {
            learner,
            config: config.clone(),
            view: Arc::default(),
            gone: HashSet::new(),
            fresh: HashSet::new(),
            flows_deleted,
            flows_reclassified: 0,
            rate_limited: maps::rate_limited(ebpf).unwrap_or(0),
            touched_to_ns: 0,
        };
        l.publish();
        Ok((l, ring))
    }

    pub fn view(&self) -> Arc<Mutex<View>> {
        self.view.clone()
    }

    /// A reloaded config: `[learn]`, and the interfaces whose roles say which side a
    /// sample was seen on.
    pub fn set_config(&mut self, config: &Config) {
        self.learner.set_config(&config.learn);
        self.config = config.clone();
        self.learner.set_site(Site::discover(config));
        self.publish();
    }

    fn learn_config(&self) -> &LearnConfig {
        &self.config.learn
    }

    /// Reads what the ring holds and learns from it. Returns whether the ring was
    /// emptied (when not, the caller keeps it marked readable).
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>, ebpf: &mut Ebpf) -> bool {
        let now = snapshot::monotonic_ns();
        let mut emptied = false;
        for _ in 0..MAX_PER_WAKE {
            let Some(item) = ring.next() else {
                emptied = true;
                break;
            };
            if item.len() < size_of::<LearnSample>() {
                continue;
            }
            // SAFETY: the item holds a whole LearnSample (checked above), which is plain
            // integers; read_unaligned copes with the ring's 8-byte alignment.
            let sample: LearnSample =
                unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<LearnSample>()) };
            drop(item);
            let changes = self.learner.ingest(&sample, now);
            for (addr, bits) in changes.added {
                self.fresh.insert(flow_addr(addr));
                match maps::add(ebpf, addr, bits) {
                    Ok(()) => info!(
                        "learned Webex peer {addr} ({})",
                        self.learner
                            .peers()
                            .get(&addr)
                            .map(|p| p.name.as_str())
                            .unwrap_or("?")
                    ),
                    Err(e) => warn!("cannot add learned peer {addr}: {e}"),
                }
            }
        }
        self.publish();
        emptied
    }

    /// Forgets the peers whose time is up (before the poll's snapshot): from then on no
    /// new flow of theirs is Webex. Their existing flows go in [`Self::after_snapshot`].
    pub fn expire(&mut self, ebpf: &mut Ebpf) {
        let now = snapshot::monotonic_ns();
        // Addresses change (DHCP, SLAAC) and interfaces come back under new indexes.
        self.learner.set_site(Site::discover(&self.config));
        if let Ok(n) = maps::rate_limited(ebpf) {
            self.rate_limited = n;
        }
        for (addr, _) in self.learner.expire(now) {
            match maps::remove(ebpf, addr) {
                // Still Webex by a configured prefix: its flows stay.
                Ok(true) => info!("learned peer {addr} expired; a configured prefix covers it"),
                Ok(false) => {
                    info!("learned peer {addr} expired");
                    self.gone.insert(flow_addr(addr));
                }
                Err(e) => warn!("cannot remove learned peer {addr}: {e}"),
            }
        }
        self.publish();
    }

    /// After the poll's snapshot: keeps the peers whose Webex flows carried packets,
    /// re-classifies the older flows of peers learned since the last snapshot, and
    /// deletes the flows of the peers expired this poll (from the flow map and `snap`),
    /// counting them.
    pub fn after_snapshot(&mut self, ebpf: &mut Ebpf, snap: &mut snapshot::Snapshot) {
        // Only the flows that carried a packet since the last snapshot move a peer's
        // activity on (a large table is mostly idle flows, each a look-up otherwise).
        // With no learned peer there is nothing to keep: no pass at all.
        let since = std::mem::replace(&mut self.touched_to_ns, snap.taken_mono_ns);
        if !self.learner.peers().is_empty() {
            for (k, v) in &snap.flows {
                if v.class != monitor_common::Class::NotWebex as u32 && v.last_seen_ns >= since {
                    self.learner.touch(webex_peer(k, v), v.last_seen_ns);
                }
            }
        }
        if !self.fresh.is_empty() {
            let fresh = std::mem::take(&mut self.fresh);
            match maps::reclassify(ebpf, &snap.flows, &fresh) {
                Ok(changed) if !changed.is_empty() => {
                    // Their packets were to the peer too, though before it was known:
                    // they keep it as the flows of later packets do.
                    for (k, v) in &changed {
                        self.learner.touch(webex_peer(k, v), v.last_seen_ns);
                    }
                    let new: std::collections::HashMap<FlowKey, monitor_common::FlowStats> =
                        changed.iter().copied().collect();
                    for (k, v) in snap.flows.iter_mut() {
                        if let Some(n) = new.get(k) {
                            *v = *n;
                        }
                    }
                    self.flows_reclassified += changed.len() as u64;
                    info!(
                        "{} flows created before their peer was learned are Webex now",
                        changed.len()
                    );
                }
                Ok(_) => {}
                Err(e) => warn!("cannot re-classify the flows of new peers: {e}"),
            }
        }
        if !self.gone.is_empty() {
            let gone = std::mem::take(&mut self.gone);
            match maps::delete_flows(ebpf, &snap.flows, &gone) {
                Ok(deleted) if !deleted.is_empty() => {
                    let keys: HashSet<FlowKey> = deleted.iter().copied().collect();
                    snap.flows.retain(|k, _| !keys.contains(k));
                    match maps::add_flows_deleted(ebpf, deleted.len() as u64) {
                        Ok(total) => self.flows_deleted = total,
                        Err(e) => {
                            warn!("cannot record deleted flows: {e}");
                            self.flows_deleted += deleted.len() as u64;
                        }
                    }
                    info!("deleted {} flows of expired learned peers", deleted.len());
                }
                Ok(_) => {}
                Err(e) => warn!("cannot delete flows of expired peers: {e}"),
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let idle = self.learner.idle_ns();
        let view = View {
            enabled: self.learn_config().enabled,
            peers: self
                .learner
                .peers()
                .iter()
                .map(|(a, p)| (*a, p.name.clone(), p.sources, p.deadline_ns(idle)))
                .collect(),
            stats: self.learner.stats.clone(),
            flows_deleted: self.flows_deleted,
            flows_reclassified: self.flows_reclassified,
            rate_limited: self.rate_limited,
            idle_s: self.learn_config().idle_s,
            client_rate_per_s: self.learn_config().client_rate_per_s,
            max_peers: self.learn_config().max_peers,
            pending: self.learner.pending(),
            dns_failures: self.learner.dns_failures(),
            server_certs: self.learner.server_certs(),
            certs_waiting: self.learner.certs_waiting(),
        };
        if let Ok(mut v) = self.view.lock() {
            *v = view;
        }
    }
}

/// The address of a `FlowKey` address field.
fn ip_of(family: u8, a: &[u8; 16]) -> IpAddr {
    super::addr(family, a)
}

/// `FlowKey` form of an address (IPv4 v4-mapped).
fn flow_addr(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => FlowKey::v4_mapped(v.octets()),
        IpAddr::V6(v) => v.octets(),
    }
}

/// The Webex end of a flow: the address a learned peer would be.
fn webex_peer(k: &FlowKey, v: &monitor_common::FlowStats) -> IpAddr {
    let peer = match monitor_common::WebexSide::from_u32(v.webex_side) {
        monitor_common::WebexSide::Dst => &k.dst_addr,
        monitor_common::WebexSide::Src => &k.src_addr,
    };
    ip_of(k.family, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_tables_are_caps_with_their_forgotten_entries() {
        let mut view = View {
            max_peers: 4096,
            pending: (4096, 17, 0),
            ..Default::default()
        };
        view.stats.refused.insert("too_many_queries", 12);
        view.stats.refused.insert("too_many_partial", 3);
        view.stats.refused_full = 2;
        let mut r = crate::status::render::tests::sample_report();
        view.annotate(&mut r, &GlobalCounters::default(), 0);
        let caps: Vec<(&str, u64, u64, u64)> = r
            .scale
            .caps
            .iter()
            .map(|c| (c.name.as_str(), c.limit, c.held, c.refused))
            .collect();
        assert_eq!(
            caps,
            [
                ("learn.peers", 4096, 0, 2),
                ("learn.queries", 4096, 4096, 12),
                ("learn.handshakes", 4096, 17, 0),
                ("learn.partial", 256, 0, 3),
            ]
        );
    }
}
