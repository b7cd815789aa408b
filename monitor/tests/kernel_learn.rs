//! The kernel side of learning, through BPF_PROG_TEST_RUN: which packets become samples
//! (queries, answers, hellos, SYN-ACKs; a long hello's continuation on its own
//! connection only; a server's ServerHello segment and the next one), the per-client token bucket before the ring (exact counts at a rate
//! of one sample a second), and IPv6 clients keyed by their full address.

mod support;

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{HashMap, MapData, RingBuf};
use monitor::kernel::learn as maps;
use monitor_common::learn::{
    KIND_DNS, KIND_DNS_QUERY, KIND_TLS, KIND_TLS_SERVER, KIND_TLS_SYNACK, LearnSample, RateBucket,
};
use support::{Kernel, XDP_PASS};
use xtask::frames::{self, Ipv4, Ipv6, L4};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const RESOLVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 22);

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    frames::v4(
        &Ipv4::new(src, dst),
        &L4::Udp {
            src: sport,
            dst: dport,
            payload: payload.to_vec(),
        },
    )
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    frames::v4(
        &Ipv4::new(src, dst),
        &L4::Tcp {
            src: sport,
            dst: dport,
            flags,
            payload: payload.to_vec(),
        },
    )
}

/// The samples in the ring now.
fn drain(ring: &mut RingBuf<MapData>) -> Vec<LearnSample> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), size_of::<LearnSample>());
        // SAFETY: a whole LearnSample (checked), plain integers.
        out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<LearnSample>()) });
    }
    out
}

fn rate_limited(k: &Kernel) -> u64 {
    maps::rate_limited(&k.harness.ebpf).unwrap()
}

/// A ClientHello record head claiming `record` bytes, followed by `have` bytes of body.
fn hello_head(record: u16, have: usize) -> Vec<u8> {
    let mut h = vec![0x16, 0x03, 0x01];
    h.extend_from_slice(&record.to_be_bytes());
    h.push(0x01);
    h.extend(std::iter::repeat_n(0u8, have));
    h
}

#[test]
fn queries_answers_hellos_and_syn_acks_are_sampled_and_nothing_else() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    let frames = [
        udp(CLIENT, 40000, RESOLVER, 53, b"query"),
        udp(RESOLVER, 53, CLIENT, 40000, b"answer"),
        tcp(SERVER, 443, CLIENT, 40001, 0x12, b""),
        tcp(CLIENT, 40001, SERVER, 443, 0x18, &hello_head(40, 40)),
        // Not samples: media, a plain ACK from a TLS port, data to it that is no hello.
        udp(CLIENT, 52000, SERVER, 5004, b"rtp"),
        tcp(SERVER, 443, CLIENT, 40001, 0x10, b"data"),
        tcp(CLIENT, 40001, SERVER, 443, 0x18, b"application data"),
    ];
    for f in &frames {
        assert_eq!(k.xdp(f), XDP_PASS);
    }
    let samples = drain(&mut ring);
    let kinds: Vec<u8> = samples.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [KIND_DNS_QUERY, KIND_DNS, KIND_TLS_SYNACK, KIND_TLS]);
    assert_eq!(&samples[0].data[..5], b"query");
    assert_eq!(samples[1].src_port, 53);
    assert_eq!(samples[2].len, 0);
    assert_eq!(samples[2].src_addr[12..], SERVER.octets());
    assert_eq!(samples[2].dst_addr[12..], CLIENT.octets());
    assert_eq!(k.counters().learn_samples, 4);
    assert_eq!(rate_limited(&k), 0);
}

#[test]
fn a_long_hello_continues_on_its_own_connection_only() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    // A hello whose record (1500 bytes) is longer than its segment (600).
    assert_eq!(
        k.xdp(&tcp(
            CLIENT,
            40001,
            SERVER,
            443,
            0x10,
            &hello_head(1500, 594)
        )),
        XDP_PASS
    );
    // Another connection's data is not its continuation.
    k.xdp(&tcp(CLIENT, 40002, SERVER, 443, 0x18, b"other connection"));
    // Its own next segment is; the one after that is not.
    k.xdp(&tcp(CLIENT, 40001, SERVER, 443, 0x18, b"second part"));
    k.xdp(&tcp(CLIENT, 40001, SERVER, 443, 0x18, b"third part"));
    let samples = drain(&mut ring);
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(samples[0].payload_len, 600);
    assert_eq!(&samples[1].data[..11], b"second part");
    assert!(
        samples
            .iter()
            .all(|s| s.kind == KIND_TLS && s.src_port == 40001)
    );
}

