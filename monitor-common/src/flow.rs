//! The per-flow map: key and value.

/// Where the packet was seen: XDP runs on ingress, TC on egress.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress = 0,
    Egress = 1,
}

impl Direction {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Ingress),
            1 => Some(Self::Egress),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// Media flows (classes audio, video and media) live in their own LRU table of this
/// fraction of `daemon.flow_table_size`, at least [`MEDIA_TABLE_MIN`] entries: new
/// flows of every other class go to the main table and can only evict each other, so an
/// active call's flows stay however many other flows arrive. The limit: more media
/// flows than the media table holds evict the least recently seen media flows.
pub const MEDIA_TABLE_DIVISOR: u32 = 4;
pub const MEDIA_TABLE_MIN: u32 = 1024;

/// Entries of the media flow table for a main table of `flow_table_size`.
pub const fn media_table_size(flow_table_size: u32) -> u32 {
    let quarter = flow_table_size / MEDIA_TABLE_DIVISOR;
    if quarter > MEDIA_TABLE_MIN {
        quarter
    } else {
        MEDIA_TABLE_MIN
    }
}

/// Address family tag stored in [`FlowKey::family`].
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// One flow as seen on one interface in one direction. Both sides of a NAT are separate
/// flows (the LAN-side and the translated WAN-side copy), which is what lets the daemon
/// compare them.
///
/// Addresses are 16 bytes; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`). For ICMP and
/// ICMPv6 the ports hold the message type (`src_port`) and code (`dst_port`); for
/// other protocols they are zero. Later IP fragments carry no ports: the kernel gives
/// them the ports of their first fragment ([`FragKey`]), and zero when it has not seen it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub ifindex: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// [`Direction`] as u8.
    pub direction: u8,
    pub _pad: u8,
}

