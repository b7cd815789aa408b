//! Per-flow evidence for the failure detectors: ICMP errors arriving on an interface
//! (XDP) and answering a flow, found through the IP and transport header the error
//! quotes (with the next-hop MTU a fragmentation-needed / Packet Too Big announces), and
//! packets longer than the configured path MTU.
//!
//! Only ICMP error packets reach [`icmp_error`], and [`oversize`] is one compare against a
//! setting read once per packet of a tracked flow, so media pays almost nothing.

use core::intrinsics::{AtomicOrdering, atomic_xadd};
use monitor_common::flow::{FAMILY_V4, FAMILY_V6};

use crate::{
    account::FlowRef,
    maps::{SCRATCH_KEY, SETTINGS},
    packet::Packet,
    parse::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Parsed, set_v4_mapped},
};

const ICMP_DEST_UNREACH: u16 = 3;
const ICMP_FRAG_NEEDED: u16 = 4;
const ICMPV6_DEST_UNREACH: u16 = 1;
const ICMPV6_PACKET_TOO_BIG: u16 = 2;
/// ICMP/ICMPv6 header before the quoted packet.
const ICMP_HDR: usize = 8;
/// Largest transport header offset followed (a mask: one less than a power of two).
const MAX_HEADER_OFFSET: usize = 0xfff;

/// Counts `p` as oversize on its flow when its IP datagram is longer than the path MTU.
/// A GSO super-packet (`segments > 1`) is cut into MTU-sized packets later: never oversize.
#[inline(always)]
pub fn oversize(p: &Parsed, flow: &FlowRef, segments: u32) {
    if segments > 1 {
        return;
    }
    let mtu = match SETTINGS.get(0) {
        Some(s) => s.path_mtu,
        None => return,
    };
    if mtu != 0 && p.ip_len > mtu {
        // SAFETY: the pointer is the flow's map value; the add is atomic.
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                &raw mut (*flow.stats).oversize,
                1,
            );
        }
    }
}

/// True for the ICMP/ICMPv6 messages [`icmp_error`] handles (type in `src_port`).
#[inline(always)]
pub fn is_icmp_error(p: &Parsed) -> bool {
    !p.is_fragment()
        && ((p.protocol == IPPROTO_ICMP && p.src_port == ICMP_DEST_UNREACH)
            || (p.protocol == IPPROTO_ICMPV6
                && (p.src_port == ICMPV6_DEST_UNREACH || p.src_port == ICMPV6_PACKET_TOO_BIG)))
}

/// Counts an ICMP error on the flow it answers. An error seen on `ifindex` in
/// `direction` answers a packet that went the other way on the same interface: the
/// gateway's own errors leave on egress for a flow that arrived on ingress, and remote
/// errors arrive on ingress for a flow that left on egress. The quoted header is the
/// offending packet as it was on that interface (after NAT on the WAN side, before it on
/// the LAN side), so it is that flow's key as it stands.
///
/// Called on ingress only: errors the gateway itself sends (e.g. its own
/// fragmentation-needed towards the LAN) are counted by the detectors from the
/// gateway's IP counters, not per flow.
#[inline(always)]
pub fn icmp_error(pkt: &Packet, p: &Parsed, ifindex: u32, direction: u8) -> Option<()> {
    let family = p.family;
    // The offset comes from the hand-over slot (map memory): bound it so the verifier
    // can prove the packet reads below. Headers beyond 4 KiB are not followed.
    let icmp = p.l4_offset;
    if icmp == 0 || icmp > MAX_HEADER_OFFSET {
        return None;
    }
    // SAFETY: a read of a local. Opaque, so LLVM keeps the mask the verifier needs.
    let icmp = unsafe { core::ptr::read_volatile(&icmp) } & MAX_HEADER_OFFSET;
    let inner = icmp + ICMP_HDR;
    // The key is built in a per-CPU scratch slot: on the stack it would push the
    // callers past the combined 512-byte limit.
    let key = SCRATCH_KEY.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot; nothing else runs on it until we return.
    let key = unsafe { &mut *key };
    key.ifindex = ifindex;
    key.family = family;
    key.direction = direction ^ 1;
    key._pad = 0;
    // Reads of 2 to 8 bytes only: they stay in registers (the programs' stack is nearly
    // full), and LLVM turns a one-byte bounds check into `ptr >= end`, which the verifier
    // does not accept as proof of one readable byte.
    let l4 = if family == FAMILY_V4 {
        let vihl: [u8; 2] = pkt.read(inner)?;
        if vihl[0] >> 4 != 4 {
            return None;
        }
        let ihl = ((vihl[0] & 0x0f) as usize) * 4;
        if ihl < 20 {
            return None;
        }
        let ttl_proto: [u8; 2] = pkt.read(inner + 8)?;
        key.protocol = ttl_proto[1];
        let (src, dst) = (pkt.read(inner + 12)?, pkt.read(inner + 16)?);
        // SAFETY: a FlowKey is 4-aligned with its addresses at offsets 0 and 16.
        unsafe {
            set_v4_mapped(&raw mut key.src_addr, src);
            set_v4_mapped(&raw mut key.dst_addr, dst);
        }
        // Bounded for the verifier: IHL is at most 60.
        inner + (ihl & 0x3c)
    } else if family == FAMILY_V6 {
        // Extension headers in the quoted packet are not followed: media has none.
        let next: [u8; 2] = pkt.read(inner + 6)?;
        key.protocol = next[0];
        copy16(pkt, inner + 8, &mut key.src_addr)?;
        copy16(pkt, inner + 24, &mut key.dst_addr)?;
        inner + 40
    } else {
        return None;
    };
    if key.protocol != IPPROTO_UDP && key.protocol != IPPROTO_TCP {
        return None;
    }
    let ports: [u8; 4] = pkt.read(l4)?;
    key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
    key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);

    let (stats, _) = crate::account::flow_ptr(&*key)?;
    let frag_needed = if p.protocol == IPPROTO_ICMP {
        p.dst_port == ICMP_FRAG_NEEDED
    } else {
        p.src_port == ICMPV6_PACKET_TOO_BIG
    };
    // SAFETY: a live map value; the adds are atomic.
    unsafe {
        if frag_needed {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                &raw mut (*stats).icmp_frag_needed,
                1,
            );
            // The MTU the error announces: ICMP's last two header bytes (RFC 1191),
            // ICMPv6's four (RFC 8201). The last error wins: a path's MTU can change.
            let word: [u8; 4] = pkt.read(icmp + 4)?;
            let mtu = if p.protocol == IPPROTO_ICMP {
                u16::from_be_bytes([word[2], word[3]]) as u32
            } else {
                u32::from_be_bytes(word)
            };
            core::ptr::write_volatile(&raw mut (*stats).next_hop_mtu, mtu);
        } else {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                &raw mut (*stats).icmp_unreachable,
                1,
            );
        }
    }
    Some(())
}

/// Copies a 16-byte address at `offset` into `dst` in two register-sized reads.
#[inline(always)]
fn copy16(pkt: &Packet, offset: usize, dst: &mut [u8; 16]) -> Option<()> {
    let hi: [u8; 8] = pkt.read(offset)?;
    let lo: [u8; 8] = pkt.read(offset + 8)?;
    dst[..8].copy_from_slice(&hi);
    dst[8..].copy_from_slice(&lo);
    Some(())
}
