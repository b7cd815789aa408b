//! The entry points: thin wrappers that always return pass, over `try_*` functions.
//!
//! A pipeline of tail calls (`monitor_common::stages`) for the rare paths only:
//! `monitor_xdp` / `monitor_tc` parse and count, look the packet's flow up once and, for
//! an established flow, account it and do the per-flow work themselves
//! ([`try_established`]); a packet that gets no flow (not Webex) is counted there too.
//! The flow stage (`monitor_flow_xdp` / `monitor_flow_tc`) takes new flows, fragments
//! and ICMP errors; the quality stage (quality.rs) measures media and signalling, after
//! whichever accounted the packet. The verifier checks each on its own.

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use monitor_common::{Direction, GlobalCounters, flow::FAMILY_V4, link, stages};

use aya_ebpf::helpers::bpf_ktime_get_ns;

use crate::{
    account::{Delta, FlowRef, Looked, account, entry_flow_ptr, established, flow_key, untracked},
    maps::{COUNTERS, STAGES_TC, STAGES_XDP},
    packet::{Linear, Packet},
    parse::{Outcome, Parsed, parse},
    stage::{self, SLOT_TC, SLOT_XDP},
};

/// Bytes of headers the TC program wants in the linear part of the skb.
const TC_PULL_LEN: u32 = 256;

#[xdp]
pub fn monitor_xdp(ctx: XdpContext) -> u32 {
    let pkt = ctx.packet();
    let ifindex = ctx.ingress_ifindex() as u32;
    if try_parse(&pkt, pkt.len(), ifindex, Direction::Ingress, 1, SLOT_XDP).is_some() {
        // Last: a tail call does not return.
        match try_established(&ctx, SLOT_XDP) {
            Some(true) => {
                if crate::quality::tail(&ctx, &STAGES_XDP) {
                    count_stage_failed();
                }
            }
            Some(false) => {}
            None => {
                stage::tail(&ctx, &STAGES_XDP, stages::FLOW);
                count_stage_failed();
            }
        }
    }
    xdp_action::XDP_PASS
}

#[classifier]
pub fn monitor_tc(ctx: TcContext) -> i32 {
    try_monitor_tc(&ctx, Direction::Egress);
    TC_ACT_OK
}

/// `monitor_tc` on ingress, instead of XDP (`xdp_mode = "off"`: virtual gateways, where
/// native XDP on a veth switches it to NAPI mode). It shares the TC stages and job slot:
/// TC ingress runs in softirq and TC egress with bottom halves off, so on one CPU
/// neither runs inside the other.
#[classifier]
pub fn monitor_tc_ingress(ctx: TcContext) -> i32 {
    try_monitor_tc(&ctx, Direction::Ingress);
    TC_ACT_OK
}

#[inline(always)]
fn try_monitor_tc(ctx: &TcContext, direction: Direction) {
    // Headers of forwarded or local packets are normally linear already; pull them when
    // not, so a split header is never miscounted as malformed.
    let linear = ctx.data_end() - ctx.data();
    let len = ctx.len();
    if (linear as u32) < len && (linear as u32) < TC_PULL_LEN {
        let _ = ctx.pull_data(if len < TC_PULL_LEN { len } else { TC_PULL_LEN });
    }
    let pkt = ctx.packet();
    // SAFETY: the context pointer is valid for the program's run.
    let (ifindex, gso_segs) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).gso_segs) };
    // The parser checks IP lengths against the whole skb: after the pull above, a GSO
    // super-packet's payload is still in pages beyond the linear bytes.
    let wire_len = len as usize;
    if try_parse(&pkt, wire_len, ifindex, direction, gso_segs, SLOT_TC).is_some() {
        // Last: a tail call does not return.
        match try_established(ctx, SLOT_TC) {
            Some(true) => {
                if crate::quality::tail(ctx, &STAGES_TC) {
                    count_stage_failed();
                }
            }
            Some(false) => {}
            None => {
                stage::tail(ctx, &STAGES_TC, stages::FLOW);
                count_stage_failed();
            }
        }
    }
}

