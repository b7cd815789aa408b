//! How the parser reads the frames of each monitored interface: with an Ethernet header
//! (the default: a zeroed entry) or from the IP header on (L3 devices without a link-layer
//! header: tun, WireGuard, PPP, IPIP/SIT tunnels). The daemon fills `LINK_KINDS` by
//! ifindex when it attaches; the kernel looks the ingress/egress interface up once per
//! packet (an array look-up the verifier inlines, then one branch).

/// Frames start with an Ethernet header (VLAN tags and PPPoE sessions inside are parsed).
pub const LINK_ETHERNET: u8 = 0;
/// Packets start with the IP header (the version nibble says which).
pub const LINK_L3: u8 = 1;

/// Entries of `LINK_KINDS`: interfaces with an index at or above this are read as
/// Ethernet; the daemon refuses an L3 device with such an index.
pub const LINK_KIND_ENTRIES: u32 = 4096;
