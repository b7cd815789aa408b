//! Call quality in the kernel: RFC 7983 demultiplexing on media flows, per-stream RTP
//! accounting (RFC 3550 A.1 and A.8, the shared code in `monitor_common::rtp`), STUN
//! binding request/response RTT, and TCP SYN → SYN/ACK RTT on signalling flows.
//!
//! Runs after accounting, for packets of tracked flows: [`prepare`] leaves the IP header
//! offset, protocol, class and the packet's time (read once, in accounting) in a per-CPU
//! slot, [`tail`] (last in the program) tail-calls the quality program when the packet
//! needs it (media, STUN, and TCP SYNs of signalling flows). An established RTP packet
//! then costs this one tail call (accounting ran in the entry program), one stream-map
//! look-up and integer arithmetic.
//!
//! The work runs in tail-called programs with their own stack: the parser's frame has no
//! room for it. A STUN request and its response pair by transaction ID on any interface:
//! on a gateway the request leaves through the WAN interface after entering from the
//! LAN; the latest sighting (WAN egress) is the one its WAN-ingress response pairs with.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_NOEXIST, xdp_action},
    macros::xdp,
    maps::ProgramArray,
    programs::XdpContext,
};
use core::ptr::write_volatile;
use monitor_common::{
    Class, FlowKey, MediaFlowStats,
    flow::{EMBEDDED_NONE, EMBEDDED_STREAM, FAMILY_V4, FAMILY_V6},
    rtp::{
        HANDSHAKE_PENDING, MediaCounters, MediaKind, RtpFields, RtpStreamKey, RttStats,
        STUN_BINDING_ERROR, STUN_BINDING_REQUEST, STUN_BINDING_SUCCESS, STUN_HEADER_LEN,
        STUN_MAGIC_COOKIE, StunPending, StunTxKey, demux,
    },
};

use crate::{
    account::FlowRef,
    maps::{
        FLOWS, MEDIA_COUNTERS, MEDIA_FLOWS, MEDIA_RTT, QUALITY_ARGS, RTP_STREAMS, STREAM_SCRATCH,
        STUN_PENDING,
    },
    packet::Packet,
    parse::{IPPROTO_TCP, IPPROTO_UDP, Parsed},
};

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const RTP_HEADER_LEN: usize = 12;
const MAX_HEADER_OFFSET: u64 = 0xfff;

/// Classes whose packets go to the quality program (bit = class).
const QUALITY_CLASSES: u32 = 1 << Class::Audio as u32
    | 1 << Class::Video as u32
    | 1 << Class::Media as u32
    | 1 << Class::StunIce as u32
    | 1 << Class::SipSignalling as u32
    | 1 << Class::HttpsControl as u32;
/// Of those, the classes whose only quality work is timing the TCP handshake: only their
/// SYN and SYN/ACK segments go to the quality program.
const HANDSHAKE_CLASSES: u32 = 1 << Class::SipSignalling as u32 | 1 << Class::HttpsControl as u32;

/// Per-class quality work for a packet of a tracked flow, step one (call it right after
/// accounting, while the parsed facts are in registers): hands the offsets, the flow
/// facts and whether the class needs quality work to a per-CPU slot. Branch-free and
/// written to map memory, so it adds neither stack nor verifier states to the caller.
/// Step two, [`tail`], called last, tail-calls the quality program when wanted: the work
/// runs in [`monitor_quality_xdp`] / [`monitor_quality_tc`] with a fresh 512-byte stack,
/// because the parser's frame leaves no room for it.
#[inline(always)]
pub fn prepare(p: &Parsed, flow: &FlowRef, ifindex: u32, direction: u8) {
    let Some(args) = QUALITY_ARGS.get_ptr_mut(0) else {
        return;
    };
    // The class is read back from the flow in map memory, which the verifier sees as an
    // unknown value, and used without a branch.
    // SAFETY: a live map value.
    let class = unsafe { (*flow.stats).class } & 31;
    let handshake_only = (HANDSHAKE_CLASSES >> class) as u64 & 1;
    let syn = (p.tcp_flags & TCP_SYN != 0) as u64;
    let wanted =
        (QUALITY_CLASSES >> class) as u64 & 1 & ((handshake_only ^ 1) | syn) & (flow.rtp_done ^ 1);
    // Only values the caller keeps live anyway: the quality program re-reads the rest
    // of the headers from the IP header on (keeping more of the parser's results alive
    // costs the caller stack it does not have).
    let meta = (p.l3_offset as u64 & 0xffff)
        | (p.protocol as u64) << 16
        | (class as u64 & 0xf) << 24
        | (direction as u64 & 0xf) << 28
        | (ifindex as u64) << 32;
    // SAFETY: per-CPU slot, read by `tail` and the tail-called program on this CPU.
    unsafe {
        (*args)[0] = meta;
        (*args)[1] = wanted;
        (*args)[2] = flow.now;
    }
}

