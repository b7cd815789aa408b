//! From streams to calls: who each stream belongs to.
//!
//! A call is one media 5-tuple of an inner host with a Webex peer: the inner host's
//! address and port and the peer's address and port, as the LAN side sees them. On a
//! gateway each RTP stream is seen up to twice per direction (LAN side and WAN side of
//! the NAT, which are different flows: the WAN side carries the translated address);
//! WAN-side streams join the call of the LAN-side copy with the same SSRC (the NAT twin).
//! Concurrent calls of one host differ by port, so they are separate calls.
//!
//! Each direction of a call is measured where it enters the gateway, which is where its
//! received quality is known: media to Webex on the LAN interface's ingress (what the
//! phone sent, as it arrived), media from Webex on the WAN interface's ingress (the path
//! from Webex, before the gateway adds anything). The copies leaving the gateway say what
//! the gateway itself lost (`super::measure`).

use std::{collections::HashMap, net::IpAddr};

use monitor_common::{
    Class, Direction, FlowKey, FlowStats, WebexSide,
    rtp::{RtpStreamKey, RtpStreamState},
};

use super::{
    QualitySnapshot,
    model::{Handshake, MediaStatus},
};

/// An interface the daemon watches.
pub struct Iface<'a> {
    pub name: &'a str,
    /// "lan" or "wan".
    pub role: &'a str,
}

/// A call's identity: the inner host's media 5-tuple on the LAN side (UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey {
    pub inner: IpAddr,
    pub inner_port: u16,
    pub peer: IpAddr,
    pub peer_port: u16,
}

/// One stream as this poll sees it.
pub struct Obs<'a> {
    pub key: &'a RtpStreamKey,
    pub s: &'a RtpStreamState,
    pub to_webex: bool,
    /// The call it belongs to.
    pub call: CallKey,
    pub iface: String,
    pub role: &'a str,
    pub ingress: bool,
    pub class: Class,
}

impl Obs<'_> {
    /// Lower is better: where this direction is measured.
    pub fn rank(&self) -> u8 {
        match (self.to_webex, self.role, self.ingress) {
            (true, "lan", true) | (false, "wan", true) => 0,
            (true, "wan", false) | (false, "lan", false) => 1,
            (_, _, true) => 2,
            _ => 3,
        }
    }

    /// Where it is seen, e.g. "lan0 ingress".
    pub fn point(&self) -> String {
        format!(
            "{} {}",
            self.iface,
            if self.ingress { "ingress" } else { "egress" }
        )
    }
}

/// Every stream of a known flow with the call it belongs to (the tracker decides which
/// are active).
pub fn observe<'a>(
    flows: &crate::flows::table::FlowTable,
    snap: &'a QualitySnapshot,
    ifaces: &'a HashMap<u32, Iface<'a>>,
) -> Vec<Obs<'a>> {
    // Only the flows that carry a stream are indexed: a big flow table holds few.
    let wanted: crate::fasthash::HashSet<&FlowKey> =
        snap.streams.iter().map(|(k, _)| &k.flow).collect();
    let flow_of: crate::fasthash::HashMap<&FlowKey, &FlowStats> = if wanted.is_empty() {
        Default::default()
    } else {
        flows.iter().filter(|(k, _)| wanted.contains(k)).collect()
    };
    let mut obs = Vec::new();
    for (key, s) in &snap.streams {
        let Some(flow) = flow_of.get(&key.flow) else {
            continue;
        };
        let f = &key.flow;
        let to_webex = WebexSide::from_u32(flow.webex_side) == WebexSide::Dst;
        let call = if to_webex {
            CallKey {
                inner: f.src_ip(),
                inner_port: f.src_port,
                peer: f.dst_ip(),
                peer_port: f.dst_port,
            }
        } else {
            CallKey {
                inner: f.dst_ip(),
                inner_port: f.dst_port,
                peer: f.src_ip(),
                peer_port: f.src_port,
            }
        };
        let (iface, role) = match ifaces.get(&f.ifindex) {
            Some(i) => (i.name.to_string(), i.role),
            None => (format!("if{}", f.ifindex), ""),
        };
        obs.push(Obs {
            key,
            s,
            to_webex,
            call,
            iface,
            role,
            ingress: f.direction == Direction::Ingress as u8,
            class: Class::from_u32(flow.class).unwrap_or(Class::Media),
        });
    }
    // WAN-side copies join the call of their LAN-side twin (same SSRC, direction and
    // peer); without a LAN-side copy they are a call of the address the WAN side sees.
    let twin: HashMap<(u32, bool, IpAddr, u16), CallKey> = obs
        .iter()
        .filter(|o| o.role == "lan")
        .map(|o| {
            (
                (o.key.ssrc, o.to_webex, o.call.peer, o.call.peer_port),
                o.call,
            )
        })
        .collect();
    for o in obs.iter_mut().filter(|o| o.role != "lan") {
        if let Some(k) = twin.get(&(o.key.ssrc, o.to_webex, o.call.peer, o.call.peer_port)) {
            o.call = *k;
        }
    }
    obs
}

/// Audio or video from the flow class, else from the clock rate (90 kHz is video).
pub fn kind(members: &[&Obs]) -> &'static str {
    if members.iter().any(|o| o.class == Class::Video) {
        return "video";
    }
    if members.iter().any(|o| o.class == Class::Audio) {
        return "audio";
    }
    let rates: Vec<u32> = members.iter().map(|o| o.s.clock_rate).collect();
    if rates.contains(&90000) && rates.iter().all(|r| *r == 90000 || *r == 0) {
        "video"
    } else if rates.iter().any(|r| *r != 0) {
        "audio"
    } else {
        "media"
    }
}

/// Whether a stream is video (its clock is 90 kHz, or unknown on a video flow): video
/// streams get video measures, never a voice MOS.
pub fn is_video(o: &Obs) -> bool {
    o.s.clock_rate == 90000 || (o.s.clock_rate == 0 && o.class == Class::Video)
}

#[cfg(test)]
pub(crate) mod tests;

/// The media counters and the timed TCP handshakes, for the status report.
pub fn media_status<'a>(
    flows: impl IntoIterator<Item = (&'a FlowKey, &'a FlowStats)>,
    snap: &QualitySnapshot,
    ifaces: &HashMap<u32, Iface<'_>>,
) -> MediaStatus {
    use monitor_common::rtp::{HANDSHAKE_PENDING, MediaKind};
    let c = &snap.counters;
    let mut handshakes: Vec<Handshake> = flows
        .into_iter()
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
            src_addr: k.src_ip().to_string(),
            src_port: k.src_port,
            dst_addr: k.dst_ip().to_string(),
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
