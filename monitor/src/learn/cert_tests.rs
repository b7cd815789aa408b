use super::*;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match content.len() {
        n if n < 0x80 => v.push(n as u8),
        n if n < 0x100 => v.extend_from_slice(&[0x81, n as u8]),
        n => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(content);
    v
}

fn name(attrs: &[(u8, &str)]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (at, value) in attrs {
        let mut atv = tlv(0x06, &[0x55, 0x04, *at]);
        atv.extend(tlv(0x0c, value.as_bytes()));
        rdns.extend(tlv(0x31, &tlv(0x30, &atv)));
    }
    tlv(0x30, &rdns)
}

/// A leaf certificate (the signature is junk: only the names are read).
pub(crate) fn certificate(issuer: &[(u8, &str)], subject: &[(u8, &str)]) -> Vec<u8> {
    let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
    tbs.extend(tlv(0x02, &[0x11; 16]));
    tbs.extend(tlv(
        0x30,
        &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2]),
    ));
    tbs.extend(name(issuer));
    tbs.extend(tlv(0x30, &[0x17, 2, b'2', b'6', 0x17, 2, b'2', b'7']));
    tbs.extend(name(subject));
    tbs.extend(tlv(0x30, &[0u8; 300]));
    let mut cert = tlv(0x30, &tbs);
    cert.extend(tlv(0x30, &[0u8; 10]));
    tlv(0x30, &cert)
}

fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn server_hello(tls13: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[9; 32]);
    b.extend_from_slice(&[0, 0x13, 0x01, 0]);
    let ext: Vec<u8> = if tls13 {
        vec![0, 43, 0, 2, 3, 4]
    } else {
        vec![0xff, 0x01, 0, 1, 0]
    };
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend(ext);
    handshake(SERVER_HELLO, &b)
}

/// A TLS 1.2 first flight: ServerHello and Certificate in one record, as OpenSSL sends.
pub(crate) fn flight(cert: &[u8]) -> Vec<u8> {
    let mut list = (cert.len() as u32).to_be_bytes()[1..].to_vec();
    list.extend_from_slice(cert);
    let mut body = ((list.len()) as u32).to_be_bytes()[1..].to_vec();
    body.extend(list);
    let mut hs = server_hello(false);
    hs.extend(handshake(CERTIFICATE, &body));
    hs.extend(handshake(14, &[]));
    record(HANDSHAKE, &hs)
}

const CN: u8 = 3;
const O: u8 = 10;
const C: u8 = 6;

fn mitm() -> Vec<u8> {
    certificate(
        &[(CN, "mitmproxy"), (O, "mitmproxy")],
        &[(CN, "x.wbx2.com")],
    )
}

#[test]
fn reads_issuer_and_subject_of_the_leaf() {
    let f = flight(&certificate(
        &[(C, "US"), (O, "IdenTrust"), (CN, "TrustID Server CA O1")],
        &[(CN, "x.wbx2.com")],
    ));
    assert_eq!(
        leaf_names(&f),
        Ok(LeafNames {
            issuer: "C=US, O=IdenTrust, CN=TrustID Server CA O1".into(),
            subject: "CN=x.wbx2.com".into()
        })
    );
}

#[test]
fn a_cut_flight_is_read_as_far_as_it_goes() {
    let f = flight(&mitm());
    // Cut after the subject: still read (the rest of the certificate is not needed).
    let subject_end = f.windows(10).position(|w| w == b"x.wbx2.com").unwrap() + 10;
    assert_eq!(
        leaf_names(&f[..subject_end]).map(|n| n.issuer),
        Ok("CN=mitmproxy, O=mitmproxy".into())
    );
    // Cut before it: the next segment is needed.
    for cut in [6, 60, 100, subject_end - 1] {
        assert_eq!(leaf_names(&f[..cut]), Err(CertError::Truncated), "{cut}");
    }
    // Split into two records: one message across them.
    let whole = f[5..].to_vec();
    let mut split = record(HANDSHAKE, &whole[..150]);
    split.extend(record(HANDSHAKE, &whole[150..]));
    assert_eq!(leaf_names(&split), leaf_names(&f));
}

#[test]
fn tls13_and_other_records_say_encrypted() {
    assert_eq!(
        leaf_names(&record(HANDSHAKE, &server_hello(true))),
        Err(CertError::Encrypted)
    );
    let mut f = record(HANDSHAKE, &server_hello(false));
    f.extend(record(0x14, &[1]));
    f.extend(record(0x17, &[0; 40]));
    assert_eq!(leaf_names(&f), Err(CertError::Encrypted));
}

#[test]
fn not_a_server_hello() {
    let hello = crate::learn::sni::tests_support::hello_with_sni(b"x.wbx2.com");
    assert_eq!(leaf_names(&hello), Err(CertError::NotServerHello));
    assert_eq!(leaf_names(&[]), Err(CertError::NotServerHello));
}

#[test]
fn garbage_never_panics_and_names_stay_bounded() {
    let long = "A".repeat(1000);
    let f = flight(&certificate(
        &[(CN, &long), (O, "bad\u{7f}\u{1}")],
        &[(CN, "x")],
    ));
    let n = leaf_names(&f).unwrap();
    assert_eq!(n.issuer, format!("CN={}, O=bad??", "A".repeat(MAX_VALUE)));
    // Every cut and every single corrupted byte of a real flight: an answer, no panic.
    let f = flight(&mitm());
    for cut in 0..f.len() {
        let _ = leaf_names(&f[..cut]);
    }
    for i in 0..f.len() {
        for v in [0x00, 0x7f, 0x80, 0x84, 0xff] {
            let mut g = f.clone();
            g[i] = v;
            let _ = leaf_names(&g);
        }
    }
}
