//! Failure detectors (README "Failure detectors"): SIP ALG, blocked and one-way media,
//! Webex traffic blocked on this gateway or upstream (signalling handshakes),
//! short NAT timeouts, NAT port exhaustion, MTU and fragmentation. Each reads one poll's
//! [`View`] (the flows with what each counted since the last poll, plus the gateway's own
//! NAT state from [`system`]) and returns [`Finding`](crate::anomaly::Finding)s for the
//! anomaly book. Verdicts come from the deltas and recent activity, never from lifetime
//! counters alone (README "Anomalies": when each clears). [`dns`] judges the failed
//! lookups of Webex names the learner records instead of flows; [`ssl`] the servers'
//! certificates it reads on Webex connections, with the kernel's handshake and STUN
//! round trips. Each detector's tables between polls are bounded and shown in status
//! (`detectors.tables`).

pub mod blocked;
pub mod conntrack_join;
pub mod conntrack_table;
pub mod dns;
pub mod interfaces;
pub mod media;
pub mod mtu;
pub mod nat_exhaustion;
pub mod nat_timeout;
pub mod nft_counters;
pub mod sip_alg;
pub mod ssl;
pub mod system;
pub mod tunnel;
pub mod vpn;

use std::time::{Duration, Instant};

use crate::fasthash::HashMap;
use crate::flows::rows::Interest;
use crate::{
    anomaly::{Finding, window::Counts},
    config::detect::DetectConfig,
    report::scale::ConntrackRead,
    status::model::{FlowStatus, StatusReport},
};

/// How long a flow counts as recent after its last packet ([`View::recent`]): longer
/// than every window of the detectors that judge only recent flows.
pub const RECENT_S: f64 = 300.0;

/// How often the nftables ruleset is read again (it is an exec of `nft`).
const RULESET_EVERY: Duration = Duration::from_secs(10);
/// The conntrack table is read again only after this many times as long as the last
/// read took: at most 1/100 (1 %) of the daemon's time goes to it. A small table (a few
/// ms) is read every poll; 100,000 entries (about 0.45 s with `conntrack -L`) every
/// 45 s.
const CONNTRACK_SPACING: u32 = 100;

/// When the conntrack table may be read next, after a read at `started` that took `cost`.
fn next_conntrack_read(started: Instant, cost: Duration) -> Instant {
    started + cost * CONNTRACK_SPACING
}

/// The failure detectors with what they remember between polls.
pub struct Failures {
    cfg: DetectConfig,
    path_mtu: u32,
    ruleset: Option<system::Ruleset>,
    ruleset_read: Option<Instant>,
    nat_timeout: nat_timeout::State,
    mtu: mtu::State,
    media: media::State,
    sip_alg: sip_alg::Rewrites,
    blocked: blocked::State,
    vpn: vpn::State,
    tunnel: tunnel::State,
    ssl: ssl::State,
    /// The last snapshot's STUN RTTs measured on requests leaving an interface (see
    /// [`Failures::set_stun_rtt`]).
    stun_rtt: Vec<(monitor_common::FlowKey, monitor_common::rtp::RttStats)>,
    /// The last conntrack read (`None`: unreadable), when it was taken, and when the next
    /// one is due.
    conntrack: Option<conntrack_table::ConntrackTable>,
    conntrack_read: Option<Instant>,
    conntrack_due: Option<Instant>,
    /// What the conntrack reads and joins cost (status `scale.conntrack`).
    conntrack_cost: ConntrackRead,
}

