//! DSCP detectors: one finding per class and cause, judged on the last [`WINDOW_S`]
//! seconds of per-poll deltas (README "DSCP": detectors).
//!
//! Each cause is where it can be fixed:
//! - `dscp_missing`: the phones and apps do not mark. Seen at LAN ingress (or at WAN egress
//!   when no LAN interface is monitored, or for traffic with no LAN-side twin).
//! - `dscp_wrong`: they mark, with another value than the class's.
//! - `dscp_lost`: the marks are lost inside this gateway: packets that arrived marked on one
//!   side leave unmarked (or re-marked) on the other, in either direction.
//! - `dscp_bleached` (information): Webex media arrives on the WAN without its mark although
//!   the outbound packets of the same flow left marked; the ISP path cleared it. Not a
//!   fault of the site; the fix is on the LAN egress (or the provider).
//!
//! Unmarked packets that only inherit an upstream cause (WAN egress copies of unmarked
//! phone packets, LAN egress copies of unmarked WAN arrivals) are not findings of their
//! own. Media whose kind (audio or video) is not settled yet is not judged; when it
//! settles, its packets so far count once. A finding clears [`WINDOW_S`] seconds after
//! its last offending packet (then after the book's hold-down).

use crate::fasthash::HashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Setup, profile};
use crate::{
    anomaly::{Finding, Severity, window::Counts},
    config::{DscpMode, Role},
    detect::FlowId,
    status::model::FlowStatus,
};

pub const BLEACHED: &str = "dscp_bleached";
pub const MISSING: &str = "dscp_missing";
pub const WRONG: &str = "dscp_wrong";
pub const LOST: &str = "dscp_lost";

/// Seconds of deltas a finding judges: it clears this long after its last offending
/// packet.
pub const WINDOW_S: u64 = 20;
/// Offending packets within the window before a finding opens (a stray packet is not
/// a marking policy).
pub const MIN_PACKETS: u64 = 10;
/// Flows named in a finding's evidence.
const MAX_FLOWS_NAMED: usize = 3;
/// Distinct flows remembered per finding's window (evidence counts up to this).
const MAX_FLOWS_KEPT: usize = 1000;

const REMEDIATION_BLEACHED: &str = "Information, not a fault of this site: QoS marks are \
    cleared on the way in from Webex (the ISP path), so the inbound media is queued as \
    best effort. Set dscp_egress = \"rewrite\" on this monitor's LAN interface to mark it \
    again towards the phones, and ask the WAN/ISP provider to preserve DSCP (EF 46 audio, \
    AF41 34 video, CS3 24 signalling).";
const REMEDIATION_MISSING: &str = "The phones and apps send Webex traffic unmarked, so \
    the LAN queues it as best effort. Enable QoS in Control Hub (Calling > Settings > \
    Quality of Service) for phones and devices, and a GPO for Webex App on Windows (DSCP \
    46 on audio ports 52000-52049, 34 on video 52100-52199). Towards the ISP, \
    dscp_egress = \"rewrite\" on this monitor's WAN interface marks it meanwhile.";
const REMEDIATION_WRONG: &str = "The phones, apps or LAN switches mark Webex traffic with \
    another value than the Webex requirements (EF 46 audio, AF41 34 video, CS3 24 \
    signalling and call control): fix the marking policy (GPO, Control Hub, switch \
    re-marking). Towards the ISP, dscp_egress = \"rewrite\" on this monitor's WAN \
    interface sets the right mark meanwhile.";
const REMEDIATION_LOST: &str = "This gateway clears or changes the marks between its LAN \
    and WAN side: look for nftables/iptables rules that set dscp (ip dscp set, the DSCP \
    target) or tc actions re-marking forwarded traffic, and remove them for Webex; or set \
    dscp_egress = \"rewrite\" on the interface where the packets leave unmarked.";

