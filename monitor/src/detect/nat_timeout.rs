//! `nat_timeout_short`: NAT bindings of signalling that expire between keepalives.
//!
//! Three signs, each its own subject:
//! - a conntrack timeout below `[detect] nat_timeout_min_s` (30 min) for a transport that
//!   carries Webex signalling through this gateway right now (UDP: the stream timeout of
//!   replied bindings; TCP: established);
//! - a signalling flow whose idle gap (between two consecutive packets, measured by the
//!   kernel's timestamps) exceeded the binding timeout: the binding expired in between;
//! - an inner host re-appearing on a new external port for the same peer (rebinding), seen
//!   in the conntrack table.
//!
//! Gap and rebinding events stay open for `[detect] nat_event_hold_s` after the last one.

use crate::fasthash::HashMap;

use crate::{
    anomaly::{Finding, Severity},
    config::detect::DetectConfig,
    status::model::FlowStatus,
};

use super::{
    View, subject,
    system::{self, TCP_TIMEOUT_ESTABLISHED, UDP_TIMEOUT, UDP_TIMEOUT_STREAM},
};

pub const ID: &str = "nat_timeout_short";
pub const REMEDIATION: &str = "Extend the NAT binding timeout to at least 30 minutes for \
     signalling (e.g. sysctl net.netfilter.nf_conntrack_udp_timeout_stream=1800 and \
     nf_conntrack_tcp_timeout_established>=1800); short timeouts make phones stop ringing \
     for inbound calls a few minutes after registering.";

