//! RTP stream accounting, shared by the kernel (which runs it per packet) and the daemon
//! (which reads the results): RFC 7983 demultiplexing of media ports, RFC 3550 appendix
//! A.1 sequence accounting and appendix A.8 interarrival jitter, and the RTP clock rate
//! (static payload types, or inferred from timestamp vs arrival deltas).
//!
//! Everything is integer arithmetic on a `#[repr(C)]` [`RtpStreamState`], so the same
//! functions run in BPF and in the host tests.

use crate::FlowKey;

/// What the first payload byte of a packet on a media port says it is (RFC 7983), with
/// RTP and RTCP told apart by the payload-type byte (RFC 5761: RTCP packet types
/// 192–223 fall in RTP payload types 64–95 with the marker bit set).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Stun = 0,
    Dtls = 1,
    Rtp = 2,
    Rtcp = 3,
    Other = 4,
}

/// Number of [`MediaKind`]s (slots in the media counters).
pub const MEDIA_KINDS: usize = 5;

impl MediaKind {
    pub const ALL: [MediaKind; MEDIA_KINDS] =
        [Self::Stun, Self::Dtls, Self::Rtp, Self::Rtcp, Self::Other];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stun => "stun",
            Self::Dtls => "dtls",
            Self::Rtp => "rtp",
            Self::Rtcp => "rtcp",
            Self::Other => "other",
        }
    }
}

/// Demultiplexes by the first two payload bytes (RFC 7983 section 7, RFC 5761 section 4).
#[inline(always)]
pub const fn demux(first: u8, second: u8) -> MediaKind {
    match first {
        0..=3 => MediaKind::Stun,
        20..=63 => MediaKind::Dtls,
        128..=191 => {
            if second >= 192 && second <= 223 {
                MediaKind::Rtcp
            } else {
                MediaKind::Rtp
            }
        }
        _ => MediaKind::Other,
    }
}

/// Per-kind packet counters on media flows, one per CPU (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaCounters {
    /// Packets by [`MediaKind`].
    pub packets: [u64; MEDIA_KINDS],
    /// RTP packets too short for the fixed header (counted as `other`, not as RTP).
    pub rtp_truncated: u64,
    /// Inserts into the stream map the kernel refused.
    pub stream_insert_failed: u64,
    /// STUN binding requests and responses seen, and responses matched to a request.
    pub stun_requests: u64,
    pub stun_responses: u64,
    pub stun_matched: u64,
    /// TCP SYN/ACKs matched to a SYN (handshake RTT measured).
    pub handshakes_timed: u64,
    /// Streams inserted into the stream map (minus those present: evicted by the LRU).
    pub streams_created: u64,
    pub _reserved: [u64; 4],
}

impl MediaCounters {
    pub fn accumulate(&mut self, o: &MediaCounters) {
        for (a, b) in self.packets.iter_mut().zip(o.packets.iter()) {
            *a += b;
        }
        self.rtp_truncated += o.rtp_truncated;
        self.stream_insert_failed += o.stream_insert_failed;
        self.stun_requests += o.stun_requests;
        self.stun_responses += o.stun_responses;
        self.stun_matched += o.stun_matched;
        self.handshakes_timed += o.handshakes_timed;
        self.streams_created += o.streams_created;
    }
}

/// One RTP stream: a flow (interface, direction, addresses, ports) and an SSRC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RtpStreamKey {
    pub flow: FlowKey,
    pub ssrc: u32,
}

/// How the clock rate of a stream was determined.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    Unknown = 0,
    /// From the static payload-type table (RFC 3551).
    Static = 1,
    /// Inferred from timestamp deltas against arrival deltas.
    Inferred = 2,
}

impl ClockSource {
    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Static,
            2 => Self::Inferred,
            _ => Self::Unknown,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Static => "static",
            Self::Inferred => "inferred",
        }
    }
}

/// RFC 3550 A.1 constants.
pub const RTP_SEQ_MOD: u32 = 1 << 16;
pub const MAX_DROPOUT: u32 = 3000;
pub const MAX_MISORDER: u32 = 100;
pub const MIN_SEQUENTIAL: u32 = 2;