/// One poll's offending packets of one finding.
#[derive(Debug, Default)]
struct Sample {
    at: u64,
    mismatched: u64,
    checked: u64,
    /// Loss: this poll's packets that arrived marked on the other side.
    marked_other_side: u64,
    /// Bleaching: per inbound flow, the packets its outbound twin left marked (a total,
    /// so the latest per flow counts once).
    outbound_marked: BTreeMap<String, u64>,
    /// Where it was measured ("lan0 ingress").
    points: BTreeSet<String>,
    /// The offending flows, described.
    flows: BTreeMap<String, String>,
}

/// The detectors' window: recent samples per (id, class).
#[derive(Debug, Default)]
pub struct State {
    samples: BTreeMap<(&'static str, String), VecDeque<Sample>>,
}

/// A flow's DSCP counts to judge this poll: its deltas, or everything it counted when its
/// kind settled in this poll (its earlier packets were not judged).
fn judged(f: &FlowStatus, d: &Counts, baseline: bool) -> (u64, u64) {
    if !baseline && f.classified_by.as_deref() == Some(super::BY_PROFILE) {
        let before = (
            f.packets - d.packets.min(f.packets),
            f.bytes - d.bytes.min(f.bytes),
        );
        if profile::kind(before.0, before.1).is_none()
            && let Some(all) = &f.dscp
        {
            return (all.matched, all.mismatched);
        }
    }
    (d.dscp_matched, d.dscp_mismatched)
}

/// The class a flow's marks are judged by, once settled.
fn settled_class(f: &FlowStatus) -> Option<&str> {
    let class = f.dscp_class.as_deref().unwrap_or(f.class.as_str());
    (class != "media").then_some(class)
}

/// Peer (protocol, address, port) of a flow.
type Peer<'a> = (&'a str, &'a str, u16);

/// A flow on the side of the NAT where packets enter, as its copy on the other side
/// sees it.
struct Twin {
    inner_port: u16,
    /// Any of its packets arrived with the expected mark.
    ever_marked: bool,
    /// This poll's (judged) counts.
    matched: u64,
    mismatched: u64,
}

impl State {
    /// Judges one poll: `deltas[i]` is what `flows[i]` counted since the last poll,
    /// `baseline` is true on the first poll after start. `changed`: the places of the
    /// flows that counted anything, when known (only they can have mismatches to judge).
    pub fn detect(
        &mut self,
        flows: &[FlowStatus],
        deltas: &[Counts],
        baseline: bool,
        changed: Option<&[usize]>,
        setup: &Setup,
        now: u64,
    ) -> Vec<Finding> {
        let has_lan = setup.interfaces.iter().any(|i| i.role == Role::Lan);
        let role = |f: &FlowStatus| setup.role(&f.interface);
        // Flows by text identity, for the few WAN arrivals that need their way out:
        // built on first use (hashing every flow's text each poll was much of its cost).
        let by_key: std::cell::OnceCell<HashMap<FlowId, usize>> = std::cell::OnceCell::new();
        let by_key = || {
            by_key.get_or_init(|| {
                flows
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.dscp.is_some())
                    .map(|(i, f)| (crate::detect::id(f), i))
                    .collect()
            })
        };
        // Per peer: the LAN ingress flows (before NAT) and WAN ingress flows (arrivals),
        // idle ones too; made on first use, when a flow has mismatches to place.
        type Sides<'f> = (HashMap<Peer<'f>, Vec<Twin>>, HashMap<Peer<'f>, Vec<Twin>>);
        let sides: std::cell::OnceCell<Sides> = std::cell::OnceCell::new();
        let sides = || {
            sides.get_or_init(|| {
                let mut lan_in: HashMap<Peer, Vec<Twin>> = HashMap::default();
                let mut wan_in: HashMap<Peer, Vec<Twin>> = HashMap::default();
                for (i, f) in flows.iter().enumerate() {
                    if f.dscp.is_none() {
                        continue;
                    }
                    let (m, mm) = judged(f, &deltas[i], baseline);
                    let twin = Twin {
                        inner_port: f.inner_port,
                        ever_marked: f.dscp.as_ref().is_some_and(|d| d.matched > 0),
                        matched: m,
                        mismatched: mm,
                    };
                    let peer = (f.protocol.as_str(), f.peer_addr.as_str(), f.peer_port);
                    match (role(f), f.direction.as_str()) {
                        (Some(Role::Lan), "ingress") => lan_in.entry(peer).or_default().push(twin),
                        (Some(Role::Wan), "ingress") => wan_in.entry(peer).or_default().push(twin),
                        _ => {}
                    }
                }
                (lan_in, wan_in)
            })
        };
        // `f`'s copies on the other side of the NAT: its twin by peer and port
        // (masquerade keeps the source port when it can), else every flow to that peer.
        // `None`: no twin at all; `Some(Some(n))`: they arrive marked (n of them in this
        // poll: they were marked before and none arrived unmarked in this poll, so a
        // packet whose two copies a poll fell between still counts); `Some(None)`: they
        // arrive unmarked too.
        let marked_twin = |side: &HashMap<Peer, Vec<Twin>>, f: &FlowStatus| {
            let all = side.get(&(f.protocol.as_str(), f.peer_addr.as_str(), f.peer_port))?;
            let same_port: Vec<&Twin> = all
                .iter()
                .filter(|t| t.inner_port == f.inner_port)
                .collect();
            let twins: Vec<&Twin> = if same_port.is_empty() {
                all.iter().collect()
            } else {
                same_port
            };
            let marked =
                twins.iter().any(|t| t.ever_marked) && twins.iter().all(|t| t.mismatched == 0);
            Some(marked.then(|| twins.iter().map(|t| t.matched).sum::<u64>()))
        };

