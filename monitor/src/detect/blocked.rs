//! `webex_blocked_here` and `signalling_blocked`: Webex traffic that leaves the site's
//! phones and does not get through.
//!
//! - `webex_blocked_here`: Webex packets (UDP or TCP) enter the gateway on a LAN interface
//!   and none leaves on a WAN interface towards the same peer and port, over the last
//!   [`WINDOW_S`] seconds: this gateway drops them (or answers them itself with a reset or
//!   ICMP). The WAN copy is found by the NAT binding in conntrack, else by the same source
//!   port, else any flow to that peer and port (so a translation the daemon cannot see
//!   never makes a false finding). Packets counted in this poll are judged from the next
//!   one (a packet between its two copies is not blocked). The nftables rules that count
//!   and drop or reject and whose counter moved in the window are named.
//! - `signalling_blocked`: TCP SYNs to a Webex signalling or HTTPS control port
//!   (classes `sip_signalling` and `https_control`: 5061, 5062, 8934 and 443 by default)
//!   that left a WAN interface and got no SYN/ACK: answered by a reset, by ICMP
//!   unreachable, or unanswered for [`SYN_ANSWER_S`] seconds. One finding per peer, port
//!   and cause. Only SYNs sent within the last [`WINDOW_S`] seconds count.
//!
//! Both clear once the condition has been absent for the book's clear hold-down: traffic
//! that passes again (or stops) leaves the window within [`WINDOW_S`] seconds.

use crate::fasthash::{HashMap, HashSet};
use std::collections::{BTreeMap, VecDeque};

use crate::{
    anomaly::{Finding, Severity},
    status::model::FlowStatus,
};

use super::{View, nft_counters, subject};
use crate::report::detectors::DetectorTable;

pub const HERE: &str = "webex_blocked_here";
pub const SIGNALLING: &str = "signalling_blocked";
/// Seconds of recent polls both detectors judge.
pub const WINDOW_S: u64 = 10;
/// Seconds a SYN may wait for its SYN/ACK before it counts as unanswered.
pub const SYN_ANSWER_S: f64 = 3.0;
/// The classes whose TCP handshakes are judged by `signalling_blocked`.
const SIGNALLING_CLASSES: [&str; 2] = ["sip_signalling", "https_control"];
/// Flows remembered by `webex_blocked_here` at most (each a few polls of counts): a
/// flood of new LAN flows cannot grow the daemon beyond it.
pub const MAX_TRACKED: usize = 4096;

pub const HERE_REMEDIATION: &str = "This gateway drops or refuses Webex traffic from the \
     LAN: allow the Webex ranges outbound in its forward path (TCP 5061, 5062, 8934 and 443; \
     UDP 5004, 9000 and 19560-65535); the rules named in the evidence counted the drops.";
pub const SIGNALLING_REMEDIATION: &str = "Connections to Webex signalling or HTTPS leave \
     this site and are refused or unanswered upstream: have the upstream firewall or provider \
     allow TCP 5061, 5062, 8934 and 443 to the Webex ranges (a reset or ICMP names a device \
     that refuses; no answer is a silent drop).";

/// One poll of one LAN flow: packets in, packets of its WAN copy out, and packets back
/// to the LAN host on the LAN side.
#[derive(Clone, Copy)]
struct Poll {
    at: u64,
    lan: u64,
    wan: u64,
    answers: u64,
}

#[derive(Default)]
pub struct State {
    /// Per LAN ingress flow (subject): its polls within the window.
    here: HashMap<String, VecDeque<Poll>>,
    rules: nft_counters::Moves,
    /// Whether the last ruleset read worked (`None`: not read yet).
    rules_readable: Option<bool>,
    /// New LAN flows not judged because [`MAX_TRACKED`] were remembered, since start.
    dropped: u64,
}

impl State {
    /// Its table for status `detectors`.
    pub fn table(&self) -> DetectorTable {
        DetectorTable::new(
            HERE,
            "lan_flows",
            self.here.len(),
            MAX_TRACKED,
            self.dropped,
        )
    }

    pub fn detect(&mut self, view: &View<'_>, now: u64) -> Vec<Finding> {
        let mut out = self.here(view, now, nft_counters::read);
        out.extend(signalling(view));
        out
    }

