//! From streams to calls.
//!
//! A call is the media between an inner host and a Webex peer. On a gateway each RTP
//! stream is seen up to twice per direction (LAN side and WAN side of the NAT, which
//! are different flows: the WAN side carries the translated address). Each direction of
//! a call is measured where it enters the gateway, which is where its received quality
//! is known: media to Webex on the LAN interface's ingress (what the phone sent, as it
//! arrived), media from Webex on the WAN interface's ingress (the path from Webex,
//! before the gateway adds anything). Copies on other interfaces are only used when
//! those are not monitored, so nothing is counted twice. WAN-side streams are joined to
//! their inner host through the LAN-side copy with the same SSRC.

use std::collections::{BTreeMap, HashMap};

use monitor_common::{
    Class, Direction, FlowKey, FlowStats, WebexSide,
    rtp::{ClockSource, RtpStreamKey, RtpStreamState},
};

use super::{
    QualitySnapshot,
    model::{CallLeg, CallStatus, Handshake, MediaStatus, StreamStatus},
    mos,
};
use crate::{config::quality::QualityConfig, daemon::report::addr};

/// An interface the daemon watches.
pub struct Iface<'a> {
    pub name: &'a str,
    /// "lan" or "wan".
    pub role: &'a str,
}

struct Obs<'a> {
    key: &'a RtpStreamKey,
    s: &'a RtpStreamState,
    to_webex: bool,
    inner: String,
    peer: String,
    peer_port: u16,
    iface: String,
    role: &'a str,
    ingress: bool,
    class: Class,
}

impl Obs<'_> {
    /// Lower is better: where this direction is measured.
    fn rank(&self) -> u8 {
        match (self.to_webex, self.role, self.ingress) {
            (true, "lan", true) | (false, "wan", true) => 0,
            (true, "wan", false) | (false, "lan", false) => 1,
            (_, _, true) => 2,
            _ => 3,
        }
    }
}

/// Builds the calls active within `q.call_idle_s`, busiest first.
pub fn build(
    flows: &[(FlowKey, FlowStats)],
    snap: &QualitySnapshot,
    ifaces: &HashMap<u32, Iface<'_>>,
    q: &QualityConfig,
    now_mono_ns: u64,
) -> Vec<CallStatus> {
    let flow_of: HashMap<&FlowKey, &FlowStats> = flows.iter().map(|(k, v)| (k, v)).collect();
    let idle = |ns: u64| now_mono_ns.saturating_sub(ns) as f64 / 1e9;
    let mut obs = Vec::new();
    for (key, s) in &snap.streams {
        if idle(s.last_seen_ns) > q.call_idle_s as f64 {
            continue;
        }
        let Some(flow) = flow_of.get(&key.flow) else {
            continue;
        };
        let f = &key.flow;
        let (src, dst) = (
            addr(f.family, &f.src_addr).to_string(),
            addr(f.family, &f.dst_addr).to_string(),
        );
        let to_webex = WebexSide::from_u32(flow.webex_side) == WebexSide::Dst;
        let (inner, peer, peer_port) = if to_webex {
            (src, dst, f.dst_port)
        } else {
            (dst, src, f.src_port)
        };
        let (iface, role) = match ifaces.get(&f.ifindex) {
            Some(i) => (i.name.to_string(), i.role),
            None => (format!("if{}", f.ifindex), ""),
        };
        obs.push(Obs {
            key,
            s,
            to_webex,
            inner,
            peer,
            peer_port,
            iface,
            role,
            ingress: f.direction == Direction::Ingress as u8,
            class: Class::from_u32(flow.class).unwrap_or(Class::Media),
        });
    }

    // The inner host of WAN-side copies: the LAN-side copy's, joined by SSRC.
    let lan_inner: HashMap<(u32, bool, &str), &str> = obs
        .iter()
        .filter(|o| o.role == "lan")
        .map(|o| ((o.key.ssrc, o.to_webex, o.peer.as_str()), o.inner.as_str()))
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&Obs>> = BTreeMap::new();
    for o in &obs {
        let inner = if o.role == "lan" {
            o.inner.clone()
        } else {
            lan_inner
                .get(&(o.key.ssrc, o.to_webex, o.peer.as_str()))
                .map(|s| s.to_string())
                .unwrap_or_else(|| o.inner.clone())
        };
        groups.entry((inner, o.peer.clone())).or_default().push(o);
    }

    let mut calls: Vec<CallStatus> = groups
        .into_iter()
        .map(|((inner, peer), members)| call(inner, peer, &members, snap, q, &idle))
        .collect();
    calls.sort_by(|a, b| {
        b.packets
            .cmp(&a.packets)
            .then_with(|| a.inner_addr.cmp(&b.inner_addr))
    });
    calls
}

