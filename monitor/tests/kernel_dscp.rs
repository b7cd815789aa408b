//! DSCP in the kernel, through BPF_PROG_TEST_RUN: the bytes the TC program leaves in
//! rewrite mode (right DS field, ECN kept, IPv4 checksum valid by an independent
//! computation, IPv6 changed only in the traffic class, everything else byte-identical),
//! and the exact verify counters in both directions.

mod support;

use std::net::Ipv4Addr;

use monitor_common::{Class, FlowStats};
use support::{Kernel, TC_ACT_OK, XDP_PASS, key_v4, key_v6};
use xtask::frames::{self, ETH_P_8021Q, ETH_P_IP, Ipv4, Ipv6, L4, ipv4_checksum};

const LAN: [u8; 4] = [192, 0, 2, 10];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const OTHER: [u8; 4] = [198, 51, 100, 2];
const LAN6: &str = "2001:db8:1::10";
const WEBEX6: &str = "2001:db8:ff::10";
const UDP: u8 = 17;
const TCP: u8 = 6;
const INGRESS: u8 = 0;
const EGRESS: u8 = 1;
const EF: u8 = 46;
const AF41: u8 = 34;
const CS3: u8 = 24;

const REWRITE: &str = "dscp_egress = \"rewrite\"";
const DEDICATED: &str = "dedicated_port_ranges = true";

fn ip4(src: [u8; 4], dst: [u8; 4], dscp: u8, ecn: u8) -> Ipv4 {
    let mut ip = Ipv4::new(Ipv4Addr::from(src), Ipv4Addr::from(dst));
    ip.dscp = dscp;
    ip.ecn = ecn;
    ip
}

fn udp4(sport: u16, dport: u16, dscp: u8, ecn: u8) -> Vec<u8> {
    frames::v4(&ip4(LAN, WEBEX, dscp, ecn), &L4::udp(sport, dport, 160))
}

fn tcp4(sport: u16, dport: u16, dscp: u8, ecn: u8) -> Vec<u8> {
    frames::v4(&ip4(LAN, WEBEX, dscp, ecn), &L4::tcp(sport, dport, 100))
}

/// Runs TC once and checks the output is `frame` with the IPv4 header at `l3` carrying
/// `dscp` and the original ECN bits, a checksum that a full recomputation agrees with,
/// and no other byte changed.
fn assert_v4_rewritten(k: &mut Kernel, frame: &[u8], l3: usize, dscp: u8) {
    let run = k.tc_run(frame, 0);
    assert_eq!(run.verdict, TC_ACT_OK);
    let out = run.packet;
    assert_eq!(out.len(), frame.len());
    let ihl = (frame[l3] & 0x0f) as usize * 4;
    let tos = out[l3 + 1];
    assert_eq!(tos >> 2, dscp, "DSCP set");
    assert_eq!(tos & 3, frame[l3 + 1] & 3, "ECN unchanged");
    let header = &out[l3..l3 + ihl];
    assert_eq!(
        u16::from_be_bytes([header[10], header[11]]),
        ipv4_checksum(header),
        "IPv4 header checksum valid"
    );
    for (i, (a, b)) in frame.iter().zip(&out).enumerate() {
        if i != l3 + 1 && i != l3 + 10 && i != l3 + 11 {
            assert_eq!(a, b, "byte {i} changed");
        }
    }
}

fn assert_unchanged(k: &mut Kernel, frame: &[u8]) {
    assert_eq!(k.tc(frame, 0), TC_ACT_OK);
}

fn flow(k: &Kernel, key: &monitor_common::FlowKey) -> FlowStats {
    k.flow(key).unwrap_or_else(|| panic!("no flow {key:?}"))
}

fn dscp_counts(s: &FlowStats) -> (u64, u64, u64) {
    (s.dscp_match, s.dscp_mismatch, s.dscp_rewritten)
}

