//! One call's figures from its streams: each direction at its measurement point, where
//! the loss happens (segments), the recent window, MOS per voice stream, and the health.
//!
//! Segments, per direction:
//! - to Webex: `phone_to_gateway` = sequence gaps at the LAN interface's ingress (lost
//!   between the phone and this gateway), `gateway` = packets of the same SSRC counted at
//!   LAN ingress minus those counted at WAN egress (lost inside this gateway: firewall,
//!   queue drops, a tail loss too);
//! - from Webex: `isp_from_webex` = gaps at the WAN interface's ingress (lost on the
//!   path from the Webex media node), `gateway` = WAN ingress minus LAN egress.
//!
//! A direction's loss is its entry segment's plus the gateway's: all this gateway sees.

use std::{collections::HashMap, net::IpAddr};

use monitor_common::rtp::{ClockSource, RtpStreamKey};

use super::{
    QualitySnapshot,
    calls::{CallKey, Obs, is_video, kind},
    health::{self, Figures},
    history, mos,
    tracker::{Call, Now, round2},
    window::{Counts, Track, pct},
};
use crate::{
    config::quality::QualityConfig,
    report::calls::{
        CallLeg, CallStatus, HistoryPoint, PollDelta, SegmentStatus, StreamStatus, WindowStatus,
    },
};

/// A stream with its counters over the call and the window.
struct Measured<'a, 'b> {
    o: &'b Obs<'a>,
    call: Counts,
    window: Counts,
    track: Option<&'b Track>,
}

/// Gateway loss of one direction: per SSRC, packets in minus packets out.
#[derive(Default)]
struct Through {
    by_ssrc: HashMap<u32, (u64, u64)>,
    call: (u64, u64),
    window: (u64, u64),
    /// The last poll's deltas.
    poll: (u64, u64),
}

/// One direction's totals.
#[derive(Default)]
struct Dir {
    expected: u64,
    lost: u64,
    w_expected: u64,
    w_lost: u64,
    w_jitter_ms: f64,
    /// The last poll's deltas (for the window history).
    p_expected: u64,
    p_lost: u64,
    p_jitter_ms: f64,
}

