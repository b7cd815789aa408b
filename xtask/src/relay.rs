//! A path delay without netem (this kernel has none): a namespace between the LAN host
//! and the gateway ([`Testbed::plug_lan_via`](crate::Testbed::plug_lan_via)) whose two
//! links are joined by a userspace relay that resends each Ethernet frame on the other
//! link a fixed time after it arrived (AF_PACKET raw sockets, both directions). Frames
//! pass unchanged (addresses, ARP, IPv6 neighbour discovery), so the hosts see one link
//! with a longer wire.
//!
//! Bounded: at most [`MAX_QUEUED`] frames wait (more are dropped and counted), frames up
//! to [`MAX_FRAME`] bytes, and the relay stops at its deadline or when dropped.

use std::{
    collections::VecDeque,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::Netns;

/// Frames waiting for their time, at most (both directions).
pub const MAX_QUEUED: usize = 4096;
/// Longest frame relayed (the links' MTU plus the Ethernet header).
pub const MAX_FRAME: usize = 1514;

/// What the relay did, readable while it runs.
#[derive(Debug, Default)]
pub struct RelayCounts {
    /// Frames resent from the first link to the second, and back.
    pub forward: AtomicU64,
    pub back: AtomicU64,
    /// Frames dropped because [`MAX_QUEUED`] waited.
    pub dropped: AtomicU64,
}

/// A running relay; stops (and its thread ends) on drop.
pub struct DelayRelay {
    stop: Arc<AtomicBool>,
    pub counts: Arc<RelayCounts>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl DelayRelay {
    /// Relays between `a` and `b` (interfaces of `ns`) with `delay` each way, until
    /// `deadline` at the latest.
    pub fn start(ns: &Netns, a: &str, b: &str, delay: Duration, deadline: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(RelayCounts::default());
        let (ns, a, b) = (ns.clone(), a.to_owned(), b.to_owned());
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::spawn(move || {
            ns.try_run(|| relay(&a, &b, delay, Instant::now() + deadline, &s, &c))?
        });
        DelayRelay {
            stop,
            counts,
            thread: Some(thread),
        }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET socket bound to `ifname`, non-blocking; with its ifindex.
fn packet_socket(ifname: &str) -> Result<(OwnedFd, i32)> {
    let name = std::ffi::CString::new(ifname)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    if ifindex == 0 {
        bail!("no interface {ifname}");
    }
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET)");
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = sockaddr(ifindex);
    // SAFETY: a valid sockaddr_ll of its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("bind {ifname}"));
    }
    Ok((fd, ifindex))
}

fn sockaddr(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    a.sll_ifindex = ifindex;
    a
}

/// Reads every frame waiting on `fd` that arrived from its link (not our own sends) and
/// queues it for `to` at `at`.
fn take(
    fd: &OwnedFd,
    to: usize,
    at: Instant,
    queue: &mut VecDeque<(Instant, usize, Vec<u8>)>,
    counts: &RelayCounts,
) {
    let mut buf = [0u8; MAX_FRAME];
    loop {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: `buf` and `from` are valid for their lengths.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut from).cast(),
                &mut len,
            )
        };
        if n <= 0 {
            return;
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        if queue.len() >= MAX_QUEUED {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        queue.push_back((at, to, buf[..n as usize].to_vec()));
    }
}

fn relay(
    a: &str,
    b: &str,
    delay: Duration,
    deadline: Instant,
    stop: &AtomicBool,
    counts: &RelayCounts,
) -> Result<()> {
    let links = [packet_socket(a)?, packet_socket(b)?];
    // Arrival order is due order: one delay for every frame.
    let mut queue: VecDeque<(Instant, usize, Vec<u8>)> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let now = Instant::now();
        take(&links[0].0, 1, now + delay, &mut queue, counts);
        take(&links[1].0, 0, now + delay, &mut queue, counts);
        while queue
            .front()
            .is_some_and(|(at, _, _)| *at <= Instant::now())
        {
            let (_, to, frame) = queue.pop_front().expect("a due frame");
            let (fd, ifindex) = &links[to];
            let addr = sockaddr(*ifindex);
            // SAFETY: `frame` and `addr` are valid for their lengths.
            let sent = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if sent == frame.len() as isize {
                let c = if to == 1 {
                    &counts.forward
                } else {
                    &counts.back
                };
                c.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}