fn call(
    inner: String,
    peer: String,
    members: &[&Obs],
    snap: &QualitySnapshot,
    q: &QualityConfig,
    idle: &dyn Fn(u64) -> f64,
) -> CallStatus {
    let mut legs = Vec::new();
    for to_webex in [true, false] {
        let dir: Vec<&&Obs> = members.iter().filter(|o| o.to_webex == to_webex).collect();
        let Some(best) = dir.iter().map(|o| o.rank()).min() else {
            continue;
        };
        // The measurement point: the best-ranked interface and direction.
        let Some(first) = dir.iter().find(|o| o.rank() == best) else {
            continue;
        };
        let at: Vec<&&Obs> = dir
            .iter()
            .filter(|o| o.iface == first.iface && o.ingress == first.ingress)
            .copied()
            .collect();
        legs.push(leg(to_webex, &at, idle));
    }
    let packets = legs.iter().map(|l| l.packets).sum();
    let loss_pct = legs.iter().map(|l| l.loss_pct).fold(0.0, f64::max);
    let jitter_ms = legs.iter().map(|l| l.jitter_ms).fold(0.0, f64::max);
    let busiest = members
        .iter()
        .max_by_key(|o| o.s.packets)
        .expect("a call has a stream");
    let inner_addrs: Vec<&str> = members.iter().map(|o| o.inner.as_str()).collect();
    let rtt_ms = snap
        .rtt
        .iter()
        .filter(|(k, _)| {
            addr(k.family, &k.dst_addr).to_string() == peer
                && inner_addrs.contains(&addr(k.family, &k.src_addr).to_string().as_str())
        })
        .max_by_key(|(_, r)| r.last_at_ns)
        .map(|(_, r)| r.last_ns as f64 / 1e6);
    let one_way = rtt_ms.map(|r| r / 2.0);
    let codec = mos::codec(busiest.s.payload_type as u8, busiest.s.clock_rate);
    // Mouth-to-ear delay: the one-way network estimate plus a jitter buffer of twice the
    // jitter.
    let delay = one_way.unwrap_or(0.0) + 2.0 * jitter_ms;
    let mos_value = mos::mos(codec, delay, loss_pct);
    let (health, breaches) = health(q, one_way, jitter_ms, loss_pct, mos_value);
    let kind = kind(members);
    let direction = match (
        legs.iter().any(|l| l.direction == "to_webex"),
        legs.iter().any(|l| l.direction == "from_webex"),
    ) {
        (true, true) => "both",
        (true, false) => "to_webex",
        _ => "from_webex",
    };
    CallStatus {
        inner_addr: inner,
        peer_addr: peer,
        peer_port: busiest.peer_port,
        kind: kind.to_string(),
        direction: direction.to_string(),
        packets,
        loss_pct,
        jitter_ms,
        rtt_ms,
        one_way_latency_ms_estimate: one_way,
        mos: (mos_value * 100.0).round() / 100.0,
        mos_codec: codec.name.to_string(),
        health: health.to_string(),
        breaches,
        clock_rate: busiest.s.clock_rate,
        clock_source: ClockSource::from_u32(busiest.s.clock_source)
            .as_str()
            .to_string(),
        idle_s: members
            .iter()
            .map(|o| idle(o.s.last_seen_ns))
            .fold(f64::INFINITY, f64::min),
        legs,
    }
}

fn leg(to_webex: bool, at: &[&&Obs], idle: &dyn Fn(u64) -> f64) -> CallLeg {
    let streams: Vec<StreamStatus> = at.iter().map(|o| stream(o, idle)).collect();
    let expected: u64 = streams.iter().map(|s| s.expected).sum();
    let lost: u64 = streams.iter().map(|s| s.lost).sum();
    CallLeg {
        direction: if to_webex { "to_webex" } else { "from_webex" }.to_string(),
        measured_at: format!(
            "{} {}",
            at[0].iface,
            if at[0].ingress { "ingress" } else { "egress" }
        ),
        packets: streams.iter().map(|s| s.packets).sum(),
        expected,
        lost,
        loss_pct: if expected == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / expected as f64
        },
        duplicates: streams.iter().map(|s| s.duplicates).sum(),
        reordered: streams.iter().map(|s| s.reordered).sum(),
        jitter_ms: streams.iter().map(|s| s.jitter_ms).fold(0.0, f64::max),
        streams,
    }
}

