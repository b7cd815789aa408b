//! Every map of the kernel object, defined once: one module per map with its `NAME` (the
//! static's name in `monitor-ebpf/src/maps.rs`, which is the map's name in the object and
//! its pin file), `MAX_ENTRIES` (or how it is sized), `Key` and `Value` types, and its
//! [`Def`]. The kernel declares each map from these; the daemon's loader checks the
//! object's maps against [`ALL`] (name, map type, key and value size, entries, pinning)
//! before it loads anything, and the pin checks compare a pinned map with the same `Def`.

use core::mem::size_of;

use crate::{
    FlowKey, FlowStats, FragKey, GlobalCounters, MediaFlowStats, Settings, dscp, learn, link,
    ports, rtp, stages,
};

/// The kernel's map types used here (`enum bpf_map_type` in the kernel's uapi).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Hash = 1,
    Array = 2,
    ProgramArray = 3,
    PerCpuArray = 6,
    LruHash = 9,
    LpmTrie = 11,
    RingBuf = 27,
}

/// One map as the object must define it: what the loader and the pin checks compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    /// Bytes of the key as the kernel sees it (an LPM trie's includes the u32 prefix
    /// length; an array's is its u32 index; a ring buffer has none).
    pub key_size: u32,
    pub value_size: u32,
    /// Entries in the object (a ring buffer's is its size in bytes). The daemon resizes
    /// [`flows`] and [`media_flows`] from its config before loading.
    pub max_entries: u32,
    /// Pinned by name under the daemon's pin directory (re-adopted at a restart).
    pub pinned: bool,
}

impl Def {
    const fn new(
        name: &'static str,
        kind: Kind,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
        pinned: bool,
    ) -> Self {
        Def {
            name,
            kind,
            key_size: key_size as u32,
            value_size: value_size as u32,
            max_entries,
            pinned,
        }
    }

    const fn hash<K, V>(name: &'static str, kind: Kind, max: u32, pinned: bool) -> Self {
        Self::new(name, kind, size_of::<K>(), size_of::<V>(), max, pinned)
    }

    /// Arrays are indexed by a u32.
    const fn array<V>(name: &'static str, kind: Kind, max: u32, pinned: bool) -> Self {
        Self::new(name, kind, size_of::<u32>(), size_of::<V>(), max, pinned)
    }

    /// An LPM trie's key is the u32 prefix length, then the address.
    const fn lpm<A, V>(name: &'static str, max: u32, pinned: bool) -> Self {
        let key = size_of::<u32>() + size_of::<A>();
        Self::new(name, Kind::LpmTrie, key, size_of::<V>(), max, pinned)
    }
}

/// Per-flow counters (5-tuple, interface, direction) of every flow that is not media.
pub mod flows {
    use super::*;
    pub const NAME: &str = "FLOWS";
    /// The object's size; the daemon sets `daemon.flow_table_size` before loading.
    pub const MAX_ENTRIES: u32 = 65536;
    pub type Key = FlowKey;
    pub type Value = FlowStats;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, true);
}

/// Media flows (audio, video, media) in their own table, so that a flood of other new
/// flows cannot evict them. Their values embed the RTP stream of the flow's first SSRC.
pub mod media_flows {
    use super::*;
    pub const NAME: &str = "MEDIA_FLOWS";
    /// The object's size; the daemon sets `flow::media_table_size(flow_table_size)`.
    pub const MAX_ENTRIES: u32 = crate::flow::media_table_size(super::flows::MAX_ENTRIES);
    pub type Key = FlowKey;
    pub type Value = MediaFlowStats;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, true);
}

/// Scratch where a new flow's value is built (too large for the BPF stack next to
/// everything else): a media flow's whole value, of which other flows insert `stats`.
pub mod new_flow {
    use super::*;
    pub const NAME: &str = "NEW_FLOW";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = MediaFlowStats;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, false);
}

/// Global counters, one per CPU at index 0.
pub mod counters {
    use super::*;
    pub const NAME: &str = "COUNTERS";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = GlobalCounters;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, true);
}

/// Webex IPv4 prefixes; the value holds the sources' bits (1 = configured prefix).
pub mod webex_v4 {
    use super::*;
    pub const NAME: &str = "WEBEX_V4";
    pub const MAX_ENTRIES: u32 = 16384;
    /// The address part of the key.
    pub type Address = [u8; 4];
    pub type Value = u32;
    pub const DEF: Def = Def::lpm::<Address, Value>(NAME, MAX_ENTRIES, true);
}

/// Webex IPv6 prefixes, as [`webex_v4`].
pub mod webex_v6 {
    use super::*;
    pub const NAME: &str = "WEBEX_V6";
    pub const MAX_ENTRIES: u32 = 16384;
    pub type Address = [u8; 16];
    pub type Value = u32;
    pub const DEF: Def = Def::lpm::<Address, Value>(NAME, MAX_ENTRIES, true);
}

