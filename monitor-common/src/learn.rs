//! Samples for learning Webex peers by name: DNS responses and TLS ClientHellos are
//! copied (bounded) from the kernel to the daemon through a ring buffer, and parsed there.
//!
//! The kernel only decides cheaply, by protocol and port, whether a packet may be worth
//! a sample ([`candidate`]), and for TLS whether the payload starts like a ClientHello
//! ([`looks_like_client_hello`]). Then it charges the sample to its client's token
//! bucket ([`take_token`], map `LEARN_RATE`): a client over its rate gets no more samples
//! for a while, so no single host can fill the ring and starve the others. Everything
//! else (DNS and TLS parsing, matching answers to queries and hellos to handshakes) is
//! userspace: see monitor/src/learn.

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
/// The sample is a DNS query (to port 53): an answer is only believed when it matches one.
pub const KIND_DNS_QUERY: u8 = 3;
/// The sample is a TCP SYN-ACK from a TLS port (no payload): the handshake a ClientHello
/// must follow to be believed.
pub const KIND_TLS_SYNACK: u8 = 4;
/// The sample is the start of a TLS server's first flight (a segment from a TLS port
/// whose payload starts with a ServerHello record) or the segment after it: on TLS 1.2
/// the server's certificate is in clear there (`ssl_inspection`; never used to learn).
pub const KIND_TLS_SERVER: u8 = 5;

/// TCP flags.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Samples a client may send per second on average by default ([`take_token`];
/// `[learn] client_rate_per_s`). A DNS client asks a few names a second.
pub const DEFAULT_RATE_PER_S: u64 = 50;
/// The burst a quiet client may send at once: two seconds' worth of its rate.
pub const RATE_BURST_NS: u64 = 2_000_000_000;
/// Clients whose buckets the kernel keeps (LRU): memory is bounded whatever the sources.
pub const RATE_CLIENTS: u32 = 8192;

/// The time one sample costs, in nanoseconds of credit, at `rate_per_s` samples a second
/// (the value the daemon writes at `STATE_SAMPLE_COST_NS`).
pub const fn cost_ns(rate_per_s: u64) -> u64 {
    match 1_000_000_000u64.checked_div(rate_per_s) {
        Some(cost) => cost,
        None => 1_000_000_000 / DEFAULT_RATE_PER_S,
    }
}

/// A client's token bucket (`LEARN_RATE` value), kept as nanoseconds of credit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateBucket {
    /// Credit: each sample costs `cost_ns`; at most [`RATE_BURST_NS`].
    pub credit_ns: u64,
    /// When the credit was last brought up to date (`bpf_ktime_get_ns`).
    pub last_ns: u64,
}

/// Whether the client of `bucket` may send one more sample costing `cost` at `now_ns`;
/// charges it when so. The credit grows with the time passed since the last call, up to
/// the burst.
#[inline(always)]
pub fn take_token(bucket: &mut RateBucket, now_ns: u64, cost: u64) -> bool {
    let elapsed = now_ns.saturating_sub(bucket.last_ns);
    let credit = bucket.credit_ns.saturating_add(elapsed);
    let credit = if credit > RATE_BURST_NS {
        RATE_BURST_NS
    } else {
        credit
    };
    if now_ns > bucket.last_ns {
        bucket.last_ns = now_ns;
    }
    if credit >= cost {
        bucket.credit_ns = credit - cost;
        true
    } else {
        bucket.credit_ns = credit;
        false
    }
}

/// A new client's bucket, already charged for its first sample.
#[inline(always)]
pub const fn new_bucket(now_ns: u64, cost: u64) -> RateBucket {
    RateBucket {
        credit_ns: RATE_BURST_NS.saturating_sub(cost),
        last_ns: now_ns,
    }
}

/// Whether the client of a sample is its source (queries and hellos: the asker sends
/// them) rather than its destination (answers and SYN-ACKs go back to the asker).
#[inline(always)]
pub const fn client_is_source(kind: u8) -> bool {
    kind == KIND_DNS_QUERY || kind == KIND_TLS
}

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

#[inline(always)]
fn tls_port(port: u16) -> bool {
    port == 443 || port == 5061 || port == 5062 || port == 8934
}

