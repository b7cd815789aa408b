//! The entry points: thin wrappers that always return pass, over `try_*` functions.

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use monitor_common::{Direction, GlobalCounters};

use crate::{
    account::{Delta, FlowRef, account},
    maps::COUNTERS,
    packet::Packet,
    parse::{Outcome, Parsed, parse},
};

/// Bytes of headers the TC program wants in the linear part of the skb.
const TC_PULL_LEN: u32 = 256;

#[xdp]
pub fn monitor_xdp(ctx: XdpContext) -> u32 {
    let pkt = Packet {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    let _ = process(&ctx, &pkt, ifindex, Direction::Ingress, 1);
    xdp_action::XDP_PASS
}

#[classifier]
pub fn monitor_tc(ctx: TcContext) -> i32 {
    try_monitor_tc(&ctx);
    TC_ACT_OK
}

#[inline(always)]
fn try_monitor_tc(ctx: &TcContext) {
    // Headers of forwarded or local packets are normally linear already; pull them when
    // not, so a split header is never miscounted as malformed.
    let linear = ctx.data_end() - ctx.data();
    let len = ctx.len();
    if (linear as u32) < len && (linear as u32) < TC_PULL_LEN {
        let _ = ctx.pull_data(if len < TC_PULL_LEN { len } else { TC_PULL_LEN });
    }
    let pkt = Packet {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    // SAFETY: the context pointer is valid for the program's run.
    let (ifindex, gso_segs) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).gso_segs) };
    let _ = process(ctx, &pkt, ifindex, Direction::Egress, gso_segs);
}

/// Parses and accounts one packet. `segments` is the GSO segment count (0 or 1 for an
/// ordinary packet). Returns the parsed packet and its flow when it belongs to a tracked
/// flow, for the work that depends on the program (e.g. rewriting on egress).
#[inline(always)]
fn process<C: EbpfContext>(
    ctx: &C,
    pkt: &Packet,
    ifindex: u32,
    direction: Direction,
    segments: u32,
) -> Option<(Parsed, FlowRef)> {
    let counters = COUNTERS.get_ptr_mut(0)?;
    // SAFETY: per-CPU value, only this program on this CPU writes it.
    let counters: &mut GlobalCounters = unsafe { &mut *counters };
    counters.seen += 1;
    match parse(pkt) {
        Err(reason) => {
            if let Some(slot) = counters.malformed.get_mut(reason as usize) {
                *slot += 1;
            }
            None
        }
        Ok(Outcome::NotIp) => {
            counters.parsed += 1;
            counters.non_ip += 1;
            None
        }
        Ok(Outcome::Ip(p)) => {
            counters.parsed += 1;
            if p.family == monitor_common::flow::FAMILY_V4 {
                counters.ipv4 += 1;
            } else {
                counters.ipv6 += 1;
            }
            if p.fragment {
                counters.fragments += 1;
            }
            let segments = if segments > 1 { segments as u64 } else { 1 };
            // A GSO super-packet carries one set of headers for `segments` wire packets.
            let bytes = p.ip_len as u64 + (segments - 1) * p.header_len as u64;
            let flow = account(
                ctx,
                counters,
                &p,
                ifindex,
                direction as u8,
                Delta {
                    packets: segments,
                    bytes,
                },
            )?;
            Some((p, flow))
        }
    }
}
