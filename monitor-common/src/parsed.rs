//! What the kernel's parser learned about an IP packet ([`Parsed`]), in the crate of
//! the map types because it travels in one: the flow stage's hand-over slot
//! (`stages::Job`, the value of `maps::jobs`). Only the kernel reads it; its offsets are
//! `usize` (8 bytes on the BPF target) because the parser computes packet pointers with
//! them.

use core::ptr::write_volatile;

/// [`Parsed::fragment`]: not a fragment.
pub const FRAG_NONE: u8 = 0;
/// The first fragment (offset 0, more fragments follow): it carries the ports.
pub const FRAG_FIRST: u8 = 1;
/// A later fragment (offset above 0): no transport header.
pub const FRAG_LATER: u8 = 2;

/// What the parser learned about an IP packet. Written in place into the flow stage's
/// hand-over slot (`stages::Job`), so every field is set for every packet.
///
/// The addresses come first and the struct is 8-aligned: copies of them (into flow
/// keys) are then aligned 8-byte moves. An unaligned 16-byte copy or a run of zero
/// stores becomes a call to an out-of-line byte loop (`memcpy`/`memset`) on this target.
#[repr(C, align(8))]
pub struct Parsed {
    /// IPv4 is stored IPv4-mapped, as in `FlowKey`.
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// Offset of the IP header in the packet.
    pub l3_offset: usize,
    /// Offset of the transport header (0 for later fragments and unknown protocols).
    pub l4_offset: usize,
    /// Offset of the transport payload (0 when there is no transport header).
    pub payload_offset: usize,
    /// End of the IP datagram in the packet (the payload runs up to here).
    pub ip_end: usize,
    /// IP datagram length (header + payload) from the IP header.
    pub ip_len: u32,
    /// Bytes of IP and transport headers, for GSO accounting.
    pub header_len: u32,
    /// The fragment's identification (IPv4: 16 bits; IPv6: the fragment header's 32).
    pub frag_id: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub family: u8,
    pub protocol: u8,
    pub dscp: u8,
    /// `FRAG_*`: whether and which IP fragment this is.
    pub fragment: u8,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    pub _pad: [u8; 3],
}

impl Parsed {
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.fragment != FRAG_NONE
    }

    /// Copies the addresses to `src` and `dst` as 4-byte moves. A plain 16-byte copy
    /// into a 4-aligned key may become a `memcpy` call (an out-of-line byte loop), and
    /// zeroing the key first a `memset` call: keys are built in place, field by field.
    ///
    /// # Safety
    /// `src` and `dst` must be valid for writes and 4-aligned: the address fields of a
    /// `#[repr(C)]` key that holds a u32 and has them at offsets that are multiples of 4
    /// (`FlowKey`, `FragKey`).
    #[inline(always)]
    pub unsafe fn copy_addrs(&self, src: *mut [u8; 16], dst: *mut [u8; 16]) {
        // SAFETY: `self` is 8-aligned with its addresses at offsets 0 and 16; the caller
        // vouches for `src` and `dst`.
        unsafe {
            copy_words(&self.src_addr, src);
            copy_words(&self.dst_addr, dst);
        }
    }
}

/// # Safety
/// Both 4-aligned, `to` valid for writes.
#[inline(always)]
unsafe fn copy_words(from: &[u8; 16], to: *mut [u8; 16]) {
    let from = from.as_ptr().cast::<u32>();
    let to = to.cast::<u32>();
    for i in 0..4 {
        // SAFETY: 4-aligned (the caller) and within the 16 bytes.
        unsafe { write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
    }
}
