//! Every map of the object, declared from its definition in `monitor_common::maps` (name,
//! size, key and value there; each static's name is the map's `NAME`, which the daemon's
//! loader checks with the rest of the definition before loading). Pinned maps are pinned
//! by name under the daemon's pin directory, so a daemon restart re-adopts them and
//! counters continue. The daemon sets the flow tables' sizes from its config.
//!
//! A leaf: the programs' modules take their maps from here, and this module takes nothing
//! from them.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use monitor_common::maps::{
    counters, dscp_by_index, dscp_policy, flows, fragments, hello_cont, jobs, learn_rate,
    learn_samples, learn_state, link_kinds, media_counters, media_flows, media_rtt, new_flow,
    port_class, quality_args, rtp_streams, scratch_key, settings, stages_tc, stages_xdp,
    stream_scratch, stun_pending, webex_v4, webex_v6,
};

#[map]
pub static FLOWS: LruHashMap<flows::Key, flows::Value> = LruHashMap::pinned(flows::MAX_ENTRIES, 0);

#[map]
pub static MEDIA_FLOWS: LruHashMap<media_flows::Key, media_flows::Value> =
    LruHashMap::pinned(media_flows::MAX_ENTRIES, 0);

#[map]
pub static NEW_FLOW: PerCpuArray<new_flow::Value> =
    PerCpuArray::with_max_entries(new_flow::MAX_ENTRIES, 0);

#[map]
pub static COUNTERS: PerCpuArray<counters::Value> = PerCpuArray::pinned(counters::MAX_ENTRIES, 0);

#[map]
pub static WEBEX_V4: LpmTrie<webex_v4::Address, webex_v4::Value> =
    LpmTrie::pinned(webex_v4::MAX_ENTRIES, 0);

#[map]
pub static WEBEX_V6: LpmTrie<webex_v6::Address, webex_v6::Value> =
    LpmTrie::pinned(webex_v6::MAX_ENTRIES, 0);

#[map]
pub static PORT_CLASS: Array<port_class::Value> = Array::pinned(port_class::MAX_ENTRIES, 0);

#[map]
pub static SETTINGS: Array<settings::Value> = Array::pinned(settings::MAX_ENTRIES, 0);

#[map]
pub static DSCP_POLICY: HashMap<dscp_policy::Key, dscp_policy::Value> =
    HashMap::pinned(dscp_policy::MAX_ENTRIES, 0);

#[map]
pub static DSCP_BY_INDEX: Array<dscp_by_index::Value> =
    Array::pinned(dscp_by_index::MAX_ENTRIES, 0);

#[map]
pub static RTP_STREAMS: LruHashMap<rtp_streams::Key, rtp_streams::Value> =
    LruHashMap::pinned(rtp_streams::MAX_ENTRIES, 0);

#[map]
pub static STREAM_SCRATCH: PerCpuArray<stream_scratch::Value> =
    PerCpuArray::with_max_entries(stream_scratch::MAX_ENTRIES, 0);

#[map]
pub static STUN_PENDING: LruHashMap<stun_pending::Key, stun_pending::Value> =
    LruHashMap::pinned(stun_pending::MAX_ENTRIES, 0);

#[map]
pub static MEDIA_RTT: LruHashMap<media_rtt::Key, media_rtt::Value> =
    LruHashMap::pinned(media_rtt::MAX_ENTRIES, 0);

#[map]
pub static MEDIA_COUNTERS: PerCpuArray<media_counters::Value> =
    PerCpuArray::pinned(media_counters::MAX_ENTRIES, 0);

#[map]
pub static QUALITY_ARGS: PerCpuArray<quality_args::Value> =
    PerCpuArray::with_max_entries(quality_args::MAX_ENTRIES, 0);

#[map]
pub static LEARN_SAMPLES: RingBuf = RingBuf::with_byte_size(learn_samples::BYTES, 0);

#[map]
pub static LEARN_STATE: Array<learn_state::Value> = Array::pinned(learn_state::MAX_ENTRIES, 0);

#[map]
pub static LEARN_RATE: LruHashMap<learn_rate::Key, learn_rate::Value> =
    LruHashMap::with_max_entries(learn_rate::MAX_ENTRIES, 0);

#[map]
pub static HELLO_CONT: Array<hello_cont::Value> =
    Array::with_max_entries(hello_cont::MAX_ENTRIES, 0);

#[map]
pub static LINK_KINDS: Array<link_kinds::Value> = Array::pinned(link_kinds::MAX_ENTRIES, 0);

#[map]
pub static STAGES_XDP: ProgramArray = ProgramArray::with_max_entries(stages_xdp::MAX_ENTRIES, 0);

#[map]
pub static STAGES_TC: ProgramArray = ProgramArray::with_max_entries(stages_tc::MAX_ENTRIES, 0);

#[map]
pub static JOBS: PerCpuArray<jobs::Value> = PerCpuArray::with_max_entries(jobs::MAX_ENTRIES, 0);

#[map]
pub static SCRATCH_KEY: PerCpuArray<scratch_key::Value> =
    PerCpuArray::with_max_entries(scratch_key::MAX_ENTRIES, 0);

#[map]
pub static FRAGMENTS: LruHashMap<fragments::Key, fragments::Value> =
    LruHashMap::with_max_entries(fragments::MAX_ENTRIES, 0);

/// The `LINK_KINDS` entry of `ifindex` (0 beyond the table).
#[inline(always)]
pub fn link(ifindex: u32) -> u8 {
    LINK_KINDS.get(ifindex).copied().unwrap_or(0)
}
