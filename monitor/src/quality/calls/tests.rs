//! Calls from streams seen on both sides of a NAT.

use super::*;

const S: u64 = 1_000_000_000;
const PHONE: [u8; 4] = [192, 0, 2, 10];
const NAT: [u8; 4] = [198, 51, 100, 1];
const WEBEX: [u8; 4] = [203, 0, 113, 10];

fn key(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, ifindex: u32, dir: Direction) -> FlowKey {
    FlowKey {
        src_addr: FlowKey::v4_mapped(src),
        dst_addr: FlowKey::v4_mapped(dst),
        ifindex,
        src_port: sp,
        dst_port: dp,
        protocol: 17,
        family: 4,
        direction: dir as u8,
        _pad: 0,
    }
}

fn flow(side: WebexSide) -> FlowStats {
    FlowStats {
        class: Class::Media as u32,
        webex_side: side as u32,
        ..Default::default()
    }
}

/// A G.711 stream of `n` packets with `lost` lost and 16 × jitter `j16`.
fn state(n: u64, lost: u64, j16: u32) -> RtpStreamState {
    RtpStreamState {
        packets: n,
        received: n - 1,
        base_seq: 100,
        max_seq: 100 + (n - 2 + lost) as u32,
        jitter: j16,
        clock_rate: 8000,
        clock_source: ClockSource::Static as u32,
        last_seen_ns: 10 * S,
        ..Default::default()
    }
}

#[test]
fn one_call_from_four_copies_measured_where_each_direction_enters() {
    let lan = 2;
    let wan = 3;
    let up_lan = key(PHONE, 40000, WEBEX, 5004, lan, Direction::Ingress);
    let up_wan = key(NAT, 40000, WEBEX, 5004, wan, Direction::Egress);
    let down_wan = key(WEBEX, 5004, NAT, 40000, wan, Direction::Ingress);
    let down_lan = key(WEBEX, 5004, PHONE, 40000, lan, Direction::Egress);
    let flows = vec![
        (up_lan, flow(WebexSide::Dst)),
        (up_wan, flow(WebexSide::Dst)),
        (down_wan, flow(WebexSide::Src)),
        (down_lan, flow(WebexSide::Src)),
    ];
    let sk = |flow, ssrc| RtpStreamKey { flow, ssrc };
    let snap = QualitySnapshot {
        streams: vec![
            (sk(up_lan, 1), state(101, 0, 16 * 8)),
            (sk(up_wan, 1), state(101, 0, 16 * 8)),
            // Downstream: 2 of 200 lost, 40 ms jitter (16 × 320 units at 8 kHz).
            (sk(down_wan, 2), state(199, 2, 16 * 320)),
            (sk(down_lan, 2), state(199, 2, 16 * 330)),
        ],
        rtt: vec![(
            up_wan,
            monitor_common::rtp::RttStats {
                last_ns: 80_000_000,
                samples: 1,
                last_at_ns: 9 * S,
                ..Default::default()
            },
        )],
        ..Default::default()
    };
    let ifaces = HashMap::from([
        (
            lan,
            Iface {
                name: "lan0",
                role: "lan",
            },
        ),
        (
            wan,
            Iface {
                name: "wan0",
                role: "wan",
            },
        ),
    ]);
    let calls = build(&flows, &snap, &ifaces, &QualityConfig::default(), 11 * S);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let c = &calls[0];
    assert_eq!(c.inner_addr, "192.0.2.10");
    assert_eq!(c.peer_addr, "203.0.113.10");
    assert_eq!(c.peer_port, 5004);
    assert_eq!(c.direction, "both");
    assert_eq!(c.kind, "audio");
    // Each direction once: 101 up (LAN ingress) + 199 down (WAN ingress).
    assert_eq!(c.packets, 300);
    assert_eq!(c.legs[0].measured_at, "lan0 ingress");
    assert_eq!(c.legs[1].measured_at, "wan0 ingress");
    assert_eq!(c.legs[1].lost, 2);
    assert!((c.loss_pct - 1.0).abs() < 1e-9);
    assert!((c.jitter_ms - 40.0).abs() < 1e-9);
    assert_eq!(c.rtt_ms, Some(80.0));
    assert_eq!(c.one_way_latency_ms_estimate, Some(40.0));
    assert_eq!(c.health, "warning");
    // Jitter only: 1 % loss is not above the 1 % threshold.
    assert_eq!(c.breaches, vec!["jitter 40.0 ms > 30 ms".to_string()]);
    // Delay 40 + 2 × 40 = 120 ms, 1 % loss: R = 93.2 − 2.88 − 3.640 = 86.68.
    let r: f64 = 93.2 - 0.024 * 120.0 - 95.0 / 26.1;
    let want = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
    assert!((c.mos - (want * 100.0).round() / 100.0).abs() < 1e-9);
}

#[test]
fn idle_streams_are_not_calls_and_wan_only_uses_its_own_inner() {
    let wan = 3;
    let down = key(WEBEX, 5004, NAT, 40000, wan, Direction::Ingress);
    let flows = vec![(down, flow(WebexSide::Src))];
    let sk = RtpStreamKey {
        flow: down,
        ssrc: 7,
    };
    let snap = QualitySnapshot {
        streams: vec![(sk, state(50, 0, 0))],
        ..Default::default()
    };
    let ifaces = HashMap::from([(
        wan,
        Iface {
            name: "wan0",
            role: "wan",
        },
    )]);
    let q = QualityConfig::default();
    let calls = build(&flows, &snap, &ifaces, &q, 11 * S);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].inner_addr, "198.51.100.1");
    assert_eq!(calls[0].direction, "from_webex");
    assert_eq!(calls[0].health, "ok");
    assert!(build(&flows, &snap, &ifaces, &q, 200 * S).is_empty());
}

#[test]
fn health_levels() {
    let q = QualityConfig::default();
    assert_eq!(health(&q, Some(100.0), 5.0, 0.0, 4.3).0, "ok");
    assert_eq!(health(&q, Some(160.0), 5.0, 0.0, 4.3).0, "warning");
    assert_eq!(health(&q, Some(310.0), 5.0, 0.0, 4.3).0, "critical");
    assert_eq!(health(&q, None, 5.0, 0.0, 3.4).0, "critical");
    assert_eq!(health(&q, None, 5.0, 1.5, 4.3).0, "warning");
}
