//! The parser and classifier in the kernel, through BPF_PROG_TEST_RUN: each crafted frame
//! gets the pass verdict and lands exactly where it should: in one flow with the expected
//! key and class, in the not-Webex or non-IP counters, or in one malformed reason.

mod support;

use std::net::Ipv4Addr;

use monitor_common::{Class, FlowKey, GlobalCounters, MalformedReason};
use support::{Kernel, TC_ACT_OK, XDP_PASS, key_v4, key_v6};
use xtask::frames::{self, ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, Ext, Ipv4, Ipv6, L4};

const LAN: [u8; 4] = [192, 0, 2, 10];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const OTHER: [u8; 4] = [198, 51, 100, 2];
const LAN6: &str = "2001:db8:1::10";
const WEBEX6: &str = "2001:db8:ff::10";
const UDP: u8 = 17;
const TCP: u8 = 6;
const INGRESS: u8 = 0;

enum Expect {
    /// One packet in this flow, of this class, with this many fragments.
    Flow(FlowKey, Class, u64),
    NotWebex,
    NonIp,
    Malformed(MalformedReason),
}

fn ip4(src: [u8; 4], dst: [u8; 4]) -> Ipv4 {
    Ipv4::new(Ipv4Addr::from(src), Ipv4Addr::from(dst))
}

fn ip6(src: &str, dst: &str) -> Ipv6 {
    Ipv6::new(src.parse().unwrap(), dst.parse().unwrap())
}