    /// `webex_blocked_here`; `read_rules` reads the nftables counters (only in polls
    /// with something to name).
    fn here(
        &mut self,
        view: &View<'_>,
        now: u64,
        read_rules: impl FnOnce() -> Option<Vec<nft_counters::Rule>>,
    ) -> Vec<Finding> {
        if !view.has_lan() || !view.has_wan() {
            return Vec::new();
        }
        // WAN egress flows by protocol and peer, idle ones too (a twin that stopped is
        // the sign): made on first use, when a LAN flow is judged.
        let wan = std::cell::OnceCell::new();
        let wan = || {
            wan.get_or_init(|| {
                let mut wan: HashMap<(&str, &str, u16), Vec<&FlowStatus>> = HashMap::default();
                for f in view.flows() {
                    if view.is_wan(f) && f.direction == "egress" && f.class != "not_webex" {
                        wan.entry((&f.protocol, &f.dst_addr, f.dst_port))
                            .or_default()
                            .push(f);
                    }
                }
                wan
            })
        };
        // The NAT's source port per LAN connection (orig tuple → reply dport), from the
        // conntrack index.
        let nat = view.conntrack_index();
        let mut seen = HashSet::default();
        // The flows with polls in the window, with their subjects.
        let mut tracked: Vec<(&FlowStatus, String)> = Vec::new();
        // A flow idle for longer than the window has no polls with packets left in it.
        for f in view.recent(WINDOW_S as f64) {
            let outbound_lan = view.is_lan(f)
                && f.direction == "ingress"
                && view.is_outbound(f)
                && f.class != "not_webex"
                && (f.protocol == "udp" || f.protocol == "tcp");
            if !outbound_lan {
                continue;
            }
            let lan = view.delta(f).packets;
            // Nothing new and nothing remembered: no string built (most flows, most polls).
            if lan == 0 && self.here.is_empty() {
                continue;
            }
            let key = subject(f);
            if lan == 0 && !self.here.contains_key(&key) {
                continue;
            }
            if !self.here.contains_key(&key) && self.here.len() >= MAX_TRACKED {
                self.dropped += 1;
                continue;
            }
            let twins = wan()
                .get(&(f.protocol.as_str(), f.dst_addr.as_str(), f.dst_port))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let translated = nat.and_then(|t| t.of_flow(f)).map(|e| e.reply.dport);
            let port = translated.unwrap_or(f.src_port);
            let same_port: Vec<&&FlowStatus> =
                twins.iter().filter(|t| t.src_port == port).collect();
            let wan_packets: u64 = if same_port.is_empty() {
                twins.iter().map(|t| view.delta(t).packets).sum()
            } else {
                same_port.iter().map(|t| view.delta(t).packets).sum()
            };
            let answers = view.reverse(f).map_or(0, |r| view.delta(r).packets);
            let polls = self.here.entry(key.clone()).or_default();
            polls.push_back(Poll {
                at: now,
                lan,
                wan: wan_packets,
                answers,
            });
            seen.insert(key.clone());
            tracked.push((f, key));
        }
        // Forget what left the window, and flows gone from the report.
        self.here.retain(|k, polls| {
            polls.retain(|p| now.saturating_sub(p.at) < WINDOW_S);
            seen.contains(k) && polls.iter().any(|p| p.lan > 0)
        });

        let mut blocked: Vec<(&FlowStatus, u64, u64)> = Vec::new();
        for (f, key) in tracked {
            let Some(polls) = self.here.get(&key) else {
                continue;
            };
            let judged: u64 = polls.iter().filter(|p| p.at < now).map(|p| p.lan).sum();
            let lan: u64 = polls.iter().map(|p| p.lan).sum();
            let wan: u64 = polls.iter().map(|p| p.wan).sum();
            let answers: u64 = polls.iter().map(|p| p.answers).sum();
            if judged > 0 && wan == 0 {
                blocked.push((f, lan, answers));
            }
        }
        // The counters are read in every poll in which some LAN packets had no WAN copy
        // (the first such read is their baseline), so the poll that opens the finding
        // can already name the rules that moved.
        let suspect = self.here.values().any(|polls| {
            polls
                .back()
                .is_some_and(|p| p.at == now && p.lan > 0 && p.wan == 0)
        });
        if !suspect && blocked.is_empty() {
            return Vec::new();
        }
        match read_rules() {
            Some(rules) => {
                self.rules.update(&rules, now);
                self.rules_readable = Some(true);
            }
            None => self.rules_readable = Some(false),
        }
        if blocked.is_empty() {
            return Vec::new();
        }
        let rules = match self.rules_readable {
            Some(true) => {
                let moved = self.rules.moved_since(now, WINDOW_S);
                if moved.is_empty() {
                    "none of the counting drop/reject rules moved".to_string()
                } else {
                    moved
                        .iter()
                        .map(|(name, packets)| format!("{name} ({packets} packets)"))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            }
            _ => "nft -j list ruleset not readable".to_string(),
        };
        blocked
            .into_iter()
            .map(|(f, lan, answers)| Finding {
                id: HERE,
                severity: Severity::Critical,
                subject: subject(f),
                summary: format!(
                    "{lan} {} packets from {}:{} to {}:{} entered on {} and none left on the \
                     WAN{}",
                    f.protocol.to_uppercase(),
                    f.src_addr,
                    f.src_port,
                    f.dst_addr,
                    f.dst_port,
                    f.interface,
                    if answers > 0 {
                        format!("; the gateway answered {answers} itself")
                    } else {
                        String::new()
                    }
                ),
                evidence: vec![
                    ("protocol".into(), f.protocol.to_string()),
                    ("port".into(), f.dst_port.to_string()),
                    ("lan_packets".into(), lan.to_string()),
                    ("wan_packets".into(), "0".into()),
                    ("gateway_answers".into(), answers.to_string()),
                    ("nft_rules".into(), rules.clone()),
                    ("window_s".into(), WINDOW_S.to_string()),
                ],
                remediation: HERE_REMEDIATION,
            })
            .collect()
    }
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    Icmp,
    Reset,
    NoAnswer,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Icmp => "icmp_unreachable",
            Cause::Reset => "reset",
            Cause::NoAnswer => "no_answer",
        }
    }
}

