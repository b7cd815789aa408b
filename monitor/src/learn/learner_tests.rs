//! The learner: samples in, peers and expiry out, and what it refuses to believe.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::config::Role;
use monitor_common::{Direction, FlowKey, learn::SAMPLE_BYTES};

const LAN_IF: u32 = 2;
const WAN_IF: u32 = 3;
const IN: u8 = Direction::Ingress as u8;
const OUT: u8 = Direction::Egress as u8;
const GW_WAN: [u8; 4] = [198, 51, 100, 1];
const RESOLVER: [u8; 4] = [198, 51, 100, 2];
const CLIENT: [u8; 4] = [192, 0, 2, 10];
const SERVER: [u8; 4] = [203, 0, 113, 80];
const UDP: u8 = 17;
const TCP: u8 = 6;

fn site() -> Site {
    Site {
        roles: HashMap::from([(LAN_IF, Role::Lan), (WAN_IF, Role::Wan)]),
        gateway: HashSet::from([IpAddr::from(GW_WAN), IpAddr::from([192, 0, 2, 1])]),
        lan: vec!["192.0.2.0/24".parse().unwrap()],
        private_ok: vec![],
    }
}

/// A sample of `kind` seen on `ifindex` in `direction`, `src:sport -> dst:dport`.
#[allow(clippy::too_many_arguments)]
fn pkt(
    kind: u8,
    protocol: u8,
    ifindex: u32,
    direction: u8,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    payload: &[u8],
) -> LearnSample {
    let mut data = [0u8; SAMPLE_BYTES];
    let n = payload.len().min(SAMPLE_BYTES);
    data[..n].copy_from_slice(&payload[..n]);
    LearnSample {
        kind,
        family: FAMILY_V4,
        protocol,
        direction,
        len: n as u32,
        payload_len: payload.len() as u32,
        ifindex,
        src_addr: FlowKey::v4_mapped(src.0),
        dst_addr: FlowKey::v4_mapped(dst.0),
        src_port: src.1,
        dst_port: dst.1,
        _pad: 0,
        data,
    }
}

fn name(m: &mut Vec<u8>, qname: &str) {
    for l in qname.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
}

/// A query for `qname` A with `id`.
fn question(id: u16, qname: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    name(&mut m, qname);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

/// A response with `id`: `qname` A `addr` with `ttl`.
fn answer_id(id: u16, qname: &str, addr: [u8; 4], ttl: u32) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    name(&mut m, qname);
    m.extend_from_slice(&[0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1]);
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&[0, 4]);
    m.extend_from_slice(&addr);
    m
}

fn answer(qname: &str, addr: [u8; 4], ttl: u32) -> Vec<u8> {
    answer_id(0x1234, qname, addr, ttl)
}

/// The gateway's own resolver asks upstream (WAN egress).
fn gw_query(id: u16, qname: &str) -> LearnSample {
    pkt(
        KIND_DNS_QUERY,
        UDP,
        WAN_IF,
        OUT,
        (GW_WAN, 40000),
        (RESOLVER, 53),
        &question(id, qname),
    )
}

/// Upstream answers the gateway (WAN ingress).
fn gw_answer(msg: &[u8]) -> LearnSample {
    pkt(
        KIND_DNS,
        UDP,
        WAN_IF,
        IN,
        (RESOLVER, 53),
        (GW_WAN, 40000),
        msg,
    )
}

/// Asks, then answers `qname` A `addr`: what a real resolution looks like.
fn resolve(l: &mut Learner, qname: &str, addr: [u8; 4], ttl: u32, now: u64) -> Changes {
    l.ingest(&gw_query(0x1234, qname), now);
    l.ingest(&gw_answer(&answer(qname, addr, ttl)), now)
}

fn synack(client_port: u16, server: [u8; 4]) -> LearnSample {
    pkt(
        KIND_TLS_SYNACK,
        TCP,
        LAN_IF,
        OUT,
        (server, 443),
        (CLIENT, client_port),
        &[],
    )
}

