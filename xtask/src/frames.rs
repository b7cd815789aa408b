//! Crafted frames for kernel tests and benchmarks: Ethernet, VLAN tags, IPv4 (options,
//! fragments), IPv6 (extension headers), UDP, TCP and ICMP, with valid lengths and
//! checksums unless a test asks for them broken.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

/// A transport header and payload.
#[derive(Clone, Debug)]
pub enum L4 {
    Udp {
        src: u16,
        dst: u16,
        payload: Vec<u8>,
    },
    Tcp {
        src: u16,
        dst: u16,
        flags: u8,
        payload: Vec<u8>,
    },
    /// ICMP (IPv4) or ICMPv6 (IPv6): type, code, body after the 4-byte header.
    Icmp { kind: u8, code: u8, body: Vec<u8> },
    /// Any other protocol number with raw bytes.
    Raw { protocol: u8, bytes: Vec<u8> },
}

impl L4 {
    pub fn udp(src: u16, dst: u16, payload_len: usize) -> Self {
        L4::Udp {
            src,
            dst,
            payload: vec![0xab; payload_len],
        }
    }

    pub fn tcp(src: u16, dst: u16, payload_len: usize) -> Self {
        L4::Tcp {
            src,
            dst,
            flags: 0x18,
            payload: vec![0xcd; payload_len],
        }
    }

    fn protocol(&self, v6: bool) -> u8 {
        match self {
            L4::Udp { .. } => 17,
            L4::Tcp { .. } => 6,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { protocol, .. } => *protocol,
        }
    }

    /// The transport bytes (checksums left zero: the kernel programs do not check them).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            L4::Udp { src, dst, payload } => {
                let mut b = Vec::with_capacity(8 + payload.len());
                b.extend_from_slice(&src.to_be_bytes());
                b.extend_from_slice(&dst.to_be_bytes());
                b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                b
            }
            L4::Tcp {
                src,
                dst,
                flags,
                payload,
            } => {
                let mut b = Vec::with_capacity(20 + payload.len());
                b.extend_from_slice(&src.to_be_bytes());
                b.extend_from_slice(&dst.to_be_bytes());
                b.extend_from_slice(&1u32.to_be_bytes());
                b.extend_from_slice(&0u32.to_be_bytes());
                b.push(5 << 4);
                b.push(*flags);
                b.extend_from_slice(&65535u16.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0, 0]);
                b.extend_from_slice(payload);
                b
            }
            L4::Icmp { kind, code, body } => {
                let mut b = vec![*kind, *code, 0, 0];
                b.extend_from_slice(body);
                b
            }
            L4::Raw { bytes, .. } => bytes.clone(),
        }
    }
}

/// IPv4 header fields a test may set.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dscp: u8,
    pub ecn: u8,
    /// Option bytes (padded to a multiple of 4 by the builder).
    pub options: Vec<u8>,
    /// Identification (groups the fragments of one datagram).
    pub id: u16,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Overrides: IHL in 32-bit words, total length, version nibble.
    pub ihl_override: Option<u8>,
    pub total_len_override: Option<u16>,
    pub version_override: Option<u8>,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ipv4 {
            src,
            dst,
            dscp: 0,
            ecn: 0,
            options: Vec::new(),
            id: 0x1234,
            more_fragments: false,
            frag_offset: 0,
            ihl_override: None,
            total_len_override: None,
            version_override: None,
        }
    }

    /// Header plus `payload`, with a valid header checksum.
    pub fn packet(&self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        let total = self
            .total_len_override
            .unwrap_or((hlen + payload.len()) as u16);
        let ihl = self.ihl_override.unwrap_or((hlen / 4) as u8);
        let version = self.version_override.unwrap_or(4);
        let mut h = vec![
            (version << 4) | (ihl & 0x0f),
            (self.dscp << 2) | (self.ecn & 3),
        ];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        let frags = (if self.more_fragments { 0x2000 } else { 0 }) | (self.frag_offset & 0x1fff);
        h.extend_from_slice(&frags.to_be_bytes());
        h.push(64);
        h.push(protocol);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&opts);
        let sum = ipv4_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// The IPv4 header checksum (RFC 791) of `header` with its checksum field as given.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, pair) in header.chunks(2).enumerate() {
        if i == 5 {
            continue; // the checksum field itself
        }
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += word as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv6 extension header in the chain.
#[derive(Clone, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header with offset (8-byte units), more-fragments flag and
    /// identification.
    Fragment {
        offset: u16,
        more: bool,
        id: u32,
    },
}

