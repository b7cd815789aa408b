//! Which call each stream belongs to.

use super::*;
use monitor_common::rtp::RtpStreamState;

const S: u64 = 1_000_000_000;
const PHONE: [u8; 4] = [192, 0, 2, 10];
const NAT: [u8; 4] = [198, 51, 100, 1];
const WEBEX: [u8; 4] = [203, 0, 113, 10];

/// A UDP flow key on `ifindex` in direction `dir`.
pub(crate) fn key(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    ifindex: u32,
    dir: Direction,
) -> FlowKey {
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

#[test]
fn wan_copies_join_their_lan_twin_by_ssrc() {
    let (lan, wan) = (2, 3);
    let up_lan = key(PHONE, 40000, WEBEX, 5004, lan, Direction::Ingress);
    let up_wan = key(NAT, 61000, WEBEX, 5004, wan, Direction::Egress);
    let down_wan = key(WEBEX, 5004, NAT, 61000, wan, Direction::Ingress);
    // A WAN stream with no LAN twin keeps the address the WAN side sees.
    let lone = key(WEBEX, 5004, NAT, 62000, wan, Direction::Ingress);
    let flows = vec![
        (up_lan, flow(WebexSide::Dst)),
        (up_wan, flow(WebexSide::Dst)),
        (down_wan, flow(WebexSide::Src)),
        (lone, flow(WebexSide::Src)),
    ];
    let live = RtpStreamState {
        last_seen_ns: 10 * S,
        ..Default::default()
    };
    let sk = |flow, ssrc| RtpStreamKey { flow, ssrc };
    let snap = QualitySnapshot {
        streams: vec![
            (sk(up_lan, 1), live),
            (sk(up_wan, 1), live),
            (sk(down_wan, 2), live),
            (sk(lone, 9), live),
        ],
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
    let obs = observe(&flows.into(), &snap, &ifaces);
    let call_of = |f: &FlowKey| obs.iter().find(|o| o.key.flow == *f).unwrap().call;
    let phone_call = CallKey {
        inner: "192.0.2.10".parse().unwrap(),
        inner_port: 40000,
        peer: "203.0.113.10".parse().unwrap(),
        peer_port: 5004,
    };
    assert_eq!(call_of(&up_lan), phone_call);
    assert_eq!(call_of(&up_wan), phone_call);
    // The downstream SSRC has no LAN copy here: it stays on the translated address.
    assert_eq!(call_of(&down_wan).inner.to_string(), "198.51.100.1");
    assert_eq!(call_of(&lone).inner_port, 62000);
}