/// Step two: tail-calls the quality stage of `table` (`crate::stage`) if [`prepare`]
/// said so. Call it last: a tail call does not return. Returns true when the call was
/// made and failed (no program installed), for the caller to count.
#[inline(always)]
pub fn tail<C: EbpfContext>(ctx: &C, table: &ProgramArray) -> bool {
    let Some(args) = QUALITY_ARGS.get(0) else {
        return false;
    };
    if args[1] == 0 {
        return false;
    }
    crate::stage::tail(ctx, table, monitor_common::stages::QUALITY);
    true
}

/// Quality work for XDP (ingress). Always passes.
#[xdp]
pub fn monitor_quality_xdp(ctx: XdpContext) -> u32 {
    run(ctx.data(), ctx.data_end());
    xdp_action::XDP_PASS
}

/// Quality work for TC (egress). Always passes.
#[aya_ebpf::macros::classifier]
pub fn monitor_quality_tc(ctx: aya_ebpf::programs::TcContext) -> i32 {
    run(ctx.data(), ctx.data_end());
    aya_ebpf::bindings::TC_ACT_OK
}

#[inline(always)]
fn run(start: usize, end: usize) {
    let Some(args) = QUALITY_ARGS.get(0) else {
        return;
    };
    work(start, end, args[0], args[2]);
}

/// What `on_packet` packed into two registers.
struct Meta {
    l3: usize,
    l4: usize,
    payload: usize,
    ip_end: usize,
    ifindex: u32,
    direction: u8,
    tcp_flags: u8,
    family: u8,
    protocol: u8,
}

#[inline(always)]
fn work(start: usize, end: usize, meta: u64, now: u64) {
    let pkt = Packet { start, end };
    let l3 = meta & 0xffff;
    // Header offsets beyond 4 KiB do not occur (the parser follows a bounded chain of
    // headers); the mask lets the verifier prove packet reads at these offsets.
    if l3 > MAX_HEADER_OFFSET {
        return;
    }
    let l3 = (unsafe { core::ptr::read_volatile(&l3) } & MAX_HEADER_OFFSET) as usize;
    let protocol = (meta >> 16) as u8;
    let class = (meta >> 24 & 0xf) as u8;
    let signalling = class == Class::SipSignalling as u8 || class == Class::HttpsControl as u8;
    if signalling && protocol != IPPROTO_TCP || !signalling && protocol != IPPROTO_UDP {
        return;
    }
    // Size-one reads make LLVM emit a bounds test the verifier cannot use: read 8 bytes.
    let Some(h) = pkt.read::<[u8; 8]>(l3) else {
        return;
    };
    // The transport header and the end of the datagram, from the IP header.
    let (family, l4, ip_end) = if h[0] >> 4 == 4 {
        // Later fragments carry no transport header.
        if u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
            return;
        }
        let ihl = (h[0] & 0x0f) as usize * 4;
        (
            FAMILY_V4,
            l3 + ihl,
            l3 + u16::from_be_bytes([h[2], h[3]]) as usize,
        )
    } else {
        // Extension headers before the transport header: not measured (rare for media).
        if h[6] != protocol {
            return;
        }
        (
            FAMILY_V6,
            l3 + 40,
            l3 + 40 + u16::from_be_bytes([h[4], h[5]]) as usize,
        )
    };
    let tcp_flags = if signalling {
        match pkt.read::<[u8; 2]>(l4 + 12) {
            Some(f) if f[1] & TCP_SYN != 0 => f[1],
            _ => return,
        }
    } else {
        0
    };
    let m = Meta {
        l3,
        l4,
        payload: l4 + 8,
        ip_end,
        ifindex: (meta >> 32) as u32,
        direction: (meta >> 28 & 0xf) as u8,
        tcp_flags,
        family,
        protocol,
    };
    let Some(key) = flow_key(&pkt, &m) else {
        return;
    };
    if signalling {
        handshake(&key, m.tcp_flags, now);
    } else {
        media(&pkt, &m, &key, now);
    }
}

