//! The calls in the status report (`calls[]` in `monitor status --json`).

use serde::{Deserialize, Serialize};

/// One call: the media between an inner host and a Webex peer, both directions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallStatus {
    /// The inner host (its LAN address when a LAN interface is monitored, else the
    /// address the monitored interface sees).
    pub inner_addr: String,
    /// The Webex media node.
    pub peer_addr: String,
    pub peer_port: u16,
    /// "audio", "video" or "media" (kind unknown).
    pub kind: String,
    /// Directions with media: "both", "to_webex" or "from_webex" (one-way media).
    pub direction: String,
    /// RTP packets of the measured streams (both directions).
    pub packets: u64,
    /// Loss of the worse direction, percent (duplicates not counted as received).
    pub loss_pct: f64,
    /// Interarrival jitter of the worse direction, ms.
    pub jitter_ms: f64,
    /// Latest STUN (ICE consent) round-trip time to the peer, ms; `null` when none seen.
    pub rtt_ms: Option<f64>,
    /// One-way latency estimated as RTT / 2 (an estimate: paths can be asymmetric).
    pub one_way_latency_ms_estimate: Option<f64>,
    /// ITU-T G.107 E-model MOS (README "Call quality" for the inputs).
    pub mos: f64,
    /// The codec impairment values the MOS used, e.g. "G.711".
    pub mos_codec: String,
    /// "ok", "warning" or "critical" against the `[quality]` thresholds.
    pub health: String,
    /// The thresholds breached, e.g. "jitter 41.2 ms > 30 ms".
    pub breaches: Vec<String>,
    /// Clock rate of the busiest stream in Hz (0 unknown) and how it was determined:
    /// "static" (payload type), "inferred" (timestamps vs arrivals) or "unknown".
    pub clock_rate: u32,
    pub clock_source: String,
    /// Seconds since the last packet of the call.
    pub idle_s: f64,
    /// Each direction as measured (README "Call quality": where each is measured).
    pub legs: Vec<CallLeg>,
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
    pub streams: Vec<StreamStatus>,
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
