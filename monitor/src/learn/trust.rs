//! Who may teach and what may be learned (README "Learning peers", trust model).
//!
//! A sample is judged by the side it was seen on: *outbound* (from the site towards the
//! internet: LAN ingress, WAN egress) or *inbound* (WAN ingress, LAN egress). Queries and
//! ClientHellos must be outbound, answers and SYN-ACKs inbound. An address is never
//! learned when it is the gateway's own, on the LAN side, special (loopback, link-local,
//! multicast, unspecified, broadcast) or private without a `[learn] private_prefixes`
//! entry covering it.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use monitor_common::Direction;

use crate::config::{Config, Prefix, Role};

/// Where a sample was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// From the site towards the internet (LAN ingress, WAN egress).
    Outbound,
    /// From the internet towards the site (WAN ingress, LAN egress).
    Inbound,
}

/// What the learner knows about the gateway: its interfaces' roles, its own addresses
/// and the LAN side's prefixes. Found from the system ([`Site::discover`]) on start and
/// on every poll (addresses change: DHCP, PPP, SLAAC).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Site {
    pub roles: HashMap<u32, Role>,
    pub gateway: HashSet<IpAddr>,
    /// The LAN interfaces' prefixes and `[learn] lan_prefixes`.
    pub lan: Vec<Prefix>,
    /// `[learn] private_prefixes`.
    pub private_ok: Vec<Prefix>,
}

impl Site {
    /// The side of a sample seen on `ifindex` in `direction` (`None`: not a monitored
    /// interface, e.g. one that came back under another index since the last poll).
    pub fn side(&self, ifindex: u32, direction: u8) -> Option<Side> {
        let role = self.roles.get(&ifindex)?;
        let ingress = direction == Direction::Ingress as u8;
        Some(match (role, ingress) {
            (Role::Lan, true) | (Role::Wan, false) => Side::Outbound,
            (Role::Wan, true) | (Role::Lan, false) => Side::Inbound,
        })
    }

    /// Why `addr` may not be learned (a `refused` reason), or `None` when it may.
    pub fn refuse(&self, addr: IpAddr) -> Option<&'static str> {
        if special(addr) {
            return Some("special_address");
        }
        if self.gateway.contains(&addr) {
            return Some("gateway_address");
        }
        if self.lan.iter().any(|p| covers(p, addr)) {
            return Some("lan_address");
        }
        if private(addr) && !self.private_ok.iter().any(|p| covers(p, addr)) {
            return Some("private_address");
        }
        None
    }

    /// The site as the system shows it now: the configured interfaces' indexes and
    /// roles, every local address, and the prefixes of the LAN interfaces' addresses.
    pub fn discover(cfg: &Config) -> Site {
        let mut site = Site {
            lan: cfg.learn.lan_prefixes.clone(),
            private_ok: cfg.learn.private_prefixes.clone(),
            ..Default::default()
        };
        for iface in &cfg.interfaces {
            if let Some(index) = ifindex(&iface.name) {
                site.roles.insert(index, iface.role);
            }
        }
        let lan_names: HashSet<&str> = cfg
            .interfaces
            .iter()
            .filter(|i| i.role == Role::Lan)
            .map(|i| i.name.as_str())
            .collect();
        for (name, addr, len) in local_addresses() {
            site.gateway.insert(addr);
            if lan_names.contains(name.as_str()) && !special(addr) {
                let p = network(addr, len);
                if !site.lan.contains(&p) {
                    site.lan.push(p);
                }
            }
        }
        site
    }
}

/// Whether `p` covers `a`.
pub fn covers(p: &Prefix, a: IpAddr) -> bool {
    network(a, p.len) == *p
}

fn network(addr: IpAddr, len: u8) -> Prefix {
    let addr = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    };
    Prefix { addr, len }
}

