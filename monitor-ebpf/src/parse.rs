//! The packet parser: Ethernet, up to two VLAN tags, a PPPoE session header, IPv4
//! (options, fragments), IPv6 with a bounded extension-header chain, then
//! UDP/TCP/ICMP/ICMPv6 ports. Packets of L3 devices (tun, WireGuard, PPP: no link-layer
//! header) are read from the IP header on.
//!
//! Every loop is bounded; every read goes through [`Packet::read`]. A packet either
//! parses, is not IP, or is malformed for exactly one [`MalformedReason`].

use monitor_common::{
    MalformedReason,
    flow::{FAMILY_V4, FAMILY_V6},
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
    vlan::VlanHdr,
};

use core::ptr::write_volatile;

use crate::packet::Packet;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// PPPoE session stage (RFC 2516): a 6-byte header, then the PPP protocol field.
const ETH_P_PPP_SES: u16 = 0x8864;
const PPPOE_HEADER_LEN: usize = 6;
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// VLAN tags the parser follows (802.1ad outer + 802.1Q inner).
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers the parser follows before giving up.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;

pub use monitor_common::parsed::{FRAG_FIRST, FRAG_LATER, FRAG_NONE, Parsed};

pub enum Outcome {
    /// An IP packet, described in the caller's `Parsed`.
    Ip,
    NotIp,
}

/// Parses the headers in `pkt`. `wire_len` is the whole packet's length from the frame
/// start: on TC it can exceed the linear bytes (a GSO super-packet or any skb with paged
/// data), and the IP length fields are checked against it, not against the linear part.
/// The result of an IP packet goes into `out`.
/// `l3`: the interface has no link-layer header (the IP header is at offset 0).
#[inline(always)]
pub fn parse(
    pkt: &Packet,
    wire_len: usize,
    l3: bool,
    out: &mut Parsed,
) -> Result<Outcome, MalformedReason> {
    let (ether_type, offset) = if l3 {
        l3_framing(pkt)?
    } else {
        ethernet_framing(pkt)?
    };
    // Seven framings (L3; Ethernet with 0, 1 or 2 VLAN tags; each with PPPoE) put the IP
    // header at seven constant offsets, and the verifier would walk the IP parsers once
    // for each. A round trip through the job slot (map memory, which the verifier does
    // not track) makes the offset one bounded unknown, so they are verified once.
    // SAFETY: plain volatile store and load of a field of a valid `&mut`.
    let offset = unsafe {
        write_volatile(&mut out.l3_offset, offset);
        core::ptr::read_volatile(&out.l3_offset)
    };
    if offset > MAX_LINK_HEADER {
        return Ok(Outcome::NotIp);
    }
    match ether_type {
        ETH_P_IP => parse_ipv4(pkt, offset, wire_len, out).map(|()| Outcome::Ip),
        ETH_P_IPV6 => parse_ipv6(pkt, offset, wire_len, out).map(|()| Outcome::Ip),
        _ => Ok(Outcome::NotIp),
    }
}

/// The longest link-layer framing: Ethernet, two VLAN tags, PPPoE and its PPP protocol.
const MAX_LINK_HEADER: usize = 14 + 2 * 4 + PPPOE_HEADER_LEN + 2;

/// An L3 device's packet: the IP version nibble says which header is at offset 0.
#[inline(always)]
fn l3_framing(pkt: &Packet) -> Result<(u16, usize), MalformedReason> {
    // Two bytes, not one: LLVM turns a one-byte check at offset 0 into `start >= end`,
    // from which the verifier learns no packet range.
    let first: [u8; 2] = pkt.read(0).ok_or(MalformedReason::Ipv4Truncated)?;
    Ok(match first[0] >> 4 {
        4 => (ETH_P_IP, 0),
        6 => (ETH_P_IPV6, 0),
        _ => (0, 0),
    })
}

/// Ethernet, up to two VLAN tags and a PPPoE session header: the ethertype of what
/// follows (IPv4 and IPv6 for PPP's IP protocols, 0 for PPP control) and its offset.
#[inline(always)]
fn ethernet_framing(pkt: &Packet) -> Result<(u16, usize), MalformedReason> {
    let eth: EthHdr = pkt.read(0).ok_or(MalformedReason::EthTruncated)?;
    let mut ether_type = u16::from_be(eth.ether_type);
    let mut offset = EthHdr::LEN;

    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let vlan: VlanHdr = pkt.read(offset).ok_or(MalformedReason::VlanTruncated)?;
        ether_type = u16::from_be(vlan.ether_type);
        offset += VlanHdr::LEN;
    }
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        return Err(MalformedReason::VlanTooDeep);
    }

    if ether_type == ETH_P_PPP_SES {
        // PPPoE session header, then the 2-byte PPP protocol: IPv4 and IPv6 are parsed,
        // PPP control (LCP, IPCP, ...) is not IP. A cut PPPoE header is a cut link-layer
        // header.
        let ppp: [u8; PPPOE_HEADER_LEN + 2] =
            pkt.read(offset).ok_or(MalformedReason::EthTruncated)?;
        offset += PPPOE_HEADER_LEN + 2;
        ether_type = match u16::from_be_bytes([ppp[6], ppp[7]]) {
            PPP_IP => ETH_P_IP,
            PPP_IPV6 => ETH_P_IPV6,
            _ => 0,
        };
    }
    Ok((ether_type, offset))
}

