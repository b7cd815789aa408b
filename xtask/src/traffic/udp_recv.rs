//! UDP receivers: a counting sink and a responder that answers each datagram's source
//! (and so crosses the NAT back).

use super::udp_send::bind;
use super::{MAX_LIFETIME, ensure_documentation};
use crate::interrupt;
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often background threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Large enough for any datagram, jumbo or fragmented.
const MAX_DATAGRAM: usize = 65_536;

/// What a background receiver has seen so far.
#[derive(Debug, Default)]
struct Seen {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    replies: AtomicU64,
    /// Distinct source addresses, in order of first appearance (a handful at most).
    sources: Mutex<Vec<SocketAddr>>,
    stop: AtomicBool,
}

impl Seen {
    fn record(&self, from: SocketAddr, len: usize) {
        self.datagrams.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(len as u64, Ordering::SeqCst);
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if !sources.contains(&from) {
            sources.push(from);
        }
    }

    fn sources(&self) -> Vec<SocketAddr> {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Waits until `count()` reaches `target` or `timeout` passes; returns the last count.
fn wait_until(count: impl Fn() -> u64, target: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count();
        if n >= target || Instant::now() >= deadline || interrupt::interrupted() {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A background thread counting the datagrams that reach one UDP address.
#[derive(Debug)]
pub struct UdpSink {
    local: SocketAddr,
    seen: Arc<Seen>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `addr` (in the calling thread's namespace) and counts what arrives until the
/// sink is dropped (or [`MAX_LIFETIME`] passes).
pub fn udp_sink(addr: SocketAddr) -> Result<UdpSink> {
    let socket = bind(addr)?;
    socket.set_read_timeout(Some(POLL))?;
    let local = socket.local_addr()?;
    let seen = Arc::new(Seen::default());
    let thread = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while !seen.stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LIFETIME {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    seen.record(from, len);
                }
            }
        })
    };
    Ok(UdpSink {
        local,
        seen,
        thread: Some(thread),
    })
}

impl UdpSink {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.seen.datagrams.load(Ordering::SeqCst)
    }

    /// UDP payload bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.seen.bytes.load(Ordering::SeqCst)
    }

    /// Distinct sources seen, in order of first appearance (behind NAT: the translated
    /// address and port).
    pub fn sources(&self) -> Vec<SocketAddr> {
        self.seen.sources()
    }

    /// Waits until at least `count` datagrams arrived or `timeout` passed; returns the
    /// number received, so `assert_eq!(sink.wait_for(n, t), n)` checks for exactly `n`
    /// once the senders are done.
    pub fn wait_for(&self, count: u64, timeout: Duration) -> u64 {
        wait_until(|| self.received(), count, timeout)
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.seen.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A background thread answering each datagram to its source address and port, up to
/// a number of replies or a lifetime, whichever comes first.
#[derive(Debug)]
pub struct UdpResponder {
    local: SocketAddr,
    seen: Arc<Seen>,
    thread: Option<JoinHandle<()>>,
}

/// Echoes each datagram back verbatim; see [`udp_responder`].
pub fn udp_echo(addr: SocketAddr, limit: u32, lifetime: Duration) -> Result<UdpResponder> {
    udp_responder(addr, limit, lifetime, |request| request.to_vec())
}

/// Binds `addr` and answers each datagram with `reply(request)`, sent to the request's
/// source, which behind the gateway is the NAT's translated address: the reply proves the
/// binding works both ways. Stops after `limit` replies, after `lifetime` (capped at
/// [`MAX_LIFETIME`]), or on drop. Sources outside the documentation ranges get no reply.
pub fn udp_responder(
    addr: SocketAddr,
    limit: u32,
    lifetime: Duration,
    mut reply: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static,
) -> Result<UdpResponder> {
    let socket = bind(addr)?;
    socket.set_read_timeout(Some(POLL))?;
    let local = socket.local_addr()?;
    let seen = Arc::new(Seen::default());
    let lifetime = lifetime.min(MAX_LIFETIME);
    let thread = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while !seen.stop.load(Ordering::SeqCst)
                && started.elapsed() < lifetime
                && seen.replies.load(Ordering::SeqCst) < u64::from(limit)
            {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                seen.record(from, len);
                if ensure_documentation(from, "reply to").is_ok()
                    && socket.send_to(&reply(&buf[..len]), from).is_ok()
                {
                    seen.replies.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    Ok(UdpResponder {
        local,
        seen,
        thread: Some(thread),
    })
}

impl UdpResponder {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.seen.datagrams.load(Ordering::SeqCst)
    }

    /// Replies sent so far.
    pub fn replied(&self) -> u64 {
        self.seen.replies.load(Ordering::SeqCst)
    }

    /// Distinct sources seen (behind NAT: the translated address and port).
    pub fn sources(&self) -> Vec<SocketAddr> {
        self.seen.sources()
    }

    /// Waits until at least `count` replies were sent or `timeout` passed; returns the
    /// number sent.
    pub fn wait_for_replies(&self, count: u64, timeout: Duration) -> u64 {
        wait_until(|| self.replied(), count, timeout)
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.seen.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