/// Sequence numbers behind the highest one whose arrival is remembered, for duplicate
/// detection (one bit each).
pub const DUP_WINDOW: u32 = 64;

/// Clock inference: the span of arrivals and the packets it needs before deciding.
pub const INFER_MIN_SPAN_NS: u64 = 200_000_000;
pub const INFER_MIN_PACKETS: u32 = 5;
/// The clock rates inference snaps to (within 10 %).
pub const INFER_RATES: [u32; 4] = [8000, 16000, 48000, 90000];

/// Largest D the jitter filter takes (2^27 timestamp units, 24 min at 90 kHz).
const MAX_D: i64 = 1 << 27;

/// `flags`: the jitter reference (ref_ts, ref_arrival_ns) is set.
pub const STREAM_HAS_REF: u32 = 1 << 0;
/// `flags`: the clock inference window is started.
pub const STREAM_INFERRING: u32 = 1 << 1;

/// The state of one RTP stream. Sequence fields follow RFC 3550 A.1 (`max_seq`,
/// `cycles` shifted by 16 as in the RFC, `base_seq`, `bad_seq`, `probation`); `jitter` is
/// A.8's integer form: 16 × the jitter in timestamp units.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RtpStreamState {
    /// Every packet of the stream, probation and duplicates included (tshark's "Pkts").
    pub packets: u64,
    /// A.1 `received` of the current sequence run (after probation; includes duplicates
    /// and late packets, so `expected - received` can go negative, as RFC 3550 A.3 says).
    pub received: u64,
    /// Expected and received of earlier runs, before a source restart re-based the
    /// sequence (A.1 `init_seq` after two sequential packets far from `max_seq`).
    pub prior_expected: u64,
    pub prior_received: u64,
    /// Packets whose sequence number was already received (within [`DUP_WINDOW`]).
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (late, not duplicates).
    pub reordered: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Arrival time of the jitter reference (the previous packet).
    pub ref_arrival_ns: u64,
    /// Arrival time of the first packet of the clock inference window.
    pub infer_arrival_ns: u64,
    /// Sum of `jitter` after each regular packet, and how many: the mean jitter as
    /// tshark defines it (regular = in timestamp order, no marker bit).
    pub jitter_sum: u64,
    pub jitter_samples: u64,
    /// Bit i: sequence number `max_seq - i` was received.
    pub window: u64,
    pub base_seq: u32,
    pub max_seq: u32,
    pub cycles: u32,
    pub bad_seq: u32,
    pub probation: u32,
    /// Times the sequence was re-based (source restart or large jump).
    pub restarts: u32,
    /// 16 × interarrival jitter in timestamp units (RFC 3550 A.8 integer form).
    pub jitter: u32,
    /// Highest `jitter` after a regular packet.
    pub max_jitter: u32,
    /// RTP timestamp of the jitter reference (the previous packet).
    pub ref_ts: u32,
    pub infer_ts: u32,
    pub infer_packets: u32,
    /// Clock rate in Hz, 0 while unknown.
    pub clock_rate: u32,
    /// [`ClockSource`] as u32.
    pub clock_source: u32,
    /// Payload type of the last packet.
    pub payload_type: u32,
    /// `STREAM_*` bits.
    pub flags: u32,
    /// Gaps in the sequence (runs of consecutive lost packets) of in-order arrivals: with
    /// the loss, the mean burst length for the E-model's BurstR. Wraps at 65536: readers
    /// take the difference between two reads.
    pub loss_bursts: u16,
    /// Packets whose RTP timestamp is ahead of the previous packet's: one per video frame
    /// (a frame's packets share a timestamp), for the frame rate. Wraps at 65536.
    pub frames: u16,
}

/// The RTP fixed-header fields the accounting uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpFields {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpFields {
    /// From the first 12 bytes of an RTP packet.
    #[inline(always)]
    pub fn from_header(h: &[u8; 12]) -> RtpFields {
        RtpFields {
            marker: h[1] & 0x80 != 0,
            payload_type: h[1] & 0x7f,
            seq: u16::from_be_bytes([h[2], h[3]]),
            timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        }
    }
}