#[derive(Default)]
struct Failed {
    connections: u64,
    syns: u64,
    answers: u64,
}

/// `signalling_blocked`, from the WAN flows whose SYN still waits for its SYN/ACK.
fn signalling(view: &View<'_>) -> Vec<Finding> {
    let window = WINDOW_S as f64;
    let mut failed: BTreeMap<(&str, &str, u16, Cause), Failed> = BTreeMap::new();
    for f in view.recent(window) {
        let candidate = f.protocol == "tcp"
            && f.handshake_pending
            && view.is_wan(f)
            && f.direction == "egress"
            && view.is_outbound(f)
            && SIGNALLING_CLASSES.contains(&f.class.as_str())
            && f.idle_s < window;
        if !candidate {
            continue;
        }
        let back = view.reverse(f).filter(|r| r.idle_s < window);
        let (cause, answers) = if f.icmp_unreachable > 0 {
            (Cause::Icmp, f.icmp_unreachable)
        } else if let Some(r) = back.filter(|r| r.packets > 0) {
            (Cause::Reset, r.packets)
        } else if f.age_s >= SYN_ANSWER_S {
            (Cause::NoAnswer, 0)
        } else {
            continue;
        };
        let e = failed
            .entry((&f.interface, &f.peer_addr, f.peer_port, cause))
            .or_default();
        e.connections += 1;
        e.syns += f.packets;
        e.answers += answers;
    }
    failed
        .into_iter()
        .map(|((interface, peer, port, cause), n)| Finding {
            id: SIGNALLING,
            severity: Severity::Critical,
            subject: format!("{interface} tcp {peer}:{port} {}", cause.as_str()),
            summary: match cause {
                Cause::Icmp => format!(
                    "{} connections to {peer}:{port} refused by ICMP unreachable",
                    n.connections
                ),
                Cause::Reset => format!(
                    "{} connections to {peer}:{port} reset before the handshake",
                    n.connections
                ),
                Cause::NoAnswer => format!(
                    "{} connections to {peer}:{port}: SYNs with no SYN/ACK for {SYN_ANSWER_S} s",
                    n.connections
                ),
            },
            evidence: vec![
                ("port".into(), port.to_string()),
                ("cause".into(), cause.as_str().into()),
                ("connections".into(), n.connections.to_string()),
                ("syn_packets".into(), n.syns.to_string()),
                ("answer_packets".into(), n.answers.to_string()),
                ("window_s".into(), WINDOW_S.to_string()),
            ],
            remediation: SIGNALLING_REMEDIATION,
        })
        .collect()
}

#[cfg(test)]
mod tests;