#[derive(Default)]
pub struct State {
    /// Per signalling flow: packets and the time of its last packet (seconds after its
    /// first) at the previous poll.
    last: HashMap<String, (u64, f64)>,
    /// Idle gaps beyond the binding timeout, per flow.
    gaps: HashMap<String, GapEvent>,
    /// The external (public) binding of each inner host and peer, from conntrack.
    bindings: HashMap<(&'static str, String, String), String>,
    rebinds: HashMap<String, Rebind>,
}

struct GapEvent {
    gap_s: f64,
    max_gap_s: f64,
    timeout_s: u64,
    setting: &'static str,
    events: u64,
    last_unix_s: u64,
}

struct Rebind {
    old: String,
    new: String,
    events: u64,
    last_unix_s: u64,
}

/// The binding timeout of `protocol` and the setting it comes from: for UDP the larger of
/// the unreplied and stream timeouts (a gap beyond it expired the binding either way).
fn binding_timeout(protocol: &str) -> Option<(u64, &'static str)> {
    if protocol == "udp" {
        let plain = system::sysctl(UDP_TIMEOUT);
        let stream = system::sysctl(UDP_TIMEOUT_STREAM);
        match (plain, stream) {
            (Some(p), Some(s)) if p > s => Some((p, UDP_TIMEOUT)),
            (_, Some(s)) => Some((s, UDP_TIMEOUT_STREAM)),
            (Some(p), None) => Some((p, UDP_TIMEOUT)),
            (None, None) => None,
        }
    } else {
        system::sysctl(TCP_TIMEOUT_ESTABLISHED).map(|t| (t, TCP_TIMEOUT_ESTABLISHED))
    }
}

impl State {
    pub fn detect(&mut self, view: &View<'_>, cfg: &DetectConfig, now: u64) -> Vec<Finding> {
        let signalling = |f: &&FlowStatus| {
            f.class == "sip_signalling" && (f.protocol == "udp" || f.protocol == "tcp")
        };
        // The LAN side keeps the inner host's own address and port across rebindings.
        let side = |f: &FlowStatus| {
            view.is_outbound(f)
                && if view.has_lan() {
                    view.is_lan(f)
                } else {
                    view.is_wan(f)
                }
        };
        let mut out = Vec::new();

        // Settings, judged for the transports signalling uses through this gateway now.
        let mut transports: Vec<&str> = view
            .of_interest(super::Interest::Signalling)
            .filter(signalling)
            .filter(|f| side(f))
            .map(|f| f.protocol.as_str())
            .collect();
        transports.sort();
        transports.dedup();
        for t in &transports {
            // A replied UDP binding lives by the stream timeout; the unreplied one only
            // covers the first packet's wait for an answer.
            let leaves: &[&'static str] = if *t == "udp" {
                &[UDP_TIMEOUT_STREAM]
            } else {
                &[TCP_TIMEOUT_ESTABLISHED]
            };
            for leaf in leaves {
                let Some(v) = system::sysctl(leaf) else {
                    continue;
                };
                if v < cfg.nat_timeout_min_s {
                    out.push(Finding {
                        id: ID,
                        severity: Severity::Warning,
                        subject: system::sysctl_name(leaf),
                        summary: format!(
                            "{} is {v} s, below the {} s signalling needs ({t} signalling \
                             flows are active)",
                            system::sysctl_name(leaf),
                            cfg.nat_timeout_min_s
                        ),
                        evidence: vec![
                            ("setting".into(), system::sysctl_name(leaf)),
                            ("value_s".into(), v.to_string()),
                            (
                                "recommended_min_s".into(),
                                cfg.nat_timeout_min_s.to_string(),
                            ),
                        ],
                        remediation: REMEDIATION,
                    });
                }
            }
        }

        // Idle gaps between consecutive packets of a signalling flow.
        let mut present = Vec::new();
        for f in view
            .of_interest(super::Interest::Signalling)
            .filter(signalling)
            .filter(|f| side(f))
        {
            let key = subject(f);
            let mark = f.age_s - f.idle_s;
            if let Some(&(packets, prev)) = self.last.get(&key)
                && f.packets == packets + 1
                && let Some((timeout, setting)) = binding_timeout(&f.protocol)
            {
                let gap = mark - prev;
                if gap > timeout as f64 {
                    let e = self.gaps.entry(key.clone()).or_insert(GapEvent {
                        gap_s: gap,
                        max_gap_s: gap,
                        timeout_s: timeout,
                        setting,
                        events: 0,
                        last_unix_s: now,
                    });
                    e.gap_s = gap;
                    e.max_gap_s = e.max_gap_s.max(gap);
                    e.timeout_s = timeout;
                    e.setting = setting;
                    e.events += 1;
                    e.last_unix_s = now;
                }
            }
            self.last.insert(key.clone(), (f.packets, mark));
            present.push(key);
        }
        self.last.retain(|k, _| present.contains(k));
        self.gaps
            .retain(|_, e| now.saturating_sub(e.last_unix_s) <= cfg.nat_event_hold_s);
        for (key, e) in &self.gaps {
            out.push(Finding {
                id: ID,
                severity: Severity::Critical,
                subject: key.clone(),
                summary: format!(
                    "signalling was idle {:.1} s between packets, longer than the {} s NAT \
                     binding timeout: the binding expired",
                    e.gap_s, e.timeout_s
                ),
                evidence: vec![
                    ("idle_gap_s".into(), format!("{:.1}", e.gap_s)),
                    ("max_idle_gap_s".into(), format!("{:.1}", e.max_gap_s)),
                    ("binding_timeout_s".into(), e.timeout_s.to_string()),
                    ("setting".into(), system::sysctl_name(e.setting)),
                    ("gaps_beyond_timeout".into(), e.events.to_string()),
                ],
                remediation: REMEDIATION,
            });
        }

        // Rebinding: the same inner host and peer on a new public address or port.
        if view.conntrack.is_some() {
            for e in view
                .conntrack_candidates()
                .into_iter()
                .filter(|e| e.is_snat())
            {
                // One look-up per entry; text only for signalling bindings.
                if !view.joins().is_signalling(e.protocol, &e.orig) {
                    continue;
                }
                let (inner, peer) = (
                    format!("{}:{}", e.orig.src, e.orig.sport),
                    format!("{}:{}", e.orig.dst, e.orig.dport),
                );
                let public = format!("{}:{}", e.reply.dst, e.reply.dport);
                let key = (e.protocol, inner.clone(), peer.clone());
                match self.bindings.insert(key, public.clone()) {
                    Some(old) if old != public => {
                        let subject = format!("rebinding {} {inner} -> {peer}", e.protocol);
                        let r = self.rebinds.entry(subject).or_insert(Rebind {
                            old: old.clone(),
                            new: public.clone(),
                            events: 0,
                            last_unix_s: now,
                        });
                        r.old = old;
                        r.new = public;
                        r.events += 1;
                        r.last_unix_s = now;
                    }
                    _ => {}
                }
            }
        }
        self.rebinds
            .retain(|_, r| now.saturating_sub(r.last_unix_s) <= cfg.nat_event_hold_s);
        // Bounded memory: bindings of hosts no longer rebinding are forgotten in bulk.
        if self.bindings.len() > 65_536 {
            self.bindings.clear();
        }
        for (key, r) in &self.rebinds {
            out.push(Finding {
                id: ID,
                severity: Severity::Critical,
                subject: key.clone(),
                summary: format!(
                    "the NAT binding changed from {} to {}: the peer must learn the new \
                     address, inbound calls fail meanwhile",
                    r.old, r.new
                ),
                evidence: vec![
                    ("old_public".into(), r.old.clone()),
                    ("new_public".into(), r.new.clone()),
                    ("rebindings".into(), r.events.to_string()),
                ],
                remediation: REMEDIATION,
            });
        }
        out
    }
}