/// Clock rate of a static payload type (RFC 3551 table 4 and 5), 0 for dynamic or
/// unassigned ones. G.722 (9) is 8000: its RTP clock is 8 kHz although it samples at 16.
#[inline(always)]
pub const fn static_clock_rate(pt: u8) -> u32 {
    match pt {
        0 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 13 | 15 | 18 => 8000,
        6 => 16000,
        10 | 11 => 44100,
        16 => 11025,
        17 => 22050,
        14 | 25 | 26 | 28 | 31 | 32 | 33 | 34 => 90000,
        _ => 0,
    }
}

/// Snaps an estimated clock rate to one of [`INFER_RATES`] within 10 %, or 0.
#[inline(always)]
pub const fn snap_rate(estimate: u64) -> u32 {
    let mut i = 0;
    while i < INFER_RATES.len() {
        let c = INFER_RATES[i] as u64;
        let diff = estimate.abs_diff(c);
        if diff * 10 <= c {
            return INFER_RATES[i];
        }
        i += 1;
    }
    0
}

/// Bits of the fixed-point clock rates of [`units_per_ns`].
const UNITS_SHIFT: u32 = 32;

/// `rate` timestamp units per nanosecond in 32.32 fixed point, rounded up, for every clock
/// rate a stream can have ([`static_clock_rate`], [`INFER_RATES`]); 0 for any other.
/// Rounded up, an arrival gap that is a whole number of units (a 20 ms packet interval)
/// converts to exactly that number.
#[inline(always)]
pub const fn units_per_ns(rate: u32) -> u64 {
    const fn fixed(rate: u64) -> u64 {
        (rate << UNITS_SHIFT).div_ceil(1_000_000_000)
    }
    match rate {
        8000 => fixed(8000),
        90000 => fixed(90000),
        48000 => fixed(48000),
        16000 => fixed(16000),
        44100 => fixed(44100),
        22050 => fixed(22050),
        11025 => fixed(11025),
        _ => 0,
    }
}

/// `ns` (at most an hour) in timestamp units of `rate` Hz, rounded down. Arrival gaps
/// under 2^32 ns (4.3 s: every gap of a stream that is not silent) take a multiply and a
/// shift instead of the 64-bit division (tens of ns in the kernel): the fixed-point rate
/// is high by less than 2^-32 units per ns, so the result is the exact quotient, or one
/// unit above it when that quotient is within `ns / 2^32` of the next unit. Longer gaps
/// and rates without a constant divide.
#[inline(always)]
pub const fn ns_to_units(ns: u64, rate: u32) -> u64 {
    let m = units_per_ns(rate);
    if m != 0 && ns >> UNITS_SHIFT == 0 {
        // ns < 2^32 and m < 2^19 (90 kHz): the product fits in 64 bits.
        (ns * m) >> UNITS_SHIFT
    } else {
        ns * rate as u64 / 1_000_000_000
    }
}

impl RtpStreamState {
    /// The state after the first packet of a new stream (A.1 source initialisation: on
    /// probation until [`MIN_SEQUENTIAL`] packets arrive in sequence).
    pub fn first(f: &RtpFields, now_ns: u64) -> RtpStreamState {
        let mut s = RtpStreamState::default();
        s.start(f, now_ns);
        s
    }

