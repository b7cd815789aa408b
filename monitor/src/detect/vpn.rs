//! `vpn_hairpin`: Webex media of hosts in the corporate VPN's client pools
//! (`[detect] vpn_client_pools`). Where the VPN concentrator sits behind a monitored LAN
//! interface, a remote worker's media goes from home to the concentrator, then out to
//! Webex through this gateway and back the same way: the "VPN without split tunnelling"
//! failure, with the extra latency and loss of two trips through the tunnel.
//!
//! One finding per pool host with Webex media (UDP, on the LAN side when a LAN interface
//! is monitored) in the last [`WINDOW_S`] seconds; it clears when that media has been
//! gone for the window (plus the book's hold-down).

use crate::fasthash::HashMap;
use std::{
    collections::{BTreeSet, VecDeque},
    net::IpAddr,
};

use crate::{
    anomaly::{Finding, Severity},
    config::{Prefix, detect::DetectConfig},
};

use monitor_common::{FlowKey, rtp::RttStats};

use super::{View, is_media};

pub const HAIRPIN: &str = "vpn_hairpin";
/// Seconds of recent polls judged.
pub const WINDOW_S: u64 = 10;
/// Pool hosts remembered at most (a few polls and peers each).
pub const MAX_HOSTS: usize = 1024;
/// Peers listed in the evidence at most.
const MAX_PEERS_SHOWN: usize = 4;

pub const HAIRPIN_REMEDIATION: &str = "Configure split tunnelling on the VPN client so \
     Webex media (the Webex media ranges, UDP 5004, 9000 and 19560-65535) goes directly to \
     the internet instead of through the corporate VPN and back out of this site.";

struct Host {
    pool: Prefix,
    /// Per poll with media: when, and its packets.
    polls: VecDeque<(u64, u64)>,
    peers: BTreeSet<String>,
}

#[derive(Default)]
pub struct State {
    hosts: HashMap<IpAddr, Host>,
    /// New pool hosts not judged because [`MAX_HOSTS`] were remembered, since start.
    dropped: u64,
}

impl State {
    /// Its table for status `detectors`.
    pub fn table(&self) -> crate::report::detectors::DetectorTable {
        crate::report::detectors::DetectorTable::new(
            HAIRPIN,
            "pool_hosts",
            self.hosts.len(),
            MAX_HOSTS,
            self.dropped,
        )
    }