/// One fragmented IP datagram, as RFC 791 and RFC 8200 identify it: the kernel remembers
/// its first fragment's ports under this key, so the later fragments (which carry no
/// transport header) count on the same flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// Identification (IPv4: 16 bits; IPv6: the fragment header's 32).
    pub id: u32,
    pub protocol: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Counters of one flow. Timestamps are `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowStats {
    /// Wire packets (a GSO super-packet on TC egress counts as its segments).
    pub packets: u64,
    /// IP bytes: the IP datagram length, as NetFlow/IPFIX octet counts (no L2 header).
    pub bytes: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// IP fragments (first and later) belonging to this flow.
    pub fragments: u64,
    /// [`crate::Class`] as u32, fixed when the flow is created.
    pub class: u32,
    /// DSCP of the last packet (the upper six bits of the DS field).
    pub last_dscp: u32,
    /// [`crate::WebexSide`] as u32: which address of the key is the Webex peer.
    pub webex_side: u32,
    /// The next-hop MTU the last ICMP fragmentation-needed (RFC 1191) or ICMPv6 Packet
    /// Too Big answering this flow announced; 0 when none did (or the sender left it 0).
    /// Was an unused `flags` slot: same offset and size.
    pub next_hop_mtu: u32,
    /// DSCP verification (issue: DSCP): packets whose mark matched / did not match the
    /// class's expected mark, packets rewritten on egress, and a bitmask of every DSCP
    /// value seen (bit n = DSCP n).
    pub dscp_match: u64,
    pub dscp_mismatch: u64,
    pub dscp_rewritten: u64,
    pub dscp_seen: u64,
    /// TCP handshake RTT (SYN to SYN/ACK) in nanoseconds, 0 when not measured.
    pub handshake_rtt_ns: u64,
    /// ICMP destination-unreachable (ICMPv6 type 1) messages answering this flow,
    /// matched by the IP and transport header the error quotes (issue: failure detectors).
    /// Fragmentation-needed is counted in `icmp_frag_needed` instead.
    pub icmp_unreachable: u64,
    /// ICMP fragmentation-needed (type 3 code 4) and ICMPv6 Packet Too Big answering it.
    pub icmp_frag_needed: u64,
    /// Packets whose IP length exceeds the configured path MTU (`Settings::path_mtu`).
    pub oversize: u64,
}

/// [`MediaFlowStats::stream_state`]: no stream embedded yet (the flow's first RTP packet
/// claims it).
pub const EMBEDDED_NONE: u32 = 0;
/// [`MediaFlowStats::stream_state`]: `stream` holds the RTP stream of SSRC `ssrc`.
pub const EMBEDDED_STREAM: u32 = 1;

/// The value of a media flow (`MEDIA_FLOWS`): its counters, then the RTP stream of the
/// first SSRC seen on it (issue #15: an established RTP packet of that SSRC costs one
/// look-up, of its flow, and no tail call). Further SSRCs of the flow (rare: a second
/// stream on one 5-tuple) live in `RTP_STREAMS`. The daemon reads the embedded stream
/// as an `RTP_STREAMS` entry of key (flow key, `ssrc`). Fields only appended after
/// `stats`, so an earlier version's media flows migrate with no stream embedded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MediaFlowStats {
    pub stats: FlowStats,
    /// SSRC of the embedded stream (when `stream_state` is [`EMBEDDED_STREAM`]).
    pub ssrc: u32,
    /// [`EMBEDDED_NONE`] or [`EMBEDDED_STREAM`].
    pub stream_state: u32,
    pub stream: crate::rtp::RtpStreamState,
}

impl MediaFlowStats {
    /// The embedded stream of the flow `key`, as its `RTP_STREAMS` entry would be.
    pub fn embedded(
        &self,
        key: &FlowKey,
    ) -> Option<(crate::rtp::RtpStreamKey, crate::rtp::RtpStreamState)> {
        let stream = (
            crate::rtp::RtpStreamKey {
                flow: *key,
                ssrc: self.ssrc,
            },
            self.stream,
        );
        (self.stream_state == EMBEDDED_STREAM).then_some(stream)
    }
}

impl FlowKey {
    /// IPv4-mapped form of an IPv4 address, as stored in the key.
    pub const fn v4_mapped(octets: [u8; 4]) -> [u8; 16] {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
        ]
    }

    /// An address of the key as an IP address (IPv4 when the family says so).
    pub fn ip(family: u8, bytes: &[u8; 16]) -> core::net::IpAddr {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        if family == FAMILY_V4 {
            IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
        } else {
            IpAddr::V6(Ipv6Addr::from(*bytes))
        }
    }

    /// The source address.
    pub fn src_ip(&self) -> core::net::IpAddr {
        Self::ip(self.family, &self.src_addr)
    }

    /// The destination address.
    pub fn dst_ip(&self) -> core::net::IpAddr {
        Self::ip(self.family, &self.dst_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layouts_have_no_padding() {
        // 16 + 16 + 4 + 2 + 2 + 1 + 1 + 1 + 1
        assert_eq!(size_of::<FlowKey>(), 44);
        assert_eq!(align_of::<FlowKey>(), 4);
        // 5 * 8 + 4 * 4 + 8 * 8
        assert_eq!(size_of::<FlowStats>(), 120);
        // FlowStats, ssrc and state, the stream state.
        assert_eq!(size_of::<MediaFlowStats>(), 120 + 8 + 168);
        // The counters first: a pointer to the value is one to its `stats`.
        assert_eq!(core::mem::offset_of!(MediaFlowStats, stats), 0);
        // 16 + 16 + 4 + 1 + 1 + 2
        assert_eq!(size_of::<FragKey>(), 40);
        assert_eq!(align_of::<FragKey>(), 4);
    }

    #[test]
    fn the_media_table_is_a_quarter_of_the_main_one_at_least_1024() {
        assert_eq!(media_table_size(65_536), 16_384);
        assert_eq!(media_table_size(4096), 1024);
        assert_eq!(media_table_size(1000), 1024);
        assert_eq!(media_table_size(1_000_000), 250_000);
    }

    #[test]
    fn addresses_by_family() {
        let k = FlowKey {
            src_addr: FlowKey::v4_mapped([192, 0, 2, 1]),
            dst_addr: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            family: FAMILY_V4,
            ..Default::default()
        };
        assert_eq!(k.src_ip().to_string(), "192.0.2.1");
        assert_eq!(
            FlowKey::ip(FAMILY_V6, &k.dst_addr).to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn only_a_claimed_stream_is_read() {
        let key = FlowKey {
            src_port: 5004,
            ..Default::default()
        };
        let mut v = MediaFlowStats {
            ssrc: 7,
            ..Default::default()
        };
        assert_eq!(v.embedded(&key), None);
        v.stream_state = EMBEDDED_STREAM;
        v.stream.packets = 3;
        let (k, s) = v.embedded(&key).unwrap();
        assert_eq!((k.flow, k.ssrc, s.packets), (key, 7, 3));
    }

    #[test]
    fn v4_mapping() {
        assert_eq!(
            FlowKey::v4_mapped([192, 0, 2, 1]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        );
    }

    #[test]
    fn direction_round_trip() {
        for d in [Direction::Ingress, Direction::Egress] {
            assert_eq!(Direction::from_u8(d as u8), Some(d));
        }
        assert_eq!(Direction::from_u8(2), None);
    }
}
