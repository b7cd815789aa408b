//! DSCP verification (both directions) and rewrite (TC egress) of Webex packets.
//!
//! Runs after accounting, only for packets of a tracked Webex flow: one array look-up of
//! the interface's policy (a hash look-up for an ifindex beyond the array), then atomic
//! adds on the flow. A rewrite changes only the DS
//! field (IPv4: DSCP bits of the TOS byte plus the header checksum, incrementally; IPv6:
//! DSCP bits of the traffic class), never ECN, and goes through the skb load/store
//! helpers, so it works whether or not the headers are in the skb's linear part.

use aya_ebpf::programs::{TcContext, XdpContext};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use monitor_common::{
    Class, FlowStats,
    dscp::{Mode, Policy, Verdict, csum_update, ipv4_tos_with_dscp, ipv6_with_dscp},
    flow::FAMILY_V4,
    link::LINK_KIND_ENTRIES,
};

use crate::{
    account::FlowRef,
    maps::{DSCP_BY_INDEX, DSCP_POLICY},
    parse::Parsed,
};

/// Offsets in the IPv4 header.
const IPV4_TOS: usize = 1;
const IPV4_CHECK: usize = 10;

/// The flow's class and the interface's policy, or `None` for flows that are not Webex
/// or interfaces without a policy.
///
/// The class is read back from the flow map value rather than taken from `FlowRef`: on
/// the new-flow path `FlowRef::class` is a different constant on every classification
/// branch, and indexing the expected marks with it would make the verifier track each
/// one separately through the rest of the program (it exceeded the 1M instruction limit).
/// A value loaded from a map is one unknown scalar on every path, so states merge.
#[inline(always)]
fn policy(flow: &FlowRef, ifindex: u32) -> Option<(u32, &'static Policy)> {
    if matches!(flow.class, Class::NotWebex) {
        return None;
    }
    // SAFETY: a live flow map value.
    let class = unsafe { core::ptr::read_volatile(&raw const (*flow.stats).class) };
    if ifindex < LINK_KIND_ENTRIES {
        DSCP_BY_INDEX.get(ifindex).map(|p| (class, p))
    } else {
        // SAFETY: a map value, read only.
        unsafe { DSCP_POLICY.get(&ifindex) }.map(|p| (class, p))
    }
}

/// The DSCP work of each program type: verify on ingress (XDP), verify or rewrite on
/// egress (TC).
pub trait Apply {
    /// `segments`: the GSO segment count (0 or 1 for an ordinary packet).
    fn apply_dscp(&self, p: &Parsed, flow: &FlowRef, ifindex: u32, segments: u32);
}

impl Apply for XdpContext {
    #[inline(always)]
    fn apply_dscp(&self, p: &Parsed, flow: &FlowRef, ifindex: u32, _segments: u32) {
        ingress(p, flow, ifindex);
    }
}

impl Apply for TcContext {
    #[inline(always)]
    fn apply_dscp(&self, p: &Parsed, flow: &FlowRef, ifindex: u32, segments: u32) {
        egress(self, p, flow, ifindex, segments);
    }
}

/// Ingress (XDP): count the packet's mark against its class's expected mark.
#[inline(always)]
pub fn ingress(p: &Parsed, flow: &FlowRef, ifindex: u32) {
    let Some((class, policy)) = policy(flow, ifindex) else {
        return;
    };
    if Mode::from_u8(policy.ingress) == Mode::Off {
        return;
    }
    match policy.judge(class, p.dscp) {
        Verdict::Ignore => {}
        Verdict::Match => add(flow.stats, Counter::Match, 1),
        Verdict::Mismatch(_) => add(flow.stats, Counter::Mismatch, 1),
    }
}

/// Egress (TC): count, and in rewrite mode set the expected mark. `segments` is the GSO
/// segment count (a super-packet's header is copied into every segment).
#[inline(always)]
pub fn egress(ctx: &TcContext, p: &Parsed, flow: &FlowRef, ifindex: u32, segments: u32) {
    let Some((class, policy)) = policy(flow, ifindex) else {
        return;
    };
    let mode = Mode::from_u8(policy.egress);
    if mode == Mode::Off {
        return;
    }
    let segments = if segments > 1 { segments as u64 } else { 1 };
    match policy.judge(class, p.dscp) {
        Verdict::Ignore => {}
        Verdict::Match => add(flow.stats, Counter::Match, segments),
        Verdict::Mismatch(want) => {
            if mode == Mode::Rewrite
                && rewrite(ctx, p.l3_offset, p.family == FAMILY_V4, want).is_some()
            {
                // On the wire the packet now carries the expected mark.
                add(flow.stats, Counter::Match, segments);
                add(flow.stats, Counter::Rewritten, segments);
            } else {
                add(flow.stats, Counter::Mismatch, segments);
            }
        }
    }
}

/// Sets the DSCP of the packet's IP header to `dscp`, keeping ECN. `None` when a helper
/// failed (the packet is then left as it was: the checksum is written last, and only
/// after the TOS store succeeded). A BPF subprogram of its own: its stack is not added
/// to the parser's and accounting's in the program's frame, and it only runs for packets
/// that need a new mark.
#[inline(never)]
fn rewrite(ctx: &TcContext, l3: usize, v4: bool, dscp: u8) -> Option<()> {
    if v4 {
        let first: [u8; 2] = ctx.load(l3).ok()?;
        let check: [u8; 2] = ctx.load(l3 + IPV4_CHECK).ok()?;
        let tos = ipv4_tos_with_dscp(first[1], dscp);
        let check = csum_update(
            u16::from_be_bytes(check),
            u16::from_be_bytes(first),
            u16::from_be_bytes([first[0], tos]),
        )
        .to_be_bytes();
        ctx.store(l3 + IPV4_TOS, &tos, 0).ok()?;
        if ctx.store(l3 + IPV4_CHECK, &check, 0).is_err() {
            // Put the old TOS back rather than leave a packet with a bad checksum.
            let _ = ctx.store(l3 + IPV4_TOS, &first[1], 0);
            return None;
        }
    } else {
        let first: [u8; 2] = ctx.load(l3).ok()?;
        ctx.store(l3, &ipv6_with_dscp(first, dscp), 0).ok()?;
    }
    Some(())
}

#[derive(Clone, Copy)]
enum Counter {
    Match,
    Mismatch,
    Rewritten,
}

#[inline(always)]
fn add(stats: *mut FlowStats, counter: Counter, n: u64) {
    // SAFETY: a live flow map value; the BPF atomic add (see account.rs).
    unsafe {
        let field = match counter {
            Counter::Match => &raw mut (*stats).dscp_match,
            Counter::Mismatch => &raw mut (*stats).dscp_mismatch,
            Counter::Rewritten => &raw mut (*stats).dscp_rewritten,
        };
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(field, n);
    }
}