    /// [`Self::first`] in place, every field written once: the kernel starts a stream
    /// in map memory (a per-CPU scratch slot, or the stream embedded in a media flow's
    /// value, `flow::MediaFlowStats`), not on its 512-byte stack. Straight-line, the same
    /// state as a zeroed one put on probation and given the packet with [`Self::update`]
    /// (A.1 `init_seq` probation: the first of [`MIN_SEQUENTIAL`] packets; the clock
    /// reference when the payload type's rate is static, else the first inference
    /// sample); each store volatile, so that no run of zero stores becomes a `memset`
    /// call (an out-of-line byte loop on the BPF target).
    #[inline(always)]
    pub fn start(&mut self, f: &RtpFields, now_ns: u64) {
        const _: () = assert!(MIN_SEQUENTIAL == 2, "the first packet leaves one to go");
        use core::ptr::write_volatile as w;
        let rate = static_clock_rate(f.payload_type);
        let fixed = rate != 0;
        let (ref_ns, infer_ns) = if fixed { (now_ns, 0) } else { (0, now_ns) };
        let (ref_ts, infer_ts) = if fixed {
            (f.timestamp, 0)
        } else {
            (0, f.timestamp)
        };
        let (source, flags) = if fixed {
            (ClockSource::Static as u32, STREAM_HAS_REF)
        } else {
            (ClockSource::Unknown as u32, STREAM_INFERRING)
        };
        // SAFETY: stores to the fields of `self`.
        unsafe {
            w(&mut self.packets, 1);
            w(&mut self.received, 0);
            w(&mut self.prior_expected, 0);
            w(&mut self.prior_received, 0);
            w(&mut self.duplicates, 0);
            w(&mut self.reordered, 0);
            w(&mut self.first_seen_ns, now_ns);
            w(&mut self.last_seen_ns, now_ns);
            w(&mut self.ref_arrival_ns, ref_ns);
            w(&mut self.infer_arrival_ns, infer_ns);
            w(&mut self.jitter_sum, 0);
            w(&mut self.jitter_samples, 0);
            w(&mut self.window, 0);
            w(&mut self.base_seq, 0);
            w(&mut self.max_seq, f.seq as u32);
            w(&mut self.cycles, 0);
            w(&mut self.bad_seq, RTP_SEQ_MOD + 1);
            w(&mut self.probation, MIN_SEQUENTIAL - 1);
            w(&mut self.restarts, 0);
            w(&mut self.jitter, 0);
            w(&mut self.max_jitter, 0);
            w(&mut self.ref_ts, ref_ts);
            w(&mut self.infer_ts, infer_ts);
            w(&mut self.infer_packets, 0);
            w(&mut self.clock_rate, rate);
            w(&mut self.clock_source, source);
            w(&mut self.payload_type, f.payload_type as u32);
            w(&mut self.flags, flags);
            w(&mut self.loss_bursts, 0);
            w(&mut self.frames, 0);
        }
    }

    /// A.1 `init_seq`: (re)bases the sequence at `seq`. Counts of an earlier run move to
    /// `prior_*` so cumulative loss survives a restart.
    #[inline(always)]
    fn init_seq(&mut self, seq: u32) {
        if self.received != 0 {
            self.prior_expected += self.expected_run();
            self.prior_received += self.received;
        }
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.window = 1;
    }

    /// The end of probation at `seq`: the [`MIN_SEQUENTIAL`] packets in sequence that
    /// ended it all count, so the run is based at the first of them (as tshark counts a
    /// stream from its first packet: 3 lost of 300 sent is 1 %, not 3 of 299). A base
    /// before a wrap starts the run one cycle up.
    #[inline(always)]
    fn end_probation(&mut self, seq: u32) {
        self.init_seq(seq);
        let back = MIN_SEQUENTIAL - 1;
        if seq < back {
            self.cycles = RTP_SEQ_MOD;
        }
        self.base_seq = seq.wrapping_sub(back) & 0xffff;
        self.received = MIN_SEQUENTIAL as u64;
        self.window = (1u64 << MIN_SEQUENTIAL) - 1;
    }

    /// Expected packets of the current run: extended max minus base plus one.
    #[inline(always)]
    pub fn expected_run(&self) -> u64 {
        if self.received == 0 {
            return 0;
        }
        let ext_max = self.cycles as u64 + self.max_seq as u64;
        (ext_max + 1).saturating_sub(self.base_seq as u64)
    }

    /// Expected packets over all runs.
    pub fn expected(&self) -> u64 {
        self.prior_expected + self.expected_run()
    }

    /// Received packets over all runs (duplicates included, as RFC 3550 counts them).
    pub fn received_total(&self) -> u64 {
        self.prior_received + self.received
    }

    /// RFC 3550 cumulative packets lost: expected minus received; negative when
    /// duplicates outnumber losses. This is what RTCP reports and what tshark's "Lost"
    /// column shows.
    pub fn lost_rfc(&self) -> i64 {
        self.expected() as i64 - self.received_total() as i64
    }

