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
    let wire_len = pkt.len();
    if let Some((p, flow)) = process(&ctx, &pkt, wire_len, ifindex, Direction::Ingress, 1) {
        crate::quality::prepare(&p, &flow, ifindex, Direction::Ingress as u8);
        crate::dscp::ingress(&p, &flow, ifindex);
        // Last: a tail call does not return.
        crate::quality::tail(&ctx, &crate::quality::QUALITY_XDP);
    }
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
    // The parser checks IP lengths against the whole skb: after the pull above, a GSO
    // super-packet's payload is still in pages beyond the linear bytes.
    let wire_len = len as usize;
    if let Some((p, flow)) = process(ctx, &pkt, wire_len, ifindex, Direction::Egress, gso_segs) {
        crate::quality::prepare(&p, &flow, ifindex, Direction::Egress as u8);
        crate::dscp::egress(ctx, &p, &flow, ifindex, gso_segs);
        // Last: a tail call does not return. The target reads the packet afresh, after any
        // DSCP rewrite.
        crate::quality::tail(ctx, &crate::quality::QUALITY_TC);
    }
}

/// Parses and accounts one packet. `segments` is the GSO segment count (0 or 1 for an
/// ordinary packet). Returns the parsed packet and its flow when it belongs to a tracked
/// flow, for the work that depends on the program (e.g. rewriting on egress).
#[inline(always)]
fn process<C: EbpfContext + crate::sample::LoadBytes>(
    ctx: &C,
    pkt: &Packet,
    wire_len: usize,
    ifindex: u32,
    direction: Direction,
    segments: u32,
) -> Option<(Parsed, FlowRef)> {
    let counters = COUNTERS.get_ptr_mut(0)?;
    // SAFETY: per-CPU value, only this program on this CPU writes it.
    let counters: &mut GlobalCounters = unsafe { &mut *counters };
    counters.seen += 1;
    match parse(pkt, wire_len) {
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
            // Before flow tracking: a DNS response from a resolver is not a Webex flow.
            crate::sample::sample(ctx, &p, ifindex, direction as u8, counters);
            // ICMP errors arriving from outside count on the flow they quote (failure
            // detectors). Ingress only: TC's stack has no room left for it.
            if matches!(direction, Direction::Ingress) && crate::failure::is_icmp_error(&p) {
                crate::failure::icmp_error(pkt, &p, ifindex, direction as u8);
            }
            let gso = segments;
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
            crate::failure::oversize(&p, &flow, gso);
            Some((p, flow))
        }
    }
}
