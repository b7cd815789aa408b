//! What the kernel knows about each monitored interface, one byte per ifindex in
//! `LINK_KINDS` (filled by the daemon when it attaches; the kernel reads it once per
//! packet, an array look-up the verifier inlines):
//!
//! - bit 0, the link kind: how the parser reads the frames, with an Ethernet header (the
//!   default: a zeroed entry) or from the IP header on (L3 devices without a link-layer
//!   header: tun, WireGuard, PPP, IPIP/SIT tunnels);
//! - bits 1–2, the interface's role (`interfaces.role`), which tells which address of a
//!   packet is the remote one ([`remote`]): only that one is looked up in the Webex
//!   prefix tries. An entry without a role (an interface the daemon has not attached,
//!   or a map filled by an older daemon) looks up both addresses, as before roles.

/// Frames start with an Ethernet header (VLAN tags and PPPoE sessions inside are parsed).
pub const LINK_ETHERNET: u8 = 0;
/// Packets start with the IP header (the version nibble says which).
pub const LINK_L3: u8 = 1;
/// The link-kind bit of an entry.
pub const LINK_KIND_MASK: u8 = 1;

/// Role bits of an entry: none recorded (both addresses are looked up).
pub const ROLE_UNKNOWN: u8 = 0;
/// Towards the internet: on ingress the source is remote, on egress the destination.
pub const ROLE_WAN: u8 = 1 << 1;
/// Towards the site's hosts: on ingress the destination is remote, on egress the source.
pub const ROLE_LAN: u8 = 2 << 1;
/// The role bits of an entry.
pub const ROLE_MASK: u8 = 3 << 1;

/// Entries of `LINK_KINDS`: interfaces with an index at or above this are read as
/// Ethernet and without a role; the daemon refuses an L3 device with such an index.
pub const LINK_KIND_ENTRIES: u32 = 4096;

/// Which address of a packet is the remote one (the only one that can be a Webex peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    /// The source address (WAN ingress, LAN egress).
    Src,
    /// The destination address (WAN egress, LAN ingress).
    Dst,
    /// Unknown role: both are looked up, and the destination wins when both match.
    Either,
}

/// True when `entry` says the frames start with the IP header.
#[inline(always)]
pub const fn is_l3(entry: u8) -> bool {
    entry & LINK_KIND_MASK == LINK_L3
}

/// The remote address of a packet seen in `direction` (`Direction` as u8: 0 ingress,
/// 1 egress) on an interface whose `LINK_KINDS` entry is `entry`.
#[inline(always)]
pub const fn remote(entry: u8, direction: u8) -> Remote {
    let ingress = direction == crate::Direction::Ingress as u8;
    match entry & ROLE_MASK {
        ROLE_WAN if ingress => Remote::Src,
        ROLE_WAN => Remote::Dst,
        ROLE_LAN if ingress => Remote::Dst,
        ROLE_LAN => Remote::Src,
        _ => Remote::Either,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction::{Egress, Ingress};

    #[test]
    fn the_role_names_the_remote_address() {
        for kind in [LINK_ETHERNET, LINK_L3] {
            assert_eq!(remote(kind | ROLE_WAN, Ingress as u8), Remote::Src);
            assert_eq!(remote(kind | ROLE_WAN, Egress as u8), Remote::Dst);
            assert_eq!(remote(kind | ROLE_LAN, Ingress as u8), Remote::Dst);
            assert_eq!(remote(kind | ROLE_LAN, Egress as u8), Remote::Src);
            assert_eq!(remote(kind | ROLE_UNKNOWN, Ingress as u8), Remote::Either);
            assert_eq!(remote(kind | ROLE_MASK, Egress as u8), Remote::Either);
        }
    }

    #[test]
    fn the_kind_bit_is_independent_of_the_role() {
        assert!(is_l3(LINK_L3 | ROLE_WAN));
        assert!(is_l3(LINK_L3 | ROLE_LAN));
        assert!(!is_l3(LINK_ETHERNET | ROLE_LAN));
        assert!(!is_l3(ROLE_WAN));
        assert_eq!(ROLE_MASK & LINK_KIND_MASK, 0);
    }
}