/// One poll's view: the report's flows with their per-poll deltas, the conntrack table
/// and ruleset, and the flows indexed.
pub struct View<'a> {
    pub report: &'a StatusReport,
    /// Per flow of `report.flows` (same order): counted since the last poll.
    deltas: &'a [Counts],
    /// The first poll after start: every delta is zero, nothing is new.
    pub baseline: bool,
    /// `None` when conntrack cannot be read (no procfs file, no tool).
    pub conntrack: Option<&'a [system::Entry]>,
    /// The same entries indexed at their read ([`View::conntrack_index`]).
    conntrack_table: Option<&'a conntrack_table::ConntrackTable>,
    /// The index made here when the view was given bare entries (tests).
    own_table: std::cell::OnceCell<conntrack_table::ConntrackTable>,
    pub ruleset: Option<&'a system::Ruleset>,
    /// Seconds since `conntrack` was read (it is not read every poll on big tables):
    /// flows younger than this cannot be in it yet.
    pub conntrack_age_s: f64,
    /// A few names each: compared in turn, cheaper than hashing a flow's interface name
    /// (asked of every flow by several detectors).
    lan: Vec<&'a str>,
    wan: Vec<&'a str>,
    /// The flows by text identity, built on first use ([`View::flow`], [`View::reverse`]).
    index: std::cell::OnceCell<HashMap<FlowId<'a>, usize>>,
    /// The flows conntrack entries join with, by numeric 5-tuple: built on first use
    /// ([`View::joins`]).
    joins: std::cell::OnceCell<conntrack_join::Joins<'a>>,
    /// Places of the flows [`View::recent`] lists, found on first use.
    recent: std::cell::OnceCell<Vec<usize>>,
    /// The daemon's rows of `report.flows` (same order), with their kernel keys already
    /// indexed: [`View::flow`] and [`View::reverse`] look flows up by key instead of
    /// indexing every flow's text each poll.
    rows: Option<&'a crate::flows::rows::FlowRows>,
}