#[test]
fn rewrite_sets_each_class_mark_keeps_ecn_and_fixes_the_ipv4_checksum() {
    let mut k = Kernel::load_with_interface(REWRITE, DEDICATED);
    let l3 = frames::l3_offset(0);
    // Audio (dedicated source port), unmarked, ECT(1).
    assert_v4_rewritten(&mut k, &udp4(52000, 5004, 0, 1), l3, EF);
    // Video, marked CS1, CE.
    assert_v4_rewritten(&mut k, &udp4(52100, 5004, 8, 3), l3, AF41);
    // Media of unknown kind: EF by default.
    assert_v4_rewritten(&mut k, &udp4(40000, 9000, 0, 2), l3, EF);
    // SIP/TLS and HTTPS control: CS3.
    assert_v4_rewritten(&mut k, &tcp4(40001, 5061, 0, 0), l3, CS3);
    assert_v4_rewritten(&mut k, &tcp4(40002, 443, 63, 2), l3, CS3);

    // IPv4 options and a VLAN tag move the header; the checksum covers the options.
    let mut ip = ip4(LAN, WEBEX, 0, 1);
    ip.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
    let with_options = frames::v4(&ip, &L4::udp(52001, 5004, 40));
    assert_v4_rewritten(&mut k, &with_options, l3, EF);
    let tagged = frames::ethernet(
        &[(ETH_P_8021Q, 100)],
        ETH_P_IP,
        &ip4(LAN, WEBEX, 0, 0).packet(UDP, &L4::udp(52002, 5004, 40).bytes()),
    );
    assert_v4_rewritten(&mut k, &tagged, frames::l3_offset(1), EF);

    let key = |sport, dport, proto| key_v4(LAN, sport, WEBEX, dport, proto, EGRESS);
    assert_eq!(flow(&k, &key(52000, 5004, UDP)).class, Class::Audio as u32);
    assert_eq!(flow(&k, &key(52100, 5004, UDP)).class, Class::Video as u32);
    for (sport, dport, proto) in [
        (52000, 5004, UDP),
        (52100, 5004, UDP),
        (40000, 9000, UDP),
        (40001, 5061, TCP),
        (40002, 443, TCP),
        (52001, 5004, UDP),
        (52002, 5004, UDP),
    ] {
        let s = flow(&k, &key(sport, dport, proto));
        // On the wire the packet carries the right mark: matched, and rewritten by us.
        assert_eq!(dscp_counts(&s), (1, 0, 1), "{sport}->{dport}");
    }
}

#[test]
fn rewrite_leaves_correct_marks_and_other_traffic_byte_identical() {
    let mut k = Kernel::load_with_interface(REWRITE, DEDICATED);
    // Already right: untouched, counted as matching, not rewritten.
    assert_unchanged(&mut k, &udp4(52000, 5004, EF, 2));
    // Media of unknown kind accepts the video mark too.
    assert_unchanged(&mut k, &udp4(40000, 5004, AF41, 0));
    // Not Webex (the peer is outside the Webex prefixes), marked or not.
    assert_unchanged(
        &mut k,
        &frames::v4(&ip4(LAN, OTHER, 0, 1), &L4::udp(52000, 5004, 160)),
    );
    assert_unchanged(
        &mut k,
        &frames::v4(&ip4(LAN, OTHER, 8, 0), &L4::tcp(40000, 5061, 20)),
    );
    // Webex classes without a mark in the seed's table (DNS, other ports).
    assert_unchanged(&mut k, &udp4(40003, 53, 0, 0));
    assert_unchanged(&mut k, &udp4(40004, 1234, 0, 0));
    // Later fragments carry no ports: other Webex, no mark expected.
    let mut frag = ip4(LAN, WEBEX, 0, 0);
    frag.frag_offset = 100;
    assert_unchanged(&mut k, &frames::v4(&frag, &L4::udp(52000, 5004, 40)));

    let key = |sport, dport| key_v4(LAN, sport, WEBEX, dport, UDP, EGRESS);
    assert_eq!(dscp_counts(&flow(&k, &key(52000, 5004))), (1, 0, 0));
    assert_eq!(dscp_counts(&flow(&k, &key(40000, 5004))), (1, 0, 0));
    assert_eq!(dscp_counts(&flow(&k, &key(40003, 53))), (0, 0, 0));
    assert_eq!(dscp_counts(&flow(&k, &key(40004, 1234))), (0, 0, 0));
    assert_eq!(k.counters().not_webex_packets, 2);
}