fn hello_to(client_port: u16, server: [u8; 4], payload: &[u8]) -> LearnSample {
    pkt(
        KIND_TLS,
        TCP,
        LAN_IF,
        IN,
        (CLIENT, client_port),
        (server, 443),
        payload,
    )
}

fn hello(sni: &[u8]) -> Vec<u8> {
    crate::learn::sni::tests_support::hello_with_sni(sni)
}

const S: u64 = 1_000_000_000;

fn cfg() -> LearnConfig {
    LearnConfig {
        ttl_floor_s: 10,
        ttl_cap_s: 100,
        sni_ttl_s: 50,
        idle_s: 30,
        ..Default::default()
    }
}

fn learner() -> Learner {
    Learner::new(&cfg(), site())
}

fn refused(l: &Learner, reason: &str) -> u64 {
    l.stats.refused.get(reason).copied().unwrap_or(0)
}

#[test]
fn dns_answers_teach_with_clamped_ttl_and_expire() {
    let mut l = learner();
    let a: IpAddr = "203.0.113.50".parse().unwrap();
    let c = resolve(&mut l, "a.webex.com", [203, 0, 113, 50], 3, 0);
    assert_eq!(c.added, vec![(a, SOURCE_DNS)]);
    assert_eq!(l.peers()[&a].expires_ns, 10 * S); // raised to the floor
    let b: IpAddr = "203.0.113.51".parse().unwrap();
    resolve(&mut l, "b.cisco.com", [203, 0, 113, 51], 99_999, 0);
    assert_eq!(l.peers()[&b].expires_ns, 100 * S); // lowered to the cap
    assert!(l.expire(10 * S - 1).is_empty());
    assert_eq!(l.expire(10 * S), vec![(a, SOURCE_DNS)]);
    assert_eq!(l.peers().len(), 1);
    assert_eq!(l.stats.expired, 1);
    assert_eq!(l.stats.learned_dns, 2);
    assert_eq!(l.stats.dns_queries, 2);
    assert!(l.stats.refused.is_empty(), "{:?}", l.stats.refused);
}

#[test]
fn an_active_peer_outlives_its_ttl_and_goes_when_idle() {
    let mut l = learner();
    let a: IpAddr = "203.0.113.50".parse().unwrap();
    resolve(&mut l, "a.webex.com", [203, 0, 113, 50], 10, 0);
    // A call's packets keep it past the TTL...
    for t in 1..=40 {
        l.touch(a, t * S);
        assert!(l.expire(t * S).is_empty(), "gone at {t} s");
    }
    // ...until the flows have been quiet for idle_s (30 s).
    assert!(l.expire(70 * S - 1).is_empty());
    assert_eq!(l.expire(70 * S), vec![(a, SOURCE_DNS)]);
    // Touching an unknown address does nothing.
    l.touch("203.0.113.99".parse().unwrap(), 71 * S);
    assert!(l.peers().is_empty());
}