fn udp4(sport: u16, dport: u16) -> Vec<u8> {
    frames::v4(&ip4(LAN, WEBEX), &L4::udp(sport, dport, 20))
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let flow4 = |s, sp, d, dp, p| key_v4(s, sp, d, dp, p, INGRESS);
    let flow6 = |s, sp, d, dp, p| key_v6(s, sp, d, dp, p, INGRESS);
    let mut v = vec![
        (
            "ipv4 udp to media port 5004",
            udp4(52000, 5004),
            Flow(flow4(LAN, 52000, WEBEX, 5004, UDP), Class::Media, 0),
        ),
        (
            "ipv4 udp to media port 9000",
            udp4(40001, 9000),
            Flow(flow4(LAN, 40001, WEBEX, 9000, UDP), Class::Media, 0),
        ),
        (
            "ipv4 udp to first port of the media range",
            udp4(40002, 19560),
            Flow(flow4(LAN, 40002, WEBEX, 19560, UDP), Class::Media, 0),
        ),
        (
            "ipv4 udp below the media range is other Webex",
            udp4(40003, 19559),
            Flow(flow4(LAN, 40003, WEBEX, 19559, UDP), Class::OtherWebex, 0),
        ),
        (
            "ipv4 udp from a Webex media port (peer is the source)",
            frames::v4(&ip4(WEBEX, LAN), &L4::udp(65535, 40004, 20)),
            Flow(flow4(WEBEX, 65535, LAN, 40004, UDP), Class::Media, 0),
        ),
        (
            "ipv4 tcp 5061 sip/tls",
            frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40005, 5061, 0)),
            Flow(flow4(LAN, 40005, WEBEX, 5061, TCP), Class::SipSignalling, 0),
        ),
        (
            "ipv4 tcp 5062 sip/tls",
            frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40006, 5062, 10)),
            Flow(flow4(LAN, 40006, WEBEX, 5062, TCP), Class::SipSignalling, 0),
        ),
        (
            "ipv4 tcp 8934 sip alternative",
            frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40007, 8934, 10)),
            Flow(flow4(LAN, 40007, WEBEX, 8934, TCP), Class::SipSignalling, 0),
        ),
        (
            "ipv4 tcp 443 https control",
            frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40008, 443, 10)),
            Flow(flow4(LAN, 40008, WEBEX, 443, TCP), Class::HttpsControl, 0),
        ),
        (
            "ipv4 udp 53 dns",
            udp4(40009, 53),
            Flow(flow4(LAN, 40009, WEBEX, 53, UDP), Class::Dns, 0),
        ),
        (
            "ipv4 udp 123 ntp",
            udp4(123, 123),
            Flow(flow4(LAN, 123, WEBEX, 123, UDP), Class::Ntp, 0),
        ),
        (
            "ipv4 tcp 5004 is not a media rule (udp only)",
            frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40010, 5004, 0)),
            Flow(flow4(LAN, 40010, WEBEX, 5004, TCP), Class::OtherWebex, 0),
        ),
        (
            "ipv4 udp between non-Webex addresses",
            frames::v4(&ip4(LAN, OTHER), &L4::udp(40011, 5004, 20)),
            NotWebex,
        ),
        (
            "ipv4 icmp echo to a Webex peer: ports are type and code",
            frames::v4(
                &ip4(LAN, WEBEX),
                &L4::Icmp {
                    kind: 8,
                    code: 0,
                    body: vec![0; 12],
                },
            ),
            Flow(flow4(LAN, 8, WEBEX, 0, 1), Class::OtherWebex, 0),
        ),
        (
            "one 802.1Q tag",
            frames::ethernet(
                &[(ETH_P_8021Q, 100)],
                ETH_P_IP,
                &ip4(LAN, WEBEX).packet(UDP, &L4::udp(40012, 5004, 20).bytes()),
            ),
            Flow(flow4(LAN, 40012, WEBEX, 5004, UDP), Class::Media, 0),
        ),
        (
            "802.1ad outer and 802.1Q inner tag",
            frames::ethernet(
                &[(ETH_P_8021AD, 10), (ETH_P_8021Q, 100)],
                ETH_P_IP,
                &ip4(LAN, WEBEX).packet(UDP, &L4::udp(40013, 5004, 20).bytes()),
            ),
            Flow(flow4(LAN, 40013, WEBEX, 5004, UDP), Class::Media, 0),
        ),
        (
            "three tags exceed the parser's bound",
            frames::ethernet(
                &[(ETH_P_8021AD, 10), (ETH_P_8021Q, 100), (ETH_P_8021Q, 200)],
                ETH_P_IP,
                &ip4(LAN, WEBEX).packet(UDP, &L4::udp(40014, 5004, 20).bytes()),
            ),
            Malformed(MalformedReason::VlanTooDeep),
        ),
        (
            "ipv4 with 8 bytes of options",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.options = vec![0x94, 0x04, 0, 0, 1, 1, 1, 0]; // router alert, NOPs, EOL
                frames::v4(&ip, &L4::udp(40015, 5004, 20))
            },
            Flow(flow4(LAN, 40015, WEBEX, 5004, UDP), Class::Media, 0),
        ),
        (
            "ipv4 first fragment keeps its ports",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.more_fragments = true;
                frames::v4(&ip, &L4::udp(40016, 5004, 64))
            },
            Flow(flow4(LAN, 40016, WEBEX, 5004, UDP), Class::Media, 1),
        ),
        (
            "ipv4 later fragment whose first was not seen has no ports",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.id = 0x7777;
                ip.frag_offset = 9;
                frames::ethernet(&[], ETH_P_IP, &ip.packet(UDP, &[0x55; 40]))
            },
            Flow(flow4(LAN, 0, WEBEX, 0, UDP), Class::OtherWebex, 1),
        ),
        (
            "ipv6 udp media",
            frames::v6(&ip6(LAN6, WEBEX6), &L4::udp(52001, 5004, 20)),
            Flow(flow6(LAN6, 52001, WEBEX6, 5004, UDP), Class::Media, 0),
        ),
        (
            "ipv6 tcp sip",
            frames::v6(&ip6(LAN6, WEBEX6), &L4::tcp(40017, 5061, 0)),
            Flow(
                flow6(LAN6, 40017, WEBEX6, 5061, TCP),
                Class::SipSignalling,
                0,
            ),
        ),
        (
            "ipv6 hop-by-hop, routing and first fragment",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.ext = vec![
                    Ext::HopByHop,
                    Ext::Routing,
                    Ext::Fragment {
                        offset: 0,
                        more: true,
                        id: 0xdead_beef,
                    },
                ];
                frames::v6(&ip, &L4::udp(40018, 5004, 20))
            },
            Flow(flow6(LAN6, 40018, WEBEX6, 5004, UDP), Class::Media, 1),
        ),
        (
            "ipv6 later fragment whose first was not seen has no ports",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.ext = vec![Ext::Fragment {
                    offset: 100,
                    more: false,
                    id: 0x0bad_f00d,
                }];
                frames::v6(&ip, &L4::udp(40019, 5004, 20))
            },
            Flow(flow6(LAN6, 0, WEBEX6, 0, UDP), Class::OtherWebex, 1),
        ),
        (
            "ipv6 destination options then tcp",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.ext = vec![Ext::DestOpts];
                frames::v6(&ip, &L4::tcp(40020, 443, 5))
            },
            Flow(flow6(LAN6, 40020, WEBEX6, 443, TCP), Class::HttpsControl, 0),
        ),
        (
            "ipv6 chain longer than the parser's bound",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.ext = vec![Ext::DestOpts; 7];
                frames::v6(&ip, &L4::udp(40021, 5004, 20))
            },
            Malformed(MalformedReason::Ipv6ExtTooDeep),
        ),
        (
            "ipv6 icmpv6 echo",
            frames::v6(
                &ip6(LAN6, WEBEX6),
                &L4::Icmp {
                    kind: 128,
                    code: 0,
                    body: vec![0; 8],
                },
            ),
            Flow(flow6(LAN6, 128, WEBEX6, 0, 58), Class::OtherWebex, 0),
        ),
        (
            "arp is not ip",
            frames::ethernet(&[], ETH_P_ARP, &[0u8; 28]),
            NonIp,
        ),
        (
            "ipv4 ihl below 5",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.ihl_override = Some(4);
                frames::v4(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::Ipv4BadIhl),
        ),
        (
            "ipv4 total length beyond the frame",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.total_len_override = Some(1400);
                frames::v4(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::Ipv4BadTotalLength),
        ),
        (
            "ipv4 total length smaller than its header",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.total_len_override = Some(12);
                frames::v4(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::Ipv4BadTotalLength),
        ),
        (
            "ipv4 ethertype carrying a version 6 header",
            {
                let mut ip = ip4(LAN, WEBEX);
                ip.version_override = Some(6);
                frames::v4(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::BadIpVersion),
        ),
        (
            "ipv4 datagram too short for its udp header",
            frames::ethernet(&[], ETH_P_IP, &ip4(LAN, WEBEX).packet(UDP, &[0, 1, 2, 3])),
            Malformed(MalformedReason::L4Truncated),
        ),
        (
            "tcp data offset below 5",
            {
                let mut tcp = L4::tcp(40022, 5061, 0).bytes();
                tcp[12] = 4 << 4;
                frames::ethernet(&[], ETH_P_IP, &ip4(LAN, WEBEX).packet(TCP, &tcp))
            },
            Malformed(MalformedReason::TcpBadDataOffset),
        ),
        (
            "ipv6 payload length beyond the frame",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.payload_len_override = Some(900);
                frames::v6(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::Ipv6BadPayloadLength),
        ),
        (
            "ipv6 extension header cut by the payload length",
            {
                let mut ip = ip6(LAN6, WEBEX6);
                ip.ext = vec![Ext::HopByHop];
                ip.payload_len_override = Some(4);
                frames::v6(&ip, &L4::udp(1, 5004, 20))
            },
            Malformed(MalformedReason::Ipv6ExtTruncated),
        ),
    ];

    // Truncation at every header boundary of VLAN + IPv4 + UDP: the frame is cut at each
    // length from the end of the Ethernet header to just before the payload.
    let tagged = frames::ethernet(
        &[(ETH_P_8021Q, 100)],
        ETH_P_IP,
        &ip4(LAN, WEBEX).packet(UDP, &L4::udp(40023, 5004, 20).bytes()),
    );
    for cut in 14..(18 + 20 + 8) {
        let reason = if cut < 18 {
            MalformedReason::VlanTruncated
        } else if cut < 18 + 20 {
            MalformedReason::Ipv4Truncated
        } else {
            // The IP header is whole but claims more bytes than the frame has.
            MalformedReason::Ipv4BadTotalLength
        };
        v.push((
            "vlan+ipv4+udp cut",
            tagged[..cut].to_vec(),
            Malformed(reason),
        ));
    }
    // And of IPv6 + hop-by-hop + TCP.
    let mut ip = ip6(LAN6, WEBEX6);
    ip.ext = vec![Ext::HopByHop];
    let v6tcp = frames::v6(&ip, &L4::tcp(40024, 5061, 0));
    for cut in 14..(14 + 40 + 8 + 20) {
        let reason = if cut < 14 + 40 {
            MalformedReason::Ipv6Truncated
        } else {
            MalformedReason::Ipv6BadPayloadLength
        };
        v.push(("ipv6+hbh+tcp cut", v6tcp[..cut].to_vec(), Malformed(reason)));
    }
    v
}

