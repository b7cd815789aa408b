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

use std::collections::{HashMap, HashSet, VecDeque};

use monitor_common::tunnel::{IPPROTO_ESP, tunnel};

use crate::anomaly::{Finding, Severity};

use super::{View, is_media, subject};

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
}

impl State {
    pub fn detect(&mut self, view: &View<'_>, now: u64) -> Vec<Finding> {
        let poll_s = (view.report.daemon.poll_interval_ms.max(1) as f64) / 1000.0;
        for f in view.flows() {
            let outbound = if view.has_lan() {
                view.is_lan(f) && f.direction == "ingress"
            } else {
                f.direction == "egress"
            };
            if outbound && is_media(f) && f.src_addr == f.inner_addr && view.delta(f).packets > 0 {
                self.direct.insert(f.inner_addr.clone(), now);
            }
        }
        self.direct
            .retain(|_, at| now.saturating_sub(*at) < WINDOW_S);

        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for f in view.flows() {
            let from_lan = if view.has_lan() {
                view.is_lan(f) && f.direction == "ingress"
            } else {
                f.direction == "egress"
            };
            let protocol = match f.protocol.as_str() {
                "udp" => 17,
                "tcp" => 6,
                other => other.parse().unwrap_or(0),
            };
            let Some(kind) = tunnel(protocol, f.src_port, f.dst_port) else {
                continue;
            };
            if !from_lan || f.class != "not_webex" {
                continue;
            }
            let key = subject(f);
            if !self.tunnels.contains_key(&key) && self.tunnels.len() >= MAX_TUNNELS {
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
            if voice.len() < VOICE_POLLS || self.direct.contains_key(&f.src_addr) {
                continue;
            }
            let packets: u64 = voice.iter().map(|p| p.packets).sum();
            let bytes: u64 = voice.iter().map(|p| p.bytes).sum();
            let pps = packets as f64 / (voice.len() as f64 * poll_s);
            let size = bytes as f64 / packets as f64;
            let far = if protocol == IPPROTO_ESP {
                f.dst_addr.clone()
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
                    ("inner_addr".into(), f.src_addr.clone()),
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