impl Ext {
    fn number(&self) -> u8 {
        match self {
            Ext::HopByHop => 0,
            Ext::Routing => 43,
            Ext::Fragment { .. } => 44,
            Ext::DestOpts => 60,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            // 8 bytes: next, len 0, then PadN filling the rest.
            Ext::HopByHop | Ext::DestOpts => vec![next, 0, 1, 4, 0, 0, 0, 0],
            // Routing type 0 header with no addresses, segments left 0 (len 0).
            Ext::Routing => vec![next, 0, 0, 0, 0, 0, 0, 0],
            Ext::Fragment { offset, more, id } => {
                let fo = (offset << 3) | u16::from(*more);
                let mut b = vec![next, 0];
                b.extend_from_slice(&fo.to_be_bytes());
                b.extend_from_slice(&id.to_be_bytes());
                b
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub dscp: u8,
    pub ecn: u8,
    pub flow_label: u32,
    pub ext: Vec<Ext>,
    pub payload_len_override: Option<u16>,
}

impl Ipv6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Ipv6 {
            src,
            dst,
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            ext: Vec::new(),
            payload_len_override: None,
        }
    }

    pub fn packet(&self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut chain = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map(Ext::number).unwrap_or(protocol);
            chain.extend_from_slice(&e.bytes(next));
        }
        let first = self.ext.first().map(Ext::number).unwrap_or(protocol);
        let plen = self
            .payload_len_override
            .unwrap_or((chain.len() + payload.len()) as u16);
        let tc = (self.dscp << 2) | (self.ecn & 3);
        let vcf: u32 = (6 << 28) | ((tc as u32) << 20) | (self.flow_label & 0xfffff);
        let mut h = vcf.to_be_bytes().to_vec();
        h.extend_from_slice(&plen.to_be_bytes());
        h.push(first);
        h.push(64);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&chain);
        h.extend_from_slice(payload);
        h
    }
}

/// An Ethernet frame carrying `ether_type` after `vlans` tags (outermost first).
pub fn ethernet(vlans: &[(u16, u16)], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 frame with `l4`.
pub fn v4(ip: &Ipv4, l4: &L4) -> Vec<u8> {
    ethernet(&[], ETH_P_IP, &ip.packet(l4.protocol(false), &l4.bytes()))
}

/// An IPv6 frame with `l4`.
pub fn v6(ip: &Ipv6, l4: &L4) -> Vec<u8> {
    ethernet(&[], ETH_P_IPV6, &ip.packet(l4.protocol(true), &l4.bytes()))
}

/// Offset of the IP header in a frame built with `vlans` tags.
pub fn l3_offset(vlans: usize) -> usize {
    14 + 4 * vlans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_checksum_matches_a_known_header() {
        // RFC 1071 style example: a header whose checksum is known (from Wikipedia's
        // IPv4 header checksum example): 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }

    #[test]
    fn udp_v4_frame_lengths() {
        let ip = Ipv4::new(Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10));
        let f = v4(&ip, &L4::udp(52000, 5004, 172));
        assert_eq!(f.len(), 14 + 20 + 8 + 172);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 200);
        assert_eq!(f[23], 17);
    }

    #[test]
    fn ipv6_chain_links_next_headers() {
        let mut ip = Ipv6::new(
            "2001:db8:1::10".parse().unwrap(),
            "2001:db8:ff::10".parse().unwrap(),
        );
        ip.ext = vec![
            Ext::HopByHop,
            Ext::Routing,
            Ext::Fragment {
                offset: 0,
                more: true,
                id: 0xdead_beef,
            },
        ];
        let f = v6(&ip, &L4::udp(1, 2, 4));
        assert_eq!(f[14 + 6], 0); // first: hop-by-hop
        assert_eq!(f[54], 43); // hop-by-hop -> routing
        assert_eq!(f[62], 44); // routing -> fragment
        assert_eq!(f[70], 17); // fragment -> UDP
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 24 + 12);
    }
}