#[test]
fn a_servers_first_flight_and_its_next_segment_are_sampled_and_nothing_else() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    // A ServerHello record head (type 22, version 3.3, handshake type 2).
    let hello = [
        0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x03, 0x03,
    ];
    // Before any ClientHello on its connection: not even looked at.
    k.xdp(&tcp(SERVER, 443, CLIENT, 40005, 0x18, &hello));
    assert_eq!(drain(&mut ring).len(), 0);
    // The client's hello (whole in its segment: 5 + 195 bytes) arms its slot for the reply.
    k.xdp(&tcp(
        CLIENT,
        40005,
        SERVER,
        443,
        0x18,
        &hello_head(195, 194),
    ));
    assert_eq!(drain(&mut ring).len(), 1);
    k.xdp(&tcp(SERVER, 443, CLIENT, 40005, 0x18, &hello));
    // Another connection's data is not its continuation; its own next segment is (the
    // certificate goes on there), the one after that is not.
    k.xdp(&tcp(SERVER, 443, CLIENT, 40006, 0x18, b"other connection"));
    k.xdp(&tcp(SERVER, 443, CLIENT, 40005, 0x18, b"certificate"));
    k.xdp(&tcp(SERVER, 443, CLIENT, 40005, 0x18, b"more data"));
    let samples = drain(&mut ring);
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(samples[0].data[..hello.len()], hello);
    assert_eq!(&samples[1].data[..11], b"certificate");
    assert!(samples.iter().all(|s| s.kind == KIND_TLS_SERVER
        && s.src_port == 443
        && s.dst_port == 40005
        && s.dst_addr[12..] == CLIENT.octets()));
}

#[test]
fn a_reply_that_is_not_a_server_hello_disarms_the_connection() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    k.xdp(&tcp(
        CLIENT,
        40007,
        SERVER,
        443,
        0x18,
        &hello_head(195, 194),
    ));
    assert_eq!(drain(&mut ring).len(), 1);
    // Application data first (not the TLS expected): nothing, and nothing after it.
    let data = b"\x17\x03\x03\x00\x10 app data";
    k.xdp(&tcp(SERVER, 443, CLIENT, 40007, 0x18, data));
    let server_hello = [0x16, 0x03, 0x03, 0x00, 0x5a, 0x02];
    k.xdp(&tcp(SERVER, 443, CLIENT, 40007, 0x18, &server_hello));
    assert_eq!(drain(&mut ring).len(), 0);
}

#[test]
fn a_long_hellos_reply_is_awaited_once_the_hello_is_whole() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    // A hello in two segments (the slot first awaits its continuation, then the reply).
    k.xdp(&tcp(
        CLIENT,
        40008,
        SERVER,
        443,
        0x10,
        &hello_head(1500, 594),
    ));
    k.xdp(&tcp(CLIENT, 40008, SERVER, 443, 0x18, b"second part"));
    let server_hello = [0x16, 0x03, 0x03, 0x00, 0x5a, 0x02];
    k.xdp(&tcp(SERVER, 443, CLIENT, 40008, 0x18, &server_hello));
    let kinds: Vec<u8> = drain(&mut ring).iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [KIND_TLS, KIND_TLS, KIND_TLS_SERVER]);
}

#[test]
fn a_client_over_its_rate_gets_no_more_samples_and_others_still_do() {
    let mut k = Kernel::load();
    let mut ring = maps::take_ring(&mut k.harness.ebpf).unwrap();
    // One sample a second: a burst of two, then nothing for this test's duration.
    maps::set_client_rate(&mut k.harness.ebpf, 1).unwrap();
    for i in 0..20u16 {
        k.xdp(&udp(RESOLVER, 53, CLIENT, 40000 + i, b"forged answer"));
    }
    assert_eq!(drain(&mut ring).len(), 2);
    assert_eq!(rate_limited(&k), 18);
    // Another client's answer is sampled during the flood.
    let other = Ipv4Addr::new(192, 0, 2, 11);
    k.xdp(&udp(RESOLVER, 53, other, 40000, b"real answer"));
    let samples = drain(&mut ring);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].dst_addr[12..], other.octets());
    assert_eq!(rate_limited(&k), 18);
    assert_eq!(k.counters().learn_samples, 3);
    // An IPv6 client's bucket is keyed by its whole address (the answer's destination).
    let client6: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let resolver6: Ipv6Addr = "2001:db8:2::2".parse().unwrap();
    k.xdp(&frames::v6(
        &Ipv6::new(resolver6, client6),
        &L4::Udp {
            src: 53,
            dst: 40000,
            payload: b"answer".to_vec(),
        },
    ));
    assert_eq!(drain(&mut ring).len(), 1);
    let buckets: HashMap<_, [u8; 16], RateBucket> =
        HashMap::try_from(k.harness.ebpf.map("LEARN_RATE").unwrap()).unwrap();
    let keys: Vec<[u8; 16]> = buckets.keys().filter_map(Result::ok).collect();
    assert!(keys.contains(&client6.octets()), "{keys:?}");
    assert!(keys.contains(&CLIENT.to_ipv6_mapped().octets()), "{keys:?}");
    assert_eq!(keys.len(), 3);
}
