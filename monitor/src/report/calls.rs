//! The calls in the status report (`calls[]`, `call_records[]` and `call_tracking` in
//! `monitor status --json`). A leaf: imports nothing from the crate.

use serde::{Deserialize, Serialize};

/// One call: one media 5-tuple of an inner host (joined to its NAT twin on the WAN side)
/// with a Webex peer, both directions, from its first packet until it is idle for
/// `[quality] call_idle_s`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallStatus {
    /// Short stable ID of the call (8 hex digits), also in its record.
    #[serde(default)]
    pub id: String,
    /// The inner host (its LAN address when a LAN interface is monitored, else the
    /// address the monitored interface sees).
    pub inner_addr: String,
    /// The inner host's media port (concurrent calls of one host differ here).
    #[serde(default)]
    pub inner_port: u16,
    /// The Webex media node.
    pub peer_addr: String,
    pub peer_port: u16,
    /// Seconds since the call's first packet.
    #[serde(default)]
    pub duration_s: f64,
    /// "audio", "video" or "media" (kind unknown).
    pub kind: String,
    /// Directions with media: "both", "to_webex" or "from_webex" (one-way media).
    pub direction: String,
    /// RTP packets of the measured streams (both directions) in this call.
    pub packets: u64,
    /// Whole-call loss of the worse direction, percent: every segment of it this gateway
    /// sees (README "Where the loss happens"); duplicates not counted as received.
    pub loss_pct: f64,
    /// Interarrival jitter of the worse direction, ms (now).
    pub jitter_ms: f64,
    /// Latest STUN (ICE consent) round-trip time to the peer, ms; `null` when none seen.
    pub rtt_ms: Option<f64>,
    /// One-way latency estimated as RTT / 2 (an estimate: paths can be asymmetric).
    pub one_way_latency_ms_estimate: Option<f64>,
    /// ITU-T G.107 E-model MOS of the worst voice stream over the recent window (README
    /// "Call quality"); `null` for a video-only call or before any window had enough
    /// packets.
    pub mos: Option<f64>,
    /// The codec impairment values the MOS used, e.g. "G.711"; "" without a voice MOS.
    pub mos_codec: String,
    /// "ok", "warning" or "critical": the recent window against the `[quality]`
    /// thresholds, with hysteresis (README "Call quality: health").
    pub health: String,
    /// The thresholds the recent window breaches, e.g. "jitter 41.2 ms > 30 ms".
    pub breaches: Vec<String>,
    /// The recent window (`[quality] window_s`) the health is judged on.
    #[serde(default)]
    pub window: WindowStatus,
    /// Where the loss happens, per segment (README "Where the loss happens").
    #[serde(default)]
    pub segments: Vec<SegmentStatus>,
    /// The segment with the most loss in the recent window when the call is not healthy
    /// because of loss: "phone_to_gateway", "gateway" or "isp_from_webex".
    #[serde(default)]
    pub bad_segment: Option<String>,
    /// Clock rate of the busiest stream in Hz (0 unknown) and how it was determined:
    /// "static" (payload type), "inferred" (timestamps vs arrivals) or "unknown".
    pub clock_rate: u32,
    pub clock_source: String,
    /// Seconds since the last packet of the call.
    pub idle_s: f64,
    /// Each direction as measured (README "Call quality": where each is measured).
    pub legs: Vec<CallLeg>,
    /// One point per poll of the call, oldest first, the last
    /// `call_tracking.window_history_points` (older points dropped).
    #[serde(default)]
    pub window_history: Vec<HistoryPoint>,
}

/// One poll of a call (`window_history[]`): that poll's deltas of the worse direction
/// (the loss of every segment this gateway sees, as the window counts it), and the
/// call's MOS and health as judged at that poll.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HistoryPoint {
    /// When the poll was taken, Unix seconds.
    pub unix_s: u64,
    /// Packets expected and lost in this poll (its deltas), worse direction.
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// RFC 3550 jitter at the end of the poll, worse of the measured streams, ms.
    pub jitter_ms: f64,
    /// The call's MOS at that poll (over its recent window); `null` without voice or a
    /// sufficient window.
    pub mos: Option<f64>,
    /// The call's health after that poll.
    pub health: String,
}

