//! Samples for learning Webex peers by name: DNS responses and TLS ClientHellos are
//! copied (bounded) from the kernel to the daemon through a ring buffer, and parsed there.
//!
//! The kernel only decides cheaply, by protocol and port, whether a packet may be worth
//! a sample ([`candidate`]), and for TLS whether the payload starts like a ClientHello
//! ([`looks_like_client_hello`]). Everything else (DNS and TLS parsing) is userspace.

/// Bytes of the transport payload copied into a sample. A DNS response or ClientHello
/// longer than this is cut; the parser reads what is there and counts the truncation.
pub const SAMPLE_BYTES: usize = 1024;

/// Size of the ring buffer the samples go through (a power-of-two multiple of the page
/// size). About 240 samples fit; when the daemon falls behind, samples are dropped and
/// counted (`GlobalCounters::learn_sample_drops`), traffic is never held.
pub const RING_BYTES: u32 = 256 * 1024;

/// The sample is a DNS response (from port 53).
pub const KIND_DNS: u8 = 1;
/// The sample is a TLS ClientHello (to a signalling or HTTPS port).
pub const KIND_TLS: u8 = 2;

/// Bits of the value of a `WEBEX_V4`/`WEBEX_V6` entry: which sources put it there. An
/// address that is both configured and learned carries both bits; the entry goes when
/// its last bit is cleared.
pub const SOURCE_CONFIG: u32 = 1;
/// Learned from a DNS answer.
pub const SOURCE_DNS: u32 = 2;
/// Learned from a TLS ClientHello's server name.
pub const SOURCE_SNI: u32 = 4;
/// Both learned sources.
pub const SOURCE_LEARNED: u32 = SOURCE_DNS | SOURCE_SNI;

/// Transport protocols, as in the IP header.
const TCP: u8 = 6;
const UDP: u8 = 17;

/// TCP ports whose ClientHellos are sampled: HTTPS and the SIP-over-TLS ports.
pub const TLS_PORTS: [u16; 4] = [443, 5061, 5062, 8934];

/// Which kind of sample a packet could be (0: none). Only a port and protocol test, so
/// media packets pay a few comparisons and nothing else.
#[inline(always)]
pub fn candidate(protocol: u8, src_port: u16, dst_port: u16) -> u8 {
    if src_port == 53 {
        if protocol == UDP || protocol == TCP {
            return KIND_DNS;
        }
        return 0;
    }
    if protocol == TCP
        && (dst_port == 443 || dst_port == 5061 || dst_port == 5062 || dst_port == 8934)
    {
        return KIND_TLS;
    }
    0
}

/// Whether the first six payload bytes start a TLS handshake record (content type 22,
/// version 3.x) whose first message is a ClientHello (handshake type 1).
#[inline(always)]
pub fn looks_like_client_hello(head: [u8; 6]) -> bool {
    head[0] == 0x16 && head[1] == 0x03 && head[5] == 0x01
}

/// One sample as it crosses the ring buffer. `#[repr(C)]`, no implicit padding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LearnSample {
    /// [`KIND_DNS`] or [`KIND_TLS`].
    pub kind: u8,
    /// `flow::FAMILY_V4` or `flow::FAMILY_V6`.
    pub family: u8,
    pub protocol: u8,
    /// `Direction` of the program that saw it.
    pub direction: u8,
    /// Bytes of `data` that hold payload.
    pub len: u32,
    /// Payload length in the packet (more than `len` when cut).
    pub payload_len: u32,
    pub ifindex: u32,
    /// IPv4 addresses are v4-mapped, as in `FlowKey`.
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub _pad: u32,
    /// The first `len` bytes of the transport payload.
    pub data: [u8; SAMPLE_BYTES],
}

/// Index in the `LEARN_STATE` array: flows the daemon deleted because the learned
/// peer that made them Webex expired. Kept pinned so `flows_evicted` stays exact across
/// daemon restarts.
pub const STATE_FLOWS_DELETED: u32 = 0;
/// Entries of the `LEARN_STATE` array.
pub const STATE_ENTRIES: u32 = 4;

/// Size of the header before `data`.
pub const SAMPLE_HEADER: usize = 56;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(
            core::mem::size_of::<LearnSample>(),
            SAMPLE_HEADER + SAMPLE_BYTES
        );
        assert_eq!(core::mem::offset_of!(LearnSample, data), SAMPLE_HEADER);
        assert!(core::mem::align_of::<LearnSample>() <= 8);
    }

    #[test]
    fn candidates() {
        assert_eq!(candidate(UDP, 53, 40000), KIND_DNS);
        assert_eq!(candidate(TCP, 53, 40000), KIND_DNS);
        assert_eq!(candidate(1, 53, 0), 0);
        for p in TLS_PORTS {
            assert_eq!(candidate(TCP, 40000, p), KIND_TLS);
            assert_eq!(candidate(UDP, 40000, p), 0);
        }
        // Queries to a resolver and media are not sampled.
        assert_eq!(candidate(UDP, 40000, 53), 0);
        assert_eq!(candidate(UDP, 52000, 5004), 0);
        assert_eq!(candidate(TCP, 443, 40000), 0);
    }

    #[test]
    fn client_hello_head() {
        assert!(looks_like_client_hello([
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01
        ]));
        assert!(!looks_like_client_hello([
            0x17, 0x03, 0x03, 0x02, 0x00, 0x01
        ]));
        assert!(!looks_like_client_hello([
            0x16, 0x03, 0x03, 0x00, 0x40, 0x02
        ]));
    }
}
