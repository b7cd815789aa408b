//! Types shared by the kernel programs and the daemon, and the pure logic both run.
//!
//! Everything a BPF map holds is `#[repr(C)]` with fixed-width fields and no implicit
//! padding, so the kernel and userspace agree on the bytes. On the host this crate is
//! `std` and unit-tested with plain `cargo test`; in the kernel the same code is
//! compiled for the BPF target.
#![cfg_attr(target_arch = "bpf", no_std)]

pub mod class;
pub mod counters;
pub mod dscp;
pub mod flow;
pub mod learn;
pub mod link;
pub mod ports;
pub mod rtp;
pub mod settings;
pub mod stages;
pub mod tunnel;

pub use class::{Class, WebexSide, classify};
pub use counters::{GlobalCounters, MalformedReason};
pub use flow::{Direction, FlowKey, FlowStats, FragKey, MediaFlowStats};
pub use settings::Settings;

/// Names of the maps the kernel object defines. They are pinned under the daemon's pin
/// directory with these names, so a restart re-adopts them.
pub mod map_names {
    pub const FLOWS: &str = "FLOWS";
    /// Media flows (audio, video, media), in their own table so that a flood of other
    /// new flows cannot evict them (`flow::media_table_size`).
    pub const MEDIA_FLOWS: &str = "MEDIA_FLOWS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const WEBEX_V4: &str = "WEBEX_V4";
    pub const WEBEX_V6: &str = "WEBEX_V6";
    pub const PORT_CLASS: &str = "PORT_CLASS";
    pub const SETTINGS: &str = "SETTINGS";
    /// DSCP modes and expected marks per interface (`dscp::Policy` by ifindex): the
    /// record `monitor check` reads, and the kernel's for interfaces with an index at or
    /// above `link::LINK_KIND_ENTRIES`.
    pub const DSCP_POLICY: &str = "DSCP_POLICY";
    /// The same policies in an array by ifindex (below `link::LINK_KIND_ENTRIES`; a
    /// zeroed entry is DSCP off), which the kernel reads on every Webex packet: an array
    /// look-up the verifier inlines instead of a hash look-up.
    pub const DSCP_POLICY_BY_INDEX: &str = "DSCP_BY_INDEX";
    /// RTP streams (`rtp::RtpStreamKey` -> `rtp::RtpStreamState`).
    pub const RTP_STREAMS: &str = "RTP_STREAMS";
    /// STUN binding requests waiting for a response.
    pub const STUN_PENDING: &str = "STUN_PENDING";
    /// STUN RTT per flow of the requests.
    pub const MEDIA_RTT: &str = "MEDIA_RTT";
    /// Media demultiplexing counters, per CPU.
    pub const MEDIA_COUNTERS: &str = "MEDIA_COUNTERS";
    /// Samples for learning peers by name (ring buffer; not pinned: it holds nothing
    /// between reads).
    pub const LEARN_SAMPLES: &str = "LEARN_SAMPLES";
    /// The daemon's persistent learning state (`learn::STATE_*` indices, u64 values).
    pub const LEARN_STATE: &str = "LEARN_STATE";
    /// Link kind of each interface by ifindex (`link::LINK_*`, u8).
    pub const LINK_KINDS: &str = "LINK_KINDS";
    /// Per-client token buckets of the learning samples (`learn::RateBucket`; not
    /// pinned: a restart only gives every client a fresh burst).
    pub const LEARN_RATE: &str = "LEARN_RATE";
    /// Maps that are not pinned: per-packet scratch and hand-over slots, tail-call
    /// tables (pinned per load under `stages/`), and state a restart may lose.
    pub const NEW_FLOW: &str = "NEW_FLOW";
    pub const STAGES_XDP: &str = crate::stages::TABLE_XDP;
    pub const STAGES_TC: &str = crate::stages::TABLE_TC;
    pub const JOBS: &str = "JOBS";
    pub const QUALITY_ARGS: &str = "QUALITY_ARGS";
    pub const STREAM_SCRATCH: &str = "STREAM_SCRATCH";
    pub const SCRATCH_KEY: &str = "SCRATCH_KEY";
    pub const FRAGMENTS: &str = "FRAGMENTS";
    pub const HELLO_CONT: &str = "HELLO_CONT";
    /// Every map of the object that is not pinned (the loader checks the object holds
    /// exactly [`ALL`] and these).
    pub const UNPINNED: [&str; 11] = [
        LEARN_SAMPLES,
        LEARN_RATE,
        NEW_FLOW,
        STAGES_XDP,
        STAGES_TC,
        JOBS,
        QUALITY_ARGS,
        STREAM_SCRATCH,
        SCRATCH_KEY,
        FRAGMENTS,
        HELLO_CONT,
    ];
    /// Every pinned map, for checks and clean-up.
    pub const ALL: [&str; 15] = [
        FLOWS,
        MEDIA_FLOWS,
        COUNTERS,
        WEBEX_V4,
        WEBEX_V6,
        PORT_CLASS,
        SETTINGS,
        DSCP_POLICY,
        DSCP_POLICY_BY_INDEX,
        RTP_STREAMS,
        STUN_PENDING,
        MEDIA_RTT,
        MEDIA_COUNTERS,
        LEARN_STATE,
        LINK_KINDS,
    ];
}

/// Names of the kernel programs in the object.
pub mod program_names {
    pub const XDP: &str = "monitor_xdp";
    pub const TC: &str = "monitor_tc";
    /// `monitor_tc` on ingress, for `xdp_mode = "off"`.
    pub const TC_INGRESS: &str = "monitor_tc_ingress";
    /// Programs that only pass: the benchmark's floor. Never attached.
    pub const FLOOR_XDP: &str = "bench_floor_xdp";
    pub const FLOOR_TC: &str = "bench_floor_tc";
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], made only of integers and integer arrays, with
    // no padding (checked by the size tests in each module), so every bit pattern is valid.
    unsafe impl aya::Pod for crate::FlowKey {}
    unsafe impl aya::Pod for crate::FlowStats {}
    unsafe impl aya::Pod for crate::MediaFlowStats {}
    unsafe impl aya::Pod for crate::GlobalCounters {}
    unsafe impl aya::Pod for crate::Settings {}
    unsafe impl aya::Pod for crate::dscp::Policy {}
    unsafe impl aya::Pod for crate::rtp::RtpStreamKey {}
    unsafe impl aya::Pod for crate::rtp::RtpStreamState {}
    unsafe impl aya::Pod for crate::rtp::StunTxKey {}
    unsafe impl aya::Pod for crate::rtp::StunPending {}
    unsafe impl aya::Pod for crate::rtp::RttStats {}
    unsafe impl aya::Pod for crate::rtp::MediaCounters {}
    unsafe impl aya::Pod for crate::learn::LearnSample {}
    unsafe impl aya::Pod for crate::learn::RateBucket {}
    unsafe impl aya::Pod for crate::learn::HelloCont {}
}
