//! UDP senders: a paced one-way stream and a two-way "call" on one socket.

use super::{MAX_DATAGRAMS, MAX_SEND_DURATION, ensure_documentation};
use crate::interrupt;
use anyhow::{Context as _, Result, bail};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long [`udp_call`] keeps listening for replies after its last send.
const REPLY_GRACE: Duration = Duration::from_secs(2);
/// Large enough for any datagram, jumbo or fragmented.
const MAX_DATAGRAM: usize = 65_536;

pub(super) fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}"))
}

/// Sends exactly `count` datagrams of `payload_len` zero bytes from `from` to `to`, one
/// every `interval`.
pub fn send_udp(
    from: SocketAddr,
    to: SocketAddr,
    count: u32,
    payload_len: usize,
    interval: Duration,
) -> Result<()> {
    send_udp_with(from, to, count, interval, |_| vec![0u8; payload_len])
}

/// Sends exactly `count` datagrams from `from` to `to`, the i-th (from 0) with the
/// payload `payload(i)`, paced on an absolute schedule (i x `interval` after the start)
/// so that slow iterations do not accumulate drift.
pub fn send_udp_with(
    from: SocketAddr,
    to: SocketAddr,
    count: u32,
    interval: Duration,
    payload: impl FnMut(u32) -> Vec<u8>,
) -> Result<()> {
    // Limits first: a refused destination never gets as far as a socket.
    let pacer = Pacer::new(to, count, interval)?;
    pacer.run(&bind(from)?, payload, |_| Ok(()))
}

/// Counts of one [`udp_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallStats {
    pub sent: u32,
    pub received: u32,
}

/// A two-way media exchange on one socket, like a phone's RTP port: sends exactly
/// `count` datagrams as [`send_udp_with`] does and, meanwhile and for up to 2 s after,
/// collects the replies (from `to` only, as a NAT would allow back). Stops listening
/// early once `count` replies arrived.
pub fn udp_call(
    from: SocketAddr,
    to: SocketAddr,
    count: u32,
    interval: Duration,
    payload: impl FnMut(u32) -> Vec<u8>,
) -> Result<CallStats> {
    let pacer = Pacer::new(to, count, interval)?;
    let socket = bind(from)?;
    socket.set_nonblocking(true)?;
    let mut replies = Replies {
        from: to,
        received: 0,
        buf: vec![0u8; MAX_DATAGRAM],
    };
    pacer.run(&socket, payload, |s| replies.drain(s))?;
    let deadline = Instant::now() + REPLY_GRACE;
    loop {
        replies.drain(&socket)?;
        if replies.received >= count || Instant::now() >= deadline {
            break;
        }
        interrupt::check()?;
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(CallStats {
        sent: count,
        received: replies.received,
    })
}

/// The receiving half of [`udp_call`].
struct Replies {
    from: SocketAddr,
    received: u32,
    buf: Vec<u8>,
}

impl Replies {
    /// Reads every datagram already queued on the (non-blocking) socket.
    fn drain(&mut self, socket: &UdpSocket) -> Result<()> {
        loop {
            match socket.recv_from(&mut self.buf) {
                Ok((_, peer)) if peer == self.from => self.received += 1,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                // An ICMP error for an earlier send (e.g. port unreachable): not a reply.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e).context("receiving replies"),
            }
        }
    }
}

/// The send loop shared by [`send_udp_with`] and [`udp_call`], with its limits checked
/// before the first packet.
struct Pacer {
    to: SocketAddr,
    count: u32,
    interval: Duration,
}

impl Pacer {
    fn new(to: SocketAddr, count: u32, interval: Duration) -> Result<Pacer> {
        ensure_documentation(to, "UDP destination")?;
        if count > MAX_DATAGRAMS {
            bail!("refusing to send {count} datagrams (at most {MAX_DATAGRAMS} per call)");
        }
        if interval.saturating_mul(count) > MAX_SEND_DURATION {
            bail!("refusing a send loop of {count} x {interval:?} (at most {MAX_SEND_DURATION:?})");
        }
        Ok(Pacer {
            to,
            count,
            interval,
        })
    }

    /// Sends, calling `between(socket)` after every datagram and while waiting.
    fn run(
        &self,
        socket: &UdpSocket,
        mut payload: impl FnMut(u32) -> Vec<u8>,
        mut between: impl FnMut(&UdpSocket) -> Result<()>,
    ) -> Result<()> {
        let start = Instant::now();
        for i in 0..self.count {
            interrupt::check()?;
            let due = start + self.interval * i;
            while Instant::now() < due {
                between(socket)?;
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(1)));
            }
            let data = payload(i);
            send_one(socket, &data, self.to).with_context(|| {
                format!("sending datagram {i} of {} to {}", self.count, self.to)
            })?;
            between(socket)?;
        }
        Ok(())
    }
}

/// One send_to, waiting out a full socket buffer on a non-blocking socket (bounded).
fn send_one(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> Result<()> {
    for _ in 0..1000 {
        match socket.send_to(data, to) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!("socket send buffer stayed full for 1 s")
}