    /// Packets really lost: expected minus distinct packets received (duplicates
    /// removed), never negative.
    pub fn lost(&self) -> u64 {
        let distinct = self.received_total().saturating_sub(self.duplicates);
        self.expected().saturating_sub(distinct)
    }

    /// A.1 `update_seq`. Returns whether the packet counts as received (not during
    /// probation, not a rejected jump).
    #[inline(always)]
    fn update_seq(&mut self, seq: u16) -> bool {
        let seq = seq as u32;
        let udelta = seq.wrapping_sub(self.max_seq) & 0xffff;
        if self.probation != 0 {
            if seq == (self.max_seq + 1) & 0xffff {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.end_probation(seq);
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if udelta == 0 {
            // The highest packet again: a duplicate.
            self.duplicates += 1;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
            if udelta > 1 {
                self.loss_bursts = self.loss_bursts.wrapping_add(1);
            }
            self.window = if udelta >= DUP_WINDOW {
                1
            } else {
                (self.window << udelta) | 1
            };
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            // A very large jump: a restart if the next packet follows it.
            if seq == self.bad_seq {
                self.restarts += 1;
                self.init_seq(seq);
            } else {
                self.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        } else {
            // Late (behind max_seq by up to MAX_MISORDER): duplicate or reordered.
            let behind = RTP_SEQ_MOD - udelta;
            if behind < DUP_WINDOW {
                let bit = 1u64 << behind;
                if self.window & bit != 0 {
                    self.duplicates += 1;
                } else {
                    self.window |= bit;
                    self.reordered += 1;
                }
            } else {
                self.reordered += 1;
            }
        }
        self.received += 1;
        true
    }

    /// Accounts one packet that arrived at `now_ns`: sequence (A.1), clock rate
    /// inference, jitter (A.8).
    ///
    /// Jitter follows A.8 (`J += |D| - ((J + 8) >> 4)`, D in timestamp units between
    /// consecutive arrivals, reordered and duplicate packets included, as the RFC and
    /// tshark 4.0 compute it). Its maximum and mean are taken over regular packets only
    /// (timestamp not behind the previous packet's, no marker bit), as tshark does.
    #[inline(always)]
    pub fn update(&mut self, f: &RtpFields, now_ns: u64) {
        self.packets += 1;
        self.last_seen_ns = now_ns;
        self.payload_type = f.payload_type as u32;
        self.update_seq(f.seq);
        if self.clock_rate == 0 {
            self.infer_clock(f.timestamp, now_ns);
        }
        let rate = self.clock_rate;
        if rate == 0 {
            return;
        }
        if self.flags & STREAM_HAS_REF == 0 {
            self.flags |= STREAM_HAS_REF;
            self.ref_ts = f.timestamp;
            self.ref_arrival_ns = now_ns;
            return;
        }
        let dts = f.timestamp.wrapping_sub(self.ref_ts) as i32;
        let in_order = dts >= 0;
        if dts > 0 {
            self.frames = self.frames.wrapping_add(1);
        }
        // Arrival difference in timestamp units. Capped at one hour so the product fits.
        let darr_ns = now_ns.saturating_sub(self.ref_arrival_ns);
        let darr_ns = if darr_ns > 3_600_000_000_000 {
            3_600_000_000_000
        } else {
            darr_ns
        };
        let darr = ns_to_units(darr_ns, rate) as i64;
        let d = darr - dts as i64;
        let d = if d < 0 { -d } else { d };
        // Capped so 16 × jitter stays far from overflow whatever the timestamps do.
        let d = if d > MAX_D { MAX_D as u32 } else { d as u32 };
        let j = self.jitter;
        self.jitter = j.wrapping_add(d).wrapping_sub((j + 8) >> 4);
        if in_order && !f.marker {
            if self.jitter > self.max_jitter {
                self.max_jitter = self.jitter;
            }
            self.jitter_sum += self.jitter as u64;
            self.jitter_samples += 1;
        }
        self.ref_ts = f.timestamp;
        self.ref_arrival_ns = now_ns;
    }

    /// Clock-rate inference for dynamic payload types: the timestamp advance over an
    /// arrival span of at least [`INFER_MIN_SPAN_NS`] and [`INFER_MIN_PACKETS`] packets,
    /// snapped to a common rate. A window that fits no rate (silence suppression,
    /// timestamp jumps) starts again.
    #[inline(always)]
    fn infer_clock(&mut self, ts: u32, now_ns: u64) {
        if self.flags & STREAM_INFERRING == 0 {
            self.flags |= STREAM_INFERRING;
            self.infer_ts = ts;
            self.infer_arrival_ns = now_ns;
            self.infer_packets = 0;
            return;
        }
        self.infer_packets += 1;
        let span = now_ns.saturating_sub(self.infer_arrival_ns);
        if span < INFER_MIN_SPAN_NS || self.infer_packets < INFER_MIN_PACKETS {
            return;
        }
        let dts = ts.wrapping_sub(self.infer_ts) as i32;
        let rate = if dts > 0 && span < 60_000_000_000 {
            snap_rate(dts as u64 * 1_000_000_000 / span)
        } else {
            0
        };
        if rate != 0 {
            self.clock_rate = rate;
            self.clock_source = ClockSource::Inferred as u32;
        } else {
            self.infer_ts = ts;
            self.infer_arrival_ns = now_ns;
            self.infer_packets = 0;
        }
    }

    /// Current interarrival jitter in milliseconds (0 while the clock rate is unknown).
    pub fn jitter_ms(&self) -> f64 {
        self.ts16_to_ms(self.jitter as f64)
    }

    /// Highest jitter after a regular packet, in milliseconds (tshark's "Max Jitter").
    pub fn max_jitter_ms(&self) -> f64 {
        self.ts16_to_ms(self.max_jitter as f64)
    }

    /// Mean jitter over regular packets, in milliseconds.
    pub fn mean_jitter_ms(&self) -> f64 {
        if self.jitter_samples == 0 {
            return 0.0;
        }
        self.ts16_to_ms(self.jitter_sum as f64 / self.jitter_samples as f64)
    }

    fn ts16_to_ms(&self, v: f64) -> f64 {
        if self.clock_rate == 0 {
            return 0.0;
        }
        v / 16.0 * 1000.0 / self.clock_rate as f64
    }
}

/// STUN (RFC 8489) message header fields the RTT measurement uses.
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;
pub const STUN_BINDING_REQUEST: u16 = 0x0001;
pub const STUN_BINDING_SUCCESS: u16 = 0x0101;
pub const STUN_BINDING_ERROR: u16 = 0x0111;
pub const STUN_HEADER_LEN: usize = 20;

/// A STUN binding request waiting for its response, keyed by the transaction ID
/// (`ifindex` is 0 today: the latest sighting of a request on any interface pairs with a
/// response seen on another interface or in the other direction).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StunTxKey {
    pub transaction_id: [u8; 12],
    pub ifindex: u32,
}

/// When the request was seen and on which flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StunPending {
    pub request_ns: u64,
    pub flow: FlowKey,
    pub _pad: u32,
}

/// Round-trip times measured on one flow (keyed by the flow of the requests), in
/// nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RttStats {
    pub last_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub sum_ns: u64,
    pub samples: u64,
    pub last_at_ns: u64,
}

impl RttStats {
    #[inline(always)]
    pub fn add(&mut self, rtt_ns: u64, now_ns: u64) {
        if self.samples == 0 || rtt_ns < self.min_ns {
            self.min_ns = rtt_ns;
        }
        if rtt_ns > self.max_ns {
            self.max_ns = rtt_ns;
        }
        self.last_ns = rtt_ns;
        self.sum_ns += rtt_ns;
        self.samples += 1;
        self.last_at_ns = now_ns;
    }
}

/// `FlowStats::handshake_rtt_ns` holds the SYN's time with this bit set until the
/// SYN/ACK arrives; then the RTT (bit clear). Readers ignore values with the bit set.
pub const HANDSHAKE_PENDING: u64 = 1 << 63;

#[cfg(test)]
mod tests;