/// Which kind of sample a packet could be (0: none). Only a port, protocol and flags
/// test, so media packets pay a few comparisons and nothing else.
#[inline(always)]
pub fn candidate(protocol: u8, src_port: u16, dst_port: u16, tcp_flags: u8) -> u8 {
    if protocol != UDP && protocol != TCP {
        return 0;
    }
    if src_port == 53 {
        return KIND_DNS;
    }
    if dst_port == 53 {
        return KIND_DNS_QUERY;
    }
    if protocol == TCP {
        if tls_port(dst_port) {
            return KIND_TLS;
        }
        if tls_port(src_port) {
            if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
                return KIND_TLS_SYNACK;
            }
            if tcp_flags & TCP_SYN == 0 {
                return KIND_TLS_SERVER;
            }
        }
    }
    0
}

/// Whether the first six payload bytes start a TLS handshake record (content type 22,
/// version 3.x) whose first message is a ClientHello (handshake type 1).
#[inline(always)]
pub fn looks_like_client_hello(head: [u8; 6]) -> bool {
    head[0] == 0x16 && head[1] == 0x03 && head[5] == 0x01
}

/// Whether the first six payload bytes start a TLS handshake record whose first message
/// is a ServerHello (handshake type 2): the start of a server's first flight.
#[inline(always)]
pub fn looks_like_server_hello(head: [u8; 6]) -> bool {
    head[0] == 0x16 && head[1] == 0x03 && head[5] == 0x02
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
/// Index in the `LEARN_STATE` array: samples the kernel did not copy because their
/// client was over its rate ([`take_token`]). Written by the kernel (atomic add).
pub const STATE_RATE_LIMITED: u32 = 1;
/// How long after an unfinished ClientHello its continuation is looked for.
pub const HELLO_CONTINUATION_NS: u64 = 1_000_000_000;

/// Slots of the `HELLO_CONT` array: ClientHellos too long for their segment (a large
/// post-quantum hello spans two), whose next segment on the same connection is sampled
/// too. Direct-mapped by port: a collision only loses the older continuation.
pub const HELLO_SLOTS: u32 = 256;

/// One awaited continuation (`HELLO_CONT` value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HelloCont {
    /// [`hello_key`] of the connection (0: none).
    pub key: u64,
    /// Until when (`bpf_ktime_get_ns`) the continuation is looked for.
    pub until_ns: u64,
}

/// The slot of a connection's continuation, from its [`hello_key`]: the same
/// connection on the LAN and (after NAT, often with the same ports) the WAN link land
/// in different slots.
#[inline(always)]
pub const fn hello_slot(key: u64) -> u32 {
    let ports = key as u32;
    let ifindex = (key >> 32) as u32;
    ((ports >> 16) ^ ports ^ ifindex.wrapping_mul(0x9e37_79b9) >> 24) & (HELLO_SLOTS - 1)
}

/// The key of a connection on an interface: ifindex and both ports (never 0 for a real
/// connection: its ports are not both 0).
#[inline(always)]
pub const fn hello_key(ifindex: u32, ports: u32) -> u64 {
    ((ifindex as u64) << 32) | ports as u64
}
/// Index in the `LEARN_STATE` array: what one sample costs a client, in nanoseconds of
/// credit ([`cost_ns`] of `[learn] client_rate_per_s`), written by the daemon at start
/// (0: the default rate).
pub const STATE_SAMPLE_COST_NS: u32 = 3;

