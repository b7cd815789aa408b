//! Calls across polls, from hand-made kernel states: identity, windows, records,
//! attribution and MOS, with exact numbers.

use super::*;
use crate::quality::{calls::tests::key, mos};
use monitor_common::{
    Class, Direction, WebexSide,
    rtp::{ClockSource, RtpStreamState},
};
use monitor_common::{FlowKey, FlowStats};

const PHONE: [u8; 4] = [192, 0, 2, 10];
const NAT: [u8; 4] = [198, 51, 100, 1];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const LAN: u32 = 2;
const WAN: u32 = 3;
/// The Unix time of monotonic 0 in these tests.
const EPOCH: u64 = 1_700_000_000;

/// The four copies of a call's streams on a NAT gateway: up on LAN ingress and WAN
/// egress, down on WAN ingress and LAN egress.
fn copies(port: u16, nat_port: u16) -> [FlowKey; 4] {
    [
        key(PHONE, port, WEBEX, 5004, LAN, Direction::Ingress),
        key(NAT, nat_port, WEBEX, 5004, WAN, Direction::Egress),
        key(WEBEX, 5004, NAT, nat_port, WAN, Direction::Ingress),
        key(WEBEX, 5004, PHONE, port, LAN, Direction::Egress),
    ]
}

/// A stream's kernel state after `received` packets with `lost` lost (single losses),
/// mean jitter `j16` / 16 timestamp units, last packet at `last_s`.
fn state(received: u64, lost: u64, pt: u8, clock: u32, j16: u64, last_s: f64) -> RtpStreamState {
    let expected = received + lost;
    RtpStreamState {
        packets: received,
        received,
        base_seq: 0,
        max_seq: ((expected - 1) % 65536) as u32,
        cycles: ((expected - 1) / 65536 * 65536) as u32,
        jitter: j16 as u32,
        jitter_sum: received * j16,
        jitter_samples: received,
        loss_bursts: lost as u16,
        clock_rate: clock,
        clock_source: ClockSource::Static as u32,
        payload_type: pt as u32,
        first_seen_ns: 0,
        last_seen_ns: (last_s * 1e9) as u64,
        ..Default::default()
    }
}

struct Bed {
    tracker: Tracker,
    q: QualityConfig,
    flows: HashMap<FlowKey, FlowStats>,
    streams: HashMap<RtpStreamKey, RtpStreamState>,
}

impl Bed {
    /// The tracker after its first poll (the daemon started before the calls).
    fn new(q: QualityConfig) -> Bed {
        let mut bed = Bed {
            tracker: Tracker::new(),
            q,
            flows: HashMap::new(),
            streams: HashMap::new(),
        };
        bed.poll(0.0);
        bed
    }

    fn set(&mut self, flow: FlowKey, ssrc: u32, s: RtpStreamState) {
        let side = if flow.dst_addr == FlowKey::v4_mapped(WEBEX) {
            WebexSide::Dst
        } else {
            WebexSide::Src
        };
        self.flows.insert(
            flow,
            FlowStats {
                class: Class::Media as u32,
                webex_side: side as u32,
                ..Default::default()
            },
        );
        self.streams.insert(RtpStreamKey { flow, ssrc }, s);
    }

    fn poll(&mut self, now_s: f64) -> Polled {
        let flows: crate::flows::table::FlowTable =
            self.flows.iter().map(|(k, v)| (*k, *v)).collect();
        let snap = QualitySnapshot {
            streams: self.streams.iter().map(|(k, v)| (*k, *v)).collect(),
            ..Default::default()
        };
        let ifaces = HashMap::from([
            (
                LAN,
                Iface {
                    name: "lan0",
                    role: "lan",
                },
            ),
            (
                WAN,
                Iface {
                    name: "wan0",
                    role: "wan",
                },
            ),
        ]);
        let now = (now_s * 1e9) as u64;
        self.tracker
            .poll(&flows, &snap, &ifaces, &self.q, now, EPOCH + now_s as u64)
    }
}

fn segment<'a>(
    c: &'a CallStatus,
    name: &str,
    dir: &str,
) -> &'a crate::report::calls::SegmentStatus {
    c.segments
        .iter()
        .find(|s| s.segment == name && s.direction == dir)
        .unwrap_or_else(|| panic!("no {name} {dir} in {:#?}", c.segments))
}