/// One direction of a call, at the point where it is measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallLeg {
    /// "to_webex" or "from_webex".
    pub direction: String,
    /// Interface and direction of the measurement, e.g. "lan0 ingress".
    pub measured_at: String,
    pub packets: u64,
    pub expected: u64,
    /// Packets lost (expected minus distinct packets received), never negative.
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub jitter_ms: f64,
    /// Mean jitter over this call's packets, ms.
    #[serde(default)]
    pub mean_jitter_ms: f64,
    pub streams: Vec<StreamStatus>,
}

/// A call's recent window: the per-poll deltas of its measured streams over the last
/// `seconds`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowStatus {
    /// The window's length (`[quality] window_s`).
    pub seconds: u64,
    /// Packets expected and lost in the window, worse direction (all segments seen).
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// Mean RFC 3550 jitter over the window's packets, worse direction, ms.
    pub jitter_ms: f64,
    /// MOS of the worst voice stream over the window; `null` without voice.
    pub mos: Option<f64>,
    /// True when the window holds at least `[quality] min_window_packets` expected
    /// packets: only then is the health judged (no verdict from a handful of packets).
    pub sufficient: bool,
}

/// Loss on one segment of a call's path, for one direction.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SegmentStatus {
    /// "phone_to_gateway" (gaps at LAN ingress), "gateway" (counted in minus counted
    /// out, same SSRC, both sides of this gateway) or "isp_from_webex" (gaps at WAN
    /// ingress).
    pub segment: String,
    /// "to_webex" or "from_webex".
    pub direction: String,
    /// How it is measured, e.g. "lan0 ingress gaps" or "wan0 ingress - lan0 egress".
    pub measured: String,
    /// Whole call: packets expected on the segment and lost on it.
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// The recent window.
    pub window_expected: u64,
    pub window_lost: u64,
    pub window_loss_pct: f64,
}

/// One ended call (`call_records[]`): kept for `[quality] call_record_max_age_s`, at most
/// `[quality] max_call_records` (oldest dropped first).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub inner_addr: String,
    pub inner_port: u16,
    pub peer_addr: String,
    pub peer_port: u16,
    pub kind: String,
    /// First and last packet, Unix seconds.
    pub started_unix_s: u64,
    pub ended_unix_s: u64,
    pub duration_s: f64,
    pub packets: u64,
    /// Whole-call loss of the worse direction (all segments seen), percent.
    pub loss_pct: f64,
    /// Mean jitter over the call's packets, worse direction, ms.
    pub jitter_ms: f64,
    /// Last STUN RTT, ms.
    pub rtt_ms: Option<f64>,
    /// Lowest and mean window MOS over the call's sufficient windows; `null` without
    /// voice.
    pub mos_min: Option<f64>,
    pub mos_mean: Option<f64>,
    /// The worst sufficient window (most loss, then lowest MOS), `null` if none.
    pub worst_window: Option<WindowStatus>,
    /// The worst health the call had.
    pub worst_health: String,
    /// Each direction: where it was measured and its whole-call loss.
    pub legs: Vec<RecordLeg>,
    pub segments: Vec<SegmentStatus>,
    /// The call's last `call_tracking.window_history_points` polls, oldest first.
    #[serde(default)]
    pub window_history: Vec<HistoryPoint>,
}

/// One direction of an ended call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RecordLeg {
    pub direction: String,
    pub measured_at: String,
    pub packets: u64,
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
}

/// How calls are tracked (`call_tracking`): the windows and caps in effect and what the
/// caps dropped.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CallTracking {
    pub window_s: u64,
    pub min_window_packets: u64,
    pub call_idle_s: u64,
    pub max_call_records: u64,
    pub call_record_max_age_s: u64,
    /// Calls started since the daemon started.
    pub calls_started: u64,
    /// Calls ended (became records).
    pub calls_ended: u64,
    /// Records dropped by `max_call_records` before their age was up.
    pub records_dropped: u64,
    /// The cap of each call's `window_history` (one point per poll, oldest dropped).
    #[serde(default)]
    pub window_history_points: u64,
}