fn ip_len(frame: &[u8]) -> u64 {
    // Frames in the table have at most two VLAN tags; find the IP header after them.
    let mut off = 12;
    let mut et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    while et == ETH_P_8021Q || et == ETH_P_8021AD {
        off += 4;
        et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    }
    let l3 = off + 2;
    if et == ETH_P_IP {
        u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]) as u64
    } else {
        40 + u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]) as u64
    }
}

#[test]
fn every_crafted_frame_passes_and_lands_in_exactly_one_place() {
    let mut k = Kernel::load();
    let cases = cases();
    assert!(cases.len() >= 20);
    for (name, frame, expect) in cases {
        let before = k.counters();
        assert_eq!(k.xdp(&frame), XDP_PASS, "{name}: verdict");
        let after = k.counters();
        let d = |f: fn(&GlobalCounters) -> u64| f(&after) - f(&before);
        assert_eq!(d(|c| c.seen), 1, "{name}: seen");
        let malformed_delta: Vec<_> = MalformedReason::ALL
            .iter()
            .filter(|r| after.malformed[**r as usize] != before.malformed[**r as usize])
            .collect();
        match expect {
            Expect::Malformed(reason) => {
                assert_eq!(malformed_delta, vec![&reason], "{name}: malformed reason");
                assert_eq!(
                    after.malformed[reason as usize] - before.malformed[reason as usize],
                    1
                );
                assert_eq!(d(|c| c.parsed), 0, "{name}: parsed");
            }
            Expect::NonIp => {
                assert!(malformed_delta.is_empty(), "{name}: {malformed_delta:?}");
                assert_eq!(d(|c| c.parsed), 1, "{name}: parsed");
                assert_eq!(d(|c| c.non_ip), 1, "{name}: non_ip");
            }
            Expect::NotWebex => {
                assert!(malformed_delta.is_empty(), "{name}: {malformed_delta:?}");
                assert_eq!(d(|c| c.not_webex_packets), 1, "{name}: not webex");
                assert_eq!(d(|c| c.flows_created), 0, "{name}: no flow");
            }
            Expect::Flow(key, class, fragments) => {
                assert!(malformed_delta.is_empty(), "{name}: {malformed_delta:?}");
                assert_eq!(d(|c| c.parsed), 1, "{name}: parsed");
                assert_eq!(d(|c| c.webex_packets), 1, "{name}: webex packets");
                assert_eq!(d(|c| c.flows_created), 1, "{name}: new flow");
                let stats = k.flow(&key).unwrap_or_else(|| {
                    panic!("{name}: no flow {key:?} in {:?}", k.snapshot().flows)
                });
                assert_eq!(stats.packets, 1, "{name}: packets");
                assert_eq!(stats.bytes, ip_len(&frame), "{name}: bytes");
                assert_eq!(stats.class, class as u32, "{name}: class");
                assert_eq!(stats.fragments, fragments, "{name}: fragments");
            }
        }
        // The invariant the counters promise.
        assert_eq!(
            after.seen,
            after.parsed + after.malformed_total(),
            "{name}: seen = parsed + malformed"
        );
    }
}