/// Interface, direction, protocol and the two ends: a flow as the map keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId<'a> {
    pub interface: &'a str,
    pub direction: &'a str,
    pub protocol: &'a str,
    pub src: (&'a str, u16),
    pub dst: (&'a str, u16),
}

impl<'a> View<'a> {
    pub fn new(
        report: &'a StatusReport,
        deltas: &'a [Counts],
        baseline: bool,
        conntrack: Option<&'a [system::Entry]>,
        conntrack_age_s: f64,
        ruleset: Option<&'a system::Ruleset>,
    ) -> View<'a> {
        let role = |r: &str| -> Vec<&'a str> {
            let mut names: Vec<&'a str> = report
                .interfaces
                .iter()
                .filter(|i| i.role == r)
                .map(|i| i.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        };
        View {
            report,
            deltas,
            baseline,
            conntrack,
            conntrack_age_s,
            ruleset,
            lan: role("lan"),
            wan: role("wan"),
            index: std::cell::OnceCell::new(),
            joins: std::cell::OnceCell::new(),
            rows: None,
            recent: std::cell::OnceCell::new(),
            conntrack_table: None,
            own_table: std::cell::OnceCell::new(),
        }
    }

    /// Reads conntrack through `table`, indexed when it was read.
    pub fn with_conntrack_table(
        mut self,
        table: Option<&'a conntrack_table::ConntrackTable>,
    ) -> View<'a> {
        if let Some(t) = table {
            self.conntrack = Some(&t.entries);
            self.conntrack_table = Some(t);
        }
        self
    }

    /// The conntrack entries indexed (`None` when conntrack cannot be read).
    pub fn conntrack_index(&self) -> Option<&conntrack_table::ConntrackTable> {
        match self.conntrack_table {
            Some(t) => Some(t),
            None => self.conntrack.map(|e| {
                self.own_table
                    .get_or_init(|| conntrack_table::ConntrackTable::new(e.to_vec()))
            }),
        }
    }

    /// The conntrack entries a signalling join can use: those with a helper attached
    /// and those whose original tuple is a signalling flow's, in table order. Found
    /// from the flows' side: a look-up per signalling flow, not per entry.
    pub fn conntrack_candidates(&self) -> Vec<&system::Entry> {
        let Some(t) = self.conntrack_index() else {
            return Vec::new();
        };
        t.helpers_and(self.joins().keys())
            .into_iter()
            .map(|i| &t.entries[i])
            .collect()
    }

    /// Looks flows up through `rows`, the rows `report.flows` was lent by.
    pub fn with_rows(mut self, rows: Option<&'a crate::flows::rows::FlowRows>) -> View<'a> {
        self.rows = rows.filter(|r| r.len() == self.report.flows.len());
        self
    }

    /// The flow with kernel key `k`, through the rows.
    fn by_key(&self, k: &monitor_common::FlowKey) -> Option<&'a FlowStatus> {
        let i = self.rows?.position(k)?;
        self.report.flows.get(i)
    }

    /// The kernel key of `id` on interface index `ifindex`; `None` when its text does
    /// not parse (then it names no flow).
    fn key_of(id: &FlowId<'_>, ifindex: u32) -> Option<monitor_common::FlowKey> {
        use monitor_common::flow::{FAMILY_V4, FAMILY_V6};
        let src: std::net::IpAddr = id.src.0.parse().ok()?;
        let dst: std::net::IpAddr = id.dst.0.parse().ok()?;
        let bytes = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v) => monitor_common::FlowKey::v4_mapped(v.octets()),
            std::net::IpAddr::V6(v) => v.octets(),
        };
        let family = match (src, dst) {
            (std::net::IpAddr::V4(_), std::net::IpAddr::V4(_)) => FAMILY_V4,
            (std::net::IpAddr::V6(_), std::net::IpAddr::V6(_)) => FAMILY_V6,
            _ => return None,
        };
        let protocol = match id.protocol {
            "icmp" => 1,
            "tcp" => 6,
            "udp" => 17,
            "icmpv6" => 58,
            other => other.parse().ok()?,
        };
        let direction = match id.direction {
            "ingress" => monitor_common::Direction::Ingress as u8,
            "egress" => monitor_common::Direction::Egress as u8,
            _ => return None,
        };
        Some(monitor_common::FlowKey {
            src_addr: bytes(src),
            dst_addr: bytes(dst),
            ifindex,
            src_port: id.src.1,
            dst_port: id.dst.1,
            protocol,
            family,
            direction,
            _pad: 0,
        })
    }

    /// The flows conntrack entries join with, indexed on first use.
    pub fn joins(&self) -> &conntrack_join::Joins<'a> {
        self.joins.get_or_init(|| {
            conntrack_join::Joins::new(self.of_interest(Interest::Signalling), |f| self.is_lan(f))
        })
    }

    pub fn flow<'k>(&'k self, id: &FlowId<'k>) -> Option<&'a FlowStatus> {
        if self.rows.is_some() {
            // The interface by name: its index now and the ones it had before.
            return self
                .report
                .interfaces
                .iter()
                .filter(|i| i.name == id.interface)
                .flat_map(|i| {
                    i.previous_ifindexes
                        .iter()
                        .chain(std::iter::once(&i.ifindex))
                })
                .filter(|ifindex| **ifindex != 0)
                .find_map(|ifindex| self.by_key(&Self::key_of(id, *ifindex)?));
        }
        // The key type is covariant: the index keyed by the report's strings can be
        // searched with a key borrowing shorter-lived ones.
        let index: &'k HashMap<FlowId<'k>, usize> = self.index();
        index.get(id).map(|&i| &self.report.flows[i])
    }

    fn index(&self) -> &HashMap<FlowId<'a>, usize> {
        self.index.get_or_init(|| {
            let flows = &self.report.flows;
            let mut index = HashMap::with_capacity_and_hasher(flows.len(), Default::default());
            for (i, f) in flows.iter().enumerate() {
                index.insert(id(f), i);
            }
            index
        })
    }

    /// What `f` (a flow of this view's report) counted since the last poll.
    pub fn delta(&self, f: &FlowStatus) -> Counts {
        self.position(f)
            .or_else(|| self.index().get(&id(f)).copied())
            .and_then(|i| self.deltas.get(i))
            .copied()
            .unwrap_or_default()
    }

    /// Where `f` is in the report's flows when it is one of them (not a copy): its
    /// place from its address, without hashing its text (every detector asks this of
    /// every flow it judges).
    fn position(&self, f: &FlowStatus) -> Option<usize> {
        let flows = &self.report.flows;
        let size = std::mem::size_of::<FlowStatus>();
        let start = flows.as_ptr() as usize;
        let offset = (f as *const FlowStatus as usize).checked_sub(start)?;
        let i = offset / size;
        (offset % size == 0 && i < flows.len() && std::ptr::eq(&flows[i], f)).then_some(i)
    }

    pub fn is_lan(&self, f: &FlowStatus) -> bool {
        self.lan.contains(&f.interface.as_str())
    }

    pub fn is_wan(&self, f: &FlowStatus) -> bool {
        self.wan.contains(&f.interface.as_str())
    }

    pub fn wan_interfaces(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.wan.iter().copied()
    }

    pub fn lan_interfaces(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.lan.iter().copied()
    }

    pub fn has_lan(&self) -> bool {
        !self.lan.is_empty()
    }

    pub fn has_wan(&self) -> bool {
        !self.wan.is_empty()
    }

    /// Leaving the site towards a Webex peer: LAN ingress (before NAT) or WAN egress.
    pub fn is_outbound(&self, f: &FlowStatus) -> bool {
        f.dst_addr == f.peer_addr
            && f.dst_port == f.peer_port
            && ((self.is_lan(f) && f.direction == "ingress")
                || (self.is_wan(f) && f.direction == "egress"))
    }

    /// The flow the other way on the same interface (replies to `f`).
    pub fn reverse(&self, f: &'a FlowStatus) -> Option<&'a FlowStatus> {
        if let (Some(rows), Some(i)) = (self.rows, self.position(f)) {
            let k = rows.key(i);
            return self.by_key(&monitor_common::FlowKey {
                src_addr: k.dst_addr,
                dst_addr: k.src_addr,
                src_port: k.dst_port,
                dst_port: k.src_port,
                direction: if k.direction == monitor_common::Direction::Ingress as u8 {
                    monitor_common::Direction::Egress as u8
                } else {
                    monitor_common::Direction::Ingress as u8
                },
                ..*k
            });
        }
        let direction = if f.direction == "ingress" {
            "egress"
        } else {
            "ingress"
        };
        self.flow(&FlowId {
            interface: &f.interface,
            direction,
            protocol: &f.protocol,
            src: (&f.dst_addr, f.dst_port),
            dst: (&f.src_addr, f.src_port),
        })
    }

    /// Active flows of the report.
    pub fn flows(&self) -> impl Iterator<Item = &'a FlowStatus> {
        self.report.flows.iter()
    }

    /// The flows of `interest` (listed by the rows when the view has them).
    pub fn of_interest(&self, interest: Interest) -> Box<dyn Iterator<Item = &'a FlowStatus> + '_> {
        match self.rows {
            Some(rows) => Box::new(
                rows.of_interest(interest)
                    .iter()
                    .map(|&i| &self.report.flows[i]),
            ),
            None => Box::new(self.flows().filter(move |f| interest.of_status(f))),
        }
    }

    /// The flows that counted anything since the last poll (the rest have nothing new
    /// to judge).
    pub fn changed(&self) -> Box<dyn Iterator<Item = &'a FlowStatus> + '_> {
        if let Some(rows) = self.rows {
            return Box::new(rows.changed().iter().map(|&i| &self.report.flows[i]));
        }
        let idle = Counts::default();
        Box::new(
            self.report
                .flows
                .iter()
                .zip(self.deltas)
                .filter(move |(_, d)| **d != idle)
                .map(|(f, _)| f),
        )
    }

    /// The flows that carried a packet within [`RECENT_S`] or counted anything since
    /// the last poll. Most of a large flow table is idle: a detector whose verdict needs
    /// a flow active within `within_s` (at most [`RECENT_S`]) or counting this poll
    /// judges these instead of every flow; a longer `within_s` gives every flow.
    pub fn recent(&self, within_s: f64) -> Box<dyn Iterator<Item = &'a FlowStatus> + '_> {
        if within_s > RECENT_S {
            return Box::new(self.flows());
        }
        if let Some(rows) = self.rows {
            return Box::new(rows.recent().iter().map(|&i| &self.report.flows[i]));
        }
        let places = self.recent.get_or_init(|| {
            let idle = Counts::default();
            self.report
                .flows
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    f.idle_s < RECENT_S || self.deltas.get(*i).is_some_and(|d| *d != idle)
                })
                .map(|(i, _)| i)
                .collect()
        });
        Box::new(places.iter().map(|&i| &self.report.flows[i]))
    }
}