/// The packet's flow key, re-read from the headers (same as accounting builds it).
#[inline(always)]
fn flow_key(pkt: &Packet, m: &Meta) -> Option<FlowKey> {
    let mut key = FlowKey {
        src_addr: [0; 16],
        dst_addr: [0; 16],
        ifindex: m.ifindex,
        src_port: 0,
        dst_port: 0,
        protocol: m.protocol,
        family: m.family,
        direction: m.direction,
        _pad: 0,
    };
    if m.family == FAMILY_V4 {
        let a: [u8; 8] = pkt.read(m.l3 + 12)?;
        key.src_addr = FlowKey::v4_mapped([a[0], a[1], a[2], a[3]]);
        key.dst_addr = FlowKey::v4_mapped([a[4], a[5], a[6], a[7]]);
    } else {
        key.src_addr = pkt.read(m.l3 + 8)?;
        key.dst_addr = pkt.read(m.l3 + 24)?;
    }
    let ports: [u8; 4] = pkt.read(m.l4)?;
    key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
    key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some(key)
}

#[inline(always)]
fn counters() -> Option<&'static mut MediaCounters> {
    // SAFETY: per-CPU value, only this program on this CPU writes it.
    MEDIA_COUNTERS.get_ptr_mut(0).map(|c| unsafe { &mut *c })
}

#[inline(always)]
fn media(pkt: &Packet, m: &Meta, key: &FlowKey, now: u64) {
    let off = m.payload;
    if off + 2 > m.ip_end {
        return;
    }
    let Some(first) = pkt.read::<[u8; 2]>(off) else {
        return;
    };
    let Some(c) = counters() else {
        return;
    };
    let kind = demux(first[0], first[1]);
    match kind {
        MediaKind::Rtp => {
            let h = if off + RTP_HEADER_LEN <= m.ip_end {
                pkt.read::<[u8; RTP_HEADER_LEN]>(off)
            } else {
                None
            };
            match h {
                Some(h) => {
                    c.packets[MediaKind::Rtp as usize] += 1;
                    rtp(c, &h, key, now);
                }
                None => {
                    c.packets[MediaKind::Other as usize] += 1;
                    c.rtp_truncated += 1;
                }
            }
        }
        MediaKind::Stun => {
            c.packets[MediaKind::Stun as usize] += 1;
            if off + STUN_HEADER_LEN <= m.ip_end
                && let Some(h) = pkt.read::<[u8; STUN_HEADER_LEN]>(off)
            {
                stun(c, &h, key, now);
            }
        }
        other => {
            if let Some(slot) = c.packets.get_mut(other as usize) {
                *slot += 1;
            }
        }
    }
}

/// An RTP packet the entry program did not account: of another SSRC than the one
/// embedded in its media flow, the first RTP packet of a media flow created without one
/// (its first packet was STUN, say), a first fragment, or of a flow in the main table.
/// A stream in `RTP_STREAMS` first (an earlier version's streams stay there after an
/// upgrade), then the media flow's embedded one, claimed when free.
#[inline(always)]
fn rtp(c: &mut MediaCounters, h: &[u8; RTP_HEADER_LEN], flow: &FlowKey, now: u64) {
    let f = RtpFields::from_header(h);
    let key = RtpStreamKey {
        flow: *flow,
        ssrc: f.ssrc,
    };
    if let Some(s) = RTP_STREAMS.get_ptr_mut(&key) {
        // SAFETY: a live map value. Packets of one stream normally arrive on one CPU
        // (RSS); a rare concurrent update only blurs one packet's jitter sample.
        unsafe { (*s).update(&f, now) };
        return;
    }
    if let Some(m) = MEDIA_FLOWS.get_ptr_mut(flow) {
        // SAFETY: a live map value (as above for concurrent updates).
        unsafe {
            if (*m).stream_state == EMBEDDED_STREAM && (*m).ssrc == f.ssrc {
                (*m).stream.update(&f, now);
                return;
            }
            if (*m).stream_state == EMBEDDED_NONE {
                (*m).stream.start(&f, now);
                (*m).ssrc = f.ssrc;
                // Last: the daemon reads the stream only once it is marked.
                write_volatile(&mut (*m).stream_state, EMBEDDED_STREAM);
                c.streams_created += 1;
                return;
            }
        }
    }
    new_stream(c, &key, &f, now);
}