#[test]
fn rewrite_ipv6_changes_only_the_traffic_class_dscp_bits() {
    let mut k = Kernel::load_with_interface(REWRITE, DEDICATED);
    for (sport, ecn, want) in [(52000u16, 2u8, EF), (52100, 1, AF41), (52101, 3, AF41)] {
        let mut ip = Ipv6::new(LAN6.parse().unwrap(), WEBEX6.parse().unwrap());
        ip.ecn = ecn;
        ip.dscp = 10;
        ip.flow_label = 0xabcde;
        let frame = frames::v6(&ip, &L4::udp(sport, 5004, 160));
        let run = k.tc_run(&frame, 0);
        assert_eq!(run.verdict, TC_ACT_OK);
        let out = run.packet;
        let l3 = frames::l3_offset(0);
        let vtcfl = u32::from_be_bytes([out[l3], out[l3 + 1], out[l3 + 2], out[l3 + 3]]);
        assert_eq!(vtcfl >> 28, 6, "version");
        let tc = ((vtcfl >> 20) & 0xff) as u8;
        assert_eq!(tc >> 2, want, "DSCP");
        assert_eq!(tc & 3, ecn, "ECN unchanged");
        assert_eq!(vtcfl & 0xfffff, 0xabcde, "flow label unchanged");
        // Only the two bytes holding the traffic class may differ.
        assert_eq!(out[..l3], frame[..l3]);
        assert_eq!(out[l3 + 2..], frame[l3 + 2..]);
        let s = flow(&k, &key_v6(LAN6, sport, WEBEX6, 5004, UDP, EGRESS));
        assert_eq!(dscp_counts(&s), (1, 0, 1));
    }
}

#[test]
fn rewrite_counts_every_segment_of_a_gso_packet() {
    let mut k = Kernel::load_with_interface(REWRITE, DEDICATED);
    let frame = tcp4(40010, 5061, 0, 0);
    let run = k.tc_run(&frame, 5);
    assert_eq!(run.packet[frames::l3_offset(0) + 1] >> 2, CS3);
    let s = flow(&k, &key_v4(LAN, 40010, WEBEX, 5061, TCP, EGRESS));
    assert_eq!(s.packets, 5);
    assert_eq!(dscp_counts(&s), (5, 0, 5));
}

#[test]
fn verify_counts_exactly_and_never_changes_a_byte() {
    // Default modes: verify on ingress and egress.
    let mut k = Kernel::load_with_interface("", DEDICATED);
    for _ in 0..3 {
        assert_unchanged(&mut k, &udp4(52000, 5004, 0, 0));
    }
    for _ in 0..2 {
        assert_unchanged(&mut k, &udp4(52000, 5004, EF, 1));
    }
    assert_unchanged(&mut k, &udp4(52000, 5004, AF41, 0));
    let s = flow(&k, &key_v4(LAN, 52000, WEBEX, 5004, UDP, EGRESS));
    assert_eq!(dscp_counts(&s), (2, 4, 0));
    assert_eq!(s.dscp_seen, (1 << 0) | (1 << EF) | (1 << AF41));

    // Ingress (XDP) counts the same way; XDP asserts the bytes are unchanged.
    let reply = frames::v4(&ip4(WEBEX, LAN, 0, 0), &L4::udp(5004, 52000, 160));
    let marked = frames::v4(&ip4(WEBEX, LAN, EF, 0), &L4::udp(5004, 52000, 160));
    for _ in 0..4 {
        assert_eq!(k.xdp(&reply), XDP_PASS);
    }
    assert_eq!(k.xdp(&marked), XDP_PASS);
    let s = flow(&k, &key_v4(WEBEX, 5004, LAN, 52000, UDP, INGRESS));
    assert_eq!(dscp_counts(&s), (1, 4, 0));
}

#[test]
fn rewrite_mode_never_touches_ingress_and_off_counts_nothing() {
    let mut k = Kernel::load_with_interface("dscp_ingress = \"off\"\ndscp_egress = \"off\"", "");
    assert_unchanged(&mut k, &udp4(40000, 5004, 0, 0));
    assert_eq!(k.xdp(&udp4(40001, 5004, 0, 0)), XDP_PASS);
    let s = flow(&k, &key_v4(LAN, 40000, WEBEX, 5004, UDP, EGRESS));
    assert_eq!((s.packets, dscp_counts(&s)), (1, (0, 0, 0)));
    let s = flow(&k, &key_v4(LAN, 40001, WEBEX, 5004, UDP, INGRESS));
    assert_eq!((s.packets, dscp_counts(&s)), (1, (0, 0, 0)));

    // Egress rewrite: ingress still only verifies (XDP leaves bytes alone).
    let mut k = Kernel::load_with_interface(REWRITE, "");
    assert_eq!(k.xdp(&udp4(40002, 5004, 0, 0)), XDP_PASS);
    let s = flow(&k, &key_v4(LAN, 40002, WEBEX, 5004, UDP, INGRESS));
    assert_eq!(dscp_counts(&s), (0, 1, 0));
}