pub fn call(
    key: &CallKey,
    members: &[&Obs],
    tracks: &HashMap<RtpStreamKey, Track>,
    snap: &QualitySnapshot,
    q: &QualityConfig,
    state: &mut Call,
    now: Now,
) -> CallStatus {
    let Now {
        mono_ns: now_mono_ns,
        unix_s: now_unix_s,
    } = now;
    let measured: Vec<Measured> = members
        .iter()
        .map(|o| {
            let track = tracks.get(o.key);
            Measured {
                o,
                call: track.map(Track::in_call).unwrap_or_default(),
                window: track.map(Track::window).unwrap_or_default(),
                track,
            }
        })
        .collect();
    let idle = |ns: u64| now_mono_ns.saturating_sub(ns) as f64 / 1e9;

    let rtt_ms = rtt(members, key.peer, snap);
    let one_way = rtt_ms.map(|r| r / 2.0);

    let mut legs = Vec::new();
    let mut segments = Vec::new();
    let mut dirs = Vec::new();
    let mut voice: Vec<(f64, &'static str)> = Vec::new();
    let mut streams_out: Vec<(bool, Vec<StreamStatus>)> = Vec::new();
    for to_webex in [true, false] {
        let dir: Vec<&Measured> = measured
            .iter()
            .filter(|m| m.o.to_webex == to_webex)
            .collect();
        let Some(best) = dir.iter().map(|m| m.o.rank()).min() else {
            continue;
        };
        let first = dir.iter().find(|m| m.o.rank() == best).expect("ranked");
        let at: Vec<&Measured> = dir
            .iter()
            .filter(|m| m.o.iface == first.o.iface && m.o.ingress == first.o.ingress)
            .copied()
            .collect();
        // The gateway segment: entry (rank 0) against exit (rank 1), by SSRC.
        let entry: Vec<&Measured> = dir.iter().filter(|m| m.o.rank() == 0).copied().collect();
        let exit: Vec<&Measured> = dir.iter().filter(|m| m.o.rank() == 1).copied().collect();
        let through = through(&entry, &exit);
        let direction = if to_webex { "to_webex" } else { "from_webex" };
        if let Some(e) = entry.first() {
            let (c, w) = sums(&entry);
            segments.push(SegmentStatus {
                segment: if to_webex {
                    "phone_to_gateway"
                } else {
                    "isp_from_webex"
                }
                .to_string(),
                direction: direction.to_string(),
                measured: format!("{} gaps", e.o.point()),
                expected: c.expected,
                lost: c.lost,
                loss_pct: pct(c.lost, c.expected),
                window_expected: w.expected,
                window_lost: w.lost,
                window_loss_pct: pct(w.lost, w.expected),
            });
            if let Some(x) = exit.first() {
                segments.push(SegmentStatus {
                    segment: "gateway".to_string(),
                    direction: direction.to_string(),
                    measured: format!("{} - {}", e.o.point(), x.o.point()),
                    expected: through.call.0,
                    lost: through.call.1,
                    loss_pct: pct(through.call.1, through.call.0),
                    window_expected: through.window.0,
                    window_lost: through.window.1,
                    window_loss_pct: pct(through.window.1, through.window.0),
                });
            }
        }
        let gateway_counts = best == 0 && !exit.is_empty();
        let (c, w) = sums(&at);
        let mut d = Dir {
            expected: c.expected,
            lost: c.lost,
            w_expected: w.expected,
            w_lost: w.lost,
            w_jitter_ms: 0.0,
            p_expected: at.iter().map(|m| poll(m).expected).sum(),
            p_lost: at.iter().map(|m| poll(m).lost).sum(),
            p_jitter_ms: at.iter().map(|m| poll(m).jitter_ms).fold(0.0, f64::max),
        };
        if gateway_counts {
            d.lost += through.call.1;
            d.w_lost += through.window.1;
            d.p_lost += through.poll.1;
        }
        let mut streams = Vec::new();
        for m in &at {
            let w_jitter = m.window.mean_jitter_ms(m.o.s.clock_rate);
            d.w_jitter_ms = d.w_jitter_ms.max(w_jitter);
            let video = is_video(m.o);
            let gw = if gateway_counts {
                through
                    .by_ssrc
                    .get(&m.o.key.ssrc)
                    .copied()
                    .unwrap_or((0, 0))
            } else {
                (0, 0)
            };
            let burst_r = mos::burst_r(m.window.expected, m.window.lost, m.window.bursts);
            let stream_mos = (!video && m.window.expected >= q.min_window_packets).then(|| {
                let codec = mos::codec(m.o.s.payload_type as u8, m.o.s.clock_rate);
                let loss = pct(m.window.lost + gw.1, m.window.expected);
                let delay = one_way.unwrap_or(0.0) + 2.0 * w_jitter;
                let v = round2(mos::mos(codec, delay, loss, burst_r));
                voice.push((v, codec.name));
                v
            });
            streams.push(stream(m, video, burst_r, stream_mos, &idle));
        }
        legs.push(CallLeg {
            direction: direction.to_string(),
            measured_at: first.o.point(),
            packets: c.packets,
            expected: c.expected,
            lost: c.lost,
            loss_pct: pct(c.lost, c.expected),
            duplicates: c.duplicates,
            reordered: at.iter().map(|m| m.o.s.reordered).sum(),
            jitter_ms: at.iter().map(|m| m.o.s.jitter_ms()).fold(0.0, f64::max),
            mean_jitter_ms: at
                .iter()
                .map(|m| m.call.mean_jitter_ms(m.o.s.clock_rate))
                .fold(0.0, f64::max),
            streams: Vec::new(),
        });
        streams_out.push((to_webex, streams));
        dirs.push(d);
    }
    for (leg, (_, streams)) in legs.iter_mut().zip(streams_out) {
        leg.streams = streams;
    }

    let worse = dirs
        .iter()
        .max_by(|a, b| pct(a.w_lost, a.w_expected).total_cmp(&pct(b.w_lost, b.w_expected)));
    let loss_pct = dirs
        .iter()
        .map(|d| pct(d.lost, d.expected))
        .fold(0.0, f64::max);
    let (mos, mos_codec) = voice
        .iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(v, c)| (Some(*v), c.to_string()))
        .unwrap_or((None, String::new()));
    let w_jitter = dirs.iter().map(|d| d.w_jitter_ms).fold(0.0, f64::max);
    let sufficient = dirs.iter().any(|d| d.w_expected >= q.min_window_packets);
    let window = WindowStatus {
        seconds: q.window_s,
        expected: worse.map(|d| d.w_expected).unwrap_or(0),
        lost: worse.map(|d| d.w_lost).unwrap_or(0),
        loss_pct: worse.map(|d| pct(d.w_lost, d.w_expected)).unwrap_or(0.0),
        jitter_ms: w_jitter,
        mos,
        sufficient,
    };
    let figures = Figures {
        one_way_ms: one_way,
        jitter_ms: w_jitter,
        loss_pct: window.loss_pct,
        mos,
    };
    let (level, breaches) = health::next(q, state.level, sufficient.then_some(&figures));
    state.level = level;
    state.worst_level = state.worst_level.max(level);
    if sufficient {
        if let Some(m) = mos {
            state.mos_min = Some(state.mos_min.map_or(m, |x: f64| x.min(m)));
            state.mos_sum += m;
            state.mos_polls += 1;
        }
        let worse_than = |w: &WindowStatus| {
            window.loss_pct > w.loss_pct
                || (window.loss_pct == w.loss_pct
                    && window.mos.unwrap_or(5.0) < w.mos.unwrap_or(5.0))
        };
        if state.worst_window.as_ref().is_none_or(worse_than) {
            state.worst_window = Some(window.clone());
        }
    }
    let polled = dirs
        .iter()
        .max_by(|a, b| pct(a.p_lost, a.p_expected).total_cmp(&pct(b.p_lost, b.p_expected)));
    let window_history = history::push(
        &mut state.history,
        HistoryPoint {
            unix_s: now_unix_s,
            expected: polled.map(|d| d.p_expected).unwrap_or(0),
            lost: polled.map(|d| d.p_lost).unwrap_or(0),
            loss_pct: polled.map(|d| pct(d.p_lost, d.p_expected)).unwrap_or(0.0),
            jitter_ms: dirs.iter().map(|d| d.p_jitter_ms).fold(0.0, f64::max),
            mos,
            health: health::name(level).to_string(),
        },
    );
    let bad_segment = (level > 0 && window.loss_pct > q.loss_pct * health::CLEAR_MARGIN)
        .then(|| {
            segments
                .iter()
                .filter(|s| s.window_lost > 0)
                .max_by(|a, b| a.window_loss_pct.total_cmp(&b.window_loss_pct))
                .map(|s| s.segment.clone())
        })
        .flatten();

    let busiest = members
        .iter()
        .max_by_key(|o| o.s.packets)
        .expect("a call has a stream");
    let direction = match (
        legs.iter().any(|l| l.direction == "to_webex"),
        legs.iter().any(|l| l.direction == "from_webex"),
    ) {
        (true, true) => "both",
        (true, false) => "to_webex",
        _ => "from_webex",
    };
    CallStatus {
        id: state.id.clone(),
        inner_addr: key.inner.to_string(),
        inner_port: key.inner_port,
        peer_addr: key.peer.to_string(),
        peer_port: key.peer_port,
        duration_s: now_mono_ns.saturating_sub(state.started_mono_ns) as f64 / 1e9,
        kind: kind(members).to_string(),
        direction: direction.to_string(),
        packets: legs.iter().map(|l| l.packets).sum(),
        loss_pct,
        jitter_ms: legs.iter().map(|l| l.jitter_ms).fold(0.0, f64::max),
        rtt_ms,
        one_way_latency_ms_estimate: one_way,
        mos,
        mos_codec,
        health: health::name(level).to_string(),
        breaches,
        window,
        segments,
        bad_segment,
        clock_rate: busiest.s.clock_rate,
        clock_source: ClockSource::from_u32(busiest.s.clock_source)
            .as_str()
            .to_string(),
        idle_s: members
            .iter()
            .map(|o| idle(o.s.last_seen_ns))
            .fold(f64::INFINITY, f64::min),
        legs,
        window_history,
    }
}