/// The RTP header of a UDP packet of a tracked flow, when its payload starts with one
/// (RFC 7983) and holds it whole; as [`work`] finds it (IPv6 with extension headers and
/// fragments are left to the quality stage, which does not measure later fragments).
#[inline(always)]
fn rtp_header(pkt: &Packet, p: &Parsed) -> Option<[u8; RTP_HEADER_LEN]> {
    if p.protocol != IPPROTO_UDP
        || p.is_fragment()
        || (p.family == FAMILY_V6 && p.l4_offset != p.l3_offset + 40)
    {
        return None;
    }
    let off = p.payload_offset as u64;
    // The parsed offsets are map memory to the verifier: bounded here (see `work`).
    if off > MAX_HEADER_OFFSET {
        return None;
    }
    let off = (unsafe { core::ptr::read_volatile(&off) } & MAX_HEADER_OFFSET) as usize;
    if off + RTP_HEADER_LEN > p.ip_end {
        return None;
    }
    let h = pkt.read::<[u8; RTP_HEADER_LEN]>(off)?;
    match demux(h[0], h[1]) {
        MediaKind::Rtp => Some(h),
        _ => None,
    }
}

/// The entry program's part (issue #15): an RTP packet of an established media flow
/// whose embedded stream is of the packet's SSRC is accounted there, with the flow's one
/// look-up and no tail call. Returns 1 when it did (the quality stage is then not
/// wanted); 0 leaves the packet to the quality stage.
#[inline(always)]
pub fn embedded(pkt: &Packet, p: &Parsed, m: *mut MediaFlowStats, now: u64) -> u64 {
    let Some(h) = rtp_header(pkt, p) else {
        return 0;
    };
    let f = RtpFields::from_header(&h);
    // SAFETY: a live map value (see `rtp` on concurrent updates).
    unsafe {
        if (*m).stream_state != EMBEDDED_STREAM || (*m).ssrc != f.ssrc {
            return 0;
        }
        (*m).stream.update(&f, now);
    }
    if let Some(c) = counters() {
        c.packets[MediaKind::Rtp as usize] += 1;
    }
    1
}

/// The flow stage's part: a new media flow's first packet, when it is RTP, starts the
/// stream embedded in the value being built (`scratch`), so the flow's one insert holds
/// it. Returns 1 when it did; the caller then calls [`count_first_stream`] with the
/// insert's result.
#[inline(always)]
pub fn first_stream(pkt: &Packet, p: &Parsed, scratch: &mut MediaFlowStats, now: u64) -> u64 {
    let Some(h) = rtp_header(pkt, p) else {
        // SAFETY: a store to this CPU's scratch value.
        unsafe { write_volatile(&mut scratch.stream_state, EMBEDDED_NONE) };
        return 0;
    };
    let f = RtpFields::from_header(&h);
    scratch.stream.start(&f, now);
    // SAFETY: stores to this CPU's scratch value.
    unsafe {
        write_volatile(&mut scratch.ssrc, f.ssrc);
        write_volatile(&mut scratch.stream_state, EMBEDDED_STREAM);
    }
    1
}

/// Counts the RTP packet that started a new flow's embedded stream: a stream created
/// when the flow was inserted; when another CPU inserted the flow first, the packet is
/// not accounted to a stream (as a lost stream insert race).
#[inline(always)]
pub fn count_first_stream(inserted: bool) {
    if let Some(c) = counters() {
        c.packets[MediaKind::Rtp as usize] += 1;
        if inserted {
            c.streams_created += 1;
        } else {
            c.stream_insert_failed += 1;
        }
    }
}