#[inline(always)]
fn parse_ipv4(
    pkt: &Packet,
    l3: usize,
    wire_len: usize,
    parsed: &mut Parsed,
) -> Result<(), MalformedReason> {
    let ip: Ipv4Hdr = pkt.read(l3).ok_or(MalformedReason::Ipv4Truncated)?;
    if ip.vihl >> 4 != 4 {
        return Err(MalformedReason::BadIpVersion);
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return Err(MalformedReason::Ipv4BadIhl);
    }
    // Options must be inside the frame too.
    if l3 + ihl > pkt.len() {
        return Err(MalformedReason::Ipv4Truncated);
    }
    let total = u16::from_be_bytes(ip.tot_len) as usize;
    // Frames may carry Ethernet padding after the datagram, never less than it.
    if total < ihl || l3 + total > wire_len {
        return Err(MalformedReason::Ipv4BadTotalLength);
    }
    let frags = u16::from_be_bytes(ip.frags);
    let more_fragments = frags & 0x2000 != 0;
    let frag_offset = frags & 0x1fff;

    reset(parsed, FAMILY_V4, ip.proto, l3, l3 + total);
    // SAFETY: `Parsed` is 8-aligned with its addresses at offsets 0 and 16.
    unsafe {
        set_v4_mapped(&raw mut parsed.src_addr, ip.src_addr);
        set_v4_mapped(&raw mut parsed.dst_addr, ip.dst_addr);
    }
    parsed.ip_len = total as u32;
    parsed.header_len = ihl as u32;
    parsed.dscp = ip.tos >> 2;
    parsed.fragment = if frag_offset != 0 {
        FRAG_LATER
    } else if more_fragments {
        FRAG_FIRST
    } else {
        FRAG_NONE
    };
    parsed.frag_id = u16::from_be_bytes(ip.id) as u32;
    // Later fragments carry no transport header.
    if frag_offset == 0 {
        parse_l4(pkt, l3 + ihl, l3 + total, parsed)?;
    }
    Ok(())
}

/// Sets the fields every IP packet has and clears the rest (the slot is reused). Each
/// store on its own (volatile): merged, the zero stores would become a `memset` call.
#[inline(always)]
fn reset(p: &mut Parsed, family: u8, protocol: u8, l3: usize, ip_end: usize) {
    // SAFETY: plain stores to fields of a valid `&mut`.
    unsafe {
        write_volatile(&mut p.family, family);
        write_volatile(&mut p.protocol, protocol);
        write_volatile(&mut p.src_port, 0);
        write_volatile(&mut p.dst_port, 0);
        write_volatile(&mut p.fragment, FRAG_NONE);
        write_volatile(&mut p.frag_id, 0);
        write_volatile(&mut p.l3_offset, l3);
        write_volatile(&mut p.l4_offset, 0);
        write_volatile(&mut p.payload_offset, 0);
        write_volatile(&mut p.ip_end, ip_end);
        write_volatile(&mut p.tcp_flags, 0);
    }
}

/// Stores `a` IPv4-mapped (`::ffff:a.b.c.d`) as four 4-byte stores (not a `memset` call
/// and byte stores).
///
/// # Safety
/// `dst` must be valid for writes and 4-aligned (see [`Parsed::copy_addrs`]).
#[inline(always)]
pub unsafe fn set_v4_mapped(dst: *mut [u8; 16], a: [u8; 4]) {
    let words = dst.cast::<u32>();
    // SAFETY: the caller vouches for `dst`; all four words are within it.
    unsafe {
        write_volatile(words, 0);
        write_volatile(words.add(1), 0);
        write_volatile(words.add(2), u32::from_ne_bytes([0, 0, 0xff, 0xff]));
        write_volatile(words.add(3), u32::from_ne_bytes(a));
    }
}