pub fn id(f: &FlowStatus) -> FlowId<'_> {
    FlowId {
        interface: &f.interface,
        direction: &f.direction,
        protocol: &f.protocol,
        src: (&f.src_addr, f.src_port),
        dst: (&f.dst_addr, f.dst_port),
    }
}

/// Media classes: RTP/SRTP audio, video, or media not yet split.
pub fn is_media(f: &FlowStatus) -> bool {
    matches!(f.class.as_str(), "media" | "audio" | "video")
}

/// "wan0 egress udp 198.51.100.1:40000 -> 203.0.113.10:5004"
pub fn subject(f: &FlowStatus) -> String {
    format!(
        "{} {} {} {}:{} -> {}:{}",
        f.interface, f.direction, f.protocol, f.src_addr, f.src_port, f.dst_addr, f.dst_port
    )
}

impl Failures {
    /// What reading conntrack and joining it with the flows cost (status
    /// `scale.conntrack`).
    pub fn conntrack_cost(&self) -> ConntrackRead {
        self.conntrack_cost.clone()
    }

    pub fn new(cfg: DetectConfig, path_mtu: u32) -> Failures {
        Failures {
            cfg,
            path_mtu,
            ruleset: None,
            ruleset_read: None,
            nat_timeout: nat_timeout::State::default(),
            mtu: mtu::State::default(),
            media: media::State::default(),
            sip_alg: sip_alg::Rewrites::default(),
            blocked: blocked::State::default(),
            vpn: vpn::State::default(),
            tunnel: tunnel::State::default(),
            ssl: ssl::State::default(),
            stun_rtt: Vec::new(),
            conntrack: None,
            conntrack_read: None,
            conntrack_due: None,
            conntrack_cost: ConntrackRead::default(),
        }
    }