/// The class (`Class as u8`) of a Webex peer's port, by `ports::table_index`.
pub mod port_class {
    use super::*;
    pub const NAME: &str = "PORT_CLASS";
    pub const MAX_ENTRIES: u32 = ports::TABLE_ENTRIES;
    pub type Value = u8;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, true);
}

/// Run-time settings at index 0.
pub mod settings {
    use super::*;
    pub const NAME: &str = "SETTINGS";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = Settings;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, true);
}

/// DSCP modes and expected marks per interface by ifindex: the record `monitor check`
/// reads, and the kernel's for interfaces at or above `link::LINK_KIND_ENTRIES`.
pub mod dscp_policy {
    use super::*;
    pub const NAME: &str = "DSCP_POLICY";
    /// Monitored interfaces.
    pub const MAX_ENTRIES: u32 = 256;
    pub type Key = u32;
    pub type Value = dscp::Policy;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::Hash, MAX_ENTRIES, true);
}

/// The same policies in an array by ifindex below `link::LINK_KIND_ENTRIES` (a zeroed
/// entry is DSCP off), which the kernel reads on every Webex packet: an array look-up
/// the verifier inlines instead of a hash look-up.
pub mod dscp_by_index {
    use super::*;
    pub const NAME: &str = "DSCP_BY_INDEX";
    pub const MAX_ENTRIES: u32 = link::LINK_KIND_ENTRIES;
    pub type Value = dscp::Policy;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, true);
}

/// RTP streams (flow + SSRC) beyond the one embedded in a media flow's value.
pub mod rtp_streams {
    use super::*;
    pub const NAME: &str = "RTP_STREAMS";
    pub const MAX_ENTRIES: u32 = 16384;
    pub type Key = rtp::RtpStreamKey;
    pub type Value = rtp::RtpStreamState;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, true);
}

/// Where a new stream's state is built (too big for the BPF stack next to the parser's).
pub mod stream_scratch {
    use super::*;
    pub const NAME: &str = "STREAM_SCRATCH";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = rtp::RtpStreamState;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, false);
}

/// STUN binding requests waiting for their response.
pub mod stun_pending {
    use super::*;
    pub const NAME: &str = "STUN_PENDING";
    pub const MAX_ENTRIES: u32 = 4096;
    pub type Key = rtp::StunTxKey;
    pub type Value = rtp::StunPending;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, true);
}

/// STUN RTT per flow of the requests.
pub mod media_rtt {
    use super::*;
    pub const NAME: &str = "MEDIA_RTT";
    pub const MAX_ENTRIES: u32 = 4096;
    pub type Key = FlowKey;
    pub type Value = rtp::RttStats;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, true);
}

/// Media demultiplexing and RTT counters, per CPU at index 0.
pub mod media_counters {
    use super::*;
    pub const NAME: &str = "MEDIA_COUNTERS";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = rtp::MediaCounters;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, true);
}

/// The quality stage's arguments, per CPU (`[meta, wanted, now]`, written by the
/// program that tail-calls the stage: see `quality::prepare` in the kernel crate).
pub mod quality_args {
    use super::*;
    pub const NAME: &str = "QUALITY_ARGS";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = [u64; 3];
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, false);
}

/// DNS responses and TLS ClientHellos for the daemon to learn Webex peers from (a ring
/// buffer of `learn::LearnSample`). Not pinned: a sample is only useful to the daemon
/// reading now.
pub mod learn_samples {
    use super::*;
    pub const NAME: &str = "LEARN_SAMPLES";
    /// Bytes, not entries.
    pub const BYTES: u32 = learn::RING_BYTES;
    pub type Sample = learn::LearnSample;
    pub const DEF: Def = Def::new(NAME, Kind::RingBuf, 0, 0, BYTES, false);
}

/// The persistent learning state (`learn::STATE_*` indices): the daemon's deleted flows,
/// and the kernel's count of rate-limited samples.
pub mod learn_state {
    use super::*;
    pub const NAME: &str = "LEARN_STATE";
    pub const MAX_ENTRIES: u32 = learn::STATE_ENTRIES;
    pub type Value = u64;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, true);
}

/// Token buckets of the learning samples' clients by address (v4-mapped), LRU-bounded.
/// Not pinned: a restart only gives each client a fresh burst.
pub mod learn_rate {
    use super::*;
    pub const NAME: &str = "LEARN_RATE";
    pub const MAX_ENTRIES: u32 = learn::RATE_CLIENTS;
    pub type Key = [u8; 16];
    pub type Value = learn::RateBucket;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, false);
}

/// ClientHellos whose next segment is awaited, direct-mapped by `learn::hello_slot`.
pub mod hello_cont {
    use super::*;
    pub const NAME: &str = "HELLO_CONT";
    pub const MAX_ENTRIES: u32 = learn::HELLO_SLOTS;
    pub type Value = learn::HelloCont;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, false);
}

/// How each interface's frames are read and its role (`link::LINK_*` and `link::ROLE_*`
/// by ifindex; 0, Ethernet without a role, by default). Filled by the daemon at attach.
pub mod link_kinds {
    use super::*;
    pub const NAME: &str = "LINK_KINDS";
    pub const MAX_ENTRIES: u32 = link::LINK_KIND_ENTRIES;
    pub type Value = u8;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::Array, MAX_ENTRIES, true);
}

