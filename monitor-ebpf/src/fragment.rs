//! Later IP fragments carry no transport header. So that they count on their flow, the
//! first fragment's ports are remembered by datagram (addresses, protocol,
//! identification) and given to the later ones, as Cilium does. A later fragment that
//! arrives before its first one (reordered), or after the entry was evicted, keeps ports
//! zero and counts on the port-less flow of its addresses; `fragments_unmatched` says how
//! often.

use core::mem::MaybeUninit;
use monitor_common::{FragKey, GlobalCounters};

use crate::{
    maps::FRAGMENTS,
    parse::{FRAG_FIRST, FRAG_LATER, IPPROTO_TCP, IPPROTO_UDP, Parsed},
};

/// Remembers a first fragment's ports, or gives a later fragment the ports of its first.
#[inline(always)]
pub fn attribute(p: &mut Parsed, counters: &mut GlobalCounters) {
    let fragment = p.fragment;
    if fragment != FRAG_FIRST && fragment != FRAG_LATER {
        return;
    }
    if p.protocol != IPPROTO_UDP && p.protocol != IPPROTO_TCP {
        return;
    }
    // Built in place (see `Parsed::copy_addrs`); every byte is written.
    let mut key = MaybeUninit::<FragKey>::uninit();
    let k = key.as_mut_ptr();
    // SAFETY: writes to the fields of a local; FragKey is 4-aligned (it holds a u32)
    // with its addresses at offsets 0 and 16.
    let key = unsafe {
        p.copy_addrs(&raw mut (*k).src_addr, &raw mut (*k).dst_addr);
        (&raw mut (*k).id).write(p.frag_id);
        (&raw mut (*k).protocol).write(p.protocol);
        (&raw mut (*k).family).write(p.family);
        (&raw mut (*k)._pad).write([0; 2]);
        key.assume_init_ref()
    };
    if fragment == FRAG_FIRST {
        let ports = (p.src_port as u32) << 16 | p.dst_port as u32;
        // Full map: LRU eviction, never a failure worth counting per packet.
        let _ = FRAGMENTS.insert(key, &ports, 0);
        return;
    }
    // SAFETY: a copy of the map value is taken at once.
    match unsafe { FRAGMENTS.get(key) }.copied() {
        Some(ports) => {
            p.src_port = (ports >> 16) as u16;
            p.dst_port = ports as u16;
            counters.fragments_matched += 1;
        }
        None => counters.fragments_unmatched += 1,
    }
}
