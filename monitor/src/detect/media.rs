//! `udp_media_blocked` and `one_way_media`: media that flows one way only.
//!
//! - `one_way_media`: media leaves the site towards a Webex peer (WAN egress, or LAN
//!   ingress when no WAN interface is monitored) and nothing comes back on the same
//!   interface for `[detect] media_silence_s`.
//! - `udp_media_blocked`: the peer's media reaches the WAN interface but the gateway
//!   forwards none of it to the LAN for `media_silence_s` (a firewall rule on this box
//!   drops it), or media is answered by ICMP destination unreachable / administratively
//!   prohibited.
//!
//! Only flows still active (a packet within `media_silence_s`) count, so both clear when
//! the call ends or the media starts flowing (then after the book's hold-down). ICMP
//! unreachable counts only when it grew since the last poll while the answering host kept
//! sending (see [`State::icmp`]): a hang-up is not blocked media. That finding clears
//! `media_silence_s` after the last such poll.

use crate::fasthash::HashMap;

use crate::{
    anomaly::{Finding, Severity},
    config::detect::DetectConfig,
    status::model::FlowStatus,
};

use super::{View, is_media, subject};

pub const BLOCKED: &str = "udp_media_blocked";
pub const ONE_WAY: &str = "one_way_media";
/// Packets a flow needs before it is judged (a lone STUN probe is not a call).
pub const MIN_PACKETS: u64 = 10;

pub const BLOCKED_REMEDIATION: &str = "Allow inbound UDP media from the Webex media ranges \
     (UDP 5004, 9000, 19560-65535) back to the phones through this gateway's firewall; a \
     policy that allows TCP 443 but not UDP media passes connectivity tests and fails calls.";
pub const ONE_WAY_REMEDIATION: &str = "Media leaves but none returns: check the firewalls \
     and NAT upstream of this gateway for UDP media (5004, 9000, 19560-65535) from the Webex \
     ranges, and disable SIP ALG in the path; run CScan from this site.";

/// What the ICMP rule remembers between polls.
#[derive(Default)]
pub struct State {
    /// Per flow answered by ICMP unreachable whose answering host kept sending: polls in
    /// a row (the rule fires at [`REFUSED_POLLS`]).
    streak: HashMap<String, u32>,
    /// Per flow judged blocked: when, and the evidence then.
    blocked: HashMap<String, IcmpEvent>,
}

struct IcmpEvent {
    last_unix_s: u64,
    from_inner_host: bool,
    peer: String,
    icmp_unreachable: u64,
    icmp_since_last_poll: u64,
    packets: u64,
}

/// Polls in a row in which a host both refuses media (ICMP unreachable) and sends its
/// own on the same 5-tuple before that is blocked media. A hang-up cannot do it twice: the
/// host stops sending when it closes the socket, and only then answers with ICMP.
pub const REFUSED_POLLS: u32 = 2;

pub const HOST_REMEDIATION: &str = "An inner host refuses media on the port it sends \
     from (ICMP unreachable while its own media flows): check the host firewall of that \
     phone or computer for inbound UDP from the Webex media ranges.";