#[test]
fn unsolicited_and_mismatched_answers_teach_nothing() {
    let mut l = learner();
    // No query at all.
    let c = l.ingest(&gw_answer(&answer("a.webex.com", SERVER, 60)), 0);
    assert!(c.added.is_empty());
    assert_eq!(refused(&l, "unsolicited"), 1);
    // A query for another name, then an answer with its ID for a Webex name.
    l.ingest(&gw_query(7, "www.example.org"), 0);
    l.ingest(&gw_answer(&answer_id(7, "a.webex.com", SERVER, 60)), 0);
    assert_eq!(refused(&l, "other_query"), 1);
    // The right name with another ID.
    l.ingest(&gw_query(8, "a.webex.com"), 0);
    l.ingest(&gw_answer(&answer_id(9, "a.webex.com", SERVER, 60)), 0);
    assert_eq!(refused(&l, "other_query"), 2);
    // To another port of the gateway.
    let mut s = gw_answer(&answer_id(8, "a.webex.com", SERVER, 60));
    s.dst_port = 40001;
    l.ingest(&s, 0);
    assert_eq!(refused(&l, "unsolicited"), 2);
    // Too late.
    l.ingest(&gw_answer(&answer_id(8, "a.webex.com", SERVER, 60)), 11 * S);
    assert_eq!(refused(&l, "unsolicited"), 3);
    assert!(l.peers().is_empty());
    assert_eq!(l.stats.learned_dns, 0);
    // An answer coming out of the LAN (a LAN host answering for a resolver), and a
    // query coming in from the WAN: wrong side.
    l.ingest(&gw_query(10, "a.webex.com"), 0);
    let mut s = gw_answer(&answer_id(10, "a.webex.com", SERVER, 60));
    s.ifindex = LAN_IF;
    l.ingest(&s, 0);
    let mut q = gw_query(11, "a.webex.com");
    q.direction = IN;
    l.ingest(&q, 0);
    assert_eq!(refused(&l, "wrong_side"), 2);
    // An unknown interface.
    let mut s = gw_answer(&answer_id(10, "a.webex.com", SERVER, 60));
    s.ifindex = 99;
    l.ingest(&s, 0);
    assert_eq!(refused(&l, "unknown_interface"), 1);
    assert!(l.peers().is_empty());
    // The real answer still teaches.
    assert_eq!(
        l.ingest(&gw_answer(&answer_id(10, "a.webex.com", SERVER, 60)), 0)
            .added
            .len(),
        1
    );
}

#[test]
fn a_lan_clients_query_through_the_gateway_resolver_teaches() {
    let mut l = learner();
    // LAN ingress: client -> gateway's resolver; LAN egress: the resolver answers.
    let gw_lan = ([192, 0, 2, 1], 53);
    l.ingest(
        &pkt(
            KIND_DNS_QUERY,
            UDP,
            LAN_IF,
            IN,
            (CLIENT, 5353),
            gw_lan,
            &question(77, "m.webex.com"),
        ),
        0,
    );
    let c = l.ingest(
        &pkt(
            KIND_DNS,
            UDP,
            LAN_IF,
            OUT,
            gw_lan,
            (CLIENT, 5353),
            &answer_id(77, "m.webex.com", SERVER, 60),
        ),
        0,
    );
    assert_eq!(c.added, vec![(IpAddr::from(SERVER), SOURCE_DNS)]);
}

#[test]
fn addresses_of_the_gateway_the_lan_and_private_ranges_are_refused() {
    let mut l = learner();
    for (i, (a, reason)) in [
        (GW_WAN, "gateway_address"),
        ([192, 0, 2, 77], "lan_address"),
        ([10, 1, 1, 1], "private_address"),
        ([127, 0, 0, 1], "special_address"),
        ([0, 0, 0, 0], "special_address"),
        ([224, 0, 0, 1], "special_address"),
        ([255, 255, 255, 255], "special_address"),
        ([169, 254, 1, 1], "special_address"),
    ]
    .into_iter()
    .enumerate()
    {
        let before = refused(&l, reason);
        resolve(&mut l, &format!("n{i}.webex.com"), a, 60, 0);
        assert_eq!(refused(&l, reason), before + 1, "{a:?}");
    }
    assert!(l.peers().is_empty());
    assert_eq!(l.stats.learned_dns, 0, "refused addresses are not learned");
    // Configured private prefixes may be learned.
    let mut l = Learner::new(
        &cfg(),
        Site {
            private_ok: vec!["10.1.0.0/16".parse().unwrap()],
            ..site()
        },
    );
    assert_eq!(
        resolve(&mut l, "p.webex.com", [10, 1, 1, 1], 60, 0)
            .added
            .len(),
        1
    );
}

