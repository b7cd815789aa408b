//! The learner: samples in, peers and expiry out.

use super::*;
use monitor_common::{FlowKey, learn::SAMPLE_BYTES};

fn sample(kind: u8, protocol: u8, dst: [u8; 4], payload: &[u8]) -> LearnSample {
    let mut data = [0u8; SAMPLE_BYTES];
    data[..payload.len()].copy_from_slice(payload);
    LearnSample {
        kind,
        family: FAMILY_V4,
        protocol,
        direction: 0,
        len: payload.len() as u32,
        payload_len: payload.len() as u32,
        ifindex: 1,
        src_addr: FlowKey::v4_mapped([192, 0, 2, 10]),
        dst_addr: FlowKey::v4_mapped(dst),
        src_port: 40000,
        dst_port: 443,
        _pad: 0,
        data,
    }
}

/// A response: `qname` A `addr` with `ttl`.
fn answer(qname: &str, addr: [u8; 4], ttl: u32) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for l in qname.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1]);
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&[0, 4]);
    m.extend_from_slice(&addr);
    m
}

const S: u64 = 1_000_000_000;

fn cfg() -> LearnConfig {
    LearnConfig {
        ttl_floor_s: 10,
        ttl_cap_s: 100,
        sni_ttl_s: 50,
        ..Default::default()
    }
}

#[test]
fn dns_answers_teach_with_clamped_ttl_and_expire() {
    let mut l = Learner::new(&cfg());
    let a: IpAddr = "203.0.113.50".parse().unwrap();
    let c = l.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("a.webex.com", [203, 0, 113, 50], 3),
        ),
        0,
    );
    assert_eq!(c.added, vec![(a, SOURCE_DNS)]);
    assert_eq!(l.peers()[&a].expires_ns, 10 * S); // raised to the floor
    let b: IpAddr = "203.0.113.51".parse().unwrap();
    l.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("b.cisco.com", [203, 0, 113, 51], 99_999),
        ),
        0,
    );
    assert_eq!(l.peers()[&b].expires_ns, 100 * S); // lowered to the cap
    assert!(l.expire(10 * S - 1).is_empty());
    assert_eq!(l.expire(10 * S), vec![(a, SOURCE_DNS)]);
    assert_eq!(l.peers().len(), 1);
    assert_eq!(l.stats.expired, 1);
}

#[test]
fn other_names_teach_nothing() {
    let mut l = Learner::new(&cfg());
    let c = l.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("www.example.org", [198, 51, 100, 5], 60),
        ),
        0,
    );
    assert!(c.added.is_empty());
    assert!(l.peers().is_empty());
}

#[test]
fn tcp_dns_has_a_length_prefix() {
    let mut l = Learner::new(&cfg());
    let msg = answer("a.webex.com", [203, 0, 113, 52], 60);
    let mut tcp = (msg.len() as u16).to_be_bytes().to_vec();
    tcp.extend_from_slice(&msg);
    let c = l.ingest(&sample(KIND_DNS, 6, [0; 4], &tcp), 0);
    assert_eq!(c.added.len(), 1);
}

#[test]
fn duplicates_count_once_and_sni_adds_its_bit() {
    let mut l = Learner::new(&cfg());
    let s = sample(
        KIND_DNS,
        17,
        [0; 4],
        &answer("a.webex.com", [203, 0, 113, 53], 60),
    );
    assert_eq!(l.ingest(&s, 0).added.len(), 1);
    assert!(l.ingest(&s, S).added.is_empty());
    assert_eq!(l.stats.duplicates, 1);
    // After the window it is a new answer: refreshed, nothing new for the tries.
    assert!(l.ingest(&s, 3 * S).added.is_empty());
    assert_eq!(l.stats.learned_dns, 2);
    let hello = crate::learn::sni::tests_support::hello_with_sni(b"media.webex.com");
    let c = l.ingest(&sample(KIND_TLS, 6, [203, 0, 113, 53], &hello), 3 * S);
    let a: IpAddr = "203.0.113.53".parse().unwrap();
    assert_eq!(c.added, vec![(a, SOURCE_DNS | SOURCE_SNI)]);
    assert_eq!(l.peers()[&a].name, "media.webex.com");
}

#[test]
fn sni_outside_the_domains_teaches_nothing() {
    let mut l = Learner::new(&cfg());
    let hello = crate::learn::sni::tests_support::hello_with_sni(b"www.example.org");
    assert!(
        l.ingest(&sample(KIND_TLS, 6, [198, 51, 100, 2], &hello), 0)
            .added
            .is_empty()
    );
    assert_eq!(l.stats.client_hellos, 1);
}

#[test]
fn max_peers_and_disabled() {
    let mut l = Learner::new(&LearnConfig {
        max_peers: 1,
        ..cfg()
    });
    l.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("a.webex.com", [203, 0, 113, 54], 60),
        ),
        0,
    );
    l.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("b.webex.com", [203, 0, 113, 55], 60),
        ),
        0,
    );
    assert_eq!(l.peers().len(), 1);
    assert_eq!(l.stats.refused_full, 1);
    let mut off = Learner::new(&LearnConfig {
        enabled: false,
        ..cfg()
    });
    off.ingest(
        &sample(
            KIND_DNS,
            17,
            [0; 4],
            &answer("a.webex.com", [203, 0, 113, 54], 60),
        ),
        0,
    );
    assert!(off.peers().is_empty());
    assert_eq!(off.stats.ignored, 1);
}

#[test]
fn unusable_addresses_are_never_learned() {
    let mut l = Learner::new(&cfg());
    for a in [
        [127, 0, 0, 1],
        [0, 0, 0, 0],
        [224, 0, 0, 1],
        [255, 255, 255, 255],
        [169, 254, 1, 1],
    ] {
        l.ingest(
            &sample(KIND_DNS, 17, [0; 4], &answer("a.webex.com", a, 60)),
            0,
        );
    }
    assert!(l.peers().is_empty());
}