/// Addresses that are never a peer on the internet: unspecified, "this network",
/// loopback, multicast, broadcast, link-local, and IPv4-mapped IPv6 (a v4 peer is
/// learned as v4).
pub fn special(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            v.is_unspecified()
                || v.octets()[0] == 0
                || v.is_loopback()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_link_local()
        }
        IpAddr::V6(v) => {
            v.is_unspecified()
                || v.is_loopback()
                || v.is_multicast()
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some()
        }
    }
}

/// Private ranges: RFC 1918, shared address space (100.64.0.0/10), unique local IPv6.
pub fn private(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => (v.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Every address of this host's interfaces: interface name, address, prefix length.
fn local_addresses() -> Vec<(String, IpAddr, u8)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, freed only after the loop.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: the family says which sockaddr type the pointers hold.
        let (addr, len) = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let addr = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    let len = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    (IpAddr::V4(addr), len)
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = Ipv6Addr::from(a.sin6_addr.s6_addr);
                    let len = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8
                    };
                    (IpAddr::V6(addr), len)
                }
                _ => continue,
            }
        };
        out.push((name, addr, len));
    }
    // SAFETY: the list getifaddrs allocated, not used after this.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            roles: HashMap::from([(2, Role::Lan), (3, Role::Wan)]),
            gateway: HashSet::from(["198.51.100.1".parse().unwrap()]),
            lan: vec!["192.0.2.0/24".parse().unwrap()],
            private_ok: vec!["10.20.0.0/16".parse().unwrap()],
        }
    }

    #[test]
    fn sides_follow_role_and_direction() {
        let s = site();
        let (ing, eg) = (Direction::Ingress as u8, Direction::Egress as u8);
        assert_eq!(s.side(2, ing), Some(Side::Outbound));
        assert_eq!(s.side(3, eg), Some(Side::Outbound));
        assert_eq!(s.side(3, ing), Some(Side::Inbound));
        assert_eq!(s.side(2, eg), Some(Side::Inbound));
        assert_eq!(s.side(9, ing), None);
    }

    #[test]
    fn addresses_that_are_never_learned_name_their_reason() {
        let s = site();
        let r = |a: &str| s.refuse(a.parse().unwrap());
        assert_eq!(r("198.51.100.1"), Some("gateway_address"));
        assert_eq!(r("192.0.2.77"), Some("lan_address"));
        assert_eq!(r("127.0.0.1"), Some("special_address"));
        assert_eq!(r("169.254.1.1"), Some("special_address"));
        assert_eq!(r("224.0.0.251"), Some("special_address"));
        assert_eq!(r("0.0.0.0"), Some("special_address"));
        assert_eq!(r("255.255.255.255"), Some("special_address"));
        assert_eq!(r("fe80::1"), Some("special_address"));
        assert_eq!(r("ff02::1"), Some("special_address"));
        assert_eq!(r("::ffff:203.0.113.1"), Some("special_address"));
        assert_eq!(r("10.1.2.3"), Some("private_address"));
        assert_eq!(r("172.16.0.1"), Some("private_address"));
        assert_eq!(r("192.168.1.1"), Some("private_address"));
        assert_eq!(r("100.64.0.1"), Some("private_address"));
        assert_eq!(r("fd00::1"), Some("private_address"));
        // Configured private prefixes may be learned.
        assert_eq!(r("10.20.3.4"), None);
        assert_eq!(r("203.0.113.9"), None);
        assert_eq!(r("198.51.100.20"), None);
        assert_eq!(r("2001:db8:ff::10"), None);
    }

    #[test]
    fn discover_finds_loopback_as_the_gateway_own() {
        let cfg = Config::default();
        let s = Site::discover(&cfg);
        assert!(s.gateway.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(covers(
            &"10.0.0.0/8".parse().unwrap(),
            "10.9.9.9".parse().unwrap()
        ));
        assert!(!covers(
            &"10.0.0.0/8".parse().unwrap(),
            "11.0.0.1".parse().unwrap()
        ));
        assert!(covers(
            &"0.0.0.0/0".parse().unwrap(),
            "11.0.0.1".parse().unwrap()
        ));
    }
}
