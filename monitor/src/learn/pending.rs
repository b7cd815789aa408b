//! What an answer or a ClientHello must match to be believed: the DNS queries seen
//! going out, and the TLS handshakes seen coming back, each bounded in number and kept
//! for a limited time. Also the starts of messages split across two segments. All
//! bounded: when one is full, an arbitrary entry is forgotten to make room for the new
//! one (the caller counts it). A real answer or hello follows its query or handshake
//! within a round trip, so a flood that churns the table rarely catches it, where
//! refusing new entries would shut real ones out until the flood's entries time out.

use std::{collections::HashMap, net::IpAddr};

/// A query is answered within this time, or its answer is not believed.
pub const QUERY_TIMEOUT_NS: u64 = 10_000_000_000;
/// Queries waiting for their answer, at most.
pub const MAX_QUERIES: usize = 4096;
/// Queries waiting on one client socket towards one resolver, at most.
const MAX_PER_SOCKET: usize = 16;
/// A ClientHello follows its connection's SYN-ACK within this time.
pub const HANDSHAKE_TIMEOUT_NS: u64 = 30_000_000_000;
/// Handshakes remembered, at most.
pub const MAX_HANDSHAKES: usize = 4096;
/// A TCP segment's continuation arrives within this time.
pub const SEGMENT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Streams with a partial message, at most.
pub const MAX_PARTIAL: usize = 256;
/// Longest partial message kept (two samples' worth).
pub const MAX_PARTIAL_BYTES: usize = 2 * monitor_common::learn::SAMPLE_BYTES;

/// One end-to-end transport conversation, seen from its client on one interface: an
/// answer must come back through the interface its query left by (the LAN side for a
/// LAN client's query, the WAN side after NAT or for the gateway's own resolver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conn {
    pub ifindex: u32,
    pub protocol: u8,
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

/// Why an answer was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No query is waiting on this client socket and resolver.
    Unsolicited,
    /// Queries are waiting, but none with this ID and question name.
    OtherQuery,
}

#[derive(Debug, Default)]
pub struct Queries {
    by_conn: HashMap<Conn, Vec<(u16, String, u64)>>,
    len: usize,
}

impl Queries {
    /// Remembers a query. False when another had to be forgotten to make room.
    pub fn insert(&mut self, conn: Conn, id: u16, name: String, now_ns: u64) -> bool {
        let mut room = true;
        if self.len >= MAX_QUERIES {
            // Only under a flood of queries: the ones timed out here are not reported
            // as unanswered (the next `Learner::expire` reports the rest).
            self.purge(now_ns);
            if self.len >= MAX_QUERIES {
                room = false;
                self.forget_one();
            }
        }
        let waiting = self.by_conn.entry(conn).or_default();
        // A retransmission: the same query again restarts its time.
        if let Some(q) = waiting.iter_mut().find(|q| q.0 == id && q.1 == name) {
            q.2 = now_ns;
            return true;
        }
        if waiting.len() >= MAX_PER_SOCKET {
            waiting.remove(0);
            self.len -= 1;
        }
        waiting.push((id, name, now_ns));
        self.len += 1;
        room
    }