impl State {
    pub fn detect(&mut self, view: &View<'_>, cfg: &DetectConfig, now: u64) -> Vec<Finding> {
        let silence = cfg.media_silence_s as f64;
        let active = |f: &FlowStatus| f.idle_s < silence;
        let mut out = Vec::new();
        let udp_media = |f: &&FlowStatus| f.protocol == "udp" && is_media(f);

        // Outbound with nothing back on the same interface.
        let outbound_side = |f: &FlowStatus| {
            view.is_outbound(f)
                && if view.has_wan() {
                    view.is_wan(f)
                } else {
                    view.is_lan(f)
                }
        };
        for o in view.recent(silence).filter(udp_media) {
            if !outbound_side(o) || !active(o) || o.packets < MIN_PACKETS || o.age_s < silence {
                continue;
            }
            let back = view.reverse(o);
            if back.is_some_and(active) {
                continue;
            }
            let (inbound_packets, inbound_idle) = match back {
                Some(b) => (b.packets, format!("{:.1}", b.idle_s)),
                None => (0, "never seen".into()),
            };
            out.push(Finding {
                id: ONE_WAY,
                severity: Severity::Critical,
                subject: subject(o),
                summary: format!(
                    "one-way media: {} packets to {}:{} and no media back for {:.0} s",
                    o.packets, o.peer_addr, o.peer_port, silence
                ),
                evidence: vec![
                    ("outbound_packets".into(), o.packets.to_string()),
                    ("inbound_packets".into(), inbound_packets.to_string()),
                    ("inbound_idle_s".into(), inbound_idle),
                    ("media_silence_s".into(), cfg.media_silence_s.to_string()),
                ],
                remediation: ONE_WAY_REMEDIATION,
            });
        }

        // Inbound at the WAN, not forwarded to the LAN: dropped on this gateway.
        // Only active inbound flows can be findings; the LAN copies they are compared
        // with are totalled only when there is one.
        let inbound: Vec<&FlowStatus> = if view.has_lan() {
            view.recent(silence)
                .filter(udp_media)
                .filter(|i| view.is_wan(i) && i.direction == "ingress" && i.src_addr == i.peer_addr)
                .filter(|i| active(i) && i.packets >= MIN_PACKETS && i.age_s >= silence)
                .collect()
        } else {
            Vec::new()
        };
        if !inbound.is_empty() {
            let mut forwarded: HashMap<(&str, u16), (u64, bool)> = HashMap::default();
            for f in view.flows().filter(udp_media) {
                if view.is_lan(f) && f.direction == "egress" && f.src_addr == f.peer_addr {
                    let e = forwarded
                        .entry((&f.src_addr, f.src_port))
                        .or_insert((0, false));
                    e.0 += f.packets;
                    e.1 |= active(f);
                }
            }
            for i in inbound {
                let (lan_packets, lan_active) = forwarded
                    .get(&(i.src_addr.as_str(), i.src_port))
                    .copied()
                    .unwrap_or((0, false));
                if lan_active {
                    continue;
                }
                out.push(Finding {
                    id: BLOCKED,
                    severity: Severity::Critical,
                    subject: subject(i),
                    summary: format!(
                        "inbound UDP media from {}:{} reaches {} but the gateway forwards none of \
                     it to the LAN",
                        i.src_addr, i.src_port, i.interface
                    ),
                    evidence: vec![
                        ("wan_inbound_packets".into(), i.packets.to_string()),
                        ("lan_forwarded_packets".into(), lan_packets.to_string()),
                        ("media_silence_s".into(), cfg.media_silence_s.to_string()),
                    ],
                    remediation: BLOCKED_REMEDIATION,
                });
            }
        }

        // Answered by ICMP unreachable / administratively prohibited.
        out.extend(self.icmp(view, cfg, now));
        out
    }

