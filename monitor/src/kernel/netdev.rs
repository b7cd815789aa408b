//! What the daemon asks about a network interface in its own network namespace: its
//! index, whether it is up, and its link type (which decides whether the parser can read
//! its packets). By ioctl on a socket, not sysfs: under `ip netns exec` or a private /sys
//! sysfs may show another namespace's interfaces.

/// Link types (`ARPHRD_*`, include/uapi/linux/if_arp.h).
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;
pub const ARPHRD_PPP: u16 = 512;
pub const ARPHRD_TUNNEL: u16 = 768;
pub const ARPHRD_TUNNEL6: u16 = 769;
pub const ARPHRD_SIT: u16 = 776;
/// tun in L3 mode, WireGuard.
pub const ARPHRD_NONE: u16 = 0xfffe;

use monitor_common::link::{LINK_ETHERNET, LINK_L3};

/// The interface's index, or `None` when there is no such interface.
pub fn ifindex_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// True when the interface is administratively up and has a carrier (`IFF_UP` and
/// `IFF_RUNNING`); `None` when it does not exist.
pub fn is_up(name: &str) -> Option<bool> {
    let req = ioctl(name, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled the ifru_flags member.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as libc::c_int;
    Some(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// The interface's link type (`ARPHRD_*`); `None` when it does not exist.
pub fn link_type(name: &str) -> Option<u16> {
    let req = ioctl(name, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member.
    Some(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// How a link type is called in messages.
pub fn link_type_name(link_type: u16) -> &'static str {
    match link_type {
        ARPHRD_ETHER => "ethernet",
        ARPHRD_LOOPBACK => "loopback",
        ARPHRD_PPP => "ppp",
        ARPHRD_TUNNEL => "ipip tunnel",
        ARPHRD_TUNNEL6 => "ip6 tunnel",
        ARPHRD_SIT => "sit tunnel",
        778 => "gre tunnel",
        823 => "ip6gre tunnel",
        ARPHRD_NONE => "none (tun, wireguard)",
        _ => "other",
    }
}

/// How the kernel parser reads frames of this link type (`link::LINK_*`), or `None`
/// when it cannot. L3 devices are those whose packets start at the IP header on XDP
/// and TC alike: no link-layer header and no `header_ops` (GRE may have one: refused).
pub fn link_kind(link_type: u16) -> Option<u8> {
    match link_type {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => Some(LINK_ETHERNET),
        ARPHRD_NONE | ARPHRD_PPP | ARPHRD_TUNNEL | ARPHRD_TUNNEL6 | ARPHRD_SIT => Some(LINK_L3),
        _ => None,
    }
}

/// True when the kernel parser reads frames of this link type.
pub fn parser_reads(link_type: u16) -> bool {
    link_kind(link_type).is_some()
}

fn ioctl(name: &str, request: libc::c_ulong) -> Option<libc::ifreq> {
    // SAFETY: ifreq is plain data.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a socket we own; req is a valid ifreq with a NUL-terminated name.
    let rc = unsafe { libc::ioctl(fd, request as _, &mut req) };
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    (rc >= 0).then_some(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_and_read_by_the_parser() {
        assert!(ifindex_of("lo").is_some());
        assert_eq!(is_up("lo"), Some(true));
        assert_eq!(link_type("lo"), Some(ARPHRD_LOOPBACK));
        assert!(parser_reads(ARPHRD_LOOPBACK));
        assert_eq!(ifindex_of("no-such-if0"), None);
        assert_eq!(is_up("no-such-if0"), None);
        assert_eq!(link_type("no-such-if0"), None);
        assert_eq!(link_kind(ARPHRD_NONE), Some(LINK_L3));
        assert_eq!(link_kind(ARPHRD_ETHER), Some(LINK_ETHERNET));
        // GRE may carry a header of its own: not read.
        assert!(!parser_reads(778));
    }
}
