//! What the daemon asks about a network interface in its own network namespace: its
//! index, whether it is up, and its link type (which decides whether the parser can read
//! its packets). By ioctl on a socket, not sysfs: under `ip netns exec` or a private /sys
//! sysfs may show another namespace's interfaces.

/// Link types (`ARPHRD_*`, include/uapi/linux/if_arp.h).
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;

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

/// Whether the kernel parser reads this link type, and how it is called in messages.
pub fn link_type_name(link_type: u16) -> &'static str {
    match link_type {
        ARPHRD_ETHER => "ethernet",
        ARPHRD_LOOPBACK => "loopback",
        512 => "ppp",
        768 => "ipip tunnel",
        769 => "ip6 tunnel",
        776 => "sit tunnel",
        778 => "gre tunnel",
        823 => "ip6gre tunnel",
        0xfffe => "none (tun, wireguard)",
        _ => "other",
    }
}

/// True when the kernel parser reads frames of this link type (Ethernet framing).
pub fn parser_reads(link_type: u16) -> bool {
    matches!(link_type, ARPHRD_ETHER | ARPHRD_LOOPBACK)
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
        assert!(!parser_reads(0xfffe));
    }
}
