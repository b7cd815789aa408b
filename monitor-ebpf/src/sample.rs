//! Copies DNS responses and TLS ClientHellos to the daemon (ring buffer), which learns
//! Webex peers from them. Only the port test runs on every packet; the copy is bounded
//! (`learn::SAMPLE_BYTES`) and done by a helper, so it also reaches paged skb data.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use monitor_common::{
    GlobalCounters,
    flow::FAMILY_V4,
    learn::{KIND_TLS, LearnSample, SAMPLE_BYTES, candidate, looks_like_client_hello},
};

use crate::{maps::LEARN_SAMPLES, parse::Parsed};

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

/// Samples `p` when it is a DNS response or a TLS ClientHello. Inline only the port
/// test: anything else pays a few comparisons.
#[inline(always)]
pub fn sample<C: LoadBytes>(
    ctx: &C,
    p: &Parsed,
    ifindex: u32,
    direction: u8,
    counters: &mut GlobalCounters,
) {
    let kind = candidate(p.protocol, p.src_port, p.dst_port);
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
    let direction = (meta >> 8) as u8;
    let family = (meta >> 16) as u8;
    let protocol = (meta >> 24) as u8;
    let ifindex = (meta >> 32) as u32;
    let l3 = (offsets >> 32) as u32 & 0xffff;
    let payload = (offsets >> 16) as u32 & 0xffff;
    let ip_end = offsets as u32 & 0xffff;
    let avail = ip_end.saturating_sub(payload) as usize;
    if avail == 0 {
        return;
    }
    // Most TCP segments to 443 are not ClientHellos: look before reserving.
    if kind == KIND_TLS {
        let mut head = [0u8; 6];
        // SAFETY: `head` holds 6 bytes.
        if avail < 6
            || unsafe { C::load(raw, payload, head.as_mut_ptr(), 6) } != 0
            || !looks_like_client_hello(head)
        {
            return;
        }
    }
    let Some(mut entry) = LEARN_SAMPLES.reserve::<LearnSample>(0) else {
        counters.learn_sample_drops += 1;
        return;
    };
    let s = entry.as_mut_ptr();
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
        (*s).kind = kind;
        (*s).family = family;
        (*s).protocol = protocol;
        (*s).direction = direction;
        (*s).len = len;
        (*s).payload_len = avail as u32;
        (*s).ifindex = ifindex;
        (*s).src_port = (ports >> 16) as u16;
        (*s).dst_port = ports as u16;
        (*s)._pad = 0;
        let src = (&raw mut (*s).src_addr).cast::<u8>();
        let dst = (&raw mut (*s).dst_addr).cast::<u8>();
        let addrs_ok = if family == FAMILY_V4 {
            // v4-mapped, as in FlowKey: ::ffff:a.b.c.d.
            (*s).src_addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
            (*s).dst_addr = (*s).src_addr;
            C::load(raw, l3 + 12, src.add(12), 4) == 0 && C::load(raw, l3 + 16, dst.add(12), 4) == 0
        } else {
            C::load(raw, l3 + 8, src, 16) == 0 && C::load(raw, l3 + 24, dst, 16) == 0
        };
        let data = (&raw mut (*s).data).cast::<u8>();
        addrs_ok && C::load(raw, payload, data, len) == 0
    };
    if !loaded {
        entry.discard(0);
        return;
    }
    counters.learn_samples += 1;
    entry.submit(0);
}