fn stream(o: &Obs, idle: &dyn Fn(u64) -> f64) -> StreamStatus {
    let f = &o.key.flow;
    let s = o.s;
    StreamStatus {
        interface: o.iface.clone(),
        direction: if o.ingress { "ingress" } else { "egress" }.to_string(),
        src_addr: addr(f.family, &f.src_addr).to_string(),
        src_port: f.src_port,
        dst_addr: addr(f.family, &f.dst_addr).to_string(),
        dst_port: f.dst_port,
        ssrc: o.key.ssrc,
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
    }
}

/// Audio or video from the flow class, else from the clock rate (90 kHz is video).
fn kind(members: &[&Obs]) -> &'static str {
    if members.iter().any(|o| o.class == Class::Video) {
        return "video";
    }
    if members.iter().any(|o| o.class == Class::Audio) {
        return "audio";
    }
    let rates: Vec<u32> = members.iter().map(|o| o.s.clock_rate).collect();
    if rates.contains(&90000) {
        "video"
    } else if rates.iter().any(|r| *r != 0) {
        "audio"
    } else {
        "media"
    }
}

/// Health and the breached thresholds.
pub fn health(
    q: &QualityConfig,
    one_way_ms: Option<f64>,
    jitter_ms: f64,
    loss_pct: f64,
    mos: f64,
) -> (&'static str, Vec<String>) {
    let mut level = 0;
    let mut breaches = Vec::new();
    let mut breach = |lvl: u8, text: String| {
        level = level.max(lvl);
        breaches.push(text);
    };
    if let Some(d) = one_way_ms {
        if d > q.latency_critical_ms {
            breach(
                2,
                format!(
                    "one-way latency (estimate) {d:.1} ms > {} ms",
                    q.latency_critical_ms
                ),
            );
        } else if d > q.latency_ms {
            breach(
                1,
                format!("one-way latency (estimate) {d:.1} ms > {} ms", q.latency_ms),
            );
        }
    }
    if jitter_ms > q.jitter_ms {
        breach(1, format!("jitter {jitter_ms:.1} ms > {} ms", q.jitter_ms));
    }
    if loss_pct > q.loss_pct {
        breach(1, format!("loss {loss_pct:.2} % > {} %", q.loss_pct));
    }
    if mos < q.mos_critical {
        breach(2, format!("MOS {mos:.2} < {}", q.mos_critical));
    } else if mos < q.mos {
        breach(1, format!("MOS {mos:.2} < {}", q.mos));
    }
    let name = match level {
        0 => "ok",
        1 => "warning",
        _ => "critical",
    };
    (name, breaches)
}

#[cfg(test)]
mod tests;

/// The media counters and the timed TCP handshakes, for the status report.
pub fn media_status(
    flows: &[(FlowKey, FlowStats)],
    snap: &QualitySnapshot,
    ifaces: &HashMap<u32, Iface<'_>>,
) -> MediaStatus {
    use monitor_common::rtp::{HANDSHAKE_PENDING, MediaKind};
    let c = &snap.counters;
    let mut handshakes: Vec<Handshake> = flows
        .iter()
        .filter(|(_, v)| v.handshake_rtt_ns != 0 && v.handshake_rtt_ns & HANDSHAKE_PENDING == 0)
        .map(|(k, v)| Handshake {
            interface: ifaces
                .get(&k.ifindex)
                .map(|i| i.name.to_string())
                .unwrap_or_else(|| format!("if{}", k.ifindex)),
            direction: Direction::from_u8(k.direction)
                .map(Direction::as_str)
                .unwrap_or("unknown")
                .to_string(),
            src_addr: addr(k.family, &k.src_addr).to_string(),
            src_port: k.src_port,
            dst_addr: addr(k.family, &k.dst_addr).to_string(),
            dst_port: k.dst_port,
            class: Class::from_u32(v.class)
                .map(Class::as_str)
                .unwrap_or("unknown")
                .to_string(),
            rtt_ms: v.handshake_rtt_ns as f64 / 1e6,
        })
        .collect();
    handshakes.sort_by(|a, b| {
        (&a.interface, &a.src_addr, a.src_port).cmp(&(&b.interface, &b.src_addr, b.src_port))
    });
    MediaStatus {
        packets: MediaKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), c.packets[*k as usize]))
            .collect(),
        rtp_truncated: c.rtp_truncated,
        stream_insert_failed: c.stream_insert_failed,
        streams_created: c.streams_created,
        streams_evicted: c.streams_created.saturating_sub(snap.streams.len() as u64),
        stun_requests: c.stun_requests,
        stun_responses: c.stun_responses,
        stun_matched: c.stun_matched,
        handshakes_timed: c.handshakes_timed,
        handshakes,
    }
}
