//! Calls on the NAT testbed with known ground truth: concurrent calls of one host are
//! separate calls with their own exact loss and port; consecutive calls are separate
//! records; loss dropped inside the gateway (an nftables rule in the forward path) and
//! loss on the WAN host's side are each attributed to their segment with the exact
//! count; a bundle of Opus and video on one 5-tuple gets its voice MOS from Opus alone.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    bed::GatewayBed,
    rtp::RtpStream,
    testbed::{LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{udp_responder, udp_sink},
};

const NODE_PORT: u16 = 5004;
/// Calls end after 4 s of silence here (default 60 s), so records come quickly.
const QUALITY: &str = "\n[quality]\ncall_idle_s = 4\n";

fn node() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), NODE_PORT)
}

/// Sends `n` G.711 packets 20 ms apart from the LAN host's `port`; `lose(i)` skips
/// packet `i` (a sequence gap: ground-truth loss before the gateway).
fn phone(port: u16, ssrc: u32, n: u32, lose: impl Fn(u32) -> bool) {
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port)).unwrap();
    let mut rtp = RtpStream::pcmu(ssrc);
    let start = Instant::now();
    for i in 0..n {
        if lose(i) {
            rtp.skip(1);
        } else {
            socket.send_to(&rtp.next_packet(172), node()).unwrap();
        }
        let next = start + Duration::from_millis(20 * u64::from(i + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn call_on(status: &Value, port: u16) -> Option<Value> {
    status["calls"]
        .as_array()?
        .iter()
        .find(|c| c["inner_port"] == port)
        .cloned()
}

fn records_on(status: &Value, port: u16) -> Vec<Value> {
    status["call_records"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|c| c["inner_port"] == port)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn segment(call: &Value, name: &str, direction: &str) -> Value {
    call["segments"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["segment"] == name && s["direction"] == direction)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {name} {direction} segment in {call:#}"))
}

/// Waits up to `secs` seconds for `done`.
fn wait(bed: &GatewayBed, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = bed.status();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; calls:\n{:#}\nrecords:\n{:#}\nlog:\n{}",
            s["calls"],
            s["call_records"],
            bed.daemon().log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn concurrent_calls_of_one_host_are_two_calls_and_consecutive_ones_separate_records() {
    let bed = GatewayBed::launch_with(QUALITY, |_| {});
    let _sink = bed.tb.wan.run(|| udp_sink(node())).expect("sink");
    // Two calls at once from one host to one node: 500 packets each, one losing every
    // tenth (50 of 500: exactly 10 %), first and last packets never lost.
    bed.tb.lan.run(|| {
        std::thread::scope(|s| {
            s.spawn(|| phone(41000, 0xa000_0001, 500, |_| false));
            s.spawn(|| phone(41002, 0xa000_0002, 500, |i| i % 10 == 5));
        })
    });
    let status = wait(&bed, "both calls with every packet", 10, |s| {
        [41000, 41002]
            .iter()
            .all(|p| call_on(s, *p).is_some_and(|c| c["legs"][0]["expected"] == 500))
    });
    let clean = call_on(&status, 41000).unwrap();
    let lossy = call_on(&status, 41002).unwrap();
    assert_eq!(clean["inner_addr"], "192.0.2.10");
    assert_eq!(clean["peer_port"], NODE_PORT);
    assert_eq!(clean["loss_pct"], 0.0, "{clean:#}");
    assert_eq!(clean["legs"][0]["lost"], 0);
    assert_eq!(clean["health"], "ok", "{clean:#}");
    assert_eq!(lossy["loss_pct"], 10.0, "{lossy:#}");
    assert_eq!(lossy["legs"][0]["lost"], 50);
    assert_eq!(lossy["legs"][0]["packets"], 450);
    let lan = segment(&lossy, "phone_to_gateway", "to_webex");
    assert_eq!(
        (lan["expected"].as_u64(), lan["lost"].as_u64()),
        (Some(500), Some(50))
    );
    assert_eq!(segment(&lossy, "gateway", "to_webex")["lost"], 0);
    assert_ne!(lossy["health"], "ok", "{lossy:#}");
    assert_eq!(lossy["bad_segment"], "phone_to_gateway");
    assert_ne!(clean["id"], lossy["id"]);
    let first_id = clean["id"].clone();

    // Both end after 4 s of silence and become records, each with its own numbers.
    let status = wait(&bed, "two records", 10, |s| {
        s["calls"].as_array().is_some_and(|c| c.is_empty())
            && records_on(s, 41000).len() == 1
            && records_on(s, 41002).len() == 1
    });
    let rec = &records_on(&status, 41002)[0];
    assert_eq!(rec["loss_pct"], 10.0, "{rec:#}");
    assert_eq!(rec["packets"], 450);
    assert_eq!(records_on(&status, 41000)[0]["id"], first_id);
    assert_eq!(status["call_tracking"]["calls_ended"], 2);

    // The same 5-tuple again: a new call, a new record; the first is still listed.
    bed.tb.lan.run(|| phone(41000, 0xa000_0003, 150, |_| false));
    let status = wait(&bed, "a second record on port 41000", 10, |s| {
        records_on(s, 41000).len() == 2
    });
    let recs = records_on(&status, 41000);
    assert_eq!(recs[0]["packets"], 150, "newest first: {recs:#?}");
    assert_eq!(recs[0]["loss_pct"], 0.0);
    assert_eq!(recs[1]["packets"], 500);
    assert_ne!(recs[0]["id"], recs[1]["id"]);
    assert_eq!(status["call_tracking"]["calls_started"], 3);
}

#[test]
fn loss_inside_the_gateway_and_on_the_isp_path_is_attributed_with_exact_counts() {
    // The gateway drops every 20th packet of the phone's stream in its forward path.
    let bed = GatewayBed::launch_with(QUALITY, |tb| {
        tb.gw
            .exec(&[
                "nft",
                "table inet lossy {
                    chain drop_some {
                        type filter hook forward priority 0; policy accept;
                        udp sport 42000 numgen inc mod 20 == 0 drop
                    }
                }",
            ])
            .expect("nft drop rule");
    });
    // The "media node" answers each packet with its own RTP stream, leaving a gap
    // before every 40th answer (the ISP path losing packets from Webex).
    let answers = Arc::new(Mutex::new((RtpStream::pcmu(0xb000_0002), 0u32)));
    let responder = {
        let answers = answers.clone();
        bed.tb
            .wan
            .run(|| {
                udp_responder(node(), 1000, Duration::from_secs(60), move |_| {
                    let mut a = answers.lock().unwrap();
                    if a.1 % 40 == 20 {
                        a.0.skip(1);
                    }
                    a.1 += 1;
                    a.0.next_packet(172)
                })
            })
            .expect("responder")
    };
    bed.tb.lan.run(|| phone(42000, 0xb000_0001, 400, |_| false));
    // 400 in on lan0, 380 out on wan0; 380 answers with 9 gaps: 389 expected.
    let status = wait(&bed, "every packet counted on both sides", 10, |s| {
        call_on(s, 42000)
            .is_some_and(|c| c["legs"][0]["packets"] == 400 && c["legs"][1]["packets"] == 380)
    });
    assert_eq!(responder.replied(), 380);
    let call = call_on(&status, 42000).unwrap();
    let gw_up = segment(&call, "gateway", "to_webex");
    assert_eq!(gw_up["expected"], 400, "{call:#}");
    assert_eq!(gw_up["lost"], 20, "{call:#}");
    assert_eq!(gw_up["measured"], "lan0 ingress - wan0 egress");
    assert_eq!(segment(&call, "phone_to_gateway", "to_webex")["lost"], 0);
    let isp = segment(&call, "isp_from_webex", "from_webex");
    assert_eq!(isp["expected"], 389, "{call:#}");
    assert_eq!(isp["lost"], 9, "{call:#}");
    assert_eq!(segment(&call, "gateway", "from_webex")["lost"], 0);
    // 20 of 400 is the worst: the gateway is the bad segment, and the finding's fix
    // is about the gateway.
    assert_eq!(call["loss_pct"], 5.0);
    assert_eq!(call["bad_segment"], "gateway", "{call:#}");
    let finding = status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "quality_threshold" && a["cleared_unix_s"].is_null())
        .unwrap_or_else(|| panic!("no quality finding: {:#}", status["anomalies"]))
        .clone();
    assert!(
        finding["remediation"]
            .as_str()
            .unwrap()
            .contains("the gateway itself drops them"),
        "{finding:#}"
    );
    assert!(
        finding["subject"]
            .as_str()
            .unwrap()
            .contains(call["id"].as_str().unwrap()),
        "{finding:#}"
    );
}

#[test]
fn a_bundle_gets_its_voice_mos_from_the_opus_stream_only() {
    let bed = GatewayBed::launch_with(QUALITY, |_| {});
    let _sink = bed.tb.wan.run(|| udp_sink(node())).expect("sink");
    // Opus (dynamic PT 111, 48 kHz, 20 ms) losing every 20th packet and clean video (PT
    // 96, 90 kHz) on one 5-tuple.
    bed.tb.lan.run(|| {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 43000)).unwrap();
        let mut opus = RtpStream::new(0xc000_0001, 111, 960);
        let mut video = RtpStream::new(0xc000_0002, 96, 1800);
        let start = Instant::now();
        for i in 0..400u32 {
            if i % 20 == 10 {
                opus.skip(1);
            } else {
                socket.send_to(&opus.next_packet(120), node()).unwrap();
            }
            socket.send_to(&video.next_packet(1000), node()).unwrap();
            let next = start + Duration::from_millis(20 * u64::from(i + 1));
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    let status = wait(&bed, "both streams counted", 10, |s| {
        call_on(s, 43000).is_some_and(|c| {
            c["legs"][0]["streams"]
                .as_array()
                .is_some_and(|st| st.len() == 2 && st.iter().all(|x| x["expected"] == 400))
        })
    });
    let call = call_on(&status, 43000).unwrap();
    let streams = call["legs"][0]["streams"].as_array().unwrap();
    let opus = streams.iter().find(|s| s["payload_type"] == 111).unwrap();
    let video = streams.iter().find(|s| s["payload_type"] == 96).unwrap();
    assert_eq!(opus["clock_rate"], 48000, "{opus:#}");
    assert_eq!(video["clock_rate"], 90000, "{video:#}");
    assert_eq!(opus["media"], "voice");
    assert_eq!(video["media"], "video");
    assert!(video["mos"].is_null(), "{video:#}");
    // Each video packet here has a new 90 kHz timestamp: as many frames as packets over
    // the same window, less those before the clock rate was inferred (200 ms: about 11
    // of 400), at most 50/s.
    let fps = video["frames_per_s"].as_f64().unwrap();
    let pps = video["packets_per_s"].as_f64().unwrap();
    assert!(fps > 30.0 && fps <= pps && fps >= 0.95 * pps, "{video:#}");
    assert!(opus["frames_per_s"].is_null(), "{opus:#}");
    assert_eq!(opus["lost"], 20);
    // The call's MOS is the Opus stream's, from its own window loss, jitter and codec.
    assert_eq!(call["mos"], opus["mos"], "{call:#}");
    assert_eq!(call["mos_codec"], "Opus (as G.711)");
    use monitor::quality::mos;
    let loss =
        opus["window_lost"].as_f64().unwrap() * 100.0 / opus["window_expected"].as_f64().unwrap();
    let want = mos::mos(
        mos::OPUS,
        2.0 * opus["window_jitter_ms"].as_f64().unwrap(),
        loss,
        opus["burst_r"].as_f64().unwrap(),
    );
    let got = call["mos"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 0.006,
        "MOS {got} vs {want} from {opus:#}"
    );
    // 5 % loss on Opus: far below a clean stream's 4.41, whatever the video does.
    assert!(got < 4.0, "{call:#}");
}

#[test]
fn a_hang_up_makes_a_record_and_the_same_tuple_30_s_later_is_a_new_healthy_call() {
    let bed = GatewayBed::launch_with(QUALITY, |_| {});
    // Webex answers each packet of the phone with its own stream.
    let down = Arc::new(Mutex::new(RtpStream::pcmu(0xf000_0002)));
    let responder = {
        let down = down.clone();
        bed.tb
            .wan
            .run(|| {
                udp_responder(node(), 200, Duration::from_secs(60), move |_| {
                    down.lock().unwrap().next_packet(172)
                })
            })
            .expect("responder")
    };
    bed.tb.lan.run(|| phone(46000, 0xf000_0001, 200, |_| false));
    assert_eq!(
        responder.wait_for_replies(200, Duration::from_secs(10)),
        200
    );
    let nat = responder.sources()[0];
    drop(responder);
    // The phone hung up (its socket is closed); Webex still sends 20 packets.
    bed.tb.wan.run(|| {
        let socket = UdpSocket::bind(node()).expect("bind the node's port again");
        for _ in 0..20 {
            socket
                .send_to(&down.lock().unwrap().next_packet(172), nat)
                .expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let hung_up = Instant::now();
    let status = wait(&bed, "the call's record", 15, |s| {
        records_on(s, 46000).len() == 1 && call_on(s, 46000).is_none()
    });
    let rec = records_on(&status, 46000)[0].clone();
    let leg = |dir: &str| {
        rec["legs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["direction"] == dir)
            .cloned()
            .unwrap_or_else(|| panic!("no {dir} leg in {rec:#}"))
    };
    assert_eq!(leg("to_webex")["packets"], 200, "{rec:#}");
    assert_eq!(leg("from_webex")["packets"], 220, "{rec:#}");
    assert_eq!(rec["loss_pct"], 0.0);
    assert_eq!(rec["worst_health"], "ok");

    // 30 s later the same 5-tuple again: a new, healthy call of its own packets only.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(hung_up.elapsed()));
    let _sink = bed.tb.wan.run(|| udp_sink(node())).expect("sink");
    bed.tb.lan.run(|| phone(46000, 0xf000_0003, 150, |_| false));
    let status = wait(&bed, "the new call", 10, |s| {
        call_on(s, 46000).is_some_and(|c| c["legs"][0]["expected"] == 150)
    });
    let call = call_on(&status, 46000).unwrap();
    assert_ne!(call["id"], rec["id"]);
    assert_eq!(call["packets"], 150, "{call:#}");
    assert_eq!(call["health"], "ok", "{call:#}");
    assert_eq!(call["window"]["sufficient"], true, "{call:#}");
    assert_eq!(call["loss_pct"], 0.0);
    assert_eq!(
        records_on(&status, 46000).len(),
        1,
        "the old call is still a record"
    );
}