#[test]
fn one_call_from_four_copies_joined_by_ssrc_with_each_segment() {
    let mut bed = Bed::new(QualityConfig::default());
    let [up_lan, up_wan, down_wan, down_lan] = copies(40000, 61000);
    // Up: 500 sent by the phone, 5 lost on the LAN, 10 more dropped in the gateway.
    bed.set(up_lan, 1, state(495, 5, 0, 8000, 16 * 8, 10.0));
    bed.set(up_wan, 1, state(485, 15, 0, 8000, 16 * 8, 10.0));
    // Down: 500 from Webex, 20 lost on the ISP path, none in the gateway.
    bed.set(down_wan, 2, state(480, 20, 0, 8000, 16 * 16, 10.0));
    bed.set(down_lan, 2, state(480, 20, 0, 8000, 16 * 16, 10.0));
    let p = bed.poll(10.0);
    assert_eq!(p.calls.len(), 1, "{:#?}", p.calls);
    let c = &p.calls[0];
    assert_eq!(c.id.len(), 8);
    assert_eq!((c.inner_addr.as_str(), c.inner_port), ("192.0.2.10", 40000));
    assert_eq!((c.peer_addr.as_str(), c.peer_port), ("203.0.113.10", 5004));
    assert_eq!(c.direction, "both");
    assert_eq!(c.legs[0].measured_at, "lan0 ingress");
    assert_eq!(c.legs[1].measured_at, "wan0 ingress");
    assert_eq!(c.packets, 495 + 480);
    let lan = segment(c, "phone_to_gateway", "to_webex");
    assert_eq!((lan.expected, lan.lost), (500, 5));
    assert_eq!(lan.measured, "lan0 ingress gaps");
    let gw = segment(c, "gateway", "to_webex");
    assert_eq!((gw.expected, gw.lost), (495, 10));
    assert_eq!(gw.measured, "lan0 ingress - wan0 egress");
    let isp = segment(c, "isp_from_webex", "from_webex");
    assert_eq!((isp.expected, isp.lost, isp.loss_pct), (500, 20, 4.0));
    assert_eq!(segment(c, "gateway", "from_webex").lost, 0);
    // The worse direction is from Webex: 4 %; to Webex 15 of 500 = 3 %.
    assert_eq!(c.loss_pct, 4.0);
    assert_eq!((c.window.expected, c.window.lost), (500, 20));
    assert_eq!(c.window.jitter_ms, 2.0);
    assert_eq!(c.health, "warning");
    assert_eq!(c.bad_segment.as_deref(), Some("isp_from_webex"));
}

#[test]
fn concurrent_calls_of_one_host_are_separate_with_their_own_loss_and_port() {
    let mut bed = Bed::new(QualityConfig::default());
    let a = copies(40000, 61000);
    let b = copies(40002, 61002);
    bed.set(a[0], 0xa, state(500, 0, 0, 8000, 0, 10.0));
    bed.set(a[1], 0xa, state(500, 0, 0, 8000, 0, 10.0));
    bed.set(b[0], 0xb, state(450, 50, 0, 8000, 0, 10.0));
    bed.set(b[1], 0xb, state(450, 50, 0, 8000, 0, 10.0));
    let p = bed.poll(10.0);
    assert_eq!(p.calls.len(), 2, "{:#?}", p.calls);
    let by_port = |port| p.calls.iter().find(|c| c.inner_port == port).unwrap();
    assert_eq!(by_port(40000).loss_pct, 0.0);
    assert_eq!(by_port(40000).health, "ok");
    assert_eq!(by_port(40002).loss_pct, 10.0);
    assert_eq!(by_port(40002).health, "critical");
    assert_ne!(by_port(40000).id, by_port(40002).id);
}