/// The flow stage on ingress, for what the entry program leaves: new flows (classified
/// and inserted), fragments, ICMP errors; with their samples and DSCP verify.
#[xdp]
pub fn monitor_flow_xdp(ctx: XdpContext) -> u32 {
    let pkt = ctx.packet();
    // Last: a tail call does not return.
    if try_flow(&ctx, &pkt, SLOT_XDP).is_some() && crate::quality::tail(&ctx, &STAGES_XDP) {
        count_stage_failed();
    }
    xdp_action::XDP_PASS
}

/// The flow stage of the TC programs: as on XDP ingress, and DSCP rewrite on egress.
#[classifier]
pub fn monitor_flow_tc(ctx: TcContext) -> i32 {
    let pkt = ctx.packet();
    // The quality program reads the packet afresh, after any DSCP rewrite.
    if try_flow(&ctx, &pkt, SLOT_TC).is_some() && crate::quality::tail(&ctx, &STAGES_TC) {
        count_stage_failed();
    }
    TC_ACT_OK
}

#[inline(always)]
fn counters() -> Option<&'static mut GlobalCounters> {
    // SAFETY: per-CPU value, only the programs running on this CPU write it, one at a time.
    COUNTERS.get_ptr_mut(0).map(|c| unsafe { &mut *c })
}

#[inline(always)]
fn count_stage_failed() {
    if let Some(c) = counters() {
        c.stage_failed += 1;
    }
}

/// Parses one packet into this CPU's job slot and counts it. `segments` is the GSO
/// segment count (0 or 1 for an ordinary packet). `Some` when it is an IP packet for the
/// flow stage.
#[inline(always)]
fn try_parse(
    pkt: &Packet,
    wire_len: usize,
    ifindex: u32,
    direction: Direction,
    segments: u32,
    slot: u32,
) -> Option<()> {
    let counters = counters()?;
    let job = stage::job(slot)?;
    counters.seen += 1;
    let link = crate::maps::link(ifindex);
    match parse(pkt, wire_len, link::is_l3(link), &mut job.parsed) {
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
        Ok(Outcome::Ip) => {
            counters.parsed += 1;
            if job.parsed.family == FAMILY_V4 {
                counters.ipv4 += 1;
            } else {
                counters.ipv6 += 1;
            }
            if job.parsed.is_fragment() {
                counters.fragments += 1;
            }
            job.ifindex = ifindex;
            job.segments = segments;
            job.direction = direction as u32;
            job.link = link as u32;
            Some(())
        }
    }
}

/// The flow stage: the job the entry program left, accounted to its flow, with the
/// per-flow work. `Some` when the packet belongs to a tracked flow (the quality stage
/// may follow).
#[inline(always)]
fn try_flow<C: EbpfContext + crate::sample::LoadBytes + crate::dscp::Apply>(
    ctx: &C,
    pkt: &Packet,
    slot: u32,
) -> Option<()> {
    let counters = counters()?;
    let job = stage::job(slot)?;
    let ifindex = job.ifindex;
    let direction = job.direction as u8;
    let gso = job.segments;
    let remote = link::remote(job.link as u8, direction);
    let p = &mut job.parsed;
    if p.is_fragment() {
        crate::fragment::attribute(p, counters);
    }
    // Before flow tracking: a DNS response from a resolver is not a Webex flow.
    crate::sample::sample(ctx, p, ifindex, direction, counters);
    // ICMP errors arriving from outside count on the flow they quote (failure detectors).
    // The gateway's own errors, which leave on egress, are counted by the detectors from
    // its IP counters instead.
    if direction == Direction::Ingress as u8 && crate::failure::is_icmp_error(p) {
        crate::failure::icmp_error(pkt, p, ifindex, direction);
    }
    account(
        ctx,
        pkt,
        counters,
        p,
        ifindex,
        direction,
        remote,
        delta(p, gso),
        job.missed,
        |flow| per_flow::<false, _>(ctx, p, flow, ifindex, direction, gso),
    )
}

