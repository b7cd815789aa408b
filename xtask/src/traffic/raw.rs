//! Frames sent straight onto a link through a packet socket (AF_PACKET): floods of new
//! flows and crafted packets no socket API makes. Every frame's IP destination must be
//! a documentation address (checked per frame); the caller bounds the count.

use super::is_documentation_addr;
use crate::Netns;
use anyhow::{Context as _, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// How often a frame is retried while the link's queue is full, 1 ms apart.
const MAX_RETRIES: u32 = 1000;

/// A packet socket sending frames out of one interface. Open it inside the interface's
/// namespace ([`Netns::run`]); it can then be used from any thread.
pub struct PacketSocket {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl PacketSocket {
    /// Opens a packet socket on `ifname` (in the calling thread's namespace) addressing
    /// `dst_mac`.
    pub fn open(ifname: &str, dst_mac: [u8; 6]) -> Result<PacketSocket> {
        // SAFETY: socket(2) with constant arguments; the fd is owned at once.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("opening a packet socket");
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = std::ffi::CString::new(ifname).context("interface name")?;
        // SAFETY: a C string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {ifname} in this namespace");
        }
        // SAFETY: all-zero is a valid sockaddr_ll; the fields are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&dst_mac);
        Ok(PacketSocket { fd, addr })
    }

    /// Sends one Ethernet frame (IPv4 or IPv6 to a documentation address); retries
    /// while the link's queue is full.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        let ether_type = check_destination(frame)?;
        let mut addr = self.addr;
        addr.sll_protocol = ether_type.to_be();
        let mut tries = 0;
        loop {
            // SAFETY: the buffer and address outlive the call.
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if sent == frame.len() as isize {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            tries += 1;
            if tries >= MAX_RETRIES || e.raw_os_error() != Some(libc::ENOBUFS) {
                return Err(e).context("sending a frame");
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The frame's ether type; refuses a frame whose IP destination is not a documentation
/// address.
fn check_destination(frame: &[u8]) -> Result<u16> {
    let ether_type = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let dst = match ether_type {
        Some(ETH_P_IP) => frame
            .get(30..34)
            .map(|b| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        Some(ETH_P_IPV6) => frame.get(38..54).map(|b| {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(a))
        }),
        _ => None,
    };
    match (dst, ether_type) {
        (Some(a), Some(t)) if is_documentation_addr(a) => Ok(t),
        (Some(a), _) => bail!("refusing to send a frame to {a}: not a documentation address"),
        _ => bail!("refusing to send a frame that is not IPv4 or IPv6"),
    }
}

/// The MAC address of `ifname` in `ns`.
pub fn mac(ns: &Netns, ifname: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-j", "link", "show", ifname])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("ip -j link")?;
    let text = v[0]["address"]
        .as_str()
        .with_context(|| format!("no address of {ifname}"))?;
    let mut m = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        bail!("unexpected MAC address {text} of {ifname}");
    }
    for (i, part) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(part, 16).with_context(|| format!("MAC address {text}"))?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{self, Ipv4, Ipv6, L4};

    #[test]
    fn only_documentation_destinations_pass() {
        let ok = frames::v4(
            &Ipv4::new(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(203, 0, 113, 9)),
            &L4::udp(1, 2, 3),
        );
        assert_eq!(check_destination(&ok).unwrap(), ETH_P_IP);
        let bad = frames::v4(
            &Ipv4::new(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(8, 8, 8, 8)),
            &L4::udp(1, 2, 3),
        );
        assert_eq!(
            check_destination(&bad).unwrap_err().to_string(),
            "refusing to send a frame to 8.8.8.8: not a documentation address"
        );
        let v6 = frames::v6(
            &Ipv6::new(
                "2001:db8:1::1".parse().unwrap(),
                "2001:db8:ff::10".parse().unwrap(),
            ),
            &L4::udp(1, 2, 3),
        );
        assert_eq!(check_destination(&v6).unwrap(), ETH_P_IPV6);
        assert!(check_destination(&[0u8; 10]).is_err());
    }
}
