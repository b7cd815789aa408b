//! The parser on uplinks that are not plain Ethernet, through BPF_PROG_TEST_RUN: packets
//! of L3 devices (tun, WireGuard, PPP: the IP header at offset 0, as `LINK_KINDS` says
//! for the interface) and PPPoE session frames (also inside a VLAN tag, as on DSL lines
//! with VLAN 7). Each lands in the right flow and class, PPP control is not IP, and DSCP
//! rewrite sets the mark at the right offset with a valid IPv4 checksum.

mod support;

use std::net::Ipv4Addr;

use aya::maps::Array;
use monitor_common::{
    Class, WebexSide,
    link::{LINK_ETHERNET, LINK_L3, ROLE_LAN, ROLE_WAN},
    map_names,
};
use support::{Kernel, TC_ACT_OK, XDP_PASS, key_v4, key_v6};
use xtask::frames::{ETH_P_8021Q, Ipv4, Ipv6, L4, ethernet, ipv4_checksum};

const LAN: [u8; 4] = [192, 0, 2, 10];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const LAN6: &str = "2001:db8:1::10";
const WEBEX6: &str = "2001:db8:ff::10";
const UDP: u8 = 17;
const INGRESS: u8 = 0;
const EGRESS: u8 = 1;
const EF: u8 = 46;
const ETH_P_PPP_SES: u16 = 0x8864;
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_LCP: u16 = 0xc021;

/// Test runs use `lo` (ifindex 1): marks it as an L3 device or Ethernet.
fn set_kind(k: &mut Kernel, kind: u8) {
    let map = k.harness.ebpf.map_mut(map_names::LINK_KINDS).unwrap();
    let mut kinds: Array<_, u8> = Array::try_from(map).unwrap();
    kinds.set(1, kind, 0).unwrap();
}

fn ip4_udp(sport: u16, dport: u16, dscp: u8) -> Vec<u8> {
    let mut ip = Ipv4::new(Ipv4Addr::from(LAN), Ipv4Addr::from(WEBEX));
    ip.dscp = dscp;
    ip.ecn = 1;
    ip.packet(UDP, &L4::udp(sport, dport, 160).bytes())
}

fn ip6_udp(sport: u16, dport: u16) -> Vec<u8> {
    Ipv6::new(LAN6.parse().unwrap(), WEBEX6.parse().unwrap())
        .packet(UDP, &L4::udp(sport, dport, 160).bytes())
}

/// A PPPoE session frame (session 0x0042) carrying `protocol` and `payload`, after `vlans`.
fn pppoe(vlans: &[(u16, u16)], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x11, 0x00, 0x00, 0x42];
    p.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&protocol.to_be_bytes());
    p.extend_from_slice(payload);
    ethernet(vlans, ETH_P_PPP_SES, &p)
}

/// TC rewrote the IPv4 header at `l3` to EF, kept ECN, fixed the checksum, changed
/// nothing else.
fn assert_rewritten_to_ef(k: &mut Kernel, frame: &[u8], l3: usize) {
    let run = k.tc_run(frame, 0);
    assert_eq!(run.verdict, TC_ACT_OK);
    let out = run.packet;
    assert_eq!(out.len(), frame.len());
    assert_eq!(out[l3 + 1] >> 2, EF, "DSCP set");
    assert_eq!(out[l3 + 1] & 3, frame[l3 + 1] & 3, "ECN kept");
    let header = &out[l3..l3 + 20];
    assert_eq!(
        u16::from_be_bytes([header[10], header[11]]),
        ipv4_checksum(header),
        "IPv4 checksum valid"
    );
    for (i, (a, b)) in frame.iter().zip(&out).enumerate() {
        if ![l3 + 1, l3 + 10, l3 + 11].contains(&i) {
            assert_eq!(a, b, "byte {i} changed");
        }
    }
}