    /// Takes the STUN RTTs of the next poll's snapshot (per flow of the requests). Only
    /// requests that left an interface are kept: from a Webex peer towards an inner host,
    /// the time to that host and back (the far side's consent checks).
    pub fn set_stun_rtt(
        &mut self,
        rtt: &[(monitor_common::FlowKey, monitor_common::rtp::RttStats)],
    ) {
        self.stun_rtt.clear();
        self.stun_rtt.extend(
            rtt.iter()
                .filter(|(k, _)| k.direction == monitor_common::Direction::Egress as u8)
                .copied(),
        );
    }

    /// Takes the servers' certificates the learner read since the last poll
    /// (`ssl_inspection`) with the kernel's TCP handshake RTTs of the same snapshot, at
    /// `now_unix_s`.
    pub fn set_server_certs(
        &mut self,
        certs: Vec<crate::learn::certs::ServerCert>,
        handshakes: &[(monitor_common::FlowKey, u64)],
        now_unix_s: u64,
    ) {
        self.ssl.add(certs, handshakes, &self.cfg, now_unix_s);
    }

    /// The detectors' tables between polls (status `detectors`).
    pub fn tables(&self) -> Vec<crate::report::detectors::DetectorTable> {
        vec![
            self.blocked.table(),
            self.tunnel.table(),
            self.vpn.table(),
            self.ssl.table(),
        ]
    }