#[test]
fn established_flow_accumulates_and_keeps_last_dscp() {
    let mut k = Kernel::load();
    let key = key_v4(LAN, 52010, WEBEX, 5004, UDP, INGRESS);
    for dscp in [0u8, 46, 34] {
        let mut ip = ip4(LAN, WEBEX);
        ip.dscp = dscp;
        assert_eq!(
            k.xdp(&frames::v4(&ip, &L4::udp(52010, 5004, 160))),
            XDP_PASS
        );
    }
    let s = k.flow(&key).expect("flow");
    assert_eq!(s.packets, 3);
    assert_eq!(s.bytes, 3 * (20 + 8 + 160));
    assert_eq!(s.last_dscp, 34);
    assert!(s.last_seen_ns >= s.first_seen_ns);
    assert_eq!(k.counters().flows_created, 1);
}

#[test]
fn tc_egress_accounts_in_its_own_direction_and_counts_gso_segments() {
    let mut k = Kernel::load();
    let frame = frames::v4(&ip4(LAN, WEBEX), &L4::tcp(40100, 5061, 1000));
    assert_eq!(k.tc(&frame, 0), TC_ACT_OK);
    // A GSO super-packet of 4 segments: 4 wire packets, each with its own headers.
    assert_eq!(k.tc(&frame, 4), TC_ACT_OK);
    let s = k
        .flow(&key_v4(LAN, 40100, WEBEX, 5061, TCP, 1))
        .expect("egress flow");
    assert_eq!(s.packets, 1 + 4);
    let ip_len = 20 + 20 + 1000;
    assert_eq!(s.bytes, ip_len + ip_len + 3 * (20 + 20));
    assert_eq!(s.class, Class::SipSignalling as u32);
    // Nothing landed under ingress.
    assert!(
        k.flow(&key_v4(LAN, 40100, WEBEX, 5061, TCP, INGRESS))
            .is_none()
    );
}