#[test]
fn calls_end_on_idle_as_records_and_the_same_tuple_later_is_a_new_call() {
    let q = QualityConfig {
        call_idle_s: 5,
        ..Default::default()
    };
    let mut bed = Bed::new(q);
    let [up, ..] = copies(40000, 61000);
    bed.set(up, 1, state(250, 0, 0, 8000, 0, 5.0));
    let first = bed.poll(5.0).calls[0].clone();
    // Silent: still active at 9 s, ended at 11 s.
    assert_eq!(bed.poll(9.0).calls.len(), 1);
    let ended = bed.poll(11.0);
    assert!(ended.calls.is_empty());
    assert_eq!(ended.ended.len(), 1);
    let r = &ended.records[0];
    assert_eq!(r.id, first.id);
    assert_eq!((r.packets, r.loss_pct), (250, 0.0));
    assert_eq!(r.started_unix_s, EPOCH);
    assert_eq!(r.ended_unix_s, EPOCH + 5);
    assert_eq!(r.duration_s, 5.0);
    assert_eq!(r.legs[0].measured_at, "lan0 ingress");
    // Its window history: the polls while it was active (250 packets, then silence).
    assert_eq!(
        r.window_history
            .iter()
            .map(|x| (x.unix_s, x.expected, x.lost))
            .collect::<Vec<_>>(),
        [(EPOCH + 5, 250, 0), (EPOCH + 9, 0, 0)]
    );
    // Reported once as ended, kept as a record.
    assert!(bed.poll(12.0).ended.is_empty());
    // 30 s later the same 5-tuple and SSRC again, 100 more packets with 10 lost.
    bed.set(up, 1, state(340, 10, 0, 8000, 0, 41.0));
    let p = bed.poll(41.0);
    assert_eq!(p.calls.len(), 1);
    let c = &p.calls[0];
    assert_ne!(c.id, first.id);
    assert_eq!(c.packets, 90);
    assert_eq!(c.legs[0].expected, 100);
    assert_eq!(c.legs[0].lost, 10);
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.tracking.calls_started, 2);
    assert_eq!(p.tracking.calls_ended, 1);
}

#[test]
fn records_are_capped_by_count_and_age() {
    let q = QualityConfig {
        call_idle_s: 1,
        max_call_records: 2,
        call_record_max_age_s: 100,
        ..Default::default()
    };
    let mut bed = Bed::new(q);
    for i in 0..3u16 {
        let [up, ..] = copies(40000 + i, 61000 + i);
        let t = 10.0 * (i + 1) as f64;
        bed.set(up, 1, state(50, 0, 0, 8000, 0, t));
        bed.poll(t);
        bed.poll(t + 2.0);
    }
    let p = bed.poll(40.0);
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.records[0].inner_port, 40002, "newest first");
    assert_eq!(p.tracking.records_dropped, 1);
    assert!(bed.poll(200.0).records.is_empty(), "older than 100 s");
}

/// Polls a 50 packet/s G.711 stream once a second; `loss(sec)` packets of each second lost.
fn run(
    bed: &mut Bed,
    from: u64,
    to: u64,
    total: &mut (u64, u64),
    loss: impl Fn(u64) -> u64,
) -> Vec<Polled> {
    let [up, ..] = copies(40000, 61000);
    let mut out = Vec::new();
    for sec in from..=to {
        let lost = loss(sec);
        total.0 += 50 - lost;
        total.1 += lost;
        bed.set(up, 1, state(total.0, total.1, 0, 8000, 16 * 8, sec as f64));
        out.push(bed.poll(sec as f64));
    }
    out
}

#[test]
fn late_degradation_is_judged_on_the_window_and_clears() {
    let mut bed = Bed::new(QualityConfig::default());
    let mut total = (0, 0);
    // 80 s clean.
    let clean = run(&mut bed, 1, 80, &mut total, |_| 0);
    assert!(clean.iter().all(|p| p.calls[0].health == "ok"));
    // 20 s at 10 %: warning within one 10 s window, showing the window's loss.
    let bad = run(&mut bed, 81, 100, &mut total, |_| 5);
    let first_warning = bad.iter().position(|p| p.calls[0].health != "ok").unwrap();
    assert!(first_warning < 10, "{first_warning}");
    let c = &bad[19].calls[0];
    assert_eq!((c.window.expected, c.window.lost), (500, 50));
    assert_eq!(c.window.loss_pct, 10.0);
    // The whole call: 100 of 5000.
    assert_eq!(c.loss_pct, 2.0);
    assert_eq!(c.bad_segment.as_deref(), Some("phone_to_gateway"));
    // Clean again: cleared once the lossy seconds left the window (10 s).
    let again = run(&mut bed, 101, 115, &mut total, |_| 0);
    let cleared = again
        .iter()
        .position(|p| p.calls[0].health == "ok")
        .unwrap();
    assert_eq!(
        cleared, 9,
        "the 10th clean second is the first clean window"
    );
    assert_eq!(again[14].calls[0].window.lost, 0);
}