/// Whether a ClientHello record starting with `head` is longer than the `avail` payload
/// bytes of its segment (its continuation follows in the next one).
#[inline(always)]
pub fn hello_continues(head: [u8; 6], avail: usize) -> bool {
    let record = ((head[3] as usize) << 8) | head[4] as usize;
    record + 5 > avail
}
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
        assert_eq!(candidate(UDP, 53, 40000, 0), KIND_DNS);
        assert_eq!(candidate(TCP, 53, 40000, TCP_ACK), KIND_DNS);
        assert_eq!(candidate(1, 53, 0, 0), 0);
        assert_eq!(candidate(UDP, 40000, 53, 0), KIND_DNS_QUERY);
        assert_eq!(candidate(TCP, 40000, 53, TCP_ACK), KIND_DNS_QUERY);
        for p in TLS_PORTS {
            assert_eq!(candidate(TCP, 40000, p, TCP_ACK), KIND_TLS);
            assert_eq!(candidate(UDP, 40000, p, 0), 0);
            assert_eq!(candidate(TCP, p, 40000, TCP_SYN | TCP_ACK), KIND_TLS_SYNACK);
            // Later segments from the server may start its first flight (the kernel
            // then looks for a ServerHello); a bare SYN from a TLS port is nothing.
            assert_eq!(candidate(TCP, p, 40000, TCP_ACK), KIND_TLS_SERVER);
            assert_eq!(candidate(TCP, p, 40000, TCP_SYN), 0);
        }
        // Media is not sampled.
        assert_eq!(candidate(UDP, 52000, 5004, 0), 0);
        assert_eq!(candidate(ICMP, 53, 53, 0), 0);
    }

    const ICMP: u8 = 1;

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let cost = cost_ns(DEFAULT_RATE_PER_S);
        let burst = 2 * DEFAULT_RATE_PER_S;
        let mut b = new_bucket(0, cost);
        // The first sample was charged when the bucket was made: burst - 1 more now.
        let first = (0..1000).filter(|_| take_token(&mut b, 0, cost)).count() as u64;
        assert_eq!(first, burst - 1);
        // One second later: exactly the rate more.
        let next = (0..1000)
            .filter(|_| take_token(&mut b, 1_000_000_000, cost))
            .count() as u64;
        assert_eq!(next, DEFAULT_RATE_PER_S);
        // A long silence refills to the burst, not beyond.
        let later = (0..1000)
            .filter(|_| take_token(&mut b, 1_000_000_000_000, cost))
            .count() as u64;
        assert_eq!(later, burst);
        // A clock going backwards (another CPU's older stamp) gives nothing, and does
        // not move the bucket's time back.
        assert!(!take_token(&mut b, 5, cost));
        assert_eq!(b.last_ns, 1_000_000_000_000);
        // Another rate: 1000 a second allows a burst of 2000.
        let fast = cost_ns(1000);
        let mut b = new_bucket(0, fast);
        assert_eq!(
            (0..5000).filter(|_| take_token(&mut b, 0, fast)).count(),
            1999
        );
        assert_eq!(cost_ns(0), cost);
    }

    #[test]
    fn continuation_slots_are_in_range_and_keys_distinct() {
        for (s, d) in [(40000u32, 443u32), (443, 40000), (65535, 65535), (0, 0)] {
            assert!(hello_slot(hello_key(7, (s << 16) | d)) < HELLO_SLOTS);
        }
        // One connection on two links: two slots.
        let ports = (40000 << 16) | 443;
        assert_ne!(
            hello_slot(hello_key(2, ports)),
            hello_slot(hello_key(3, ports))
        );
        assert_ne!(
            hello_key(2, (40000 << 16) | 443),
            hello_key(3, (40000 << 16) | 443)
        );
        assert_ne!(hello_key(2, (40000 << 16) | 443), 0);
    }

    #[test]
    fn long_hellos_continue() {
        let head = [0x16, 0x03, 0x01, 0x06, 0x00, 0x01];
        assert!(hello_continues(head, 1000));
        assert!(!hello_continues(head, 0x600 + 5));
    }

    #[test]
    fn clients_are_the_askers() {
        assert!(client_is_source(KIND_DNS_QUERY));
        assert!(client_is_source(KIND_TLS));
        assert!(!client_is_source(KIND_DNS));
        assert!(!client_is_source(KIND_TLS_SYNACK));
        assert!(!client_is_source(KIND_TLS_SERVER));
    }

    #[test]
    fn server_hello_head() {
        assert!(looks_like_server_hello([
            0x16, 0x03, 0x03, 0x00, 0x5a, 0x02
        ]));
        assert!(!looks_like_server_hello([
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01
        ]));
        assert!(!looks_like_server_hello([
            0x17, 0x03, 0x03, 0x00, 0x5a, 0x02
        ]));
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