#[test]
fn negative_answers_are_counted_as_such() {
    let mut l = learner();
    for (i, rcode) in [3u8, 2, 5].into_iter().enumerate() {
        let id = 100 + i as u16;
        l.ingest(&gw_query(id, "gone.webex.com"), 0);
        let mut m = question(id, "gone.webex.com");
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        l.ingest(&gw_answer(&m), 0);
    }
    assert_eq!(l.stats.dns_negative, 3);
    assert!(
        l.stats.dns_malformed.is_empty(),
        "{:?}",
        l.stats.dns_malformed
    );
    assert_eq!(l.stats.dns_responses, 3);
    // Each is recorded for the detectors, with its code, resolver and client.
    let f = l.dns_failures().lock().unwrap().take();
    let codes: Vec<&str> = f.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["nxdomain", "servfail", "refused"]);
    assert!(f.iter().all(|e| e.name == "gone.webex.com"
        && e.resolver == IpAddr::from(RESOLVER)
        && e.client == IpAddr::from(GW_WAN)));
}

#[test]
fn only_failures_of_webex_names_are_recorded() {
    let mut l = learner();
    // Not a learning domain, and FORMERR (not a block): neither is recorded.
    for (id, qname, rcode) in [(1u16, "www.example.org", 3u8), (2, "a.webex.com", 1)] {
        l.ingest(&gw_query(id, qname), 0);
        let mut m = question(id, qname);
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        l.ingest(&gw_answer(&m), 0);
    }
    // An unsolicited NXDOMAIN (no query) is not believed.
    let mut m = question(9, "a.webex.com");
    m[2] = 0x81;
    m[3] = 0x83;
    l.ingest(&gw_answer(&m), 0);
    assert_eq!(l.stats.dns_negative, 2);
    assert!(l.dns_failures().lock().unwrap().is_empty());
}

#[test]
fn an_unanswered_forwarded_query_is_one_failure() {
    let mut l = learner();
    let q = question(77, "mtg.webex.com");
    // A LAN host's query seen on LAN ingress and, after NAT, on WAN egress.
    let lan = pkt(
        KIND_DNS_QUERY,
        UDP,
        LAN_IF,
        IN,
        (CLIENT, 5353),
        (RESOLVER, 53),
        &q,
    );
    let wan = pkt(
        KIND_DNS_QUERY,
        UDP,
        WAN_IF,
        OUT,
        (GW_WAN, 5353),
        (RESOLVER, 53),
        &q,
    );
    l.ingest(&lan, 0);
    l.ingest(&wan, 1_000);
    // And a name outside the learning domains, also unanswered.
    l.ingest(&gw_query(78, "www.example.org"), 0);
    l.expire(pending::QUERY_TIMEOUT_NS - 1);
    assert!(l.dns_failures().lock().unwrap().is_empty(), "still waiting");
    l.expire(pending::QUERY_TIMEOUT_NS + 1_000);
    let f = l.dns_failures().lock().unwrap().take();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].name, "mtg.webex.com");
    assert_eq!(f[0].code, failures::Code::Unanswered);
    assert_eq!(f[0].resolver, IpAddr::from(RESOLVER));
    // An answered query is no failure.
    l.ingest(&gw_query(5, "b.webex.com"), 0);
    l.ingest(&gw_answer(&answer_id(5, "b.webex.com", SERVER, 60)), 1);
    l.expire(pending::QUERY_TIMEOUT_NS * 3);
    assert!(l.dns_failures().lock().unwrap().is_empty());
}

