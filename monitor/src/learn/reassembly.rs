//! Messages that span two TCP segments: a DNS-over-TCP message whose first segment holds
//! only part of it (its 2-byte length alone, say), a ClientHello longer than its
//! segment (large post-quantum hellos), and a server's certificate that starts in the
//! segment of its ServerHello and ends in the next. The start waits in [`super::pending::Partial`]
//! (bounded, timed) for the next segment of the same connection on the same interface.

use monitor_common::learn::{KIND_TLS, KIND_TLS_SERVER};

use super::{
    Learner, TCP, cert,
    certs::ServerCert,
    pending::{self, Conn},
};

impl Learner {
    /// The DNS message of a sample: a UDP payload as it is; over TCP without its 2-byte
    /// length, put together with the next segment when the first held only part of it
    /// (its length alone, say). With whether it is cut (by the sample bound, or a TCP
    /// message longer than what arrived). `None` while waiting for the rest.
    pub(super) fn dns_message(
        &mut self,
        kind: u8,
        protocol: u8,
        conn: Conn,
        data: &[u8],
        cut: bool,
        now_ns: u64,
    ) -> Option<(Vec<u8>, bool)> {
        if protocol != TCP {
            return Some((data.to_vec(), cut));
        }
        let mut stream = match self.partial.take(kind, &conn, now_ns) {
            Some(mut start) => {
                start.extend_from_slice(data);
                self.stats.reassembled += 1;
                start
            }
            None => data.to_vec(),
        };
        stream.truncate(pending::MAX_PARTIAL_BYTES);
        let want = match stream.as_slice() {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]) as usize,
            _ => usize::MAX,
        };
        // The whole message is here, or the sample bound cut it (parse what is there).
        if stream.len() >= want.saturating_add(2)
            || cut
            || stream.len() >= pending::MAX_PARTIAL_BYTES
        {
            let end = want.saturating_add(2).min(stream.len());
            let short = stream.len() < want.saturating_add(2);
            return Some((stream.get(2..end).unwrap_or_default().to_vec(), short));
        }
        if !self.partial.start(kind, conn, &stream, now_ns) {
            self.refuse("too_many_partial");
        }
        None
    }

    /// The ClientHello of a sample: a hello whose record ends in this segment as it is;
    /// one that continues is kept until the next segment of its connection completes it.
    /// A segment that is not a hello and continues none is not counted.
    pub(super) fn hello(
        &mut self,
        conn: Conn,
        data: &[u8],
        cut: bool,
        now_ns: u64,
    ) -> Option<Vec<u8>> {
        let starts = data.len() >= 6 && data[0] == 0x16 && data[1] == 0x03 && data[5] == 0x01;
        let stream = if starts {
            data.to_vec()
        } else {
            let mut start = self.partial.take(KIND_TLS, &conn, now_ns)?;
            start.extend_from_slice(data);
            self.stats.reassembled += 1;
            start
        };
        let record = match stream.as_slice() {
            [_, _, _, hi, lo, ..] => u16::from_be_bytes([*hi, *lo]) as usize + 5,
            _ => usize::MAX,
        };
        if starts && stream.len() < record && !cut {
            if !self.partial.start(KIND_TLS, conn, &stream, now_ns) {
                self.refuse("too_many_partial");
            }
            return None;
        }
        Some(stream)
    }

    /// A segment of a TLS server's first flight on `conn` (seen from its client): the
    /// ServerHello's segment, or the one after it. Only flights answering a Webex hello
    /// are read; the leaf's names (or that TLS 1.3 hides them) go to the detectors.
    pub(super) fn server_flight(&mut self, conn: Conn, data: &[u8], cut: bool, now_ns: u64) {
        let Some(sni) = self.waiting.get(&conn, now_ns).map(str::to_owned) else {
            return;
        };
        let starts = data.len() >= 6 && data[0] == 0x16 && data[1] == 0x03 && data[5] == 0x02;
        let mut stream = if starts {
            self.stats.server_flights += 1;
            data.to_vec()
        } else {
            let Some(mut start) = self.partial.take(KIND_TLS_SERVER, &conn, now_ns) else {
                return;
            };
            start.extend_from_slice(data);
            self.stats.reassembled += 1;
            start
        };
        stream.truncate(pending::MAX_PARTIAL_BYTES);
        let names = match cert::leaf_names(&stream) {
            Ok(n) => Some(n),
            Err(cert::CertError::Encrypted) => None,
            // The names are in the next segment (only when this one was copied whole:
            // a cut sample leaves a gap).
            Err(cert::CertError::Truncated) if starts && !cut => {
                if !self.partial.start(KIND_TLS_SERVER, conn, &stream, now_ns) {
                    self.refuse("too_many_partial");
                }
                return;
            }
            Err(e) => {
                self.waiting.remove(&conn);
                *self.stats.cert_unread.entry(e.as_str()).or_default() += 1;
                return;
            }
        };
        self.waiting.remove(&conn);
        // The same flight seen on the WAN and on the LAN side: one event.
        let key = format!("{sni} {names:?}");
        if self.duplicate(
            KIND_TLS_SERVER,
            conn.server,
            conn.server_port,
            key.as_bytes(),
            now_ns,
        ) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.certificates += 1;
        if let Ok(mut c) = self.certs.lock() {
            c.push(ServerCert {
                sni,
                ifindex: conn.ifindex,
                client: conn.client,
                client_port: conn.client_port,
                server: conn.server,
                server_port: conn.server_port,
                names,
                at_ns: now_ns,
            });
        }
    }
}