/// The first packet of a stream. Not inlined: its state lives in its own stack frame,
/// not in the per-packet path's.
#[inline(always)]
fn new_stream(c: &mut MediaCounters, key: &RtpStreamKey, f: &RtpFields, now: u64) {
    let Some(s) = STREAM_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch value, only this program on this CPU uses it.
    let s = unsafe { &mut *s };
    s.start(f, now);
    // EEXIST: another CPU created it first; this packet is then not accounted.
    if RTP_STREAMS.insert(key, s, BPF_NOEXIST as u64).is_ok() {
        c.streams_created += 1;
    } else {
        c.stream_insert_failed += 1;
    }
}

#[inline(always)]
fn stun(c: &mut MediaCounters, h: &[u8; STUN_HEADER_LEN], flow: &FlowKey, now: u64) {
    let msg_type = u16::from_be_bytes([h[0], h[1]]);
    let cookie = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if cookie != STUN_MAGIC_COOKIE {
        return;
    }
    let mut key = StunTxKey {
        transaction_id: [0; 12],
        // Any interface: a request entering from the LAN pairs with its response
        // entering from the WAN.
        ifindex: 0,
    };
    key.transaction_id.copy_from_slice(&h[8..20]);
    if msg_type == STUN_BINDING_REQUEST {
        c.stun_requests += 1;
        let pending = StunPending {
            request_ns: now,
            flow: *flow,
            _pad: 0,
        };
        let _ = STUN_PENDING.insert(&key, &pending, 0);
    } else if msg_type == STUN_BINDING_SUCCESS || msg_type == STUN_BINDING_ERROR {
        c.stun_responses += 1;
        stun_response(c, &key, flow, now);
    }
}

#[inline(always)]
fn stun_response(c: &mut MediaCounters, key: &StunTxKey, flow: &FlowKey, now: u64) {
    // SAFETY: read-only copy of a map value.
    let Some(pending) = (unsafe { STUN_PENDING.get(key) }).copied() else {
        return;
    };
    // The response enters through another interface, or leaves through the request's.
    if pending.flow.ifindex == flow.ifindex && pending.flow.direction == flow.direction {
        return;
    }
    let _ = STUN_PENDING.remove(key);
    let rtt = now.saturating_sub(pending.request_ns);
    c.stun_matched += 1;
    match MEDIA_RTT.get_ptr_mut(&pending.flow) {
        // SAFETY: a live map value.
        Some(r) => unsafe { (*r).add(rtt, now) },
        None => {
            let mut r = RttStats::default();
            r.add(rtt, now);
            let _ = MEDIA_RTT.insert(&pending.flow, &r, 0);
        }
    }
}

/// SYN: remember its time in the flow (pending bit set). SYN/ACK: find the SYN's flow
/// (the reverse key on the same interface) and turn the pending time into the RTT.
#[inline(always)]
fn handshake(key: &FlowKey, tcp_flags: u8, now: u64) {
    if tcp_flags & TCP_ACK == 0 {
        let Some(stats) = FLOWS.get_ptr_mut(key) else {
            return;
        };
        // SAFETY: a live map value; a retransmitted SYN restarts the measurement.
        unsafe {
            let v = (*stats).handshake_rtt_ns;
            if v == 0 || v & HANDSHAKE_PENDING != 0 {
                (*stats).handshake_rtt_ns = now | HANDSHAKE_PENDING;
            }
        }
        return;
    }
    let reverse = FlowKey {
        src_addr: key.dst_addr,
        dst_addr: key.src_addr,
        src_port: key.dst_port,
        dst_port: key.src_port,
        direction: key.direction ^ 1,
        ..*key
    };
    let Some(syn_flow) = FLOWS.get_ptr_mut(&reverse) else {
        return;
    };
    // SAFETY: a live map value.
    unsafe {
        let v = (*syn_flow).handshake_rtt_ns;
        if v & HANDSHAKE_PENDING != 0 {
            (*syn_flow).handshake_rtt_ns = now.saturating_sub(v & !HANDSHAKE_PENDING).max(1);
            if let Some(c) = counters() {
                c.handshakes_timed += 1;
            }
        }
    }
}