    /// ICMP unreachable answering media. The error arrives on the interface the refused
    /// packet left by and is counted on that flow: on a LAN interface the inner host sent
    /// it, on a WAN interface the far end or a firewall on the way. Either way it is the
    /// end of a call, not blocked media, when the answering host's own media on that
    /// 5-tuple has stopped (a phone hangs up, closes its socket and answers the last
    /// packets from Webex with port unreachable); it is blocked media when that host
    /// keeps sending while refusing, for [`REFUSED_POLLS`] polls in a row. Judged on this
    /// poll's deltas: old counts (a new call reusing the 5-tuple, a restart) do not count.
    fn icmp(&mut self, view: &View<'_>, cfg: &DetectConfig, now: u64) -> Vec<Finding> {
        let mut streak = HashMap::default();
        // Judged on this poll's counts: the flows that counted something.
        for f in view.changed() {
            if f.protocol != "udp" || !is_media(f) || f.direction != "egress" {
                continue;
            }
            let d = view.delta(f);
            if d.icmp_unreachable == 0 {
                continue;
            }
            let answering_host_sends = view.reverse(f).is_some_and(|r| view.delta(r).packets > 0);
            if !answering_host_sends {
                continue;
            }
            let key = subject(f);
            let n = self.streak.get(&key).copied().unwrap_or(0) + 1;
            if n >= REFUSED_POLLS {
                self.blocked.insert(
                    key.clone(),
                    IcmpEvent {
                        last_unix_s: now,
                        from_inner_host: view.is_lan(f),
                        peer: format!("{}:{}", f.peer_addr, f.peer_port),
                        icmp_unreachable: f.icmp_unreachable,
                        icmp_since_last_poll: d.icmp_unreachable,
                        packets: f.packets,
                    },
                );
            }
            streak.insert(key, n);
        }
        self.streak = streak;
        self.blocked
            .retain(|_, e| now.saturating_sub(e.last_unix_s) < cfg.media_silence_s);
        let mut out: Vec<Finding> = self
            .blocked
            .iter()
            .map(|(subject, e)| Finding {
                id: BLOCKED,
                severity: Severity::Critical,
                subject: subject.clone(),
                summary: if e.from_inner_host {
                    format!(
                        "an inner host answers UDP media from {} with ICMP destination \
                         unreachable while sending its own",
                        e.peer
                    )
                } else {
                    format!(
                        "UDP media to {} is answered by ICMP destination unreachable while \
                         media from it flows",
                        e.peer
                    )
                },
                evidence: vec![
                    ("icmp_unreachable".into(), e.icmp_unreachable.to_string()),
                    (
                        "icmp_unreachable_last_poll".into(),
                        e.icmp_since_last_poll.to_string(),
                    ),
                    ("packets".into(), e.packets.to_string()),
                    ("media_silence_s".into(), cfg.media_silence_s.to_string()),
                ],
                remediation: if e.from_inner_host {
                    HOST_REMEDIATION
                } else {
                    BLOCKED_REMEDIATION
                },
            })
            .collect();
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{anomaly::window::Deltas, status::model::StatusReport};

    const PHONE: (&str, u16) = ("192.0.2.10", 52000);
    const NODE: (&str, u16) = ("203.0.113.10", 5004);

    /// The LAN side of one call: the phone's media to the node (LAN ingress) and the
    /// node's to the phone (LAN egress), on the sample report's LAN interface.
    fn call() -> StatusReport {
        let mut r = crate::status::render::tests::sample_report();
        let lan = r.interfaces[1].name.clone();
        let template = r.flows[0].clone();
        let flow = |dir: &str, src: (&str, u16), dst: (&str, u16)| {
            let mut f = template.clone();
            f.interface = lan.as_str().into();
            f.direction = dir.into();
            f.protocol = "udp".into();
            f.class = "media".into();
            (f.src_addr, f.src_port) = (src.0.into(), src.1);
            (f.dst_addr, f.dst_port) = (dst.0.into(), dst.1);
            (f.inner_addr, f.inner_port) = (PHONE.0.into(), PHONE.1);
            (f.peer_addr, f.peer_port) = (NODE.0.into(), NODE.1);
            (f.packets, f.icmp_unreachable, f.age_s, f.idle_s) = (0, 0, 60.0, 0.0);
            f
        };
        r.flows = vec![flow("ingress", PHONE, NODE), flow("egress", NODE, PHONE)];
        r
    }

    struct Run {
        deltas: Deltas,
        state: State,
        cfg: DetectConfig,
        now: u64,
    }

    impl Run {
        fn poll(&mut self, r: &StatusReport) -> Vec<Finding> {
            let baseline = self.deltas.before_baseline();
            let d = self.deltas.update(&r.flows);
            let view = View::new(r, &d, baseline, None, 0.0, None);
            self.now += 1;
            self.state.detect(&view, &self.cfg, self.now)
        }
    }

    fn run(r: &StatusReport) -> Run {
        let mut run = Run {
            deltas: Deltas::default(),
            state: State::default(),
            cfg: DetectConfig::default(),
            now: 1000,
        };
        assert!(run.poll(r).is_empty());
        run
    }

    #[test]
    fn a_hang_up_answered_with_port_unreachable_is_not_blocked_media() {
        let mut r = call();
        let mut run = run(&r);
        // Both ways for a while.
        for _ in 0..3 {
            r.flows[0].packets += 50;
            r.flows[1].packets += 50;
            assert!(run.poll(&r).is_empty());
        }
        // The last poll of the call holds the hang-up: the phone's last packets and the
        // first port unreachables answering the node's.
        r.flows[0].packets += 20;
        r.flows[1].packets += 25;
        r.flows[1].icmp_unreachable += 5;
        assert!(run.poll(&r).is_empty());
        // The node sends 15 more, all refused; the phone sends nothing.
        r.flows[1].packets += 15;
        r.flows[1].icmp_unreachable += 15;
        r.flows[0].idle_s = 1.0;
        assert!(run.poll(&r).is_empty());
        // A new clean call on the same 5-tuple: the old ICMP count does not count.
        for _ in 0..5 {
            r.flows[0].packets += 50;
            r.flows[1].packets += 50;
            r.flows[0].idle_s = 0.0;
            assert!(run.poll(&r).is_empty());
        }
    }

    #[test]
    fn refusing_while_sending_is_blocked_media_and_clears() {
        let mut r = call();
        let mut run = run(&r);
        r.flows[0].packets += 50;
        r.flows[1].packets += 50;
        r.flows[1].icmp_unreachable += 50;
        // One poll could be a hang-up; the second in a row is not.
        assert!(run.poll(&r).is_empty());
        r.flows[0].packets += 50;
        r.flows[1].packets += 50;
        r.flows[1].icmp_unreachable += 50;
        let v = run.poll(&r);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].id, v[0].severity), (BLOCKED, Severity::Critical));
        assert_eq!(v[0].remediation, HOST_REMEDIATION);
        let ev: Vec<(&str, &str)> = v[0]
            .evidence
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ev,
            [
                ("icmp_unreachable", "100"),
                ("icmp_unreachable_last_poll", "50"),
                ("packets", "100"),
                ("media_silence_s", "5")
            ]
        );
        // Refusals stop: open for media_silence_s more polls (one a second here), then
        // gone.
        let silence = run.cfg.media_silence_s;
        for _ in 0..silence - 1 {
            r.flows[0].packets += 50;
            r.flows[1].packets += 50;
            assert_eq!(run.poll(&r).len(), 1);
        }
        r.flows[0].packets += 50;
        r.flows[1].packets += 50;
        assert!(run.poll(&r).is_empty());
    }
}