#[inline(always)]
fn parse_ipv6(
    pkt: &Packet,
    l3: usize,
    wire_len: usize,
    parsed: &mut Parsed,
) -> Result<(), MalformedReason> {
    let ip: Ipv6Hdr = pkt.read(l3).ok_or(MalformedReason::Ipv6Truncated)?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(MalformedReason::BadIpVersion);
    }
    let payload = u16::from_be_bytes(ip.payload_len) as usize;
    let end = l3 + Ipv6Hdr::LEN + payload;
    if end > wire_len {
        return Err(MalformedReason::Ipv6BadPayloadLength);
    }
    reset(parsed, FAMILY_V6, ip.next_hdr, l3, end);
    parsed.src_addr = ip.src_addr;
    parsed.dst_addr = ip.dst_addr;
    parsed.ip_len = (Ipv6Hdr::LEN + payload) as u32;
    parsed.dscp = ((ip.vcf[0] & 0x0f) << 2) | (ip.vcf[1] >> 6);

    let mut next = ip.next_hdr;
    let mut offset = l3 + Ipv6Hdr::LEN;
    let mut later_fragment = false;
    let mut ext = 0;
    while ext < MAX_IPV6_EXT_HEADERS + 1 {
        if !is_ipv6_extension(next) {
            break;
        }
        if ext == MAX_IPV6_EXT_HEADERS {
            return Err(MalformedReason::Ipv6ExtTooDeep);
        }
        // Every extension header starts with (next header, length).
        let hdr: [u8; 2] = pkt.read(offset).ok_or(MalformedReason::Ipv6ExtTruncated)?;
        let len = match next {
            IPPROTO_FRAGMENT => {
                let frag: [u8; 8] = pkt.read(offset).ok_or(MalformedReason::Ipv6ExtTruncated)?;
                let frag_offset = u16::from_be_bytes([frag[2], frag[3]]) >> 3;
                later_fragment = frag_offset != 0;
                parsed.fragment = if later_fragment {
                    FRAG_LATER
                } else {
                    FRAG_FIRST
                };
                parsed.frag_id = u32::from_be_bytes([frag[4], frag[5], frag[6], frag[7]]);
                8
            }
            IPPROTO_AH => (hdr[1] as usize + 2) * 4,
            _ => (hdr[1] as usize + 1) * 8,
        };
        if offset + len > end {
            return Err(MalformedReason::Ipv6ExtTruncated);
        }
        next = hdr[0];
        offset += len;
        ext += 1;
        if later_fragment {
            break;
        }
    }
    parsed.protocol = next;
    parsed.header_len = (offset - l3) as u32;
    if !later_fragment {
        parse_l4(pkt, offset, end, parsed)?;
    }
    Ok(())
}

#[inline(always)]
fn is_ipv6_extension(next: u8) -> bool {
    matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_DSTOPTS | IPPROTO_AH
    )
}

/// Reads the ports (or ICMP type/code) at `l4`; the transport header must end before
/// `end`, the end of the IP datagram.
#[inline(always)]
fn parse_l4(pkt: &Packet, l4: usize, end: usize, p: &mut Parsed) -> Result<(), MalformedReason> {
    match p.protocol {
        IPPROTO_UDP => {
            if l4 + UdpHdr::LEN > end {
                return Err(MalformedReason::L4Truncated);
            }
            let udp: UdpHdr = pkt.read(l4).ok_or(MalformedReason::L4Truncated)?;
            p.src_port = u16::from_be_bytes(udp.src);
            p.dst_port = u16::from_be_bytes(udp.dst);
            p.header_len += UdpHdr::LEN as u32;
            p.l4_offset = l4;
            p.payload_offset = l4 + UdpHdr::LEN;
        }
        IPPROTO_TCP => {
            if l4 + TcpHdr::LEN > end {
                return Err(MalformedReason::L4Truncated);
            }
            let tcp: TcpHdr = pkt.read(l4).ok_or(MalformedReason::L4Truncated)?;
            let doff = tcp.doff() as usize * 4;
            if doff < TcpHdr::LEN || l4 + doff > end {
                return Err(MalformedReason::TcpBadDataOffset);
            }
            p.src_port = u16::from_be_bytes(tcp.source);
            p.dst_port = u16::from_be_bytes(tcp.dest);
            p.header_len += doff as u32;
            p.l4_offset = l4;
            p.payload_offset = l4 + doff;
            // Byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN.
            p.tcp_flags = pkt.read::<u8>(l4 + 13).unwrap_or(0);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if l4 + 4 > end {
                return Err(MalformedReason::L4Truncated);
            }
            let icmp: [u8; 4] = pkt.read(l4).ok_or(MalformedReason::L4Truncated)?;
            p.src_port = icmp[0] as u16;
            p.dst_port = icmp[1] as u16;
            p.header_len += 8;
            p.l4_offset = l4;
            p.payload_offset = l4 + 4;
        }
        _ => {}
    }
    Ok(())
}