#[test]
fn the_first_packets_never_raise_a_verdict() {
    let mut bed = Bed::new(QualityConfig::default());
    let [up, ..] = copies(40000, 61000);
    // Nine packets, two of eleven lost: 18 %, but far below the minimum sample.
    bed.set(up, 1, state(9, 2, 0, 8000, 16 * 8, 0.2));
    let c = &bed.poll(0.2).calls[0];
    assert_eq!(c.health, "ok");
    assert!(!c.window.sufficient);
    assert_eq!(c.mos, None);
    assert!(c.breaches.is_empty());
}

#[test]
fn bundle_voice_mos_from_the_opus_stream_only_and_video_gets_none() {
    let mut bed = Bed::new(QualityConfig::default());
    let [up, ..] = copies(40000, 61000);
    // Opus (PT 111, 48 kHz) with 3 % loss and clean video (PT 96, 90 kHz) on one 5-tuple.
    bed.set(up, 0x0b05, state(485, 15, 111, 48000, 0, 10.0));
    let mut video = state(2000, 0, 96, 90000, 0, 10.0);
    video.frames = 1200;
    bed.set(up, 0x0b06, video);
    let c = &bed.poll(10.0).calls[0];
    let want = round2(mos::mos(mos::OPUS, 0.0, 3.0, 1.0));
    assert_eq!(c.mos, Some(want));
    assert_eq!(c.mos_codec, "Opus (as G.711)");
    let streams = &c.legs[0].streams;
    let video = streams.iter().find(|s| s.ssrc == 0x0b06).unwrap();
    assert_eq!((video.media.as_str(), video.mos), ("video", None));
    // 1200 frames since the stream began at 0 s, polled at 10 s: 120 per second.
    assert_eq!(video.frames_per_s, Some(120.0));
    let opus = streams.iter().find(|s| s.ssrc == 0x0b05).unwrap();
    assert_eq!((opus.media.as_str(), opus.mos), ("voice", Some(want)));

    // A video-only call has no voice MOS.
    let mut bed = Bed::new(QualityConfig::default());
    bed.set(up, 0x0b06, state(2000, 0, 96, 90000, 0, 10.0));
    let c = &bed.poll(10.0).calls[0];
    assert_eq!(c.mos, None);
    assert_eq!(c.kind, "video");
    assert_eq!(c.health, "ok");
}

#[test]
fn bursty_loss_lowers_the_mos_below_random_loss() {
    let mut bed = Bed::new(QualityConfig::default());
    let [up, ..] = copies(40000, 61000);
    let mut s = state(900, 100, 0, 8000, 0, 10.0);
    s.loss_bursts = 10;
    bed.set(up, 1, s);
    let c = &bed.poll(10.0).calls[0];
    let burst_r = c.legs[0].streams[0].burst_r;
    assert!((burst_r - 9.0).abs() < 1e-9, "{burst_r}");
    assert_eq!(c.mos, Some(round2(mos::mos(mos::G711, 0.0, 10.0, burst_r))));
    assert!(c.mos < Some(round2(mos::mos(mos::G711, 0.0, 10.0, 1.0))));
}

#[test]
fn a_direction_that_falls_silent_first_stays_in_the_call_and_its_record() {
    let q = QualityConfig {
        call_idle_s: 5,
        ..Default::default()
    };
    let mut bed = Bed::new(q);
    let [up, _, down, down_lan] = copies(40000, 61000);
    bed.set(up, 1, state(200, 0, 0, 8000, 0, 4.0));
    bed.set(down, 2, state(200, 0, 0, 8000, 0, 4.0));
    bed.set(down_lan, 2, state(200, 0, 0, 8000, 0, 4.0));
    bed.poll(4.0);
    // The phone hung up at 4 s; Webex sent 20 more until 10 s.
    bed.set(down, 2, state(220, 0, 0, 8000, 0, 10.0));
    bed.set(down_lan, 2, state(220, 0, 0, 8000, 0, 10.0));
    let p = bed.poll(10.0);
    assert_eq!(p.calls[0].legs.len(), 2, "the silent direction stays");
    let p = bed.poll(16.0);
    let r = &p.ended[0];
    assert_eq!(
        r.legs
            .iter()
            .map(|l| (l.direction.as_str(), l.packets))
            .collect::<Vec<_>>(),
        [("to_webex", 200), ("from_webex", 220)]
    );
    assert_eq!(r.duration_s, 10.0);
}

