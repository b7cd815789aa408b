//! Floor programs for `cargo xtask bench`: they do nothing but pass, so the benchmark can
//! report the monitor's cost above the bare cost of running a program. Never attached.

use aya_ebpf::{
    bindings::{TC_ACT_OK, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

#[xdp]
pub fn bench_floor_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn bench_floor_tc(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}
