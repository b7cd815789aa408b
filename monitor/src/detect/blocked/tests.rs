use super::*;
use crate::{anomaly::window::Deltas, status::model::StatusReport};

const PHONE: (&str, u16) = ("192.0.2.10", 52000);
const GW: (&str, u16) = ("198.51.100.1", 52000);
const NODE: (&str, u16) = ("203.0.113.10", 5004);
const RULE: &str = "inet block fwd handle 2 drop";

fn flow(
    template: &FlowStatus,
    iface: &str,
    dir: &str,
    protocol: &str,
    class: &str,
    src: (&str, u16),
    dst: (&str, u16),
) -> FlowStatus {
    let mut f = template.clone();
    f.interface = iface.into();
    f.direction = dir.into();
    f.protocol = protocol.into();
    f.class = class.into();
    (f.src_addr, f.src_port) = (src.0.into(), src.1);
    (f.dst_addr, f.dst_port) = (dst.0.into(), dst.1);
    let (inner, peer) = if src.0 == NODE.0 {
        (dst, src)
    } else {
        (src, dst)
    };
    (f.inner_addr, f.inner_port) = (inner.0.into(), inner.1);
    (f.peer_addr, f.peer_port) = (peer.0.into(), peer.1);
    (f.packets, f.age_s, f.idle_s) = (0, 60.0, 0.0);
    f
}

/// The phone's media to the node at LAN ingress [0] and its NAT copy at WAN egress [1].
fn media() -> StatusReport {
    let mut r = crate::status::render::tests::sample_report();
    let t = r.flows[0].clone();
    r.flows = vec![
        flow(&t, "lan-bridge0", "ingress", "udp", "media", PHONE, NODE),
        flow(&t, "eth0", "egress", "udp", "media", GW, NODE),
    ];
    r
}

struct Run {
    deltas: Deltas,
    state: State,
    now: u64,
    rule_counter: Option<u64>,
}

impl Run {
    fn new() -> Run {
        Run {
            deltas: Deltas::default(),
            state: State::default(),
            now: 1000,
            rule_counter: Some(0),
        }
    }

    fn poll(&mut self, r: &StatusReport) -> Vec<Finding> {
        let baseline = self.deltas.before_baseline();
        let d = self.deltas.update(&r.flows);
        let view = View::new(r, &d, baseline, None, 0.0, None);
        self.now += 1;
        let counter = self.rule_counter;
        let mut out = self.state.here(&view, self.now, || {
            counter.map(|packets| {
                vec![nft_counters::Rule {
                    name: RULE.into(),
                    packets,
                }]
            })
        });
        out.extend(signalling(&view));
        out
    }
}

fn ev<'a>(f: &'a Finding, name: &str) -> &'a str {
    &f.evidence.iter().find(|(k, _)| k == name).unwrap().1
}

#[test]
fn lan_packets_that_never_leave_the_wan_are_blocked_here_and_clear_when_they_pass() {
    let mut r = media();
    let mut run = Run::new();
    assert!(run.poll(&r).is_empty());
    // Passing both ways of the NAT.
    for _ in 0..3 {
        r.flows[0].packets += 50;
        r.flows[1].packets += 50;
        assert!(run.poll(&r).is_empty());
    }
    // A poll between a packet's two copies: not judged in the poll that counted it.
    r.flows[0].packets += 50;
    assert!(run.poll(&r).is_empty());
    r.flows[1].packets += 50;
    assert!(run.poll(&r).is_empty());
    // The gateway starts dropping: the first poll is not judged, the second is; the
    // rule's counter moves with it (its first read is its baseline).
    r.flows[0].packets += 50;
    run.rule_counter = Some(50);
    assert!(run.poll(&r).is_empty());
    // Passed packets of the last 10 s still in the window: not yet.
    let mut polls = 1;
    let v = loop {
        r.flows[0].packets += 50;
        run.rule_counter = run.rule_counter.map(|c| c + 50);
        let v = run.poll(&r);
        polls += 1;
        if !v.is_empty() {
            break v;
        }
        assert!(polls < 20);
    };
    // Found once the last passed poll left the 10 s window.
    assert_eq!(polls, 10);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!((v[0].id, v[0].severity), (HERE, Severity::Critical));
    assert_eq!(
        v[0].subject,
        "lan-bridge0 ingress udp 192.0.2.10:52000 -> 203.0.113.10:5004"
    );
    assert_eq!(ev(&v[0], "port"), "5004");
    assert_eq!(ev(&v[0], "lan_packets"), "500");
    assert_eq!(ev(&v[0], "wan_packets"), "0");
    assert_eq!(ev(&v[0], "gateway_answers"), "0");
    assert_eq!(ev(&v[0], "nft_rules"), format!("{RULE} (500 packets)"));
    // Passing again: gone in the same poll.
    r.flows[0].packets += 50;
    r.flows[1].packets += 50;
    assert!(run.poll(&r).is_empty());
}