#[test]
fn an_l3_device_is_parsed_from_the_ip_header_and_rewritten_there() {
    let mut k =
        Kernel::load_with_interface("dscp_egress = \"rewrite\"", "dedicated_port_ranges = true");
    set_kind(&mut k, LINK_L3);
    assert_eq!(k.xdp(&ip4_udp(52000, 5004, 0)), XDP_PASS);
    assert_eq!(k.xdp(&ip6_udp(52001, 5004)), XDP_PASS);
    // (A test run needs 14 bytes at least.)
    let mut cut = vec![0u8; 16];
    cut[0] = 0x45;
    assert_eq!(k.xdp(&cut), XDP_PASS, "a cut header");
    assert_eq!(k.xdp(&[0x00; 40]), XDP_PASS, "not IP");
    assert_rewritten_to_ef(&mut k, &ip4_udp(52002, 5004, 0), 0);

    let c = k.counters();
    assert_eq!((c.seen, c.ipv4, c.ipv6, c.non_ip), (5, 2, 1, 1));
    assert_eq!(c.malformed_total(), 1, "the cut IPv4 header");
    let audio = k
        .flow(&key_v4(LAN, 52000, WEBEX, 5004, UDP, INGRESS))
        .expect("ipv4 flow");
    assert_eq!((audio.packets, audio.class), (1, Class::Audio as u32));
    let v6 = k
        .flow(&key_v6(LAN6, 52001, WEBEX6, 5004, UDP, INGRESS))
        .expect("ipv6 flow");
    assert_eq!((v6.packets, v6.class), (1, Class::Audio as u32));
    let out = k
        .flow(&key_v4(LAN, 52002, WEBEX, 5004, UDP, EGRESS))
        .expect("egress flow");
    assert_eq!(
        (out.packets, out.dscp_match, out.dscp_rewritten),
        (1, 1, 1),
        "rewritten on the L3 device"
    );

    // The same bytes on an Ethernet interface are no IP packet of ours.
    set_kind(&mut k, LINK_ETHERNET);
    assert_eq!(k.xdp(&ip4_udp(52000, 5004, 0)), XDP_PASS);
    assert_eq!(
        k.flow(&key_v4(LAN, 52000, WEBEX, 5004, UDP, INGRESS))
            .unwrap()
            .packets,
        1,
        "not counted again"
    );
}

#[test]
fn pppoe_sessions_are_parsed_also_in_a_vlan_and_rewritten_at_their_offset() {
    let mut k =
        Kernel::load_with_interface("dscp_egress = \"rewrite\"", "dedicated_port_ranges = true");
    let vlan7 = [(ETH_P_8021Q, 7)];
    assert_eq!(
        k.xdp(&pppoe(&[], PPP_IP, &ip4_udp(52010, 5004, 0))),
        XDP_PASS
    );
    assert_eq!(
        k.xdp(&pppoe(&vlan7, PPP_IPV6, &ip6_udp(52011, 5004))),
        XDP_PASS
    );
    // LCP echo: PPP control, not IP.
    assert_eq!(
        k.xdp(&pppoe(&[], PPP_LCP, &[9, 1, 0, 8, 0, 0, 0, 0])),
        XDP_PASS
    );
    // Ethernet (14) + PPPoE (6) + PPP protocol (2); a VLAN tag adds 4.
    assert_rewritten_to_ef(&mut k, &pppoe(&[], PPP_IP, &ip4_udp(52012, 5004, 0)), 22);
    assert_rewritten_to_ef(
        &mut k,
        &pppoe(&vlan7, PPP_IP, &ip4_udp(52013, 5004, 10)),
        26,
    );

    let c = k.counters();
    assert_eq!((c.seen, c.ipv4, c.ipv6, c.non_ip), (5, 3, 1, 1));
    assert_eq!(c.malformed_total(), 0);
    for (key, class) in [
        (key_v4(LAN, 52010, WEBEX, 5004, UDP, INGRESS), Class::Audio),
        (
            key_v6(LAN6, 52011, WEBEX6, 5004, UDP, INGRESS),
            Class::Audio,
        ),
    ] {
        let f = k.flow(&key).unwrap_or_else(|| panic!("no flow {key:?}"));
        assert_eq!((f.packets, f.class), (1, class as u32));
    }
    for sport in [52012, 52013] {
        let f = k
            .flow(&key_v4(LAN, sport, WEBEX, 5004, UDP, EGRESS))
            .expect("egress flow");
        assert_eq!((f.dscp_match, f.dscp_rewritten), (1, 1), "{sport}");
    }
    // A cut PPPoE header is a cut link-layer header.
    let cut = ethernet(&[], ETH_P_PPP_SES, &[0x11, 0, 0, 0x42]);
    assert_eq!(k.xdp(&cut), XDP_PASS);
    assert_eq!(k.counters().malformed_total(), 1);
}