#[test]
fn track_all_flows_keeps_non_webex_flows_as_not_webex() {
    let mut k = Kernel::load_with("track_all_flows = true", "");
    let frame = frames::v4(&ip4(LAN, OTHER), &L4::udp(40200, 5004, 20));
    assert_eq!(k.xdp(&frame), XDP_PASS);
    let s = k
        .flow(&key_v4(LAN, 40200, OTHER, 5004, UDP, INGRESS))
        .expect("non-webex flow tracked");
    assert_eq!(s.class, Class::NotWebex as u32);
    assert_eq!(k.counters().not_webex_packets, 1);
}

#[test]
fn dedicated_port_ranges_split_audio_and_video() {
    let mut k = Kernel::load_with("", "dedicated_port_ranges = true");
    for (sport, class) in [
        (52000, Class::Audio),
        (52100, Class::Video),
        (40000, Class::Media),
    ] {
        assert_eq!(k.xdp(&udp4(sport, 5004)), XDP_PASS);
        let s = k
            .flow(&key_v4(LAN, sport, WEBEX, 5004, UDP, INGRESS))
            .expect("flow");
        assert_eq!(s.class, class as u32, "source port {sport}");
    }
}

/// A stage missing from the tail-call table is counted, never silent, and the frame
/// still passes: with the quality stage gone its flow is counted but the media that
/// needs it (here STUN) is not measured, while RTP of a media flow's first SSRC needs no
/// quality stage (the flow stage starts its stream, the entry program accounts the
/// rest); with the flow stage gone an established flow's packet is still counted (the
/// entry program does that itself) and a new flow's packet counts globally only.
#[test]
fn a_missing_stage_is_counted_and_the_frame_passes() {
    use aya::maps::ProgramArray;
    use monitor_common::stages;

    let mut k = Kernel::load();
    let clear = |k: &mut Kernel, index: u32| {
        let map = k.harness.ebpf.map_mut(stages::TABLE_XDP).expect("table");
        let mut table: ProgramArray<_> = ProgramArray::try_from(map).expect("program array");
        table.clear_index(&index).expect("clear");
    };
    clear(&mut k, stages::QUALITY);
    let media = frames::v4(
        &ip4(LAN, WEBEX),
        &L4::Udp {
            src: 52100,
            dst: 5004,
            payload: vec![0; 20],
        },
    );
    assert_eq!(k.xdp(&media), XDP_PASS);
    let c = k.counters();
    assert_eq!(
        (c.stage_failed, c.flows_created, c.webex_packets),
        (1, 1, 1)
    );
    let flow = key_v4(LAN, 52100, WEBEX, 5004, UDP, INGRESS);
    assert_eq!(k.flow(&flow).expect("the media flow").packets, 1);

    // RTP (the payload bytes 0xab) on a new media flow, then on the established one.
    let rtp = udp4(52104, 5004);
    assert_eq!(k.xdp(&rtp), XDP_PASS);
    assert_eq!(k.xdp(&rtp), XDP_PASS);
    let c = k.counters();
    assert_eq!(
        (c.stage_failed, c.flows_created, c.webex_packets),
        (1, 2, 3)
    );
    let streams = monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .streams;
    assert_eq!(streams.len(), 1);
    assert_eq!((streams[0].0.ssrc, streams[0].1.packets), (0xabab_abab, 2));

    clear(&mut k, stages::FLOW);
    assert_eq!(k.xdp(&media), XDP_PASS);
    let c = k.counters();
    // The quality stage is still missing: counted again.
    assert_eq!((c.stage_failed, c.parsed, c.ipv4), (2, 4, 4));
    assert_eq!(
        k.flow(&flow).expect("the media flow").packets,
        2,
        "established: counted without the flow stage"
    );

    let new_flow = udp4(52102, 5004);
    assert_eq!(k.xdp(&new_flow), XDP_PASS);
    let c = k.counters();
    assert_eq!(
        (c.stage_failed, c.parsed, c.flows_created, c.webex_packets),
        (3, 5, 2, 4)
    );
    let key = key_v4(LAN, 52102, WEBEX, 5004, UDP, INGRESS);
    assert!(k.flow(&key).is_none(), "a new flow needs the flow stage");
}
