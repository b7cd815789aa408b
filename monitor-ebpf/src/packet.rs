//! Bounds-checked access to packet bytes: the one helper every header access goes
//! through, so the verifier sees a check before each read.

use core::mem::size_of;

/// The linear bytes of a packet: `[start, end)` as the context reports them.
#[derive(Clone, Copy)]
pub struct Packet {
    pub start: usize,
    pub end: usize,
}

impl Packet {
    /// Length of the accessible bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// A pointer to a `T` at `offset`, or `None` when it would run past the end.
    /// `T` must have alignment 1 (network-types headers are byte arrays), because packet
    /// headers sit at arbitrary offsets.
    #[inline(always)]
    pub fn ptr_at<T>(&self, offset: usize) -> Option<*const T> {
        // The verifier only trusts a comparison of the packet pointer itself against
        // data_end. Reading `end` opaquely stops LLVM from dropping this check as implied
        // by the parser's earlier length checks on plain integers.
        let end = unsafe { core::ptr::read_volatile(&self.end) };
        if self.start + offset + size_of::<T>() > end {
            return None;
        }
        Some((self.start + offset) as *const T)
    }

    /// Reads a `T` at `offset` (unaligned), or `None` when out of bounds.
    #[inline(always)]
    pub fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let p = self.ptr_at::<T>(offset)?;
        // SAFETY: ptr_at checked [offset, offset + size_of::<T>()) lies in the packet.
        Some(unsafe { core::ptr::read_unaligned(p) })
    }
}

/// The packet of a program's context (XDP and TC have their own accessors).
pub trait Linear {
    fn packet(&self) -> Packet;
}

impl Linear for aya_ebpf::programs::XdpContext {
    #[inline(always)]
    fn packet(&self) -> Packet {
        Packet {
            start: self.data(),
            end: self.data_end(),
        }
    }
}

impl Linear for aya_ebpf::programs::TcContext {
    #[inline(always)]
    fn packet(&self) -> Packet {
        Packet {
            start: self.data(),
            end: self.data_end(),
        }
    }
}
