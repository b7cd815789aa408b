//! Global per-CPU counters. One [`GlobalCounters`] per CPU at index 0 of the
//! `COUNTERS` map; userspace sums the CPUs.
//!
//! Invariant: `seen == parsed + sum(malformed)`. Non-IP frames parse (as Ethernet) and
//! are counted in `non_ip` too.

/// Why a packet could not be parsed. Values index [`GlobalCounters::malformed`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MalformedReason {
    /// Frame shorter than an Ethernet header.
    EthTruncated = 0,
    /// A VLAN tag cut off by the end of the frame.
    VlanTruncated = 1,
    /// More VLAN tags than the parser's bound of two.
    VlanTooDeep = 2,
    /// IPv4 header cut off by the end of the frame.
    Ipv4Truncated = 3,
    /// IPv4 IHL below 5 (20 bytes).
    Ipv4BadIhl = 4,
    /// IPv4 total length smaller than its header or larger than the frame.
    Ipv4BadTotalLength = 5,
    /// The IP version nibble does not match the ethertype.
    BadIpVersion = 6,
    /// IPv6 fixed header cut off by the end of the frame.
    Ipv6Truncated = 7,
    /// IPv6 payload length larger than the frame.
    Ipv6BadPayloadLength = 8,
    /// An IPv6 extension header cut off by the end of the packet.
    Ipv6ExtTruncated = 9,
    /// More IPv6 extension headers than the parser's bound.
    Ipv6ExtTooDeep = 10,
    /// UDP, TCP, ICMP or ICMPv6 header cut off by the end of the packet.
    L4Truncated = 11,
    /// TCP data offset below 5 (20 bytes) or beyond the packet.
    TcpBadDataOffset = 12,
}

/// Number of malformed reasons in use.
pub const MALFORMED_REASONS: usize = 13;
/// Slots reserved in the map value, so new reasons do not change its layout.
pub const MALFORMED_SLOTS: usize = 16;

impl MalformedReason {
    pub const ALL: [MalformedReason; MALFORMED_REASONS] = [
        Self::EthTruncated,
        Self::VlanTruncated,
        Self::VlanTooDeep,
        Self::Ipv4Truncated,
        Self::Ipv4BadIhl,
        Self::Ipv4BadTotalLength,
        Self::BadIpVersion,
        Self::Ipv6Truncated,
        Self::Ipv6BadPayloadLength,
        Self::Ipv6ExtTruncated,
        Self::Ipv6ExtTooDeep,
        Self::L4Truncated,
        Self::TcpBadDataOffset,
    ];

    /// Stable name used in status JSON and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EthTruncated => "eth_truncated",
            Self::VlanTruncated => "vlan_truncated",
            Self::VlanTooDeep => "vlan_too_deep",
            Self::Ipv4Truncated => "ipv4_truncated",
            Self::Ipv4BadIhl => "ipv4_bad_ihl",
            Self::Ipv4BadTotalLength => "ipv4_bad_total_length",
            Self::BadIpVersion => "bad_ip_version",
            Self::Ipv6Truncated => "ipv6_truncated",
            Self::Ipv6BadPayloadLength => "ipv6_bad_payload_length",
            Self::Ipv6ExtTruncated => "ipv6_ext_truncated",
            Self::Ipv6ExtTooDeep => "ipv6_ext_too_deep",
            Self::L4Truncated => "l4_truncated",
            Self::TcpBadDataOffset => "tcp_bad_data_offset",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GlobalCounters {
    /// Every frame the programs ran on.
    pub seen: u64,
    /// Frames whose headers parsed (including non-IP frames).
    pub parsed: u64,
    /// Parsed frames that are not IPv4 or IPv6.
    pub non_ip: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    /// IP fragments (first and later).
    pub fragments: u64,
    /// IP packets of Webex flows (accounted in the flow map).
    pub webex_packets: u64,
    /// IP packets that are not Webex (counted here only, unless `track_all_flows`).
    pub not_webex_packets: u64,
    /// New flows that could not be inserted into the flow map.
    pub flow_insert_failed: u64,
    /// Flows created.
    pub flows_created: u64,
    /// DNS responses and TLS ClientHellos copied to the daemon for learning peers.
    pub learn_samples: u64,
    /// Samples lost because the ring buffer was full (the daemon fell behind).
    pub learn_sample_drops: u64,
    /// Later IP fragments attributed to their flow by the first fragment's ports.
    pub fragments_matched: u64,
    /// Later IP fragments whose first fragment was not seen (yet): counted on a
    /// port-less flow of the same addresses and protocol.
    pub fragments_unmatched: u64,
    /// Packets counted here but not per flow because a tail call into the next stage
    /// failed (the daemon installs the stages before attaching: never expected).
    pub stage_failed: u64,
    /// Of `flows_created`, those created in the media flow table (`MEDIA_FLOWS`): the
    /// daemon tells evictions per table apart by them. (Was a reserved slot: the layout
    /// is unchanged, so pinned counters of an older version are adopted.)
    pub media_flows_created: u64,
    /// Indexed by [`MalformedReason`].
    pub malformed: [u64; MALFORMED_SLOTS],
}

impl GlobalCounters {
    /// Adds another CPU's counters into this one.
    pub fn accumulate(&mut self, other: &GlobalCounters) {
        self.seen += other.seen;
        self.parsed += other.parsed;
        self.non_ip += other.non_ip;
        self.ipv4 += other.ipv4;
        self.ipv6 += other.ipv6;
        self.fragments += other.fragments;
        self.webex_packets += other.webex_packets;
        self.not_webex_packets += other.not_webex_packets;
        self.flow_insert_failed += other.flow_insert_failed;
        self.flows_created += other.flows_created;
        self.learn_samples += other.learn_samples;
        self.learn_sample_drops += other.learn_sample_drops;
        self.fragments_matched += other.fragments_matched;
        self.fragments_unmatched += other.fragments_unmatched;
        self.stage_failed += other.stage_failed;
        self.media_flows_created += other.media_flows_created;
        for (a, b) in self.malformed.iter_mut().zip(other.malformed.iter()) {
            *a += *b;
        }
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(
            core::mem::size_of::<GlobalCounters>(),
            (10 + 2 + 4 + 16) * 8
        );
    }

    #[test]
    fn reasons_index_their_slot_and_names_are_unique() {
        for (i, r) in MalformedReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = MalformedReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MALFORMED_REASONS);
    }

    #[test]
    fn accumulate_sums_every_field() {
        let mut a = GlobalCounters {
            seen: 1,
            parsed: 1,
            ..Default::default()
        };
        let mut b = GlobalCounters {
            seen: 2,
            flows_created: 3,
            learn_samples: 5,
            learn_sample_drops: 6,
            fragments_matched: 7,
            fragments_unmatched: 8,
            stage_failed: 9,
            media_flows_created: 10,
            ..Default::default()
        };
        b.malformed[MalformedReason::L4Truncated as usize] = 4;
        a.accumulate(&b);
        assert_eq!(a.seen, 3);
        assert_eq!(a.flows_created, 3);
        assert_eq!(a.media_flows_created, 10);
        assert_eq!((a.learn_samples, a.learn_sample_drops), (5, 6));
        assert_eq!(
            (a.fragments_matched, a.fragments_unmatched, a.stage_failed),
            (7, 8, 9)
        );
        assert_eq!(a.malformed_total(), 4);
    }
}
