use super::*;
use crate::learn::cert::LeafNames;
use monitor_common::{Direction, flow::FAMILY_V4};

const SERVER: [u8; 4] = [203, 0, 113, 20];
const NODE: [u8; 4] = [203, 0, 113, 10];

fn cert(issuer: Option<&str>, port: u16) -> ServerCert {
    ServerCert {
        sni: "x.wbx2.com".into(),
        ifindex: 2,
        client: "198.51.100.2".parse().unwrap(),
        client_port: port,
        server: IpAddr::from(SERVER),
        server_port: 443,
        names: issuer.map(|i| LeafNames {
            issuer: i.into(),
            subject: "CN=x.wbx2.com".into(),
        }),
        at_ns: 0,
    }
}

fn key(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, protocol: u8) -> FlowKey {
    FlowKey {
        src_addr: FlowKey::v4_mapped(src),
        dst_addr: FlowKey::v4_mapped(dst),
        ifindex: 2,
        src_port: sport,
        dst_port: dport,
        protocol,
        family: FAMILY_V4,
        direction: Direction::Egress as u8,
        _pad: 0,
    }
}

/// STUN to the node (same /24 as the server) with a 40 ms floor.
fn stun(min_ms: u64) -> Vec<(FlowKey, RttStats)> {
    let ns = min_ms * 1_000_000;
    vec![(
        key([198, 51, 100, 2], 52000, NODE, 9000, 17),
        RttStats {
            last_ns: ns + 2_000_000,
            min_ns: ns,
            max_ns: ns + 5_000_000,
            sum_ns: 3 * ns,
            samples: 3,
            last_at_ns: 1,
        },
    )]
}

fn handshake(port: u16, us: u64) -> Vec<(FlowKey, u64)> {
    vec![(key([198, 51, 100, 2], port, SERVER, 443, 6), us * 1000)]
}

fn ev<'a>(f: &'a Finding, k: &str) -> &'a str {
    f.evidence
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {k} in {f:?}"))
}

#[test]
fn a_foreign_issuer_is_inspection_with_both_kinds_of_evidence() {
    let cfg = DetectConfig::default();
    let mut s = State::default();
    let mitm = "CN=mitmproxy, O=mitmproxy";
    s.add(
        vec![cert(Some(mitm), 40000)],
        &handshake(40000, 300),
        &cfg,
        100,
    );
    s.add(
        vec![cert(Some(mitm), 40001)],
        &handshake(40001, 250),
        &cfg,
        101,
    );
    let v = s.detect(&cfg, &stun(40), 101);
    assert_eq!(v.len(), 1, "{v:?}");
    let f = &v[0];
    assert_eq!((f.id, f.severity), (ID, Severity::Critical));
    assert_eq!(f.subject, "tls issuer CN=mitmproxy, O=mitmproxy");
    let evidence: Vec<(&str, &str)> = f
        .evidence
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        evidence,
        [
            ("issuer", mitm),
            ("certificate_subject", "CN=x.wbx2.com"),
            ("sni", "x.wbx2.com"),
            ("server", "203.0.113.20:443"),
            ("names", "x.wbx2.com"),
            ("connections", "2"),
            ("handshake_rtt_ms", "0.2"),
            ("stun_rtt_ms", "40.0"),
            ("window_s", "600"),
        ]
    );
    // Bypassed: the same name and server now show Webex's CA, and the finding goes.
    s.add(
        vec![cert(
            Some("C=US, O=IdenTrust, CN=TrustID Server CA O1"),
            40002,
        )],
        &[],
        &cfg,
        102,
    );
    assert!(s.detect(&cfg, &stun(40), 102).is_empty());
}

#[test]
fn a_handshake_missing_from_the_certificates_snapshot_is_found_in_a_later_one() {
    let cfg = DetectConfig::default();
    let mut s = State::default();
    s.add(vec![cert(Some("CN=Corp CA"), 40000)], &[], &cfg, 100);
    assert_eq!(
        ev(&s.detect(&cfg, &stun(40), 100)[0], "handshake_rtt_ms"),
        "-"
    );
    // Another connection's handshake is not this one's.
    s.add(Vec::new(), &handshake(40001, 700), &cfg, 101);
    assert_eq!(
        ev(&s.detect(&cfg, &stun(40), 101)[0], "handshake_rtt_ms"),
        "-"
    );
    s.add(Vec::new(), &handshake(40000, 700), &cfg, 102);
    assert_eq!(
        ev(&s.detect(&cfg, &stun(40), 102)[0], "handshake_rtt_ms"),
        "0.7"
    );
}

