//! Fragments of a Webex datagram count on its flow: the kernel remembers the first
//! fragment's ports by (addresses, protocol, identification) and gives them to the later
//! fragments, which carry no transport header. Through BPF_PROG_TEST_RUN on XDP (ingress)
//! and TC (egress), with exact packet, byte and fragment counts.

mod support;

use std::net::Ipv4Addr;

use monitor_common::{Class, GlobalCounters};
use support::{Kernel, TC_ACT_OK, XDP_PASS, key_v4, key_v6};
use xtask::frames::{self, ETH_P_IP, ETH_P_IPV6, Ext, Ipv4, Ipv6, L4};

const LAN: [u8; 4] = [192, 0, 2, 10];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const LAN6: &str = "2001:db8:1::10";
const WEBEX6: &str = "2001:db8:ff::10";
const UDP: u8 = 17;
const INGRESS: u8 = 0;
const EGRESS: u8 = 1;

/// IPv4 fragment `offset` (8-byte units) of datagram `id` from LAN to the Webex peer.
/// The first fragment carries the UDP header (`sport` -> 5004); later ones `len` bytes.
fn v4_fragment(id: u16, offset: u16, more: bool, sport: u16, len: usize) -> Vec<u8> {
    let mut ip = Ipv4::new(Ipv4Addr::from(LAN), Ipv4Addr::from(WEBEX));
    ip.id = id;
    ip.frag_offset = offset;
    ip.more_fragments = more;
    if offset == 0 {
        frames::v4(&ip, &L4::udp(sport, 5004, len))
    } else {
        frames::ethernet(&[], ETH_P_IP, &ip.packet(UDP, &vec![0x55; len]))
    }
}

fn v6_fragment(id: u32, offset: u16, more: bool, sport: u16, len: usize) -> Vec<u8> {
    let mut ip = Ipv6::new(LAN6.parse().unwrap(), WEBEX6.parse().unwrap());
    ip.ext = vec![Ext::Fragment { offset, more, id }];
    if offset == 0 {
        frames::v6(&ip, &L4::udp(sport, 5004, len))
    } else {
        frames::ethernet(&[], ETH_P_IPV6, &ip.packet(UDP, &vec![0x55; len]))
    }
}

/// The IP datagram length of an Ethernet frame without VLAN tags.
fn ip_len(frame: &[u8]) -> u64 {
    (frame.len() - 14) as u64
}

fn delta(before: &GlobalCounters, after: &GlobalCounters) -> (u64, u64, u64) {
    (
        after.fragments - before.fragments,
        after.fragments_matched - before.fragments_matched,
        after.fragments_unmatched - before.fragments_unmatched,
    )
}

#[test]
fn later_ipv4_fragments_count_on_the_first_fragments_flow() {
    let mut k = Kernel::load();
    let frames = [
        v4_fragment(0x4242, 0, true, 40100, 1472),
        v4_fragment(0x4242, 185, true, 0, 1480),
        v4_fragment(0x4242, 370, false, 0, 200),
    ];
    let before = k.counters();
    for f in &frames {
        assert_eq!(k.xdp(f), XDP_PASS);
    }
    let after = k.counters();
    let flow = k
        .flow(&key_v4(LAN, 40100, WEBEX, 5004, UDP, INGRESS))
        .expect("the media flow");
    assert_eq!(flow.packets, 3);
    assert_eq!(flow.fragments, 3);
    assert_eq!(flow.bytes, frames.iter().map(|f| ip_len(f)).sum::<u64>());
    assert_eq!(flow.class, Class::Media as u32);
    assert_eq!(delta(&before, &after), (3, 2, 0));
    assert_eq!(after.flows_created - before.flows_created, 1);
    assert!(
        k.flow(&key_v4(LAN, 0, WEBEX, 0, UDP, INGRESS)).is_none(),
        "no port-less flow: {:?}",
        k.snapshot().flows
    );
}

#[test]
fn later_ipv6_fragments_count_on_the_first_fragments_flow_on_egress() {
    let mut k = Kernel::load();
    let frames = [
        v6_fragment(0x1000_0001, 0, true, 40200, 1000),
        v6_fragment(0x1000_0001, 126, false, 0, 300),
    ];
    let before = k.counters();
    for f in &frames {
        assert_eq!(k.tc(f, 1), TC_ACT_OK);
    }
    let after = k.counters();
    let flow = k
        .flow(&key_v6(LAN6, 40200, WEBEX6, 5004, UDP, EGRESS))
        .expect("the media flow");
    assert_eq!((flow.packets, flow.fragments), (2, 2));
    assert_eq!(flow.bytes, frames.iter().map(|f| ip_len(f)).sum::<u64>());
    assert_eq!(delta(&before, &after), (2, 1, 0));
}

#[test]
fn a_fragment_of_another_datagram_or_before_its_first_is_not_attributed() {
    let mut k = Kernel::load();
    let before = k.counters();
    // Reordered: the later fragment arrives first and cannot be attributed.
    assert_eq!(k.xdp(&v4_fragment(0x5000, 100, false, 0, 100)), XDP_PASS);
    assert_eq!(k.xdp(&v4_fragment(0x5000, 0, true, 40300, 800)), XDP_PASS);
    // Another identification, same addresses: another datagram.
    assert_eq!(k.xdp(&v4_fragment(0x5001, 100, false, 0, 100)), XDP_PASS);
    // The same identification from another source: another datagram too.
    let mut other = Ipv4::new(Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::from(WEBEX));
    other.id = 0x5000;
    other.frag_offset = 100;
    let other = frames::ethernet(&[], ETH_P_IP, &other.packet(UDP, &[0x55; 100]));
    assert_eq!(k.xdp(&other), XDP_PASS);
    // Not a fragment (DF-less single packet with the same id): never looked up.
    let mut whole = Ipv4::new(Ipv4Addr::from(LAN), Ipv4Addr::from(WEBEX));
    whole.id = 0x5000;
    assert_eq!(
        k.xdp(&frames::v4(&whole, &L4::udp(40301, 5004, 40))),
        XDP_PASS
    );
    let after = k.counters();

    assert_eq!(delta(&before, &after), (4, 0, 3));
    let portless = k
        .flow(&key_v4(LAN, 0, WEBEX, 0, UDP, INGRESS))
        .expect("the port-less flow of the unmatched fragments");
    assert_eq!((portless.packets, portless.fragments), (2, 2));
    assert_eq!(portless.class, Class::OtherWebex as u32);
    let first = k
        .flow(&key_v4(LAN, 40300, WEBEX, 5004, UDP, INGRESS))
        .expect("the first fragment's flow");
    assert_eq!((first.packets, first.fragments), (1, 1));
    let whole = k
        .flow(&key_v4(LAN, 40301, WEBEX, 5004, UDP, INGRESS))
        .expect("the unfragmented packet's flow");
    assert_eq!((whole.packets, whole.fragments), (1, 0));
    let other = k
        .flow(&key_v4([192, 0, 2, 11], 0, WEBEX, 0, UDP, INGRESS))
        .expect("the other source's port-less flow");
    assert_eq!(other.packets, 1);
}
