//! Calls end to end on the NAT testbed: a STUN responder with a known delay gives the
//! call's RTT, and a real SIPp call (RTP played from SIPp's G.711 pcap, echoed by the
//! far end) appears in `monitor status` with its quality.

mod quality;

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    process::Stdio,
    time::{Duration, Instant},
};

use quality::Bed;
use serde_json::Value;
use xtask::{
    TempDir,
    rtp::RtpStream,
    testbed::{LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{tcp_echo_server, tcp_exchange, udp_responder},
};

const STUN_DELAY: Duration = Duration::from_millis(40);
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

fn stun_request(n: u8) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00];
    m.extend_from_slice(&MAGIC);
    m.extend_from_slice(&[
        0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, n,
    ]);
    m
}

fn call_with(status: &Value, inner: &str, peer: &str) -> Option<Value> {
    status["calls"]
        .as_array()?
        .iter()
        .find(|c| c["inner_addr"] == inner && c["peer_addr"] == peer)
        .cloned()
}

#[test]
fn stun_rtt_with_a_known_delay_is_the_call_rtt() {
    let bed = Bed::new();
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    // The "media node": answers binding requests after 40 ms, echoes everything else.
    let _responder = bed
        .tb
        .wan
        .run(|| {
            udp_responder(node, 1000, Duration::from_secs(60), |req| {
                if req.len() >= 20 && req[0..2] == [0x00, 0x01] && req[4..8] == MAGIC {
                    std::thread::sleep(STUN_DELAY);
                    let mut resp = req[..20].to_vec();
                    resp[0..2].copy_from_slice(&[0x01, 0x01]);
                    resp[2..4].copy_from_slice(&[0, 0]);
                    resp
                } else {
                    req.to_vec()
                }
            })
        })
        .expect("responder");
    bed.tb.lan.run(|| {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 42000)).unwrap();
        let mut rtp = RtpStream::pcmu(0x5157_0001);
        for i in 0..60u8 {
            socket.send_to(&rtp.next_packet(172), node).unwrap();
            if i % 10 == 5 {
                socket.send_to(&stun_request(i), node).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let status = bed.status_until(Duration::from_secs(10), |s| {
        call_with(s, "192.0.2.10", "203.0.113.10").is_some_and(|c| !c["rtt_ms"].is_null())
            && s["media"]["packets"]["rtp"] == 4 * 60
            && s["media"]["packets"]["stun"] == 24
    });
    let call = call_with(&status, "192.0.2.10", "203.0.113.10").unwrap();
    let rtt = call["rtt_ms"].as_f64().unwrap();
    assert!(
        (rtt - 40.0).abs() <= 1.0,
        "RTT {rtt} ms, the responder waits 40 ms; call:\n{call:#}"
    );
    assert_eq!(
        call["one_way_latency_ms_estimate"].as_f64().unwrap(),
        rtt / 2.0
    );
    assert_eq!(call["direction"], "both");
    // Six requests, each seen entering (lan0) and leaving (wan0); six responses paired.
    let media = &status["media"];
    assert_eq!(media["stun_requests"], 12, "{media:#}");
    assert_eq!(media["stun_matched"], 6, "{media:#}");
    assert_eq!(media["packets"]["stun"], 24, "{media:#}");
    assert_eq!(media["packets"]["rtp"], 4 * 60, "{media:#}");
}

#[test]
fn tcp_handshake_rtt_of_signalling_is_measured_on_both_sides() {
    let bed = Bed::new();
    let sip = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5061);
    let _server = bed
        .tb
        .wan
        .run(|| tcp_echo_server(sip))
        .expect("echo server");
    bed.tb
        .lan
        .run(|| tcp_exchange(Some(43000), sip, 100))
        .expect("tcp exchange");
    let status = bed.status_until(Duration::from_secs(10), |s| {
        s["media"]["handshakes"]
            .as_array()
            .is_some_and(|h| h.len() == 2)
    });
    let hs = status["media"]["handshakes"].as_array().unwrap();
    for (interface, direction) in [("lan0", "ingress"), ("wan0", "egress")] {
        let h = hs
            .iter()
            .find(|h| h["interface"] == interface)
            .unwrap_or_else(|| panic!("no handshake on {interface}: {hs:#?}"));
        assert_eq!(h["direction"], direction);
        assert_eq!(h["dst_port"], 5061);
        assert_eq!(h["class"], "sip_signalling");
        // No delay on the testbed: well under a few milliseconds, never zero.
        let rtt = h["rtt_ms"].as_f64().unwrap();
        assert!(rtt > 0.0 && rtt < 20.0, "{h:#}");
    }
    assert_eq!(status["media"]["handshakes_timed"], 2);
}

/// A SIPp process in a namespace, killed on drop.
struct Sipp(std::process::Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sipp_call_through_the_nat_is_a_call_with_its_quality() {
    let bed = Bed::new();
    let dir = TempDir::new().expect("tempdir");
    // The uac_pcap scenario plays pcap/g711a.pcap relative to its working directory.
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.join("pcap")).expect("pcap link");
    let _uas = Sipp(
        bed.tb
            .wan
            .command(&[
                "sipp",
                "-sn",
                "uas",
                "-i",
                "203.0.113.10",
                "-p",
                "5060",
                "-mp",
                "5004",
                "-rtp_echo",
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "40s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas (Debian package sip-tester)"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut uac = Sipp(
        bed.tb
            .lan
            .command(&[
                "sipp",
                "-sn",
                "uac_pcap",
                "203.0.113.10:5060",
                "-i",
                "192.0.2.10",
                "-p",
                "5070",
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "40s",
                "-timeout_error",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uac"),
    );
    // Mid-call (the pcap plays for about 8 s), once its window has enough packets for a
    // verdict: the call is listed with its quality.
    let status = bed.status_until(Duration::from_secs(15), |s| {
        call_with(s, "192.0.2.10", "203.0.113.10")
            .is_some_and(|c| c["direction"] == "both" && c["window"]["sufficient"] == true)
    });
    let call = call_with(&status, "192.0.2.10", "203.0.113.10").unwrap();
    assert_eq!(call["peer_port"], 5004);
    assert_eq!(call["kind"], "audio");
    assert_eq!(call["clock_rate"], 8000);
    assert_eq!(call["clock_source"], "static");
    assert_eq!(call["mos_codec"], "G.711");
    assert_eq!(call["loss_pct"].as_f64().unwrap(), 0.0, "{call:#}");
    assert!(call["jitter_ms"].as_f64().unwrap() < 30.0, "{call:#}");
    assert!(call["mos"].as_f64().unwrap() > 4.0, "{call:#}");
    assert_eq!(call["health"], "ok", "{call:#}");
    assert_eq!(call["legs"][0]["measured_at"], "lan0 ingress");
    assert_eq!(call["legs"][1]["measured_at"], "wan0 ingress");

    // The human view shows it too.
    let text = std::process::Command::new(xtask::monitor_bin())
        .args(["status", "--socket"])
        .arg(bed.dir.join("monitor.sock"))
        .output()
        .expect("monitor status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CALLS (1 active"), "{text}");
    assert!(text.contains("192.0.2.10"), "{text}");

    // SIPp finishes its call (BYE) successfully.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = uac.0.try_wait().expect("wait uac") {
            assert!(st.success(), "sipp uac exit {st}");
            break;
        }
        assert!(Instant::now() < deadline, "sipp uac did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
}