/// Tail-call targets of the XDP programs, by `stages::*` index. Not pinned by name: they
/// hold program fds of one load, pinned under `stages/<generation>/` by the daemon.
pub mod stages_xdp {
    use super::*;
    pub const NAME: &str = "STAGES_XDP";
    pub const MAX_ENTRIES: u32 = stages::ENTRIES;
    /// A program fd.
    pub type Value = u32;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::ProgramArray, MAX_ENTRIES, false);
}

/// Tail-call targets of the TC programs, as [`stages_xdp`].
pub mod stages_tc {
    use super::*;
    pub const NAME: &str = "STAGES_TC";
    pub const MAX_ENTRIES: u32 = stages::ENTRIES;
    pub type Value = u32;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::ProgramArray, MAX_ENTRIES, false);
}

/// The per-CPU hand-over slots where an entry program leaves the parsed packet for the
/// flow stage: one slot per program type.
pub mod jobs {
    use super::*;
    pub const NAME: &str = "JOBS";
    /// Slot of the XDP programs.
    pub const SLOT_XDP: u32 = 0;
    /// Slot of the TC programs.
    pub const SLOT_TC: u32 = 1;
    pub const MAX_ENTRIES: u32 = 2;
    pub type Value = stages::Job;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, false);
}

/// Scratch for the flow key an ICMP error quotes.
pub mod scratch_key {
    use super::*;
    pub const NAME: &str = "SCRATCH_KEY";
    pub const MAX_ENTRIES: u32 = 1;
    pub type Value = FlowKey;
    pub const DEF: Def = Def::array::<Value>(NAME, Kind::PerCpuArray, MAX_ENTRIES, false);
}

/// The ports (source << 16 | destination) of each fragmented datagram's first fragment,
/// for its later fragments. Not pinned: an entry is useful for a few milliseconds.
pub mod fragments {
    use super::*;
    pub const NAME: &str = "FRAGMENTS";
    /// Datagrams in reassembly at once. The kernel's own reassembly keeps at most a few
    /// MiB of fragments (net.ipv4.ipfrag_high_thresh); 8192 datagrams is well above what
    /// a site's calls fragment at a time. LRU: the oldest datagram goes first.
    pub const MAX_ENTRIES: u32 = 8192;
    pub type Key = FragKey;
    pub type Value = u32;
    pub const DEF: Def = Def::hash::<Key, Value>(NAME, Kind::LruHash, MAX_ENTRIES, false);
}

/// Every map of the object.
pub const ALL: [Def; 26] = [
    flows::DEF,
    media_flows::DEF,
    new_flow::DEF,
    counters::DEF,
    webex_v4::DEF,
    webex_v6::DEF,
    port_class::DEF,
    settings::DEF,
    dscp_policy::DEF,
    dscp_by_index::DEF,
    rtp_streams::DEF,
    stream_scratch::DEF,
    stun_pending::DEF,
    media_rtt::DEF,
    media_counters::DEF,
    quality_args::DEF,
    learn_samples::DEF,
    learn_state::DEF,
    learn_rate::DEF,
    hello_cont::DEF,
    link_kinds::DEF,
    stages_xdp::DEF,
    stages_tc::DEF,
    jobs::DEF,
    scratch_key::DEF,
    fragments::DEF,
];

/// The definition of the map called `name`.
pub fn by_name(name: &str) -> Option<&'static Def> {
    ALL.iter().find(|d| d.name == name)
}

/// The maps pinned by name (re-adopted at a restart), for the pin checks and clean-up.
pub fn pinned() -> impl Iterator<Item = &'static Def> {
    ALL.iter().filter(|d| d.pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_name_their_module() {
        for (i, d) in ALL.iter().enumerate() {
            assert!(
                ALL[..i].iter().all(|o| o.name != d.name),
                "{} twice",
                d.name
            );
            assert!(d.max_entries > 0, "{}", d.name);
        }
        assert_eq!(by_name("FLOWS"), Some(&flows::DEF));
        assert_eq!(by_name("NONE"), None);
        assert_eq!(pinned().count(), 15);
    }

    #[test]
    fn sizes_are_the_kernels() {
        // LPM keys: the u32 prefix length, then the address.
        assert_eq!((webex_v4::DEF.key_size, webex_v6::DEF.key_size), (8, 20));
        assert_eq!(
            (port_class::DEF.key_size, port_class::DEF.value_size),
            (4, 1)
        );
        assert_eq!(
            (learn_samples::DEF.key_size, learn_samples::DEF.value_size),
            (0, 0)
        );
        assert_eq!(learn_samples::DEF.max_entries, 256 * 1024);
        assert_eq!(stages_tc::DEF.value_size, 4);
        assert_eq!(media_flows::MAX_ENTRIES, 16384);
        assert_eq!(fragments::DEF.key_size, size_of::<FragKey>() as u32);
    }
}
