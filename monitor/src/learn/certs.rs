//! TLS servers' certificates on connections whose ClientHello named a Webex host, for the
//! `ssl_inspection` detector (`crate::detect::ssl`). The learner pairs a server's first
//! flight with the hello of its connection (a flight nobody asked for is ignored), reads
//! the leaf's issuer and subject ([`super::cert`]) and records them here: a bounded ring
//! the detectors drain each poll, and a bounded table of hellos waiting for their flight.
//! Nothing here teaches a peer: a forged certificate can only raise a finding.

use std::{collections::HashMap, net::IpAddr};

use super::{cert::LeafNames, pending::Conn};

/// Certificates kept until the detectors' next poll, at most.
pub const MAX_EVENTS: usize = 256;
/// Webex hellos waiting for their server's flight, at most.
pub const MAX_WAITING: usize = 1024;
/// How long a hello waits for its server's flight.
pub const WAIT_NS: u64 = 10_000_000_000;

/// What a TLS server answered a ClientHello for a Webex name with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCert {
    /// The server name the client asked for.
    pub sni: String,
    /// The connection as seen on `ifindex` (after NAT on the WAN side).
    pub ifindex: u32,
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
    /// The leaf's names; `None` when the certificate is not in clear (TLS 1.3).
    pub names: Option<LeafNames>,
    /// CLOCK_MONOTONIC of the flight.
    pub at_ns: u64,
}

/// The ring of certificates not yet taken by the detectors.
pub type ServerCerts = super::ring::Ring<ServerCert, MAX_EVENTS>;

/// Webex hellos waiting for their server's first flight, by connection.
#[derive(Debug, Default)]
pub struct Waiting {
    hellos: HashMap<Conn, (String, u64)>,
}

impl Waiting {
    /// Remembers that `conn`'s hello asked for `sni`. False when another had to be
    /// forgotten to make room.
    pub fn insert(&mut self, conn: Conn, sni: String, now_ns: u64) -> bool {
        if self.hellos.len() >= MAX_WAITING && !self.hellos.contains_key(&conn) {
            self.purge(now_ns);
            if self.hellos.len() >= MAX_WAITING {
                if let Some(k) = self.hellos.keys().next().copied() {
                    self.hellos.remove(&k);
                }
                self.hellos.insert(conn, (sni, now_ns));
                return false;
            }
        }
        self.hellos.insert(conn, (sni, now_ns));
        true
    }

    /// The name `conn`'s hello asked for, while it waits.
    pub fn get(&self, conn: &Conn, now_ns: u64) -> Option<&str> {
        self.hellos
            .get(conn)
            .filter(|(_, t)| now_ns.saturating_sub(*t) < WAIT_NS)
            .map(|(n, _)| n.as_str())
    }

    pub fn remove(&mut self, conn: &Conn) {
        self.hellos.remove(conn);
    }

    pub fn purge(&mut self, now_ns: u64) {
        self.hellos
            .retain(|_, (_, t)| now_ns.saturating_sub(*t) < WAIT_NS);
    }

    pub fn len(&self) -> usize {
        self.hellos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hellos.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> Conn {
        Conn {
            ifindex: 2,
            protocol: 6,
            client: "192.0.2.10".parse().unwrap(),
            client_port: port,
            server: "203.0.113.20".parse().unwrap(),
            server_port: 443,
        }
    }

    #[test]
    fn both_tables_are_bounded_and_count_or_report_what_they_drop() {
        let mut r = ServerCerts::default();
        for i in 0..MAX_EVENTS as u64 + 3 {
            r.push(ServerCert {
                sni: "x.wbx2.com".into(),
                ifindex: 2,
                client: "192.0.2.10".parse().unwrap(),
                client_port: 40000,
                server: "203.0.113.20".parse().unwrap(),
                server_port: 443,
                names: None,
                at_ns: i,
            });
        }
        assert_eq!((r.len(), r.dropped()), (MAX_EVENTS, 3));
        assert_eq!(r.take()[0].at_ns, 3);
        assert!(r.is_empty());

        let mut w = Waiting::default();
        for p in 0..MAX_WAITING as u16 {
            assert!(w.insert(conn(p), "x.wbx2.com".into(), 0));
        }
        // Full of fresh hellos: one goes to make room (reported), the size holds.
        assert!(!w.insert(conn(60000), "x.wbx2.com".into(), 1));
        assert_eq!(w.len(), MAX_WAITING);
        assert_eq!(w.get(&conn(60000), 1), Some("x.wbx2.com"));
        // Past the wait: not matched, and purged.
        assert_eq!(w.get(&conn(60000), WAIT_NS + 1), None);
        w.purge(WAIT_NS + 1);
        assert!(w.is_empty());
    }
}