    /// `stun_rtt`: STUN RTTs per flow of requests that left an interface (see
    /// [`super::Failures::set_stun_rtt`]).
    pub fn detect(
        &mut self,
        view: &View<'_>,
        cfg: &DetectConfig,
        stun_rtt: &[(FlowKey, RttStats)],
        now: u64,
    ) -> Vec<Finding> {
        if cfg.vpn_client_pools.is_empty() {
            return Vec::new();
        }
        let mut this_poll: HashMap<IpAddr, (Prefix, u64, Vec<String>)> = HashMap::default();
        // Judged on this poll's packets: the flows that counted something.
        for f in view.changed() {
            let side = if view.has_lan() { view.is_lan(f) } else { true };
            if f.protocol != "udp" || !is_media(f) || !side {
                continue;
            }
            let packets = view.delta(f).packets;
            if packets == 0 {
                continue;
            }
            let Ok(inner) = f.inner_addr.parse::<IpAddr>() else {
                continue;
            };
            let Some(pool) = cfg.vpn_client_pools.iter().find(|p| p.contains(inner)) else {
                continue;
            };
            let e = this_poll.entry(inner).or_insert((*pool, 0, Vec::new()));
            e.1 += packets;
            e.2.push(format!("{}:{}", f.peer_addr, f.peer_port));
        }
        for (inner, (pool, packets, peers)) in this_poll {
            if !self.hosts.contains_key(&inner) && self.hosts.len() >= MAX_HOSTS {
                self.dropped += 1;
                continue;
            }
            let h = self.hosts.entry(inner).or_insert_with(|| Host {
                pool,
                polls: VecDeque::new(),
                peers: BTreeSet::new(),
            });
            h.polls.push_back((now, packets));
            h.peers.extend(peers);
        }
        self.hosts.retain(|_, h| {
            h.polls.retain(|(at, _)| now.saturating_sub(*at) < WINDOW_S);
            !h.polls.is_empty()
        });
        let mut out: Vec<Finding> = self
            .hosts
            .iter()
            .map(|(inner, h)| {
                let packets: u64 = h.polls.iter().map(|(_, p)| p).sum();
                let peers: Vec<&str> = h
                    .peers
                    .iter()
                    .take(MAX_PEERS_SHOWN)
                    .map(String::as_str)
                    .collect();
                let leg = vpn_leg_rtt(view, stun_rtt, *inner);
                let rtt = view
                    .report
                    .calls
                    .iter()
                    .filter(|c| c.inner_addr == inner.to_string())
                    .filter_map(|c| c.rtt_ms)
                    .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
                Finding {
                    id: HAIRPIN,
                    severity: Severity::Warning,
                    subject: format!("vpn client {inner}"),
                    summary: format!(
                        "Webex media of VPN client {inner} (pool {}) hairpins through the \
                         corporate VPN: {packets} packets in {WINDOW_S} s",
                        h.pool
                    ),
                    evidence: vec![
                        ("inner_addr".into(), inner.to_string()),
                        ("vpn_client_pool".into(), h.pool.to_string()),
                        ("peers".into(), peers.join(", ")),
                        ("media_packets".into(), packets.to_string()),
                        (
                            "call_rtt_ms".into(),
                            rtt.map_or("-".into(), |r| format!("{r:.1}")),
                        ),
                        (
                            "vpn_leg_rtt_ms".into(),
                            leg.map_or("-".into(), |r| format!("{r:.1}")),
                        ),
                        ("window_s".into(), WINDOW_S.to_string()),
                    ],
                    remediation: HAIRPIN_REMEDIATION,
                }
            })
            .collect();
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }
}