#[test]
fn a_routed_query_seen_on_both_links_matches_both_answers() {
    // No NAT (IPv6, say): the same conversation leaves by the LAN and the WAN link, and
    // its answer comes back through both. Each answer matches its own link's query.
    let mut l = learner();
    let q = question(5, "r.webex.com");
    let a = answer_id(5, "r.webex.com", SERVER, 60);
    for (ifindex, dir) in [(LAN_IF, IN), (WAN_IF, OUT)] {
        let s = pkt(
            KIND_DNS_QUERY,
            UDP,
            ifindex,
            dir,
            (CLIENT, 7000),
            (RESOLVER, 53),
            &q,
        );
        l.ingest(&s, 0);
    }
    assert_eq!(
        l.ingest(
            &pkt(
                KIND_DNS,
                UDP,
                WAN_IF,
                IN,
                (RESOLVER, 53),
                (CLIENT, 7000),
                &a
            ),
            0
        )
        .added
        .len(),
        1
    );
    l.ingest(
        &pkt(
            KIND_DNS,
            UDP,
            LAN_IF,
            OUT,
            (RESOLVER, 53),
            (CLIENT, 7000),
            &a,
        ),
        0,
    );
    assert_eq!(l.stats.duplicates, 1);
    assert!(l.stats.refused.is_empty(), "{:?}", l.stats.refused);
    assert_eq!(l.pending().0, 0);
}

#[test]
fn other_names_teach_nothing() {
    let mut l = learner();
    let c = resolve(&mut l, "www.example.org", [198, 51, 100, 5], 60, 0);
    assert!(c.added.is_empty());
    assert!(l.peers().is_empty());
}

fn tcp_query(payload: &[u8]) -> LearnSample {
    pkt(
        KIND_DNS_QUERY,
        TCP,
        WAN_IF,
        OUT,
        (GW_WAN, 40000),
        (RESOLVER, 53),
        payload,
    )
}

fn tcp_answer(payload: &[u8]) -> LearnSample {
    pkt(
        KIND_DNS,
        TCP,
        WAN_IF,
        IN,
        (RESOLVER, 53),
        (GW_WAN, 40000),
        payload,
    )
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut tcp = (msg.len() as u16).to_be_bytes().to_vec();
    tcp.extend_from_slice(msg);
    tcp
}

#[test]
fn tcp_dns_has_a_length_prefix() {
    let mut l = learner();
    l.ingest(&tcp_query(&framed(&question(0x1234, "a.webex.com"))), 0);
    let c = l.ingest(
        &tcp_answer(&framed(&answer("a.webex.com", [203, 0, 113, 52], 60))),
        0,
    );
    assert_eq!(c.added.len(), 1);
}

#[test]
fn tcp_dns_split_after_its_length_is_put_together() {
    let mut l = learner();
    // The query's length in its own segment too.
    let q = framed(&question(0x1234, "a.webex.com"));
    l.ingest(&tcp_query(&q[..2]), 0);
    l.ingest(&tcp_query(&q[2..]), 0);
    let a = framed(&answer("a.webex.com", [203, 0, 113, 52], 60));
    assert!(l.ingest(&tcp_answer(&a[..2]), 0).added.is_empty());
    let c = l.ingest(&tcp_answer(&a[2..]), 0);
    assert_eq!(c.added.len(), 1);
    assert_eq!(l.stats.reassembled, 2);
    assert_eq!(l.stats.dns_responses, 1);
    assert!(
        l.stats.dns_malformed.is_empty(),
        "{:?}",
        l.stats.dns_malformed
    );
    // Split in the middle of the message, too.
    let q = framed(&question(0x1234, "b.webex.com"));
    l.ingest(&tcp_query(&q), 0);
    let a = framed(&answer("b.webex.com", [203, 0, 113, 53], 60));
    l.ingest(&tcp_answer(&a[..20]), 0);
    assert_eq!(l.ingest(&tcp_answer(&a[20..]), 0).added.len(), 1);
    assert_eq!(l.pending().2, 0);
}