/// A stream's last poll deltas (none without a track).
fn poll(m: &Measured) -> PollDelta {
    m.track.map(|t| t.last.clone()).unwrap_or_default()
}

fn sums(ms: &[&Measured]) -> (Counts, Counts) {
    let mut c = Counts::default();
    let mut w = Counts::default();
    for m in ms {
        c.add(&m.call);
        w.add(&m.window);
    }
    (c, w)
}

/// Packets of each SSRC that entered the gateway and did not leave it.
fn through(entry: &[&Measured], exit: &[&Measured]) -> Through {
    let mut t = Through::default();
    if exit.is_empty() {
        return t;
    }
    for e in entry {
        let out: Vec<&&Measured> = exit
            .iter()
            .filter(|x| x.o.key.ssrc == e.o.key.ssrc)
            .collect();
        let out_call: u64 = out.iter().map(|x| x.call.distinct()).sum();
        let out_window: u64 = out.iter().map(|x| x.window.distinct()).sum();
        let out_poll: u64 = out.iter().map(|x| poll(x).received).sum();
        let in_poll = poll(e).received;
        t.poll.0 += in_poll;
        t.poll.1 += in_poll.saturating_sub(out_poll);
        let call = (
            e.call.distinct(),
            e.call.distinct().saturating_sub(out_call),
        );
        let window = (
            e.window.distinct(),
            e.window.distinct().saturating_sub(out_window),
        );
        t.by_ssrc.insert(e.o.key.ssrc, window);
        t.call.0 += call.0;
        t.call.1 += call.1;
        t.window.0 += window.0;
        t.window.1 += window.1;
    }
    t
}