    /// Forgets the oldest query of an arbitrary socket.
    fn forget_one(&mut self) {
        let Some(conn) = self.by_conn.keys().next().copied() else {
            return;
        };
        if let Some(waiting) = self.by_conn.get_mut(&conn) {
            waiting.remove(0);
            self.len -= 1;
            if waiting.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// Takes the query an answer on `conn` with `id` for `name` answers.
    pub fn answer(
        &mut self,
        conn: &Conn,
        id: u16,
        name: &str,
        now_ns: u64,
    ) -> Result<(), Mismatch> {
        let Some(waiting) = self.by_conn.get_mut(conn) else {
            return Err(Mismatch::Unsolicited);
        };
        let fresh = |t: u64| now_ns.saturating_sub(t) < QUERY_TIMEOUT_NS;
        let found = waiting
            .iter()
            .position(|q| q.0 == id && q.1 == name && fresh(q.2));
        let any_fresh = waiting.iter().any(|q| fresh(q.2));
        match found {
            Some(i) => {
                waiting.remove(i);
                self.len -= 1;
                if waiting.is_empty() {
                    self.by_conn.remove(conn);
                }
                Ok(())
            }
            None if any_fresh => Err(Mismatch::OtherQuery),
            None => Err(Mismatch::Unsolicited),
        }
    }

    /// Forgets the queries whose time is up; returns them (conversation, ID, name):
    /// queries that got no answer.
    pub fn purge(&mut self, now_ns: u64) -> Vec<(Conn, u16, String)> {
        let mut len = 0;
        let mut expired = Vec::new();
        self.by_conn.retain(|conn, w| {
            w.retain(|q| {
                let fresh = now_ns.saturating_sub(q.2) < QUERY_TIMEOUT_NS;
                if !fresh {
                    expired.push((*conn, q.0, q.1.clone()));
                }
                fresh
            });
            len += w.len();
            !w.is_empty()
        });
        self.len = len;
        expired
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// TLS connections whose SYN-ACK was seen (by client and server), and when.
#[derive(Debug, Default)]
pub struct Handshakes {
    seen: HashMap<Conn, u64>,
}

impl Handshakes {
    /// Remembers a handshake. False when another had to be forgotten to make room.
    pub fn insert(&mut self, conn: Conn, now_ns: u64) -> bool {
        let mut room = true;
        if self.seen.len() >= MAX_HANDSHAKES && !self.seen.contains_key(&conn) {
            self.purge(now_ns);
            if self.seen.len() >= MAX_HANDSHAKES {
                room = false;
                if let Some(k) = self.seen.keys().next().copied() {
                    self.seen.remove(&k);
                }
            }
        }
        self.seen.insert(conn, now_ns);
        room
    }

    /// Whether `conn`'s handshake was seen within the timeout.
    pub fn seen(&self, conn: &Conn, now_ns: u64) -> bool {
        self.seen
            .get(conn)
            .is_some_and(|t| now_ns.saturating_sub(*t) < HANDSHAKE_TIMEOUT_NS)
    }

    pub fn purge(&mut self, now_ns: u64) {
        self.seen
            .retain(|_, t| now_ns.saturating_sub(*t) < HANDSHAKE_TIMEOUT_NS);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Messages whose first segment did not hold them whole, waiting for the next segment
/// of their stream (DNS over TCP, a ClientHello spanning two segments).
#[derive(Debug, Default)]
pub struct Partial {
    streams: HashMap<(u8, Conn), (Vec<u8>, u64)>,
}

impl Partial {
    /// Keeps `bytes` as the start of a message on `conn`. False when another had to be
    /// forgotten to make room.
    pub fn start(&mut self, kind: u8, conn: Conn, bytes: &[u8], now_ns: u64) -> bool {
        let mut room = true;
        if self.streams.len() >= MAX_PARTIAL && !self.streams.contains_key(&(kind, conn)) {
            self.purge(now_ns);
            if self.streams.len() >= MAX_PARTIAL {
                room = false;
                if let Some(k) = self.streams.keys().next().copied() {
                    self.streams.remove(&k);
                }
            }
        }
        let keep = bytes.len().min(MAX_PARTIAL_BYTES);
        self.streams
            .insert((kind, conn), (bytes[..keep].to_vec(), now_ns));
        room
    }

    /// Takes the start kept for `key` (within the timeout).
    pub fn take(&mut self, kind: u8, conn: &Conn, now_ns: u64) -> Option<Vec<u8>> {
        let (bytes, t) = self.streams.remove(&(kind, *conn))?;
        (now_ns.saturating_sub(t) < SEGMENT_TIMEOUT_NS).then_some(bytes)
    }

    pub fn purge(&mut self, now_ns: u64) {
        self.streams
            .retain(|_, (_, t)| now_ns.saturating_sub(*t) < SEGMENT_TIMEOUT_NS);
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> Conn {
        Conn {
            ifindex: 3,
            protocol: 17,
            client: "192.0.2.10".parse().unwrap(),
            client_port: port,
            server: "198.51.100.2".parse().unwrap(),
            server_port: 53,
        }
    }

    #[test]
    fn an_answer_takes_its_query_once() {
        let mut q = Queries::default();
        assert!(q.insert(conn(1000), 7, "a.webex.com".into(), 0));
        assert_eq!(
            q.answer(&conn(1001), 7, "a.webex.com", 1),
            Err(Mismatch::Unsolicited)
        );
        assert_eq!(
            q.answer(&conn(1000), 8, "a.webex.com", 1),
            Err(Mismatch::OtherQuery)
        );
        assert_eq!(
            q.answer(&conn(1000), 7, "b.webex.com", 1),
            Err(Mismatch::OtherQuery)
        );
        // The same conversation on another interface is another one.
        let elsewhere = Conn {
            ifindex: 2,
            ..conn(1000)
        };
        assert_eq!(
            q.answer(&elsewhere, 7, "a.webex.com", 1),
            Err(Mismatch::Unsolicited)
        );
        assert_eq!(q.answer(&conn(1000), 7, "a.webex.com", 1), Ok(()));
        assert_eq!(
            q.answer(&conn(1000), 7, "a.webex.com", 2),
            Err(Mismatch::Unsolicited)
        );
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn queries_time_out_and_are_bounded() {
        let mut q = Queries::default();
        q.insert(conn(1000), 7, "a.webex.com".into(), 0);
        assert_eq!(
            q.answer(&conn(1000), 7, "a.webex.com", QUERY_TIMEOUT_NS),
            Err(Mismatch::Unsolicited)
        );
        let mut q = Queries::default();
        for i in 0..MAX_QUERIES as u16 {
            assert!(q.insert(conn(i), 1, "x".into(), 0));
        }
        // Full: one is forgotten for the new one, which is kept.
        assert!(!q.insert(conn(60000), 1, "x".into(), 1));
        assert_eq!(q.len(), MAX_QUERIES);
        assert_eq!(q.answer(&conn(60000), 1, "x", 2), Ok(()));
        assert_eq!(q.len(), MAX_QUERIES - 1);
        // Once they time out, they are gone.
        q.purge(QUERY_TIMEOUT_NS);
        assert_eq!(q.len(), 0);
        assert!(q.insert(conn(60000), 1, "x".into(), QUERY_TIMEOUT_NS));
        assert_eq!(q.len(), 1);
        // One socket keeps its latest queries only.
        for id in 0..100 {
            q.insert(conn(5), id, "y".into(), QUERY_TIMEOUT_NS);
        }
        assert_eq!(q.len(), 1 + MAX_PER_SOCKET);
    }

    #[test]
    fn handshakes_and_partials_are_bounded_and_time_out() {
        let mut h = Handshakes::default();
        for i in 0..MAX_HANDSHAKES as u16 {
            assert!(h.insert(conn(i), 0));
        }
        // Full: one older handshake is forgotten for the new one.
        assert!(!h.insert(conn(60000), 1));
        assert_eq!(h.len(), MAX_HANDSHAKES);
        let old = (0..MAX_HANDSHAKES as u16)
            .filter(|i| h.seen(&conn(*i), 2))
            .count();
        assert_eq!(old, MAX_HANDSHAKES - 1);
        assert!(h.seen(&conn(60000), HANDSHAKE_TIMEOUT_NS));
        assert!(!h.seen(&conn(60000), HANDSHAKE_TIMEOUT_NS + 1));
        // Once they time out, they make room without forgetting anything.
        assert!(h.insert(conn(60001), HANDSHAKE_TIMEOUT_NS));
        assert_eq!(h.len(), 2);

        let mut p = Partial::default();
        assert!(p.start(1, conn(1), &[0, 40], 0));
        assert_eq!(p.take(1, &conn(1), 1), Some(vec![0, 40]));
        assert_eq!(p.take(1, &conn(1), 1), None);
        p.start(1, conn(1), &[0, 40], 0);
        assert_eq!(p.take(1, &conn(1), SEGMENT_TIMEOUT_NS), None);
        for i in 0..MAX_PARTIAL as u16 {
            assert!(p.start(1, conn(i), &[1], 0));
        }
        assert!(!p.start(1, conn(60000), &[1], 0));
        assert_eq!(p.len(), MAX_PARTIAL);
        assert_eq!(p.take(1, &conn(60000), 1), Some(vec![1]));
    }
}
