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
pub mod maps;
pub mod parsed;
pub mod ports;
pub mod rtp;
pub mod settings;
pub mod stages;
pub mod tunnel;

pub use class::{Class, WebexSide, classify};
pub use counters::{GlobalCounters, MalformedReason};
pub use flow::{Direction, FlowKey, FlowStats, FragKey, MediaFlowStats};
pub use settings::Settings;

/// The maps' names (`maps::<map>::NAME`), under the names the daemon has used for them.
/// They are pinned under the daemon's pin directory with these names, so a restart
/// re-adopts them.
pub mod map_names {
    use crate::maps;
    pub use maps::{
        counters::NAME as COUNTERS, dscp_by_index::NAME as DSCP_POLICY_BY_INDEX,
        dscp_policy::NAME as DSCP_POLICY, flows::NAME as FLOWS, fragments::NAME as FRAGMENTS,
        hello_cont::NAME as HELLO_CONT, jobs::NAME as JOBS, learn_rate::NAME as LEARN_RATE,
        learn_samples::NAME as LEARN_SAMPLES, learn_state::NAME as LEARN_STATE,
        link_kinds::NAME as LINK_KINDS, media_counters::NAME as MEDIA_COUNTERS,
        media_flows::NAME as MEDIA_FLOWS, media_rtt::NAME as MEDIA_RTT, new_flow::NAME as NEW_FLOW,
        port_class::NAME as PORT_CLASS, quality_args::NAME as QUALITY_ARGS,
        rtp_streams::NAME as RTP_STREAMS, scratch_key::NAME as SCRATCH_KEY,
        settings::NAME as SETTINGS, stages_tc::NAME as STAGES_TC, stages_xdp::NAME as STAGES_XDP,
        stream_scratch::NAME as STREAM_SCRATCH, stun_pending::NAME as STUN_PENDING,
        webex_v4::NAME as WEBEX_V4, webex_v6::NAME as WEBEX_V6,
    };
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
