//! `media_in_tunnel`: a VPN tunnel (IPsec ESP, ESP in UDP 4500, WireGuard 51820,
//! OpenVPN 1194) from a LAN host whose packets have the cadence and size of voice — about
//! 50 a second (one every 20 ms) of a few hundred bytes — while no Webex media leaves
//! that host directly: likely Webex media inside a VPN without split tunnelling. It is a
//! "likely" finding: any real-time stream of that shape inside the tunnel matches.
//!
//! The kernel tracks tunnel flows although they are not Webex (README "Failure
//! detectors"); their per-poll deltas are kept here (not in the anomaly window, which
//! skips traffic that is not Webex), for at most [`MAX_TUNNELS`] flows. The finding needs
//! [`VOICE_POLLS`] voice-shaped polls within the last [`WINDOW_S`] seconds and no direct
//! Webex media from the host in that window; it clears when either ends.

use crate::fasthash::{HashMap, HashSet};
use std::collections::VecDeque;

use monitor_common::tunnel::{IPPROTO_ESP, tunnel};

use crate::anomaly::{Finding, Severity};

use super::{View, is_media, subject};
use crate::report::detectors::DetectorTable;

pub const ID: &str = "media_in_tunnel";
pub const WINDOW_S: u64 = 10;
/// Voice-shaped polls in the window before the finding opens.
pub const VOICE_POLLS: usize = 5;
/// Voice cadence: packets a second (one every 20 ms is 50; one stream, with slack for
/// poll timing).
pub const VOICE_PPS: (f64, f64) = (40.0, 65.0);
/// Voice size: mean IP bytes a packet, tunnel overhead included.
pub const VOICE_BYTES: (f64, f64) = (60.0, 600.0);
/// Tunnel flows remembered at most.
pub const MAX_TUNNELS: usize = 4096;

pub const REMEDIATION: &str = "Traffic of this host leaves through a VPN tunnel with the \
     cadence of voice while no Webex media leaves it directly: configure split tunnelling \
     on the VPN client so Webex media goes straight to the Webex media ranges.";

#[derive(Clone, Copy)]
struct Poll {
    at: u64,
    packets: u64,
    bytes: u64,
    voice: bool,
}

struct Tunnel {
    /// Counters at the last poll.
    last: (u64, u64),
    polls: VecDeque<Poll>,
}

#[derive(Default)]
pub struct State {
    tunnels: HashMap<String, Tunnel>,
    /// Per inner host: when Webex media last left it directly.
    direct: HashMap<String, u64>,
    /// New tunnel flows not judged because [`MAX_TUNNELS`] were remembered, since start.
    dropped: u64,
}

impl State {
    /// Its table for status `detectors`.
    pub fn table(&self) -> DetectorTable {
        DetectorTable::new(
            ID,
            "tunnel_flows",
            self.tunnels.len(),
            MAX_TUNNELS,
            self.dropped,
        )
    }

