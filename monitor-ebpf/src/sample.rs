//! Copies DNS queries and responses, TLS ClientHellos and the SYN-ACKs before them to
//! the daemon (ring buffer), which learns Webex peers from them; and the start of TLS
//! servers' first flights (ServerHello and the segment after it), whose certificates the
//! daemon checks for SSL inspection (never learning from them). Only the port test runs
//! on every packet; each sample is charged to its client's token bucket before it is
//! reserved (`learn::take_token`), so one host's flood cannot fill the ring; the copy is
//! bounded (`learn::SAMPLE_BYTES`) and done by a helper, so it also reaches paged skb data.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    },
    programs::{TcContext, XdpContext},
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use monitor_common::{
    GlobalCounters,
    flow::FAMILY_V4,
    learn::{
        HELLO_CONTINUATION_NS, KIND_TLS, KIND_TLS_SERVER, KIND_TLS_SYNACK, LearnSample,
        SAMPLE_BYTES, STATE_RATE_LIMITED, STATE_SAMPLE_COST_NS, candidate, client_is_source,
        cost_ns, hello_continues, hello_key, hello_slot, looks_like_client_hello,
        looks_like_server_hello, new_bucket, take_token,
    },
};

use crate::{
    maps::{HELLO_CONT, LEARN_RATE, LEARN_SAMPLES, LEARN_STATE},
    parse::Parsed,
};

/// Copies `len` packet bytes at `offset` into `dst`. XDP and TC have different helpers.
pub trait LoadBytes {
    /// The context pointer the helper takes.
    fn raw(&self) -> *mut c_void;
    /// # Safety
    /// `raw` must be this program type's context and `dst` valid for `len` bytes.
    unsafe fn load(raw: *mut c_void, offset: u32, dst: *mut u8, len: u32) -> i64;
}

impl LoadBytes for XdpContext {
    #[inline(always)]
    fn raw(&self) -> *mut c_void {
        self.ctx.cast()
    }
    #[inline(always)]
    unsafe fn load(raw: *mut c_void, offset: u32, dst: *mut u8, len: u32) -> i64 {
        unsafe { bpf_xdp_load_bytes(raw.cast(), offset, dst.cast(), len) }
    }
}

impl LoadBytes for TcContext {
    #[inline(always)]
    fn raw(&self) -> *mut c_void {
        self.skb.skb.cast()
    }
    #[inline(always)]
    unsafe fn load(raw: *mut c_void, offset: u32, dst: *mut u8, len: u32) -> i64 {
        unsafe { bpf_skb_load_bytes(raw.cast(), offset, dst.cast(), len) }
    }
}

/// Samples `p` when it is a DNS query or response, a TLS ClientHello (or its
/// continuation), a SYN-ACK from a TLS port, or a ServerHello segment (and the next). Inline only the port test: anything else
/// pays a few comparisons.
#[inline(always)]
pub fn sample<C: LoadBytes>(
    ctx: &C,
    p: &Parsed,
    ifindex: u32,
    direction: u8,
    counters: &mut GlobalCounters,
) {
    let kind = candidate(p.protocol, p.src_port, p.dst_port, p.tcp_flags);
    if kind == 0 || p.payload_offset == 0 {
        return;
    }
    // Scalars only: a reference would make the caller keep `Parsed` whole on its stack,
    // which the TC program cannot afford. Five arguments at most (a BPF call's limit).
    let meta = ((ifindex as u64) << 32)
        | ((p.protocol as u64) << 24)
        | ((p.family as u64) << 16)
        | ((direction as u64) << 8)
        | kind as u64;
    let offsets =
        ((p.l3_offset as u64) << 32) | ((p.payload_offset as u64) << 16) | p.ip_end as u64;
    let ports = ((p.src_port as u32) << 16) | p.dst_port as u32;
    copy::<C>(ctx.raw(), meta, offsets, ports, counters);
}