#[test]
fn blocked_from_the_start_and_answered_by_the_gateway() {
    let mut r = crate::status::render::tests::sample_report();
    let t = r.flows[0].clone();
    let syn = (NODE.0, 8934);
    r.flows = vec![
        flow(
            &t,
            "lan-bridge0",
            "ingress",
            "tcp",
            "sip_signalling",
            PHONE,
            syn,
        ),
        flow(
            &t,
            "lan-bridge0",
            "egress",
            "tcp",
            "sip_signalling",
            syn,
            PHONE,
        ),
    ];
    let mut run = Run::new();
    run.rule_counter = None;
    assert!(run.poll(&r).is_empty());
    r.flows[0].packets = 1;
    r.flows[1].packets = 1;
    assert!(run.poll(&r).is_empty());
    let v = run.poll(&r);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(ev(&v[0], "protocol"), "tcp");
    assert_eq!(ev(&v[0], "port"), "8934");
    assert_eq!(ev(&v[0], "lan_packets"), "1");
    assert_eq!(ev(&v[0], "gateway_answers"), "1");
    assert_eq!(ev(&v[0], "nft_rules"), "nft -j list ruleset not readable");
    // Nothing more sent: open until the packet leaves the window, then gone.
    for _ in 0..WINDOW_S - 2 {
        assert_eq!(run.poll(&r).len(), 1);
    }
    assert!(run.poll(&r).is_empty());
}

/// A SYN at WAN egress to `port` still waiting for its SYN/ACK, and what came back.
fn handshake(port: u16, back: Option<u64>, icmp: u64, age_s: f64) -> StatusReport {
    let mut r = crate::status::render::tests::sample_report();
    let t = r.flows[0].clone();
    let node = (NODE.0, port);
    let mut syn = flow(&t, "eth0", "egress", "tcp", "sip_signalling", GW, node);
    (
        syn.packets,
        syn.handshake_pending,
        syn.icmp_unreachable,
        syn.age_s,
    ) = (1, true, icmp, age_s);
    r.flows = vec![syn];
    if let Some(packets) = back {
        let mut b = flow(&t, "eth0", "ingress", "tcp", "sip_signalling", node, GW);
        b.packets = packets;
        r.flows.push(b);
    }
    r
}

#[test]
fn signalling_causes_reset_icmp_and_no_answer() {
    let cause = |r: &StatusReport| {
        let d = vec![Default::default(); r.flows.len()];
        let view = View::new(r, &d, false, None, 0.0, None);
        signalling(&view)
            .iter()
            .map(|f| {
                (
                    f.subject.clone(),
                    ev(f, "connections").to_string(),
                    ev(f, "answer_packets").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let one = |s: &str, answers: &str| vec![(s.to_string(), "1".to_string(), answers.into())];
    assert_eq!(
        cause(&handshake(5062, Some(1), 0, 0.1)),
        one("eth0 tcp 203.0.113.10:5062 reset", "1")
    );
    assert_eq!(
        cause(&handshake(5061, None, 1, 0.1)),
        one("eth0 tcp 203.0.113.10:5061 icmp_unreachable", "1")
    );
    // No answer yet: judged after SYN_ANSWER_S.
    assert_eq!(cause(&handshake(443, None, 0, 1.0)), []);
    assert_eq!(
        cause(&handshake(443, None, 0, 3.0)),
        one("eth0 tcp 203.0.113.10:443 no_answer", "0")
    );
    // Answered (no SYN pending), or the last SYN older than the window: nothing.
    let mut r = handshake(5062, Some(3), 0, 5.0);
    r.flows[0].handshake_pending = false;
    assert_eq!(cause(&r), []);
    let mut r = handshake(5062, None, 0, 60.0);
    r.flows[0].idle_s = WINDOW_S as f64;
    assert_eq!(cause(&r), []);
    // Media and other classes are not handshakes judged here.
    let mut r = handshake(5062, Some(1), 0, 1.0);
    r.flows[0].class = "media".into();
    assert_eq!(cause(&r), []);
}

#[test]
fn followed_lan_flows_hold_their_cap_and_count_each_refusal() {
    let mut r = media();
    let t = r.flows[0].clone();
    // MAX_TRACKED + 3 phones' media at LAN ingress, nothing at the WAN.
    r.flows = (0..MAX_TRACKED + 3)
        .map(|i| {
            let src = format!("192.0.2.{}", 1 + i / 60_000);
            flow(
                &t,
                "lan-bridge0",
                "ingress",
                "udp",
                "media",
                (&src, 1024 + (i % 60_000) as u16),
                NODE,
            )
        })
        .collect();
    let mut run = Run::new();
    run.poll(&r);
    // The baseline poll counts nothing: no flow sent, none followed.
    assert_eq!(
        (run.state.table().entries, run.state.table().dropped),
        (0, 0)
    );
    for f in &mut r.flows {
        f.packets += 50;
    }
    run.poll(&r);
    let t = run.state.table();
    assert_eq!((t.detector.as_str(), t.table.as_str()), (HERE, "lan_flows"));
    assert_eq!(
        (t.cap, t.entries, t.dropped),
        (MAX_TRACKED as u64, MAX_TRACKED as u64, 3)
    );
}