#[test]
fn a_tcp_answer_cut_by_the_sample_bound_keeps_its_whole_records() {
    let mut l = learner();
    l.ingest(&tcp_query(&framed(&question(0x1234, "big.webex.com"))), 0);
    // 100 A records: longer than the 1024-byte sample.
    let mut m = answer("big.webex.com", [203, 0, 113, 1], 60);
    m[7] = 100;
    let rec = m[m.len() - 16..].to_vec();
    for i in 2..=100u8 {
        let mut r = rec.clone();
        r[15] = i;
        m.extend_from_slice(&r);
    }
    let c = l.ingest(&tcp_answer(&framed(&m)), 0);
    assert_eq!(l.stats.dns_cut, 1, "{:?}", l.stats);
    assert!(
        l.stats.dns_malformed.is_empty(),
        "{:?}",
        l.stats.dns_malformed
    );
    // (1024 - 2 - 31 header and question) / 16 whole records.
    assert_eq!(c.added.len(), (1024 - 2 - 31) / 16);
}

#[test]
fn duplicates_count_once_and_sni_adds_its_bit() {
    let mut l = learner();
    let msg = answer("a.webex.com", [203, 0, 113, 53], 60);
    l.ingest(&gw_query(0x1234, "a.webex.com"), 0);
    assert_eq!(l.ingest(&gw_answer(&msg), 0).added.len(), 1);
    // The same answer on the LAN side (a forwarding gateway): its own query, a duplicate.
    let lan_q = pkt(
        KIND_DNS_QUERY,
        UDP,
        LAN_IF,
        IN,
        (CLIENT, 5000),
        (RESOLVER, 53),
        &question(0x1234, "a.webex.com"),
    );
    l.ingest(&lan_q, 0);
    let lan_a = pkt(
        KIND_DNS,
        UDP,
        LAN_IF,
        OUT,
        (RESOLVER, 53),
        (CLIENT, 5000),
        &msg,
    );
    assert!(l.ingest(&lan_a, S).added.is_empty());
    assert_eq!(l.stats.duplicates, 1);
    // After the window it is a new answer: refreshed, nothing new for the tries.
    assert!(
        resolve(&mut l, "a.webex.com", [203, 0, 113, 53], 60, 3 * S)
            .added
            .is_empty()
    );
    assert_eq!(l.stats.learned_dns, 2);
    let server = [203, 0, 113, 53];
    l.ingest(&synack(40001, server), 3 * S);
    let c = l.ingest(&hello_to(40001, server, &hello(b"media.webex.com")), 3 * S);
    let a: IpAddr = server.into();
    assert_eq!(c.added, vec![(a, SOURCE_DNS | SOURCE_SNI)]);
    assert_eq!(l.peers()[&a].name, "media.webex.com");
}

#[test]
fn hellos_need_a_handshake_and_the_right_side() {
    let mut l = learner();
    let h = hello(b"media.webex.com");
    // No handshake seen.
    assert!(l.ingest(&hello_to(40001, SERVER, &h), 0).added.is_empty());
    assert_eq!(refused(&l, "no_handshake"), 1);
    // A SYN-ACK for another connection.
    l.ingest(&synack(40002, SERVER), 0);
    assert!(l.ingest(&hello_to(40001, SERVER, &h), 0).added.is_empty());
    assert_eq!(refused(&l, "no_handshake"), 2);
    // From the WAN towards the gateway: wrong side.
    let forged = pkt(
        KIND_TLS,
        TCP,
        WAN_IF,
        IN,
        (RESOLVER, 40000),
        (GW_WAN, 443),
        &h,
    );
    assert!(l.ingest(&forged, 0).added.is_empty());
    // A SYN-ACK leaving towards the WAN is not a handshake of the site's.
    let out = pkt(
        KIND_TLS_SYNACK,
        TCP,
        WAN_IF,
        OUT,
        (GW_WAN, 443),
        (RESOLVER, 40000),
        &[],
    );
    l.ingest(&out, 0);
    assert_eq!(refused(&l, "wrong_side"), 2);
    // Towards the gateway's own address, with a handshake: refused for the address.
    l.ingest(&synack(40003, [192, 0, 2, 1]), 0);
    assert!(
        l.ingest(&hello_to(40003, [192, 0, 2, 1], &h), 0)
            .added
            .is_empty()
    );
    assert_eq!(refused(&l, "gateway_address"), 1);
    assert!(l.peers().is_empty());
    assert_eq!(l.stats.learned_sni, 0);
    // The handshake's own hello teaches.
    assert_eq!(l.ingest(&hello_to(40002, SERVER, &h), 0).added.len(), 1);
    assert_eq!(l.stats.learned_sni, 1);
    assert_eq!(l.stats.handshakes, 2);
}