/// The rest, out of line: it is rare, and inlined it would push the callers' stack over
/// the BPF limit. The addresses are read from the packet again, here.
#[inline(never)]
fn copy<C: LoadBytes>(
    raw: *mut c_void,
    meta: u64,
    offsets: u64,
    ports: u32,
    counters: &mut GlobalCounters,
) {
    let kind = meta as u8;
    let family = (meta >> 16) as u8;
    let l3 = (offsets >> 32) as u32 & 0xffff;
    let payload = (offsets >> 16) as u32 & 0xffff;
    let ip_end = offsets as u32 & 0xffff;
    let avail = ip_end.saturating_sub(payload) as usize;
    // A SYN-ACK is sampled for its addresses alone; anything else for its payload.
    if avail == 0 && kind != KIND_TLS_SYNACK {
        return;
    }
    // Most TCP segments to or from 443 are not hellos: look before reserving. The one
    // after a ClientHello too long for its segment, on the same connection, is sampled
    // too (`learn::HelloCont`). A server's segments are looked at only on a connection
    // whose ClientHello passed here within 1 s (its slot is armed for the reply): the
    // ServerHello, and the segment after it (the certificate goes on there) for
    // `ssl_inspection`. One array read for every other segment (downloads included).
    if kind == KIND_TLS || kind == KIND_TLS_SERVER {
        let ifindex = (meta >> 32) as u32;
        let key = hello_key(ifindex, ports);
        let Some(slot) = HELLO_CONT.get_ptr_mut(hello_slot(key)) else {
            return;
        };
        // SAFETY: a live array value; racing CPUs only lose a continuation.
        if kind == KIND_TLS_SERVER && unsafe { (*slot).key != key } {
            return;
        }
        let mut head = [0u8; 6];
        // SAFETY: `head` holds 6 bytes.
        let hello = avail >= 6
            && unsafe { C::load(raw, payload, head.as_mut_ptr(), 6) } == 0
            && if kind == KIND_TLS {
                looks_like_client_hello(head)
            } else {
                looks_like_server_hello(head)
            };
        // Not a hello and not awaited on this connection: the common segment, done
        // before the clock is read.
        // SAFETY: as above.
        if !hello && unsafe { (*slot).key != key } {
            return;
        }
        let now = unsafe { bpf_ktime_get_ns() };
        // The reply's key: the same connection the other way (the same slot).
        let reply = hello_key(ifindex, ports.rotate_left(16));
        // SAFETY: as above. `until_ns` bit 0 says a ServerHello was seen (its next
        // segment is awaited) rather than awaited.
        unsafe {
            if kind == KIND_TLS {
                if hello {
                    // A continuation takes the slot; a reply only a free one (another
                    // connection's continuation is worth more than this certificate).
                    if hello_continues(head, avail) {
                        (*slot).key = key;
                        (*slot).until_ns = (now + HELLO_CONTINUATION_NS) & !1;
                    } else if (*slot).key == 0 || (*slot).until_ns < now || (*slot).key == reply {
                        (*slot).key = reply;
                        (*slot).until_ns = (now + HELLO_CONTINUATION_NS) & !1;
                    }
                } else {
                    if (*slot).key != key || (*slot).until_ns < now {
                        return;
                    }
                    // The hello is whole: now its reply is awaited.
                    (*slot).key = reply;
                    (*slot).until_ns = (now + HELLO_CONTINUATION_NS) & !1;
                }
            } else {
                if (*slot).until_ns < now {
                    return;
                }
                if (*slot).until_ns & 1 == 0 {
                    if !hello {
                        (*slot).key = 0;
                        return;
                    }
                    (*slot).until_ns = (now + HELLO_CONTINUATION_NS) | 1;
                } else {
                    (*slot).key = 0;
                }
            }
        }
    }
    // The client: the asker, whose queries and hellos it sends and to whom the answers
    // and SYN-ACKs go back. Its bucket pays for the sample.
    let mut client = [0u8; 16];
    // SAFETY: `client` holds 16 bytes.
    let client_ok = unsafe {
        let c = client.as_mut_ptr();
        let from_source = client_is_source(kind);
        if family == FAMILY_V4 {
            *c.add(10) = 0xff;
            *c.add(11) = 0xff;
            C::load(raw, l3 + if from_source { 12 } else { 16 }, c.add(12), 4) == 0
        } else {
            C::load(raw, l3 + if from_source { 8 } else { 24 }, c, 16) == 0
        }
    };
    if !client_ok || !charge(&client) {
        return;
    }
    let Some(mut entry) = LEARN_SAMPLES.reserve::<LearnSample>(0) else {
        counters.learn_sample_drops += 1;
        return;
    };
    let s = entry.as_mut_ptr();
    if kind == KIND_TLS_SYNACK {
        // SAFETY: `s` points to a reserved LearnSample; each address holds 16 bytes.
        let loaded = unsafe {
            header(s, meta, 0, 0, ports);
            addresses::<C>(raw, s, family, l3)
        };
        if loaded {
            counters.learn_samples += 1;
            entry.submit(0);
        } else {
            entry.discard(0);
        }
        return;
    }
    let len = if avail > SAMPLE_BYTES {
        SAMPLE_BYTES
    } else {
        avail
    };
    // The helper needs the length in [1, SAMPLE_BYTES] in its register, and LLVM drops
    // a plain range check as implied: mask-and-add keeps the bounds visible to the
    // verifier (avail >= 1 here, so this is the same number).
    // The volatile read hides that len >= 1 from LLVM, which would otherwise fold the
    // expression back to `len`.
    let len = unsafe { core::ptr::read_volatile(&(len as u32)) };
    let len = (len.wrapping_sub(1) & (SAMPLE_BYTES as u32 - 1)) + 1;
    // SAFETY: `s` points to a reserved LearnSample; `data` holds SAMPLE_BYTES >= len
    // bytes and each address 16.
    let loaded = unsafe {
        header(s, meta, len, avail as u32, ports);
        let data = (&raw mut (*s).data).cast::<u8>();
        addresses::<C>(raw, s, family, l3) && C::load(raw, payload, data, len) == 0
    };
    if !loaded {
        entry.discard(0);
        return;
    }
    counters.learn_samples += 1;
    entry.submit(0);
}

