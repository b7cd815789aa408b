//! TCP: an echo server (the WAN side of a signalling connection) and a client that sends
//! a number of bytes and checks they all come back.

use super::{MAX_LIFETIME, ensure_documentation};
use crate::interrupt;
use anyhow::{Context as _, Result, bail};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections one echo server serves before it stops accepting.
const MAX_CONNECTIONS: u64 = 64;
/// Bytes echoed per connection before the server closes it.
const MAX_BYTES_PER_CONNECTION: u64 = 16 << 20;
/// A connection silent for this long is closed by the server.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Client-side limits of [`tcp_exchange`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicU64,
    bytes: AtomicU64,
    peers: Mutex<Vec<SocketAddr>>,
}

/// A background TCP echo server; stops (closing every connection) on drop.
#[derive(Debug)]
pub struct TcpEcho {
    local: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Listens on `addr` (in the calling thread's namespace) and echoes whatever each
/// connection sends until it half-closes, bounded by [`MAX_CONNECTIONS`] connections,
/// 16 MiB and a 10 s idle timeout per connection, and [`MAX_LIFETIME`].
pub fn tcp_echo_server(addr: SocketAddr) -> Result<TcpEcho> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on TCP {addr}"))?;
    // Non-blocking accept, so the thread notices the stop flag.
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(&listener, &shared))
    };
    Ok(TcpEcho {
        local,
        shared,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let started = Instant::now();
    let mut workers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst)
        && started.elapsed() < MAX_LIFETIME
        && shared.connections.load(Ordering::SeqCst) < MAX_CONNECTIONS
    {
        match listener.accept() {
            Ok((stream, peer)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                shared
                    .peers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(peer);
                let shared = Arc::clone(shared);
                workers.push(std::thread::spawn(move || echo(stream, &shared)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for worker in workers {
        let _ = worker.join();
    }
}

/// Echoes one connection until EOF, an error, the byte cap, idleness or stop.
fn echo(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    let mut last_activity = Instant::now();
    while !shared.stop.load(Ordering::SeqCst)
        && total < MAX_BYTES_PER_CONNECTION
        && last_activity.elapsed() < IDLE_TIMEOUT
    {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    break;
                }
                total += n as u64;
                shared.bytes.fetch_add(n as u64, Ordering::SeqCst);
                last_activity = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    // Closing our side tells the client the echo is complete.
    let _ = stream.shutdown(Shutdown::Both);
}

impl TcpEcho {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Bytes echoed so far, over all connections.
    pub fn bytes_echoed(&self) -> u64 {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    /// The clients' addresses as the server saw them (behind NAT: the translated ones).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects to `to` (from source port `from_port` if given, else an ephemeral one), sends
/// `bytes` bytes, half-closes, and checks that exactly the same bytes come back.
pub fn tcp_exchange(from_port: Option<u16>, to: SocketAddr, bytes: usize) -> Result<()> {
    ensure_documentation(to, "TCP destination")?;
    interrupt::check()?;
    let stream = connect(from_port, to)?;
    let sent: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    // Write from a second thread while reading here: an echo of more than the socket
    // buffers hold would otherwise deadlock both ends.
    let mut writer = stream.try_clone()?;
    let data = sent.clone();
    let write = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&data)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::with_capacity(bytes);
    let read = (&stream).read_to_end(&mut echoed);
    let wrote = write
        .join()
        .map_err(|_| anyhow::anyhow!("TCP writer thread panicked"))?;
    wrote.with_context(|| format!("sending {bytes} bytes to {to}"))?;
    read.with_context(|| format!("reading the echo from {to}"))?;
    if echoed != sent {
        bail!(
            "TCP echo from {to} differs: sent {} bytes, got {} back{}",
            sent.len(),
            echoed.len(),
            if echoed.len() == sent.len() {
                " with different content"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn connect(from_port: Option<u16>, to: SocketAddr) -> Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(port) = from_port {
        // A test may reuse its port right after an earlier connection (TIME_WAIT).
        socket.set_reuse_address(true)?;
        let local: SocketAddr = match to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, port).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, port).into(),
        };
        socket
            .bind(&SockAddr::from(local))
            .with_context(|| format!("cannot bind TCP source port {port}"))?;
    }
    socket
        .connect_timeout(&SockAddr::from(to), CONNECT_TIMEOUT)
        .with_context(|| format!("cannot connect to TCP {to} within {CONNECT_TIMEOUT:?}"))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}