#[test]
fn the_same_hello_to_a_second_server_is_not_a_duplicate() {
    let mut l = learner();
    let h = hello(b"media.webex.com");
    let other = [203, 0, 113, 81];
    l.ingest(&synack(40001, SERVER), 0);
    l.ingest(&synack(40002, other), 0);
    assert_eq!(l.ingest(&hello_to(40001, SERVER, &h), 0).added.len(), 1);
    assert_eq!(l.ingest(&hello_to(40002, other, &h), 0).added.len(), 1);
    assert_eq!(l.stats.duplicates, 0);
}

#[test]
fn a_hello_in_two_segments_teaches() {
    let mut l = learner();
    let h = hello(b"media.webex.com");
    l.ingest(&synack(40001, SERVER), 0);
    // The name is in the second segment.
    let cut = h.len() - 10;
    assert!(
        l.ingest(&hello_to(40001, SERVER, &h[..cut]), 0)
            .added
            .is_empty()
    );
    assert_eq!(l.pending().2, 1);
    let c = l.ingest(&hello_to(40001, SERVER, &h[cut..]), 0);
    assert_eq!(c.added, vec![(IpAddr::from(SERVER), SOURCE_SNI)]);
    assert_eq!(l.stats.reassembled, 1);
    assert_eq!(l.stats.client_hellos, 1);
    // A segment that continues nothing is not counted.
    l.ingest(&hello_to(40001, SERVER, b"application data"), 0);
    assert_eq!(l.stats.client_hellos, 1);
    assert!(l.stats.sni_malformed.is_empty());
}

#[test]
fn sni_outside_the_domains_teaches_nothing() {
    let mut l = learner();
    l.ingest(&synack(40001, SERVER), 0);
    assert!(
        l.ingest(&hello_to(40001, SERVER, &hello(b"www.example.org")), 0)
            .added
            .is_empty()
    );
    assert_eq!(l.stats.client_hellos, 1);
}

#[test]
fn max_peers_and_disabled() {
    let mut l = Learner::new(
        &LearnConfig {
            max_peers: 1,
            ..cfg()
        },
        site(),
    );
    resolve(&mut l, "a.webex.com", [203, 0, 113, 54], 60, 0);
    resolve(&mut l, "b.webex.com", [203, 0, 113, 55], 60, 0);
    assert_eq!(l.peers().len(), 1);
    assert_eq!(l.stats.refused_full, 1);
    assert_eq!(
        l.stats.learned_dns, 1,
        "a refused address is not counted as learned"
    );
    let mut off = Learner::new(
        &LearnConfig {
            enabled: false,
            ..cfg()
        },
        site(),
    );
    resolve(&mut off, "a.webex.com", [203, 0, 113, 54], 60, 0);
    assert!(off.peers().is_empty());
    assert_eq!(off.stats.ignored, 2);
}

#[test]
fn a_flood_of_forged_answers_stays_bounded() {
    let mut l = learner();
    // 10,000 forged answers from the LAN side and 10,000 unsolicited from the WAN side.
    for i in 0..10_000u32 {
        let msg = answer_id(i as u16, "x.webex.com", [203, 0, 113, (i % 250) as u8], 60);
        let lan = pkt(
            KIND_DNS,
            UDP,
            LAN_IF,
            IN,
            ([192, 0, 2, 66], 53),
            (RESOLVER, 40000 + (i % 1000) as u16),
            &msg,
        );
        l.ingest(&lan, i as u64);
        l.ingest(&gw_answer(&msg), i as u64);
    }
    assert_eq!(refused(&l, "wrong_side"), 10_000);
    assert_eq!(refused(&l, "unsolicited"), 10_000);
    assert!(l.peers().is_empty());
    assert_eq!(l.pending(), (0, 0, 0));
    // Real learning still works.
    assert_eq!(resolve(&mut l, "a.webex.com", SERVER, 60, S).added.len(), 1);
}