/// Charges one sample to `client`'s bucket (a new client starts with a full burst).
/// Whether the sample may go; when not, it is counted (`learn::STATE_RATE_LIMITED`).
#[inline(always)]
fn charge(client: &[u8; 16]) -> bool {
    let now = unsafe { bpf_ktime_get_ns() };
    let cost = match LEARN_STATE.get(STATE_SAMPLE_COST_NS) {
        Some(c) if *c != 0 => *c,
        _ => cost_ns(0),
    };
    let allowed = match LEARN_RATE.get_ptr_mut(client) {
        // SAFETY: a live map value; racing CPUs only make the count a little loose.
        Some(b) => take_token(unsafe { &mut *b }, now, cost),
        None => LEARN_RATE
            .insert(client, &new_bucket(now, cost), BPF_ANY as u64)
            .is_ok(),
    };
    if !allowed && let Some(n) = LEARN_STATE.get_ptr_mut(STATE_RATE_LIMITED) {
        // SAFETY: a live array value, shared by the CPUs: added atomically.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, 1) };
    }
    allowed
}

/// Writes the sample header from the packed scalars of [`sample`].
///
/// # Safety
/// `s` points to a reserved `LearnSample`.
#[inline(always)]
unsafe fn header(s: *mut LearnSample, meta: u64, len: u32, payload_len: u32, ports: u32) {
    unsafe {
        (*s).kind = meta as u8;
        (*s).direction = (meta >> 8) as u8;
        (*s).family = (meta >> 16) as u8;
        (*s).protocol = (meta >> 24) as u8;
        (*s).ifindex = (meta >> 32) as u32;
        (*s).len = len;
        (*s).payload_len = payload_len;
        (*s).src_port = (ports >> 16) as u16;
        (*s).dst_port = ports as u16;
        (*s)._pad = 0;
    }
}

/// Copies the packet's addresses into the sample (IPv4 v4-mapped, as in `FlowKey`).
///
/// # Safety
/// `s` points to a reserved `LearnSample`; `raw` is the program's context.
#[inline(always)]
unsafe fn addresses<C: LoadBytes>(
    raw: *mut c_void,
    s: *mut LearnSample,
    family: u8,
    l3: u32,
) -> bool {
    unsafe {
        let src = (&raw mut (*s).src_addr).cast::<u8>();
        let dst = (&raw mut (*s).dst_addr).cast::<u8>();
        if family == FAMILY_V4 {
            // v4-mapped, as in FlowKey: ::ffff:a.b.c.d.
            (*s).src_addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
            (*s).dst_addr = (*s).src_addr;
            C::load(raw, l3 + 12, src.add(12), 4) == 0 && C::load(raw, l3 + 16, dst.add(12), 4) == 0
        } else {
            C::load(raw, l3 + 8, src, 16) == 0 && C::load(raw, l3 + 24, dst, 16) == 0
        }
    }
}