/// The common case, in the entry program without a tail call: the packet of an
/// established flow (found with its one look-up), accounted with its per-flow work.
/// `None` leaves the packet to the flow stage: a miss (new flow, or not Webex), a
/// fragment (its ports come from the fragment table first) or an ICMP error from
/// outside. A packet that gets no flow (not Webex) is counted here too: `Some(false)`,
/// nothing follows; `Some(true)`: a flow's packet, the quality stage may follow. A
/// learning sample is taken here in both cases.
#[inline(always)]
fn try_established<C: EbpfContext + Linear + crate::sample::LoadBytes + crate::dscp::Apply>(
    ctx: &C,
    slot: u32,
) -> Option<bool> {
    let counters = counters()?;
    let job = stage::job(slot)?;
    let ifindex = job.ifindex;
    let direction = job.direction as u8;
    let gso = job.segments;
    job.missed = Looked::Nowhere as u32;
    let p = &job.parsed;
    if p.is_fragment()
        || (direction == Direction::Ingress as u8 && crate::failure::is_icmp_error(p))
    {
        return None;
    }
    let remote = link::remote(job.link as u8, direction);
    let (stats, media) = match entry_flow_ptr(&flow_key(p, ifindex, direction), p, remote) {
        Ok(found) => found,
        Err(Looked::MediaOnly) => {
            job.missed = Looked::MediaOnly as u32;
            return None;
        }
        Err(_) if !untracked(p, remote) => {
            job.missed = Looked::Both as u32;
            return None;
        }
        Err(_) => {
            crate::sample::sample(ctx, p, ifindex, direction, counters);
            counters.not_webex_packets += delta(p, gso).packets;
            return Some(false);
        }
    };
    crate::sample::sample(ctx, p, ifindex, direction, counters);
    let now = unsafe { bpf_ktime_get_ns() };
    let mut flow = established(counters, stats, p, delta(p, gso), now);
    // An RTP packet of the stream embedded in its media flow: accounted here, with no
    // second look-up and no tail call. Before the DSCP work, whose rewrite invalidates
    // the packet pointers.
    if !media.is_null() {
        flow.rtp_done = crate::quality::embedded(&ctx.packet(), p, media, now);
    }
    per_flow::<true, _>(ctx, p, &flow, ifindex, direction, gso);
    // Done: no quality hand-over to look at.
    Some(flow.rtp_done == 0)
}

/// What a packet adds to its flow. A GSO super-packet (`gso > 1`) carries one set of
/// headers for `gso` wire packets.
#[inline(always)]
fn delta(p: &Parsed, gso: u32) -> Delta {
    let segments = if gso > 1 { gso as u64 } else { 1 };
    Delta {
        packets: segments,
        bytes: p.ip_len as u64 + (segments - 1) * p.header_len as u64,
    }
}

/// The per-flow work on a packet's flow: oversize, the quality hand-over, DSCP. `ENTRY`:
/// called by the entry program (see the hand-over below).
#[inline(always)]
fn per_flow<const ENTRY: bool, C: crate::dscp::Apply>(
    ctx: &C,
    p: &Parsed,
    flow: &FlowRef,
    ifindex: u32,
    direction: u8,
    gso: u32,
) {
    crate::failure::oversize(p, flow, gso);
    // In the entry program, an RTP packet already accounted to its stream needs no
    // hand-over: the caller does not look for one. (The flow stage always looks: there
    // `prepare` says no for such a packet.)
    if !ENTRY || flow.rtp_done == 0 {
        crate::quality::prepare(p, flow, ifindex, direction);
    }
    // TC runs on ingress too (`monitor_tc_ingress`): there it verifies, as XDP does.
    if direction == Direction::Ingress as u8 {
        crate::dscp::ingress(p, flow, ifindex);
    } else {
        ctx.apply_dscp(p, flow, ifindex, gso);
    }
}