/// One RTP stream (flow and SSRC) as the kernel accounts it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamStatus {
    pub interface: String,
    /// "ingress" or "egress".
    pub direction: String,
    pub src_addr: String,
    pub src_port: u16,
    pub dst_addr: String,
    pub dst_port: u16,
    pub ssrc: u32,
    pub payload_type: u8,
    /// Every packet of the stream (tshark's "Pkts").
    pub packets: u64,
    /// RFC 3550 A.1: expected, received (duplicates included) and cumulative lost
    /// (expected − received: negative when duplicates outnumber losses; tshark's "Lost").
    pub expected: u64,
    pub received: u64,
    pub lost_rfc: i64,
    /// Expected minus distinct packets received.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Sequence re-bases after a large jump (RFC 3550 A.1 restart).
    pub restarts: u32,
    /// RFC 3550 A.8 jitter now, its maximum and mean over regular packets (in timestamp
    /// order, no marker bit: as tshark's "Max Jitter" and "Mean Jitter"), ms.
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub mean_jitter_ms: f64,
    pub clock_rate: u32,
    pub clock_source: String,
    pub idle_s: f64,
    /// "voice" or "video" (90 kHz clock): a voice stream gets a MOS, a video one never.
    #[serde(default)]
    pub media: String,
    /// This call's share of the stream (the kernel's counters minus their values when
    /// the call started): expected and lost.
    #[serde(default)]
    pub call_expected: u64,
    #[serde(default)]
    pub call_lost: u64,
    /// Runs of consecutive losses in this call (for BurstR).
    #[serde(default)]
    pub loss_bursts: u64,
    /// The last poll's deltas.
    #[serde(default)]
    pub last_poll: PollDelta,
    /// The recent window: expected, lost, mean jitter (ms).
    #[serde(default)]
    pub window_expected: u64,
    #[serde(default)]
    pub window_lost: u64,
    #[serde(default)]
    pub window_jitter_ms: f64,
    /// E-model BurstR from the window's loss bursts (1 = random loss).
    #[serde(default)]
    pub burst_r: f64,
    /// Voice: MOS over the window with this stream's own loss, jitter and codec.
    #[serde(default)]
    pub mos: Option<f64>,
    /// Packets per second over the window.
    #[serde(default)]
    pub packets_per_s: f64,
    /// Video: frames per second over the window (new 90 kHz timestamps); `null` for
    /// voice.
    #[serde(default)]
    pub frames_per_s: Option<f64>,
}

/// A cumulative histogram of one window measure of the calls of one class, measured on
/// one interface (`call_histograms[]`): each call direction adds one observation per
/// completed window (`[quality] window_s` of the call with enough packets).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowHistogram {
    /// "mos", "jitter" (seconds) or "loss" (ratio 0..1).
    pub measure: String,
    /// "audio", "video" or "media".
    pub class: String,
    pub interface: String,
    /// Upper bounds of the buckets; `counts` has one more (above the last bound).
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// One observation that went into a [`WindowHistogram`], numbered so an exporter can
/// take each exactly once.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowObservation {
    pub serial: u64,
    pub measure: String,
    pub class: String,
    pub interface: String,
    pub value: f64,
}

/// One poll's change of a stream's counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PollDelta {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// RFC 3550 jitter at the end of the poll, ms.
    pub jitter_ms: f64,
}

/// Media demultiplexing and RTT measurement counters (`media` in the status JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MediaStatus {
    /// Packets on media flows by what their first byte says (RFC 7983): "stun", "dtls",
    /// "rtp", "rtcp", "other".
    pub packets: std::collections::BTreeMap<String, u64>,
    /// RTP-looking packets shorter than the RTP header (counted as "other").
    pub rtp_truncated: u64,
    /// New streams the kernel could not insert into the stream map.
    pub stream_insert_failed: u64,
    /// Streams created, and those since evicted from the full stream map (least
    /// recently seen first).
    pub streams_created: u64,
    pub streams_evicted: u64,
    /// STUN binding requests and responses seen, and responses paired with a request.
    pub stun_requests: u64,
    pub stun_responses: u64,
    pub stun_matched: u64,
    /// TCP handshakes (SYN → SYN/ACK) timed on signalling and HTTPS control flows.
    pub handshakes_timed: u64,
    /// The measured handshakes: RTT to the Webex peer's TCP stack per connection.
    pub handshakes: Vec<Handshake>,
}

/// One timed TCP handshake (the flow of the SYN).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Handshake {
    pub interface: String,
    pub direction: String,
    pub src_addr: String,
    pub src_port: u16,
    pub dst_addr: String,
    pub dst_port: u16,
    pub class: String,
    pub rtt_ms: f64,
}