#[test]
fn expected_issuers_match_o_or_cn_case_insensitively() {
    let e = DetectConfig::default().tls_expected_issuers;
    assert!(issuer_expected(
        "C=US, O=IdenTrust, CN=TrustID Server CA O1",
        &e
    ));
    assert!(issuer_expected(
        "C=US, O=DigiCert Inc, CN=DigiCert Global G2 TLS RSA",
        &e
    ));
    assert!(issuer_expected("CN=HydrantID Server CA O1", &e));
    assert!(!issuer_expected("CN=mitmproxy, O=mitmproxy", &e));
    // Only O and CN count: a proxy naming its city "DigiCert" does not pass.
    assert!(!issuer_expected("L=DigiCert, CN=Corp Inspection CA", &e));
}

#[test]
fn the_window_ends_it_and_no_list_means_no_certificate_check() {
    let cfg = DetectConfig::default();
    let mut s = State::default();
    s.add(vec![cert(Some("CN=Corp CA"), 40000)], &[], &cfg, 100);
    assert_eq!(s.detect(&cfg, &[], 100 + WINDOW_S - 1).len(), 1);
    assert!(s.detect(&cfg, &[], 100 + WINDOW_S).is_empty());
    let off = DetectConfig {
        tls_expected_issuers: Vec::new(),
        ..Default::default()
    };
    let mut s = State::default();
    s.add(vec![cert(Some("CN=Corp CA"), 40000)], &[], &off, 100);
    assert!(s.detect(&off, &[], 100).is_empty());
}

#[test]
fn tls13_answered_much_faster_than_stun_is_likely_unless_webex_ca_seen() {
    let cfg = DetectConfig::default();
    let mut s = State::default();
    s.add(vec![cert(None, 40000)], &handshake(40000, 500), &cfg, 100);
    // No STUN to that prefix yet, or not much slower: nothing.
    assert!(s.detect(&cfg, &[], 100).is_empty());
    assert!(s.detect(&cfg, &stun(1), 100).is_empty());
    let v = s.detect(&cfg, &stun(40), 100);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].severity, v[0].subject.as_str()),
        (Severity::Warning, "tls to 203.0.113.0/24")
    );
    assert_eq!(ev(&v[0], "issuer"), "- (TLS 1.3: not in clear)");
    assert_eq!(ev(&v[0], "handshake_rtt_ms"), "0.5");
    assert_eq!(ev(&v[0], "stun_rtt_ms"), "40.0");
    // A certificate from Webex's CA in the same prefix vetoes it (a near edge node).
    let mut other = cert(Some("O=DigiCert Inc, CN=DigiCert G2"), 40001);
    other.sni = "y.wbx2.com".into();
    s.add(vec![other], &[], &cfg, 101);
    assert!(s.detect(&cfg, &stun(40), 101).is_empty());
}

#[test]
fn connections_are_bounded_and_counted() {
    let cfg = DetectConfig::default();
    let mut s = State::default();
    let certs: Vec<ServerCert> = (0..MAX_CONNECTIONS + 5)
        .map(|i| {
            let mut c = cert(Some("CN=Corp CA"), 40000);
            c.sni = format!("h{i}.wbx2.com");
            c
        })
        .collect();
    s.add(certs, &[], &cfg, 100);
    assert_eq!((s.seen.len(), s.dropped), (MAX_CONNECTIONS, 5));
    assert_eq!(
        s.table(),
        crate::report::detectors::DetectorTable::new(ID, "connections", 1024, 1024, 5)
    );
    let v = s.detect(&cfg, &[], 100);
    assert_eq!(ev(&v[0], "connections"), MAX_CONNECTIONS.to_string());
    assert_eq!(ev(&v[0], "names").split(", ").count(), MAX_NAMES_SHOWN);
}
