//! The oracle test of call quality: generated RTP streams with exact, known impairments
//! cross the NAT testbed while tshark captures on the gateway's LAN interface; the
//! daemon's per-stream packets, loss and jitter (measured by the XDP program on the same
//! interface) must agree with `tshark -z rtp,streams` on the same capture — loss exactly,
//! jitter within 0.5 ms or 5 % — and with the generator's ground truth.
//!
//! Like with like: tshark's "Lost" is expected − received with duplicates counted as
//! received (it can go negative), which is RFC 3550's cumulative loss, the daemon's
//! `lost_rfc`; the daemon's `lost` (duplicates removed) is checked against the ground
//! truth. tshark prints the maximum and mean jitter over "regular" packets (in timestamp
//! order, no marker bit), not the final value; the daemon keeps the same two.

mod quality;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use quality::{Bed, Capture, monitor_streams, rtp_streams};
use xtask::{
    rtpgen::{self, Plan},
    testbed::{GW_LAN_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::udp_sink,
};

const MEDIA_PORT: u16 = 5004;
const SEED: u64 = 0x5eed_0001;

fn close(what: &str, monitor: f64, tshark: f64) {
    let tolerance = (0.5f64).max(0.05 * tshark.abs());
    assert!(
        (monitor - tshark).abs() <= tolerance,
        "{what}: monitor {monitor:.3} ms vs tshark {tshark:.3} ms (tolerance {tolerance:.3})"
    );
}

#[test]
fn per_stream_loss_and_jitter_agree_with_tshark() {
    let bed = Bed::new();
    let _sink = bed
        .tb
        .wan
        .run(|| udp_sink(SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT)))
        .expect("sink");
    let profiles = rtpgen::standard_profiles(200);
    let plans: Vec<Plan> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| rtpgen::plan(p, 0x1000_0000 + 0x100 * i as u32, SEED))
        .collect();
    let total: usize = plans.iter().map(|p| p.packets.len()).sum();

    let capture = Capture::start(
        &bed.tb.gw,
        GW_LAN_IF,
        &format!("udp dst port {MEDIA_PORT}"),
        total as u32,
        Duration::from_secs(60),
        bed.dir.path(),
    );
    // All profiles at once, each from its own port: one 4-second call per profile.
    bed.tb.lan.run(|| {
        std::thread::scope(|s| {
            for (i, plan) in plans.iter().enumerate() {
                s.spawn(move || {
                    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 41000 + i as u16);
                    let to = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
                    rtpgen::send(plan, from, to).expect("send");
                });
            }
        })
    });
    let file = capture.finish(Duration::from_secs(30));
    let (tshark, text) = rtp_streams(&file, MEDIA_PORT);
    // For a look at a failure: MONITOR_KEEP_CAPTURE=<path> keeps the capture.
    if let Ok(keep) = std::env::var("MONITOR_KEEP_CAPTURE") {
        std::fs::copy(&file, keep).expect("keeping the capture");
    }

    let want_streams: usize = plans.iter().map(|p| p.truth.len()).sum();
    let status = bed.status_until(Duration::from_secs(10), |s| {
        let streams = monitor_streams(s);
        plans.iter().flat_map(|p| p.truth.iter()).all(|t| {
            streams.iter().any(|m| {
                m["ssrc"] == t.ssrc && m["interface"] == GW_LAN_IF && m["packets"] == t.sent
            })
        })
    });
    let streams = monitor_streams(&status);
    assert_eq!(tshark.len(), want_streams, "tshark streams:\n{text}");

    for (profile, plan) in profiles.iter().zip(&plans) {
        for truth in &plan.truth {
            let name = format!("{} (SSRC {:#x})", profile.name, truth.ssrc);
            let t = tshark
                .iter()
                .find(|t| t.ssrc == truth.ssrc)
                .unwrap_or_else(|| panic!("{name}: not in tshark's streams:\n{text}"));
            let m = streams
                .iter()
                .find(|m| {
                    m["ssrc"] == truth.ssrc
                        && m["interface"] == GW_LAN_IF
                        && m["direction"] == "ingress"
                })
                .unwrap_or_else(|| panic!("{name}: not in the daemon's calls"));
            // Ground truth, tshark and the monitor: packets and loss exactly.
            assert_eq!(t.packets, truth.sent, "{name}: tshark packets");
            assert_eq!(m["packets"], truth.sent, "{name}: monitor packets");
            assert_eq!(t.lost, truth.lost_rfc(), "{name}: tshark lost");
            assert_eq!(m["lost_rfc"], t.lost, "{name}: monitor lost vs tshark");
            assert_eq!(m["lost"], truth.lost, "{name}: monitor lost vs truth");
            assert_eq!(m["duplicates"], truth.duplicates, "{name}: duplicates");
            assert_eq!(m["reordered"], truth.reordered, "{name}: reordered");
            assert_eq!(m["clock_source"], "static", "{name}");
            // Jitter within 0.5 ms or 5 %.
            close(
                &format!("{name}: max jitter"),
                m["max_jitter_ms"].as_f64().unwrap(),
                t.max_jitter_ms,
            );
            close(
                &format!("{name}: mean jitter"),
                m["mean_jitter_ms"].as_f64().unwrap(),
                t.mean_jitter_ms,
            );
        }
    }
}