/// The latest STUN RTT between the call's inner addresses (LAN and translated) and its
/// peer.
fn rtt(members: &[&Obs], peer: IpAddr, snap: &QualitySnapshot) -> Option<f64> {
    let inner: Vec<IpAddr> = members
        .iter()
        .map(|o| {
            if o.to_webex {
                o.key.flow.src_ip()
            } else {
                o.key.flow.dst_ip()
            }
        })
        .collect();
    snap.rtt
        .iter()
        .filter(|(k, _)| k.dst_ip() == peer && inner.contains(&k.src_ip()))
        .max_by_key(|(_, r)| r.last_at_ns)
        .map(|(_, r)| r.last_ns as f64 / 1e6)
}

fn stream(
    m: &Measured,
    video: bool,
    burst_r: f64,
    mos: Option<f64>,
    idle: &dyn Fn(u64) -> f64,
) -> StreamStatus {
    let f = &m.o.key.flow;
    let s = m.o.s;
    let span = m.track.map(Track::window_span_s).unwrap_or(0.0);
    StreamStatus {
        interface: m.o.iface.clone(),
        direction: if m.o.ingress { "ingress" } else { "egress" }.to_string(),
        src_addr: f.src_ip().to_string(),
        src_port: f.src_port,
        dst_addr: f.dst_ip().to_string(),
        dst_port: f.dst_port,
        ssrc: m.o.key.ssrc,
        payload_type: s.payload_type as u8,
        packets: s.packets,
        expected: s.expected(),
        received: s.received_total(),
        lost_rfc: s.lost_rfc(),
        lost: s.lost(),
        duplicates: s.duplicates,
        reordered: s.reordered,
        restarts: s.restarts,
        jitter_ms: s.jitter_ms(),
        max_jitter_ms: s.max_jitter_ms(),
        mean_jitter_ms: s.mean_jitter_ms(),
        clock_rate: s.clock_rate,
        clock_source: ClockSource::from_u32(s.clock_source).as_str().to_string(),
        idle_s: idle(s.last_seen_ns),
        media: if video { "video" } else { "voice" }.to_string(),
        call_expected: m.call.expected,
        call_lost: m.call.lost,
        loss_bursts: m.call.bursts,
        last_poll: m.track.map(|t| t.last.clone()).unwrap_or_default(),
        window_expected: m.window.expected,
        window_lost: m.window.lost,
        window_jitter_ms: m.window.mean_jitter_ms(s.clock_rate),
        burst_r,
        mos,
        packets_per_s: per_s(m.window.packets, span),
        frames_per_s: video.then(|| per_s(m.window.frames, span)),
    }
}

/// A count over the window per second (0 for an empty window).
fn per_s(n: u64, span_s: f64) -> f64 {
    if span_s > 0.0 {
        (n as f64 / span_s * 100.0).round() / 100.0
    } else {
        0.0
    }
}