/// The extra RTT of the hairpin: the far side's STUN consent checks (requests from a
/// Webex peer to `inner`) leave this gateway's LAN interface and the answers come back
/// through it, so their RTT there is the trip to the VPN client and back through the
/// tunnel. The latest measured request flow's last sample, in ms.
fn vpn_leg_rtt(view: &View<'_>, stun_rtt: &[(FlowKey, RttStats)], inner: IpAddr) -> Option<f64> {
    let lan: Vec<u32> = view
        .report
        .interfaces
        .iter()
        .filter(|i| i.role == "lan")
        .map(|i| i.ifindex)
        .collect();
    stun_rtt
        .iter()
        .filter(|(k, r)| lan.contains(&k.ifindex) && k.dst_ip() == inner && r.samples > 0)
        .max_by_key(|(_, r)| r.last_at_ns)
        .map(|(_, r)| r.last_ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{anomaly::window::Deltas, status::model::StatusReport};

    /// Media to the node from a VPN pool host [0] and from a plain LAN host [1].
    fn report() -> StatusReport {
        let mut r = crate::status::render::tests::sample_report();
        let lan = r.interfaces[1].name.clone();
        let t = r.flows[0].clone();
        let flow = |inner: &str| {
            let mut f = t.clone();
            f.interface = lan.as_str().into();
            f.direction = "ingress".into();
            f.class = "audio".into();
            (f.src_addr, f.src_port) = (inner.into(), 52000);
            (f.inner_addr, f.inner_port) = (inner.into(), 52000);
            (f.dst_addr, f.dst_port) = ("203.0.113.10".into(), 5004);
            (f.peer_addr, f.peer_port) = ("203.0.113.10".into(), 5004);
            f.packets = 0;
            f
        };
        r.flows = vec![flow("192.0.2.130"), flow("192.0.2.10")];
        r
    }

    #[test]
    fn media_of_a_pool_host_hairpins_until_it_stops() {
        let cfg: DetectConfig = toml::from_str("vpn_client_pools = [\"192.0.2.128/26\"]").unwrap();
        let (mut deltas, mut state, mut now) = (Deltas::default(), State::default(), 100);
        let mut r = report();
        let mut poll = |r: &StatusReport| {
            let baseline = deltas.before_baseline();
            let d = deltas.update(&r.flows);
            now += 1;
            state.detect(&View::new(r, &d, baseline, None, 0.0, None), &cfg, &[], now)
        };
        assert!(poll(&r).is_empty());
        let mut v = Vec::new();
        for _ in 0..3 {
            r.flows[0].packets += 50;
            r.flows[1].packets += 50;
            v = poll(&r);
        }
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].id, v[0].severity), (HAIRPIN, Severity::Warning));
        assert_eq!(v[0].subject, "vpn client 192.0.2.130");
        let ev: Vec<(&str, &str)> = v[0]
            .evidence
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ev,
            [
                ("inner_addr", "192.0.2.130"),
                ("vpn_client_pool", "192.0.2.128/26"),
                ("peers", "203.0.113.10:5004"),
                ("media_packets", "150"),
                ("call_rtt_ms", "-"),
                ("vpn_leg_rtt_ms", "-"),
                ("window_s", "10")
            ]
        );
        // Media stops: open while its last poll is in the window, then gone.
        for _ in 0..WINDOW_S - 1 {
            assert_eq!(poll(&r).len(), 1);
        }
        assert!(poll(&r).is_empty());
    }

    #[test]
    fn the_far_sides_consent_checks_on_the_lan_give_the_vpn_legs_rtt() {
        let r = report();
        let d = vec![Default::default(); r.flows.len()];
        let view = View::new(&r, &d, false, None, 0.0, None);
        let key = |ifindex, direction: monitor_common::Direction, dst: [u8; 4]| FlowKey {
            src_addr: FlowKey::v4_mapped([203, 0, 113, 10]),
            dst_addr: FlowKey::v4_mapped(dst),
            ifindex,
            src_port: 5004,
            dst_port: 52000,
            protocol: 17,
            family: monitor_common::flow::FAMILY_V4,
            direction: direction as u8,
            _pad: 0,
        };
        let rtt = |ms: u64, at: u64| RttStats {
            last_ns: ms * 1_000_000,
            min_ns: ms * 1_000_000,
            max_ns: ms * 1_000_000,
            sum_ns: ms * 1_000_000,
            samples: 1,
            last_at_ns: at,
        };
        use monitor_common::Direction::Egress;
        let host: IpAddr = "192.0.2.130".parse().unwrap();
        let entries = [
            // On the WAN interface (2): not the LAN leg.
            (key(2, Egress, [192, 0, 2, 130]), rtt(90, 9)),
            // On the LAN interface (12), older and newer: the newer counts.
            (key(12, Egress, [192, 0, 2, 130]), rtt(25, 5)),
            (key(12, Egress, [192, 0, 2, 130]), rtt(31, 8)),
            // Another host.
            (key(12, Egress, [192, 0, 2, 131]), rtt(70, 9)),
        ];
        assert_eq!(vpn_leg_rtt(&view, &entries, host), Some(31.0));
        assert_eq!(vpn_leg_rtt(&view, &entries[..1], host), None);
    }

    #[test]
    fn no_pools_no_finding() {
        let cfg = DetectConfig::default();
        let mut r = report();
        let mut deltas = Deltas::default();
        let mut state = State::default();
        deltas.update(&r.flows);
        r.flows[0].packets = 100;
        let d = deltas.update(&r.flows);
        assert!(
            state
                .detect(&View::new(&r, &d, false, None, 0.0, None), &cfg, &[], 1)
                .is_empty()
        );
    }
}