#[test]
fn after_a_restart_the_window_starts_empty_and_the_call_keeps_its_history() {
    // A fresh tracker (the daemon just started on pinned maps) meets a stream with 100
    // lost of 1000 before it started.
    let mut bed = Bed {
        tracker: Tracker::new(),
        q: QualityConfig::default(),
        flows: HashMap::new(),
        streams: HashMap::new(),
    };
    let [up, ..] = copies(40000, 61000);
    bed.set(up, 1, state(900, 100, 0, 8000, 0, 20.0));
    let c = &bed.poll(20.0).calls[0];
    assert_eq!(c.loss_pct, 10.0, "the call's history");
    assert_eq!(
        (c.window.expected, c.health.as_str()),
        (0, "ok"),
        "no verdict from it"
    );
    // Then 200 clean packets: the window holds those only.
    bed.set(up, 1, state(1100, 100, 0, 8000, 0, 24.0));
    let c = &bed.poll(24.0).calls[0];
    assert_eq!((c.window.expected, c.window.lost), (200, 0));
    assert_eq!(c.health, "ok");
}

#[test]
fn the_window_history_has_one_point_per_poll_with_its_deltas_and_drops_the_oldest() {
    let mut bed = Bed::new(QualityConfig::default());
    let [up_lan, up_wan, down_wan, down_lan] = copies(40000, 61000);
    // Cumulative per poll (up LAN in / up WAN out / down WAN in / down LAN out):
    // 1 s: 50 clean both ways; 2 s: +50 up with 5 dropped inside the gateway, down
    // clean; 3 s: up clean, +100 down with 10 lost on the ISP path.
    // [up in, up out, down in, down lost on the ISP path]
    let polls: [[u64; 4]; 3] = [[50, 50, 50, 0], [100, 95, 100, 0], [150, 145, 190, 10]];
    let mut last = None;
    for (sec, [up, up_out, down, down_lost]) in polls.into_iter().enumerate() {
        let at = sec as f64 + 1.0;
        bed.set(up_lan, 1, state(up, 0, 0, 8000, 0, at));
        bed.set(up_wan, 1, state(up_out, 0, 0, 8000, 0, at));
        bed.set(down_wan, 2, state(down, down_lost, 0, 8000, 16 * 8, at));
        bed.set(down_lan, 2, state(down, 0, 0, 8000, 16 * 8, at));
        last = Some(bed.poll(at));
    }
    let p = last.take().unwrap();
    let h = &p.calls[0].window_history;
    let got: Vec<(u64, u64, u64, f64)> = h
        .iter()
        .map(|x| (x.unix_s, x.expected, x.lost, x.loss_pct))
        .collect();
    // Worse direction per poll: clean (up first), up 5 of 50 in the gateway, down 10 of
    // 100 on the ISP path.
    assert_eq!(
        got,
        [
            (EPOCH + 1, 50, 0, 0.0),
            (EPOCH + 2, 50, 5, 10.0),
            (EPOCH + 3, 100, 10, 10.0),
        ]
    );
    assert!(h.iter().all(|x| x.jitter_ms == 1.0), "{h:#?}");
    // Too few packets for a verdict at first; 200 expected up at 3 s, 15 of them lost.
    assert_eq!(h[0].health, "ok");
    assert_eq!(h[0].mos, None);
    assert_eq!(h[2].health, p.calls[0].health);
    assert_eq!(h[2].mos, p.calls[0].mos);
    assert_eq!(
        p.tracking.window_history_points,
        crate::quality::history::POINTS as u64
    );

    // The cap: after POINTS more polls the oldest three are gone, newest last.
    let (mut up, mut down) = (150u64, 190u64);
    for sec in 4..4 + crate::quality::history::POINTS as u64 {
        up += 50;
        down += 50;
        let at = sec as f64;
        bed.set(up_lan, 1, state(up, 0, 0, 8000, 0, at));
        bed.set(up_wan, 1, state(up - 5, 0, 0, 8000, 0, at));
        bed.set(down_wan, 2, state(down, 10, 0, 8000, 16 * 8, at));
        bed.set(down_lan, 2, state(down, 0, 0, 8000, 16 * 8, at));
        last = Some(bed.poll(at));
    }
    let p = last.unwrap();
    let h = &p.calls[0].window_history;
    assert_eq!(h.len(), crate::quality::history::POINTS);
    assert_eq!(h[0].unix_s, EPOCH + 4);
    assert_eq!(
        h.last().map(|x| x.unix_s),
        Some(EPOCH + 3 + crate::quality::history::POINTS as u64)
    );
    // Each of these polls: 50 expected each way, nothing lost.
    assert!(h.iter().all(|x| (x.expected, x.lost) == (50, 0)), "{h:#?}");
}