        let mut this_poll: BTreeMap<(&'static str, String), Sample> = BTreeMap::new();
        // A flow that counted nothing has no mismatches this poll (its profile, too, is
        // what it was): only the flows that counted are judged.
        let judge: Box<dyn Iterator<Item = usize>> = match changed {
            Some(places) => Box::new(places.iter().copied()),
            None => Box::new(0..flows.len()),
        };
        for i in judge {
            let f = &flows[i];
            let Some(dscp) = &f.dscp else { continue };
            let Some(expected) = dscp.expected else {
                continue;
            };
            let Some(class) = settled_class(f) else {
                continue;
            };
            if setup.mode(&f.interface, &f.direction) == DscpMode::Off {
                continue;
            }
            let (matched, mismatched) = judged(f, &deltas[i], baseline);
            if mismatched == 0 {
                continue;
            }
            let unmarked = f.last_dscp == 0 && expected != 0;
            let (id, other_side) = match (role(f), f.direction.as_str()) {
                (Some(Role::Lan), "ingress") => (if unmarked { MISSING } else { WRONG }, 0),
                (Some(Role::Wan), "egress") => match marked_twin(&sides().0, f) {
                    Some(Some(marked)) => (LOST, marked),
                    // Unmarked on the LAN side too: the phones' finding.
                    Some(_) => continue,
                    None if has_lan && unmarked => (MISSING, 0),
                    None if has_lan => (WRONG, 0),
                    None => (if unmarked { MISSING } else { WRONG }, 0),
                },
                (Some(Role::Wan), "ingress") => {
                    let out = by_key()
                        .get(&FlowId {
                            interface: &f.interface,
                            direction: "egress",
                            protocol: &f.protocol,
                            src: (&f.dst_addr, f.dst_port),
                            dst: (&f.src_addr, f.src_port),
                        })
                        .and_then(|&o| flows[o].dscp.as_ref())
                        .map_or(0, |o| o.matched);
                    if out == 0 {
                        // Outbound not marked either: nothing to tell about the way in.
                        continue;
                    }
                    (BLEACHED, out)
                }
                (Some(Role::Lan), "egress") => match marked_twin(&sides().1, f) {
                    Some(Some(marked)) => (LOST, marked),
                    _ => continue,
                },
                _ => continue,
            };
            let s = this_poll.entry((id, class.to_string())).or_default();
            s.at = now;
            s.mismatched += mismatched;
            s.checked += matched + mismatched;
            s.points.insert(format!("{} {}", f.interface, f.direction));
            let name = format!(
                "{} {} {} {}:{} -> {}:{}",
                f.interface,
                f.direction,
                f.protocol,
                f.src_addr,
                f.src_port,
                f.dst_addr,
                f.dst_port
            );
            if id == BLEACHED {
                s.outbound_marked.insert(name.clone(), other_side);
            } else {
                s.marked_other_side += other_side;
            }
            if s.flows.len() < MAX_FLOWS_KEPT {
                s.flows.insert(
                    name,
                    format!(
                        "matched {} mismatched {} marks seen {:?}",
                        dscp.matched, dscp.mismatched, dscp.seen
                    ),
                );
            }
        }
        for (key, s) in this_poll {
            self.samples.entry(key).or_default().push_back(s);
        }
        for q in self.samples.values_mut() {
            while q
                .front()
                .is_some_and(|s| now.saturating_sub(s.at) >= WINDOW_S)
            {
                q.pop_front();
            }
        }
        self.samples.retain(|_, q| !q.is_empty());

        let mut out = Vec::new();
        for ((id, class), q) in &self.samples {
            let mismatched: u64 = q.iter().map(|s| s.mismatched).sum();
            if mismatched < MIN_PACKETS {
                continue;
            }
            out.push(finding(id, class, q, mismatched));
        }
        out
    }
}

fn finding(id: &'static str, class: &str, q: &VecDeque<Sample>, mismatched: u64) -> Finding {
    let checked: u64 = q.iter().map(|s| s.checked).sum();
    let mut outbound: BTreeMap<&str, u64> = BTreeMap::new();
    for s in q {
        for (k, v) in &s.outbound_marked {
            outbound.insert(k, *v);
        }
    }
    let other: u64 = if id == BLEACHED {
        outbound.values().sum()
    } else {
        q.iter().map(|s| s.marked_other_side).sum()
    };
    let points: BTreeSet<&str> = q
        .iter()
        .flat_map(|s| s.points.iter().map(String::as_str))
        .collect();
    let mut flows: BTreeMap<&str, &str> = BTreeMap::new();
    // The latest description of each flow.
    for s in q {
        for (k, v) in &s.flows {
            flows.insert(k, v);
        }
    }
    let at = points.into_iter().collect::<Vec<_>>().join(", ");
    let window = format!("in the last {WINDOW_S} s");
    let (severity, summary, remediation, mut evidence) = match id {
        BLEACHED => (
            Severity::Info,
            format!(
                "{mismatched} of {checked} inbound {class} packets arrived without their \
                 mark ({at}) {window} although the outbound packets left marked: cleared \
                 on the ISP path"
            ),
            REMEDIATION_BLEACHED,
            vec![
                ("flows".to_string(), flows.len().to_string()),
                ("inbound_packets_checked".into(), checked.to_string()),
                (
                    "inbound_packets_without_mark".into(),
                    mismatched.to_string(),
                ),
                ("outbound_packets_marked".into(), other.to_string()),
            ],
        ),
        LOST => (
            Severity::Warning,
            format!(
                "{mismatched} {class} packets left this gateway without the mark they \
                 arrived with ({at}) {window}"
            ),
            REMEDIATION_LOST,
            vec![
                ("flows".to_string(), flows.len().to_string()),
                ("packets_checked".into(), checked.to_string()),
                ("packets_mismatched".into(), mismatched.to_string()),
                ("packets_marked_on_arrival".into(), other.to_string()),
            ],
        ),
        _ => (
            Severity::Warning,
            format!(
                "{mismatched} of {checked} {class} packets from the phones and apps {} \
                 ({at}) {window}",
                if id == MISSING {
                    "are unmarked"
                } else {
                    "carry a wrong mark"
                }
            ),
            if id == MISSING {
                REMEDIATION_MISSING
            } else {
                REMEDIATION_WRONG
            },
            vec![
                ("flows".to_string(), flows.len().to_string()),
                ("packets_checked".into(), checked.to_string()),
                ("packets_mismatched".into(), mismatched.to_string()),
            ],
        ),
    };
    evidence.push(("measured_at".into(), at));
    evidence.push(("window_s".into(), WINDOW_S.to_string()));
    for (i, (k, v)) in flows.iter().take(MAX_FLOWS_NAMED).enumerate() {
        evidence.push((format!("flow{}", i + 1), format!("{k} {v}")));
    }
    Finding {
        id,
        severity,
        subject: class.to_string(),
        summary,
        evidence,
        remediation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        anomaly::window::Deltas,
        config::{DscpConfig, DscpMode, Role},
        dscp::{InterfaceDscp, model::FlowDscp},
    };

    fn setup(wan_egress: DscpMode) -> Setup {
        let iface = |name: &str, role, egress| InterfaceDscp {
            name: name.into(),
            role,
            ingress: DscpMode::Verify,
            egress,
        };
        Setup {
            marks: DscpConfig::default(),
            dedicated_port_ranges: true,
            interfaces: vec![
                iface("wan0", Role::Wan, wan_egress),
                iface("lan0", Role::Lan, DscpMode::Verify),
            ],
        }
    }

    const PHONE: (&str, u16) = ("192.0.2.10", 52000);
    const GW: (&str, u16) = ("198.51.100.1", 52000);
    const NODE: (&str, u16) = ("203.0.113.10", 5004);

    /// A flow of `packets` 200-byte packets, `marked` of them with EF and the rest with
    /// `other`; the peer is NODE.
    fn flow(iface: &str, dir: &str, src: (&str, u16), dst: (&str, u16)) -> FlowStatus {
        let mut f = crate::status::render::tests::sample_report().flows[0].clone();
        f.interface = iface.into();
        f.direction = dir.into();
        f.protocol = "udp".into();
        (f.src_addr, f.src_port) = (src.0.into(), src.1);
        (f.dst_addr, f.dst_port) = (dst.0.into(), dst.1);
        let (inner, peer) = if src == NODE { (dst, src) } else { (src, dst) };
        (f.inner_addr, f.inner_port) = (inner.0.into(), inner.1);
        (f.peer_addr, f.peer_port) = (peer.0.into(), peer.1);
        f.class = "audio".into();
        f.dscp_class = Some("audio".into());
        f.classified_by = Some("port_range".into());
        f.packets = 0;
        f.bytes = 0;
        f.dscp = Some(FlowDscp {
            expected: Some(46),
            ..Default::default()
        });
        f
    }

    /// Adds `n` packets with `mark` (EF counts as matched; in rewrite mode on egress the
    /// kernel counts them matched and rewritten).
    fn send(f: &mut FlowStatus, n: u64, mark: u8, rewrite: bool) {
        f.packets += n;
        f.bytes += 200 * n;
        f.last_dscp = mark;
        let d = f.dscp.as_mut().unwrap();
        if !d.seen.contains(&mark) {
            d.seen.push(mark);
        }
        if mark == 46 || rewrite {
            d.matched += n;
            d.rewritten += if rewrite && mark != 46 { n } else { 0 };
        } else {
            d.mismatched += n;
        }
    }

    /// One call's four copies: LAN ingress, WAN egress, WAN ingress, LAN egress.
    fn four_copies() -> Vec<FlowStatus> {
        vec![
            flow("lan0", "ingress", PHONE, NODE),
            flow("wan0", "egress", GW, NODE),
            flow("wan0", "ingress", NODE, GW),
            flow("lan0", "egress", NODE, PHONE),
        ]
    }

    struct Run {
        deltas: Deltas,
        state: State,
        setup: Setup,
    }

    impl Run {
        fn new(setup: Setup, flows: &[FlowStatus]) -> Run {
            let mut r = Run {
                deltas: Deltas::default(),
                state: State::default(),
                setup,
            };
            // The baseline poll (before any traffic here).
            assert!(r.poll(flows, 1000).is_empty());
            r
        }

        fn poll(&mut self, flows: &[FlowStatus], now: u64) -> Vec<Finding> {
            let baseline = self.deltas.before_baseline();
            let d = self.deltas.update(flows);
            self.state
                .detect(flows, &d, baseline, None, &self.setup, now)
        }
    }

    fn ids(v: &[Finding]) -> Vec<(&str, &str, Severity)> {
        v.iter()
            .map(|f| (f.id, f.subject.as_str(), f.severity))
            .collect()
    }

    fn ev<'a>(f: &'a Finding, name: &str) -> &'a str {
        &f.evidence.iter().find(|(k, _)| k == name).unwrap().1
    }

    /// An unmarked phone talking to a node that answers unmarked, seen on both sides of
    /// the NAT: one finding (the phones), not one per interface and direction; it clears
    /// WINDOW_S after the traffic stops.
    #[test]
    fn an_unmarked_phone_is_one_finding_that_clears() {
        let mut flows = four_copies();
        let mut run = Run::new(setup(DscpMode::Verify), &flows);
        let mut t = 1001;
        let mut last = Vec::new();
        for _ in 0..5 {
            for f in flows.iter_mut() {
                send(f, 50, 0, false);
            }
            last = run.poll(&flows, t);
            t += 1;
        }
        assert_eq!(ids(&last), [(MISSING, "audio", Severity::Warning)]);
        assert_eq!(ev(&last[0], "packets_mismatched"), "250");
        assert_eq!(ev(&last[0], "flows"), "1");
        assert_eq!(ev(&last[0], "measured_at"), "lan0 ingress");
        // Traffic stops: still open within the window, gone after it.
        let stopped = t - 1;
        assert_eq!(run.poll(&flows, stopped + WINDOW_S - 1).len(), 1);
        assert!(run.poll(&flows, stopped + WINDOW_S).is_empty());
    }

    #[test]
    fn marks_lost_inside_the_gateway_and_bleached_on_the_way_in() {
        let mut flows = four_copies();
        let mut run = Run::new(setup(DscpMode::Verify), &flows);
        // The phone marks EF; the gateway clears it; the ISP clears the replies' too.
        send(&mut flows[0], 100, 46, false);
        send(&mut flows[1], 100, 0, false);
        send(&mut flows[2], 100, 0, false);
        send(&mut flows[3], 100, 0, false);
        let v = run.poll(&flows, 1001);
        // WAN egress left unmarked, so bleaching cannot be told; the loss can.
        assert_eq!(ids(&v), [(LOST, "audio", Severity::Warning)]);
        assert_eq!(ev(&v[0], "packets_marked_on_arrival"), "100");
        assert_eq!(ev(&v[0], "measured_at"), "wan0 egress");
        // The last packet's WAN copy counted a poll after its LAN copy: still lost.
        send(&mut flows[1], 1, 0, false);
        let v = run.poll(&flows, 1002);
        assert_eq!(ev(&v[0], "packets_mismatched"), "101");
        assert_eq!(ev(&v[0], "packets_marked_on_arrival"), "100");

        // Now with rewrite on WAN egress: the outbound leaves marked, the replies arrive
        // bleached (information) and the LAN egress copy inherits it (no finding).
        let mut flows = four_copies();
        let mut run = Run::new(setup(DscpMode::Rewrite), &flows);
        send(&mut flows[0], 100, 46, false);
        send(&mut flows[1], 100, 46, true);
        send(&mut flows[2], 100, 0, false);
        send(&mut flows[3], 100, 0, false);
        let v = run.poll(&flows, 1001);
        assert_eq!(ids(&v), [(BLEACHED, "audio", Severity::Info)]);
        assert_eq!(ev(&v[0], "inbound_packets_without_mark"), "100");
        assert_eq!(ev(&v[0], "outbound_packets_marked"), "100");
        assert!(v[0].remediation.contains("LAN interface"));
        // More of the same call in the next poll: the outbound flow counts once.
        send(&mut flows[1], 50, 46, true);
        send(&mut flows[2], 50, 0, false);
        let v = run.poll(&flows, 1002);
        assert_eq!(ev(&v[0], "inbound_packets_without_mark"), "150");
        assert_eq!(ev(&v[0], "outbound_packets_marked"), "150");
        assert_eq!(ev(&v[0], "flows"), "1");

        // Marked replies arriving, leaving the gateway unmarked: lost on the way in.
        let mut flows = vec![
            flow("wan0", "ingress", NODE, GW),
            flow("lan0", "egress", NODE, PHONE),
        ];
        let mut run = Run::new(setup(DscpMode::Verify), &flows);
        send(&mut flows[0], 30, 46, false);
        send(&mut flows[1], 30, 0, false);
        let v = run.poll(&flows, 1001);
        assert_eq!(ids(&v), [(LOST, "audio", Severity::Warning)]);
        assert_eq!(ev(&v[0], "measured_at"), "lan0 egress");
    }

    #[test]
    fn lifetime_counts_never_open_a_finding() {
        // Counted before the daemon started (pinned maps): the baseline poll takes them.
        let mut f = flow("lan0", "ingress", PHONE, NODE);
        send(&mut f, 500, 0, false);
        let mut run = Run::new(setup(DscpMode::Verify), std::slice::from_ref(&f));
        assert!(run.poll(std::slice::from_ref(&f), 1001).is_empty());
        // A few more below the minimum: still nothing; enough: the finding.
        send(&mut f, MIN_PACKETS - 1, 0, false);
        assert!(run.poll(std::slice::from_ref(&f), 1002).is_empty());
        send(&mut f, 1, 0, false);
        let v = run.poll(std::slice::from_ref(&f), 1003);
        assert_eq!(ev(&v[0], "packets_mismatched"), MIN_PACKETS.to_string());
    }

    #[test]
    fn unsettled_media_is_not_judged_and_counts_once_when_it_settles() {
        let mut f = flow("lan0", "ingress", PHONE, NODE);
        f.class = "media".into();
        f.dscp_class = Some("media".into());
        f.classified_by = Some("port_rule".into());
        let mut run = Run::new(setup(DscpMode::Verify), std::slice::from_ref(&f));
        send(&mut f, profile::MIN_PACKETS - 1, 0, false);
        assert!(run.poll(std::slice::from_ref(&f), 1001).is_empty());
        // Settled as audio by its profile: every unmarked packet so far counts.
        send(&mut f, 6, 0, false);
        f.dscp_class = Some("audio".into());
        f.classified_by = Some("profile".into());
        let v = run.poll(std::slice::from_ref(&f), 1002);
        assert_eq!(ids(&v), [(MISSING, "audio", Severity::Warning)]);
        assert_eq!(
            ev(&v[0], "packets_mismatched"),
            (profile::MIN_PACKETS + 5).to_string()
        );
    }

    #[test]
    fn wrong_marks_and_off_directions() {
        let mut flows = vec![
            flow("lan0", "ingress", PHONE, NODE),
            flow("lan0", "egress", NODE, PHONE),
        ];
        let mut s = setup(DscpMode::Verify);
        s.interfaces[1].egress = DscpMode::Off;
        let mut run = Run::new(s, &flows);
        send(&mut flows[0], 20, 34, false);
        send(&mut flows[1], 20, 0, false);
        let v = run.poll(&flows, 1001);
        assert_eq!(ids(&v), [(WRONG, "audio", Severity::Warning)]);
    }
}