/// A site whose own addresses fall in a configured Webex prefix (here 198.51.100.0/24:
/// LAN hosts, and the gateway's WAN address) talks to a Webex server and to a server that
/// is not Webex. The interface's role names the remote address, so the local one is
/// never taken for the Webex peer: each direction of the call is one flow with the
/// server as its Webex side, and traffic to the other server is not Webex. Without a
/// role (an entry no daemon has filled), both addresses are looked up and the
/// destination wins: the reverse stream then names the local host as its Webex peer,
/// the phantom call this test guards against.
#[test]
fn the_role_names_the_remote_address_so_a_local_address_in_a_webex_prefix_is_no_peer() {
    let pin = xtask::PinDir::new();
    let text = format!(
        r#"
[daemon]
pin_path = "{}"
status_socket = "/nonexistent/monitor-test.sock"
flow_table_size = 1024

[[interfaces]]
name = "lo"
role = "lan"

[webex]
use_default_prefixes = false
prefixes = ["203.0.113.0/24", "198.51.100.0/24"]
"#,
        pin.path().display()
    );
    let cfg =
        monitor::config::parse_and_validate(&text, std::path::Path::new("t.toml"), &|_| Some(1))
            .unwrap();
    let harness = monitor::kernel::harness::Harness::load(&cfg).unwrap();
    let mut k = Kernel { harness, pin };
    const LOCAL: [u8; 4] = [198, 51, 100, 20];
    const OTHER: [u8; 4] = [192, 0, 2, 99];
    let v4 = |src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16| {
        Ipv4::new(Ipv4Addr::from(src), Ipv4Addr::from(dst))
            .packet(UDP, &L4::udp(sport, dport, 160).bytes())
    };
    let side = |k: &Kernel, key| k.flow(&key).map(|f| WebexSide::from_u32(f.webex_side));

    for (role, name, sport) in [(ROLE_LAN, "LAN", 52000), (ROLE_WAN, "WAN", 52010)] {
        set_kind(&mut k, LINK_L3 | role);
        // The call: towards the server on ingress and from it on egress (LAN), or from
        // it on ingress and towards it on egress (WAN).
        let (in_src, in_dst, out_src, out_dst) = if role == ROLE_LAN {
            ((LOCAL, sport), (WEBEX, 5004), (WEBEX, 5004), (LOCAL, sport))
        } else {
            ((WEBEX, 5004), (LOCAL, sport), (LOCAL, sport), (WEBEX, 5004))
        };
        assert_eq!(k.xdp(&v4(in_src.0, in_src.1, in_dst.0, in_dst.1)), XDP_PASS);
        assert_eq!(
            k.tc(&v4(out_src.0, out_src.1, out_dst.0, out_dst.1), 0),
            TC_ACT_OK
        );
        let server_side = |src: [u8; 4]| {
            if src == WEBEX {
                WebexSide::Src
            } else {
                WebexSide::Dst
            }
        };
        assert_eq!(
            side(
                &k,
                key_v4(in_src.0, in_src.1, in_dst.0, in_dst.1, UDP, INGRESS)
            ),
            Some(server_side(in_src.0)),
            "{name} ingress: the server is the peer"
        );
        assert_eq!(
            side(
                &k,
                key_v4(out_src.0, out_src.1, out_dst.0, out_dst.1, UDP, EGRESS)
            ),
            Some(server_side(out_src.0)),
            "{name} egress: the server is the peer, not the local host"
        );
    }
    assert_eq!(
        k.snapshot().flows.len(),
        4,
        "one flow per direction per call"
    );

    // The local host and a server outside the prefixes: not Webex, in both directions.
    set_kind(&mut k, LINK_L3 | ROLE_LAN);
    let before = k.counters().not_webex_packets;
    assert_eq!(k.xdp(&v4(LOCAL, 40000, OTHER, 443)), XDP_PASS);
    assert_eq!(k.tc(&v4(OTHER, 443, LOCAL, 40000), 0), TC_ACT_OK);
    assert_eq!(k.counters().not_webex_packets - before, 2);
    assert_eq!(k.snapshot().flows.len(), 4, "no flow for the other server");

    // Without a role, the old guess: the destination wins, here the local host.
    set_kind(&mut k, LINK_L3);
    assert_eq!(k.tc(&v4(WEBEX, 5004, LOCAL, 52020), 0), TC_ACT_OK);
    assert_eq!(
        side(&k, key_v4(WEBEX, 5004, LOCAL, 52020, UDP, EGRESS)),
        Some(WebexSide::Dst),
        "no role: the local host is taken for the peer"
    );
}