#[test]
fn a_flood_of_forged_syn_acks_does_not_shut_out_a_real_handshake() {
    let mut l = learner();
    // 10,000 SYN-ACKs "from" servers to LAN clients that never connected.
    for i in 0..10_000u32 {
        let server = [203, 0, 113, (i % 200) as u8];
        l.ingest(&synack(10_000 + (i / 200) as u16, server), i as u64);
    }
    assert_eq!(l.pending().1, pending::MAX_HANDSHAKES);
    // A real handshake and its hello, during the flood.
    l.ingest(&synack(40001, SERVER), 10_000);
    let c = l.ingest(&hello_to(40001, SERVER, &hello(b"media.webex.com")), 10_001);
    assert_eq!(c.added, vec![(IpAddr::from(SERVER), SOURCE_SNI)]);
    assert_eq!(
        refused(&l, "too_many_handshakes"),
        10_001 - pending::MAX_HANDSHAKES as u64
    );
    assert_eq!(l.pending().1, pending::MAX_HANDSHAKES);
}

fn flight_to(client_port: u16, payload: &[u8]) -> LearnSample {
    pkt(
        KIND_TLS_SERVER,
        TCP,
        LAN_IF,
        OUT,
        (SERVER, 443),
        (CLIENT, client_port),
        payload,
    )
}

#[test]
fn a_webex_hellos_certificate_is_read_once_and_teaches_nothing() {
    use crate::learn::cert::tests::{certificate, flight};
    let mut l = learner();
    let f = flight(&certificate(
        &[(3, "mitmproxy"), (10, "mitmproxy")],
        &[(3, "x.wbx2.com")],
    ));
    // A flight nobody asked for (no hello on its connection): not even looked at.
    l.ingest(&flight_to(40000, &f), 0);
    assert_eq!(l.stats.server_flights, 0);
    // A hello for a Webex name, then its server's flight split over two segments.
    l.ingest(&synack(40000, SERVER), 0);
    l.ingest(&hello_to(40000, SERVER, &hello(b"x.wbx2.com")), 0);
    let peers = l.peers().clone();
    l.ingest(&flight_to(40000, &f[..120]), S);
    assert!(l.server_certs().lock().unwrap().is_empty());
    l.ingest(&flight_to(40000, &f[120..]), S);
    let certs = l.server_certs().lock().unwrap().take();
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(
        (certs[0].sni.as_str(), certs[0].client_port, certs[0].server),
        ("x.wbx2.com", 40000, IpAddr::from(SERVER))
    );
    let names = certs[0].names.clone().unwrap();
    assert_eq!(names.issuer, "CN=mitmproxy, O=mitmproxy");
    assert_eq!(names.subject, "CN=x.wbx2.com");
    assert_eq!(
        (
            l.stats.server_flights,
            l.stats.certificates,
            l.stats.reassembled
        ),
        (1, 1, 1)
    );
    // A certificate teaches nothing.
    assert_eq!(l.peers(), &peers);
    // The flight again on that connection: no hello waits for it any more.
    l.ingest(&flight_to(40000, &f), 2 * S);
    assert!(l.server_certs().lock().unwrap().is_empty());
    // A hello for another name: its server's flight is not read.
    l.ingest(&synack(40001, SERVER), 2 * S);
    l.ingest(&hello_to(40001, SERVER, &hello(b"www.example.org")), 2 * S);
    l.ingest(&flight_to(40001, &f), 2 * S);
    assert_eq!((l.stats.server_flights, l.certs_waiting()), (1, 0));
}
