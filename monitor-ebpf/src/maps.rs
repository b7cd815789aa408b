//! The maps. All are pinned by name under the daemon's pin directory, so a daemon
//! restart re-adopts them and counters continue. Sizes here are defaults; the daemon
//! sets the flow table size from its config before loading.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray},
};
use monitor_common::{FlowKey, FlowStats, GlobalCounters, MediaFlowStats, Settings, ports};

/// Per-flow counters (5-tuple, interface, direction).
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowStats> = LruHashMap::pinned(65536, 0);

/// Media flows (audio, video, media) only, so other new flows cannot evict them
/// (`monitor_common::flow::media_table_size`; the daemon sets the size). Their values
/// embed the RTP stream of the flow's first SSRC (`MediaFlowStats`).
#[map]
pub static MEDIA_FLOWS: LruHashMap<FlowKey, MediaFlowStats> = LruHashMap::pinned(16384, 0);

/// Scratch space where a new flow's value is built (too large for the BPF stack next to
/// everything else): a media flow's whole value, of which other flows insert `stats`.
/// Not pinned: it holds nothing between packets.
#[map]
pub static NEW_FLOW: PerCpuArray<MediaFlowStats> = PerCpuArray::with_max_entries(1, 0);

/// Global counters, one [`GlobalCounters`] per CPU at index 0.
#[map]
pub static COUNTERS: PerCpuArray<GlobalCounters> = PerCpuArray::pinned(1, 0);

/// Webex IPv4 prefixes (value: source bits, 1 = configured prefix).
#[map]
pub static WEBEX_V4: LpmTrie<[u8; 4], u32> = LpmTrie::pinned(16384, 0);

/// Webex IPv6 prefixes.
#[map]
pub static WEBEX_V6: LpmTrie<[u8; 16], u32> = LpmTrie::pinned(16384, 0);

/// Class of a Webex peer's port, by `ports::table_index`.
#[map]
pub static PORT_CLASS: Array<u8> = Array::pinned(ports::TABLE_ENTRIES, 0);

/// Run-time settings at index 0.
#[map]
pub static SETTINGS: Array<Settings> = Array::pinned(1, 0);

/// DSCP modes and expected marks of each monitored interface, by ifindex: read for
/// interfaces beyond [`DSCP_BY_INDEX`].
#[map]
pub static DSCP_POLICY: aya_ebpf::maps::HashMap<u32, monitor_common::dscp::Policy> =
    aya_ebpf::maps::HashMap::pinned(crate::dscp::MAX_INTERFACES, 0);

/// The same policies by ifindex below `link::LINK_KIND_ENTRIES` (zeroed: DSCP off).
#[map]
pub static DSCP_BY_INDEX: Array<monitor_common::dscp::Policy> =
    Array::pinned(monitor_common::link::LINK_KIND_ENTRIES, 0);

/// DNS responses and TLS ClientHellos for the daemon to learn Webex peers from
/// (`learn::LearnSample`). Not pinned: a sample is only useful to the daemon reading now.
#[map]
pub static LEARN_SAMPLES: aya_ebpf::maps::RingBuf =
    aya_ebpf::maps::RingBuf::with_byte_size(monitor_common::learn::RING_BYTES, 0);

/// The persistent learning state (`learn::STATE_*`): the daemon's deleted flows, and the
/// kernel's count of rate-limited samples. Pinned with the other maps.
#[map]
pub static LEARN_STATE: Array<u64> = Array::pinned(monitor_common::learn::STATE_ENTRIES, 0);

/// How each interface's frames are read and its role (`link::LINK_*` and `link::ROLE_*`
/// by ifindex; 0, Ethernet without a role, by default). Filled by the daemon at attach.
#[map]
pub static LINK_KINDS: Array<u8> = Array::pinned(monitor_common::link::LINK_KIND_ENTRIES, 0);

/// The `LINK_KINDS` entry of `ifindex` (0 beyond the table).
#[inline(always)]
pub fn link(ifindex: u32) -> u8 {
    LINK_KINDS.get(ifindex).copied().unwrap_or(0)
}

/// Token buckets of the learning samples' clients (`learn::RateBucket` by address,
/// v4-mapped), LRU-bounded. Not pinned: a restart only gives each client a fresh burst.
#[map]
pub static LEARN_RATE: LruHashMap<[u8; 16], monitor_common::learn::RateBucket> =
    LruHashMap::with_max_entries(monitor_common::learn::RATE_CLIENTS, 0);

/// ClientHellos whose next segment is awaited (`learn::HelloCont`, direct-mapped by
/// `learn::hello_slot`). Not pinned.
#[map]
pub static HELLO_CONT: Array<monitor_common::learn::HelloCont> =
    Array::with_max_entries(monitor_common::learn::HELLO_SLOTS, 0);
