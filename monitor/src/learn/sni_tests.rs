//! Crafted ClientHellos: the server name is found; truncation at every byte, lying
//! lengths and bad names never panic and never return a wrong name.

use super::*;

/// A TLS 1.2-style ClientHello record with `exts` (type, data) in order.
fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]); // random
    body.push(32);
    body.extend_from_slice(&[9; 32]); // session id
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression
    let mut e = Vec::new();
    for (ty, data) in exts {
        e.extend_from_slice(&ty.to_be_bytes());
        e.extend_from_slice(&(data.len() as u16).to_be_bytes());
        e.extend_from_slice(data);
    }
    body.extend_from_slice(&(e.len() as u16).to_be_bytes());
    body.extend_from_slice(&e);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn sni(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&entry);
    (0, data)
}

#[test]
fn finds_the_server_name_after_other_extensions() {
    let h = hello(&[
        (23, vec![]),
        (10, vec![0, 2, 0, 29]),
        sni(b"Media.Webex.com"),
    ]);
    assert_eq!(server_name(&h).unwrap(), "media.webex.com");
}

#[test]
fn no_sni_and_bad_names() {
    assert_eq!(
        server_name(&hello(&[(23, vec![])])),
        Err(SniError::NoServerName)
    );
    assert_eq!(server_name(&hello(&[sni(b"a..b")])), Err(SniError::BadName));
    assert_eq!(
        server_name(&hello(&[sni(b"x.webex.com\0")])),
        Err(SniError::BadName)
    );
    assert_eq!(server_name(&hello(&[sni(b"")])), Err(SniError::BadName));
    assert_eq!(
        server_name(&[0x17, 3, 3, 0, 5, 1]),
        Err(SniError::NotClientHello)
    );
    let mut server_hello = hello(&[sni(b"a.webex.com")]);
    server_hello[5] = 2;
    assert_eq!(server_name(&server_hello), Err(SniError::NotClientHello));
}

#[test]
fn truncation_at_every_byte() {
    let h = hello(&[(23, vec![]), sni(b"media.webex.com"), (43, vec![2, 3, 4])]);
    let sni_end = h.len() - 7;
    for cut in 0..h.len() {
        match server_name(&h[..cut]) {
            Ok(name) => {
                assert_eq!(name, "media.webex.com");
                assert!(cut >= sni_end, "name found at cut {cut} before its end");
            }
            Err(_) => assert!(cut < sni_end, "cut {cut}"),
        }
    }
}

#[test]
fn lying_lengths_and_mutations() {
    let base = hello(&[(23, vec![]), sni(b"sip.webex.com")]);
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..20_000 {
        let mut h = base.clone();
        for _ in 0..(next() % 3 + 1) {
            let at = (next() as usize) % h.len();
            h[at] = next() as u8;
        }
        if let Ok(name) = server_name(&h) {
            // Any name returned is a valid host name made of the buffer's bytes.
            assert!(!name.is_empty() && name.len() <= 253);
            assert!(name.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'.'
                || b == b'-'
                || b == b'_'));
        }
    }
}