    pub fn detect(&mut self, view: &View<'_>, now: u64) -> Vec<Finding> {
        let poll_s = (view.report.daemon.poll_interval_ms.max(1) as f64) / 1000.0;
        // Counting this poll: the flows that counted something.
        for f in view.changed() {
            let outbound = if view.has_lan() {
                view.is_lan(f) && f.direction == "ingress"
            } else {
                f.direction == "egress"
            };
            if outbound && is_media(f) && f.src_addr == f.inner_addr && view.delta(f).packets > 0 {
                self.direct.insert(f.inner_addr.to_string(), now);
            }
        }
        self.direct
            .retain(|_, at| now.saturating_sub(*at) < WINDOW_S);

        let mut seen = HashSet::default();
        let mut out = Vec::new();
        // Flows that are not Webex on a tunnel's protocol or port.
        for f in view.of_interest(super::Interest::Tunnel) {
            let from_lan = if view.has_lan() {
                view.is_lan(f) && f.direction == "ingress"
            } else {
                f.direction == "egress"
            };
            if !from_lan || f.class != "not_webex" {
                continue;
            }
            let protocol = match f.protocol.as_str() {
                "udp" => 17,
                "tcp" => 6,
                other => other.parse().unwrap_or(0),
            };
            let Some(kind) = tunnel(protocol, f.src_port, f.dst_port) else {
                continue;
            };
            let key = subject(f);
            if !self.tunnels.contains_key(&key) && self.tunnels.len() >= MAX_TUNNELS {
                self.dropped += 1;
                continue;
            }
            seen.insert(key.clone());
            let t = self.tunnels.entry(key.clone()).or_insert(Tunnel {
                // First sight: a baseline, its counts so far are history.
                last: (f.packets, f.bytes),
                polls: VecDeque::new(),
            });
            let (dp, db) = if f.packets >= t.last.0 {
                (f.packets - t.last.0, f.bytes.saturating_sub(t.last.1))
            } else {
                (f.packets, f.bytes)
            };
            t.last = (f.packets, f.bytes);
            let pps = dp as f64 / poll_s;
            let size = if dp > 0 { db as f64 / dp as f64 } else { 0.0 };
            let voice = (VOICE_PPS.0..=VOICE_PPS.1).contains(&pps)
                && (VOICE_BYTES.0..=VOICE_BYTES.1).contains(&size);
            t.polls.push_back(Poll {
                at: now,
                packets: dp,
                bytes: db,
                voice,
            });
            t.polls.retain(|p| now.saturating_sub(p.at) < WINDOW_S);
            let voice: Vec<&Poll> = t.polls.iter().filter(|p| p.voice).collect();
            if voice.len() < VOICE_POLLS || self.direct.contains_key(f.src_addr.as_str()) {
                continue;
            }
            let packets: u64 = voice.iter().map(|p| p.packets).sum();
            let bytes: u64 = voice.iter().map(|p| p.bytes).sum();
            let pps = packets as f64 / (voice.len() as f64 * poll_s);
            let size = bytes as f64 / packets as f64;
            let far = if protocol == IPPROTO_ESP {
                f.dst_addr.to_string()
            } else {
                format!("{}:{}", f.dst_addr, f.dst_port)
            };
            out.push(Finding {
                id: ID,
                severity: Severity::Warning,
                subject: key,
                summary: format!(
                    "likely Webex media inside a VPN: {} tunnel from {} to {far} carries \
                     {pps:.0} packets/s of {size:.0} bytes (voice cadence) and no Webex \
                     media leaves {} directly",
                    kind.as_str(),
                    f.src_addr,
                    f.src_addr
                ),
                evidence: vec![
                    ("tunnel".into(), kind.as_str().into()),
                    ("inner_addr".into(), f.src_addr.to_string()),
                    ("concentrator".into(), far),
                    ("packets_per_s".into(), format!("{pps:.1}")),
                    ("mean_packet_bytes".into(), format!("{size:.1}")),
                    (
                        "voice_polls".into(),
                        format!("{} of {}", voice.len(), t.polls.len()),
                    ),
                    ("direct_webex_media_packets".into(), "0".into()),
                    ("window_s".into(), WINDOW_S.to_string()),
                ],
                remediation: REMEDIATION,
            });
        }
        self.tunnels.retain(|k, _| seen.contains(k));
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{anomaly::window::Deltas, status::model::StatusReport};

    /// A LAN host's OpenVPN flow [0] and its direct Webex media [1].
    fn report() -> StatusReport {
        let mut r = crate::status::render::tests::sample_report();
        r.daemon.poll_interval_ms = 1000;
        let lan = r.interfaces[1].name.clone();
        let t = r.flows[0].clone();
        let flow = |dst: (&str, u16), class: &str| {
            let mut f = t.clone();
            f.interface = lan.as_str().into();
            f.direction = "ingress".into();
            f.class = class.into();
            (f.src_addr, f.src_port) = ("192.0.2.10".into(), 40000);
            (f.inner_addr, f.inner_port) = ("192.0.2.10".into(), 40000);
            (f.dst_addr, f.dst_port) = (dst.0.into(), dst.1);
            (f.peer_addr, f.peer_port) = (dst.0.into(), dst.1);
            (f.packets, f.bytes) = (0, 0);
            f
        };
        r.flows = vec![
            flow(("198.51.100.2", 1194), "not_webex"),
            flow(("203.0.113.10", 5004), "audio"),
        ];
        r
    }

    struct Run {
        deltas: Deltas,
        state: State,
        now: u64,
    }

    impl Run {
        fn poll(&mut self, r: &StatusReport) -> Vec<Finding> {
            let baseline = self.deltas.before_baseline();
            let d = self.deltas.update(&r.flows);
            self.now += 1;
            self.state
                .detect(&View::new(r, &d, baseline, None, 0.0, None), self.now)
        }
    }

    #[test]
    fn voice_cadence_in_a_tunnel_without_direct_media() {
        let mut r = report();
        let mut run = Run {
            deltas: Deltas::default(),
            state: State::default(),
            now: 100,
        };
        assert!(run.poll(&r).is_empty());
        // Four voice-shaped polls: not yet.
        for _ in 0..VOICE_POLLS - 1 {
            (r.flows[0].packets, r.flows[0].bytes) =
                (r.flows[0].packets + 50, r.flows[0].bytes + 50 * 284);
            assert!(run.poll(&r).is_empty());
        }
        (r.flows[0].packets, r.flows[0].bytes) =
            (r.flows[0].packets + 50, r.flows[0].bytes + 50 * 284);
        let v = run.poll(&r);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].id, v[0].severity), (ID, Severity::Warning));
        let ev: Vec<(&str, &str)> = v[0]
            .evidence
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ev,
            [
                ("tunnel", "openvpn"),
                ("inner_addr", "192.0.2.10"),
                ("concentrator", "198.51.100.2:1194"),
                ("packets_per_s", "50.0"),
                ("mean_packet_bytes", "284.0"),
                ("voice_polls", "5 of 6"),
                ("direct_webex_media_packets", "0"),
                ("window_s", "10")
            ]
        );
        // The host's own Webex media flows directly: not media in the tunnel.
        r.flows[1].packets += 50;
        (r.flows[0].packets, r.flows[0].bytes) =
            (r.flows[0].packets + 50, r.flows[0].bytes + 50 * 284);
        assert!(run.poll(&r).is_empty());
    }

    #[test]
    fn bulk_or_sparse_tunnel_traffic_is_not_voice() {
        let mut r = report();
        let mut run = Run {
            deltas: Deltas::default(),
            state: State::default(),
            now: 100,
        };
        run.poll(&r);
        for i in 0..2 * WINDOW_S {
            // Alternating bulk (full-size packets) and keepalives (one a second).
            let (p, b) = if i % 2 == 0 {
                (50, 50 * 1400)
            } else {
                (1, 120)
            };
            (r.flows[0].packets, r.flows[0].bytes) = (r.flows[0].packets + p, r.flows[0].bytes + b);
            assert!(run.poll(&r).is_empty());
        }
    }

    #[test]
    fn tunnel_table_holds_its_cap_and_counts_each_refusal() {
        let mut r = report();
        let t = r.flows[0].clone();
        // MAX_TUNNELS + 7 OpenVPN flows from distinct source ports.
        r.flows = (0..MAX_TUNNELS + 7)
            .map(|i| {
                let mut f = t.clone();
                f.src_port = 1024 + i as u16;
                f.inner_port = f.src_port;
                f
            })
            .collect();
        let mut run = Run {
            deltas: Deltas::default(),
            state: State::default(),
            now: 100,
        };
        run.poll(&r);
        let t = run.state.table();
        assert_eq!(
            (t.detector.as_str(), t.table.as_str()),
            (ID, "tunnel_flows")
        );
        assert_eq!(
            (t.cap, t.entries, t.dropped),
            (MAX_TUNNELS as u64, MAX_TUNNELS as u64, 7)
        );
        // The next poll turns the same 7 away again: counted each time.
        run.poll(&r);
        let t = run.state.table();
        assert_eq!((t.entries, t.dropped), (MAX_TUNNELS as u64, 14));
    }
}