    /// Runs every failure detector on one poll's report at `now_unix_s`; `deltas` are its
    /// flows' per-poll deltas (see [`crate::anomaly::window`]), `baseline` true on the
    /// first poll.
    pub fn poll(
        &mut self,
        report: &StatusReport,
        deltas: &[Counts],
        baseline: bool,
        now_unix_s: u64,
    ) -> Vec<Finding> {
        self.poll_rows(report, deltas, baseline, None, now_unix_s)
    }

    /// [`Failures::poll`] with the rows `report.flows` was lent by (flows looked up by
    /// their kernel keys).
    pub fn poll_rows(
        &mut self,
        report: &StatusReport,
        deltas: &[Counts],
        baseline: bool,
        rows: Option<&crate::flows::rows::FlowRows>,
        now_unix_s: u64,
    ) -> Vec<Finding> {
        if self
            .ruleset_read
            .is_none_or(|t| t.elapsed() >= RULESET_EVERY)
        {
            self.ruleset = system::ruleset();
            self.ruleset_read = Some(Instant::now());
        }
        if self.conntrack_due.is_none_or(|t| Instant::now() >= t) {
            let started = Instant::now();
            self.conntrack = system::conntrack_entries().map(conntrack_table::ConntrackTable::new);
            let took = started.elapsed();
            self.conntrack_read = Some(started);
            let due = next_conntrack_read(started, took);
            self.conntrack_due = Some(due);
            let c = &mut self.conntrack_cost;
            c.reads += 1;
            c.last_read_ms = took.as_secs_f64() * 1e3;
            c.interval_s = (due - started).as_secs_f64();
            c.entries = self.conntrack.as_ref().map(|t| t.entries.len() as u64);
            c.nat_entries = self.conntrack.as_ref().map_or(0, |t| t.nat_entries);
        }
        let conntrack_age_s = self
            .conntrack_read
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.conntrack_cost.age_s = conntrack_age_s;
        let view = View::new(
            report,
            deltas,
            baseline,
            None,
            conntrack_age_s,
            self.ruleset.as_ref(),
        )
        .with_rows(rows)
        .with_conntrack_table(self.conntrack.as_ref());
        // The conntrack joins, timed: the index (built on first use) and the three
        // detectors that use it.
        let started = Instant::now();
        let mut findings = Vec::new();
        findings.extend(sip_alg::detect(&view, &mut self.sip_alg, now_unix_s));
        let mut joins = started.elapsed();
        findings.extend(self.media.detect(&view, &self.cfg, now_unix_s));
        let started = Instant::now();
        findings.extend(self.nat_timeout.detect(&view, &self.cfg, now_unix_s));
        findings.extend(nat_exhaustion::detect(&view, &self.cfg));
        joins += started.elapsed();
        self.conntrack_cost.last_join_ms = joins.as_secs_f64() * 1e3;
        findings.extend(self.blocked.detect(&view, now_unix_s));
        findings.extend(self.tunnel.detect(&view, now_unix_s));
        findings.extend(
            self.vpn
                .detect(&view, &self.cfg, &self.stun_rtt, now_unix_s),
        );
        findings.extend(self.ssl.detect(&self.cfg, &self.stun_rtt, now_unix_s));
        findings.extend(
            self.mtu
                .detect(&view, self.path_mtu, system::too_big_drops(), now_unix_s),
        );
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::report;
    use crate::flows::rows::FlowRows;
    use monitor_common::{Class, FlowKey, FlowStats};

    /// A view with the rows finds the same flows by key as one without them by text:
    /// each flow's reverse, each flow by its identity, and the recent, changed and
    /// interesting flows.
    #[test]
    fn a_view_with_rows_finds_what_one_without_them_finds() {
        let iface = |name: &str, ifindex, role: &str| crate::status::model::InterfaceStatus {
            name: name.into(),
            ifindex,
            role: role.into(),
            ..Default::default()
        };
        let interfaces = vec![iface("lan0", 2, "lan"), iface("wan0", 3, "wan")];
        let flow = |src: [u8; 4], sport, dst: [u8; 4], dport, ifindex, direction, class: Class| {
            (
                FlowKey {
                    src_addr: FlowKey::v4_mapped(src),
                    dst_addr: FlowKey::v4_mapped(dst),
                    ifindex,
                    src_port: sport,
                    dst_port: dport,
                    protocol: 17,
                    family: 4,
                    direction,
                    _pad: 0,
                },
                FlowStats {
                    packets: 20,
                    bytes: 4000,
                    last_seen_ns: 9_000_000_000,
                    class: class as u32,
                    webex_side: if src[0] == 203 { 1 } else { 0 },
                    ..Default::default()
                },
            )
        };
        let (lan, peer) = ([192, 0, 2, 10], [203, 0, 113, 10]);
        let flows = vec![
            flow(lan, 40000, peer, 5004, 2, 0, Class::Media),
            flow(peer, 5004, lan, 40000, 2, 1, Class::Media),
            flow(lan, 5060, peer, 5060, 2, 0, Class::SipSignalling),
            flow(lan, 40002, peer, 5004, 3, 1, Class::Media),
            flow(lan, 1234, [198, 51, 100, 7], 51820, 2, 0, Class::NotWebex),
        ];
        let info = report::StaticInfo::for_interfaces(interfaces.clone());
        let snap = crate::kernel::snapshot::Snapshot {
            taken_mono_ns: 10_000_000_000,
            flows: flows.into(),
            ..Default::default()
        };
        let mut rows = FlowRows::new();
        let (r, deltas, baseline) = report::build_rows(
            &info,
            &interfaces,
            &snap,
            snap.taken_mono_ns,
            &mut crate::quality::tracker::Tracker::new(),
            &mut rows,
        );
        let bare = View::new(&r, &deltas, baseline, None, 0.0, None);
        let keyed = View::new(&r, &deltas, baseline, None, 0.0, None).with_rows(Some(&rows));
        let at = |f: Option<&FlowStatus>| f.map(subject);
        for f in &r.flows {
            assert_eq!(at(keyed.reverse(f)), at(bare.reverse(f)), "{}", subject(f));
            assert_eq!(at(keyed.flow(&id(f))), Some(subject(f)));
            assert_eq!(at(bare.flow(&id(f))), Some(subject(f)));
        }
        // The LAN media flow's reply is found; the WAN one has none.
        assert_eq!(
            r.flows.iter().filter(|f| bare.reverse(f).is_some()).count(),
            2
        );
        let list = |it: Box<dyn Iterator<Item = &FlowStatus> + '_>| {
            let mut v: Vec<String> = it.map(subject).collect();
            v.sort();
            v
        };
        assert_eq!(list(keyed.recent(10.0)), list(bare.recent(10.0)));
        assert_eq!(list(keyed.changed()), list(bare.changed()));
        for interest in Interest::ALL {
            assert_eq!(
                list(keyed.of_interest(interest)),
                list(bare.of_interest(interest)),
                "{interest:?}"
            );
        }
        assert_eq!(list(keyed.of_interest(Interest::Signalling)).len(), 1);
        assert_eq!(list(keyed.of_interest(Interest::Tunnel)).len(), 1);
    }

    #[test]
    fn conntrack_reads_take_at_most_a_hundredth_of_the_time() {
        let t = Instant::now();
        // A small table: due again before the next one-second poll.
        assert_eq!(
            next_conntrack_read(t, Duration::from_millis(5)),
            t + Duration::from_millis(500)
        );
        // 100,000 entries: every 45 s.
        assert_eq!(
            next_conntrack_read(t, Duration::from_millis(450)),
            t + Duration::from_secs(45)
        );
    }
}
