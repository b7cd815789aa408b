//! DSCP end to end on the NAT testbed, with tshark on the WAN host as the independent
//! oracle: rewrite on the gateway's WAN egress puts EF on audio, AF41 on video, CS3 on
//! SIP signalling and leaves other traffic alone (exact packet counts per mark); verify
//! counts unmarked LAN traffic exactly; marks cleared on the way back by an nftables
//! rule are reported as bleached (information); an unmarked phone is one finding for its
//! class that clears after the call and stays cleared after a restart.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    Daemon, Netns, PinDir, TempDir, Testbed,
    capture::Capture,
    monitor_bin,
    testbed::{GW_WAN_V4, LAN_HOST_V4, WAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{send_udp, tcp_echo_server, tcp_exchange, udp_call, udp_echo, udp_sink},
};

const PAYLOAD: usize = 160;
const AUDIO_PORT: u16 = 52000;
const VIDEO_PORT: u16 = 52100;

struct Bed {
    // Field order is drop order: daemon first, then namespaces, then pins and files.
    daemon: Daemon,
    tb: Testbed,
    _pin: PinDir,
    dir: TempDir,
}

impl Bed {
    /// The testbed gateway config with `wan_lines` added to the wan0 section, and the
    /// dedicated port ranges on when `dedicated`.
    fn new(wan_lines: &str, dedicated: bool) -> Bed {
        let tb = Testbed::new().expect("testbed");
        let dir = TempDir::new().expect("tempdir");
        let pin = PinDir::new();
        let config = dir.join("monitor.toml");
        let socket = dir.join("monitor.sock");
        let mut text = xtask::config::gateway_config(pin.path(), &socket)
            .replace(
                "name = \"wan0\"\nrole = \"wan\"\n",
                &format!("name = \"wan0\"\nrole = \"wan\"\n{wan_lines}\n"),
            )
            .replace("[daemon]\n", "[daemon]\npoll_interval_ms = 200\n");
        if dedicated {
            text = text.replace("[webex]\n", "[webex]\ndedicated_port_ranges = true\n");
        }
        std::fs::write(&config, text).expect("config");
        let daemon = Daemon::start(&monitor_bin(), &tb.gw, &config, &socket).expect("daemon");
        Bed {
            daemon,
            tb,
            _pin: pin,
            dir,
        }
    }

    fn status(&self) -> Value {
        self.daemon.status_json().expect("status --json")
    }

    /// Polls status until `done` holds (at most 10 s), returning that status.
    fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; flows:\n{}\nanomalies:\n{}\nlog:\n{}",
                    serde_json::to_string_pretty(&s["flows"]).unwrap(),
                    serde_json::to_string_pretty(&s["anomalies"]).unwrap(),
                    self.daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn send(&self, src_port: u16, to: SocketAddr, count: u32) {
        let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), src_port);
        self.tb
            .lan
            .run(|| send_udp(from, to, count, PAYLOAD, Duration::from_millis(1)))
            .expect("send");
    }
}

/// Captured packets per (transport and destination address, port, DSCP, ECN).
type Counts = BTreeMap<(String, u16, u8, u8), u64>;

/// For packets from `src` in `capture`, the number of packets per (transport and
/// destination, destination port, DSCP, ECN) and the largest IP length per destination
/// port.
fn finish(capture: Capture, src: IpAddr) -> (Counts, BTreeMap<u16, u64>) {
    let rows = capture.fields(
        "ip",
        &[
            "ip.src",
            "ip.dst",
            "udp.dstport",
            "tcp.dstport",
            "ip.dsfield.dscp",
            "ip.dsfield.ecn",
            "ip.len",
        ],
    );
    let mut counts = BTreeMap::new();
    let mut max_len = BTreeMap::new();
    for f in rows {
        if f.len() < 7 || f[0] != src.to_string() {
            continue;
        }
        let (proto, port) = if !f[2].is_empty() {
            ("udp", &f[2])
        } else {
            ("tcp", &f[3])
        };
        let key = (
            format!("{proto} {}", f[1]),
            port.parse().unwrap_or(0),
            f[4].parse().unwrap_or(255),
            f[5].parse().unwrap_or(255),
        );
        let len = f[6].parse::<u64>().unwrap_or(0);
        let largest = max_len.entry(key.1).or_insert(0);
        *largest = len.max(*largest);
        *counts.entry(key).or_insert(0) += 1;
    }
    (counts, max_len)
}

fn flows(status: &Value) -> Vec<Value> {
    status["flows"].as_array().expect("flows").clone()
}

/// The one flow on `interface`/`direction` with this destination port and source
/// (address or port 0 for any).
fn find(status: &Value, interface: &str, direction: &str, dst_port: u16) -> Option<Value> {
    let m: Vec<Value> = flows(status)
        .into_iter()
        .filter(|f| {
            f["interface"] == interface && f["direction"] == direction && f["dst_port"] == dst_port
        })
        .collect();
    assert!(m.len() <= 1, "one flow expected: {m:?}");
    m.into_iter().next()
}

fn dscp_u64(f: &Value, field: &str) -> u64 {
    f["dscp"][field].as_u64().unwrap_or(0)
}

fn anomaly(status: &Value, id: &str, subject: &str) -> Option<Value> {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id && a["subject"] == subject && a["cleared_unix_s"].is_null())
        .cloned()
}

/// (id, subject) of every DSCP anomaly listed, open or cleared.
fn dscp_findings(status: &Value) -> Vec<(String, String)> {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"].as_str().unwrap().starts_with("dscp_"))
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn nft(ns: &Netns, ruleset: &str) {
    let mut cmd = ns.command(&["nft", "-f", "-"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("nft");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f failed:\n{ruleset}");
}

#[test]
fn rewrite_on_wan_egress_marks_each_class_and_leaves_other_traffic_alone() {
    const AUDIO: u32 = 120;
    const VIDEO: u32 = 80;
    const OTHER: u32 = 50;
    const OTHER_MARKED: u32 = 30;
    const SIP_BYTES: usize = 300_000;
    let bed = Bed::new("dscp_egress = \"rewrite\"", true);
    // Non-Webex traffic the LAN host marks CS1 itself: must reach the WAN as CS1.
    nft(
        &bed.tb.lan,
        "table ip premark {\n chain out {\n type filter hook output priority 0; policy accept;\n \
         ip daddr 198.51.100.2 udp dport 5005 ip dscp set cs1\n }\n}\n",
    );
    let node = |port| SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), port);
    let wan_host = |port| SocketAddr::new(IpAddr::V4(WAN_HOST_V4), port);
    let sinks: Vec<_> = [node(5004), node(9000), wan_host(5004), wan_host(5005)]
        .into_iter()
        .map(|a| bed.tb.wan.run(|| udp_sink(a)).expect("sink"))
        .collect();
    let echo = bed
        .tb
        .wan
        .run(|| tcp_echo_server(node(5061)))
        .expect("echo");
    let echo_gw = bed
        .tb
        .wan
        .run(|| tcp_echo_server(node(5062)))
        .expect("echo");
    let capture = Capture::start(&bed.tb.wan, "eth0", bed.dir.path());

    bed.send(AUDIO_PORT, node(5004), AUDIO);
    bed.send(VIDEO_PORT, node(9000), VIDEO);
    bed.send(40000, wan_host(5004), OTHER);
    bed.send(40001, wan_host(5005), OTHER_MARKED);
    bed.tb
        .lan
        .run(|| tcp_exchange(Some(40002), node(5061), SIP_BYTES))
        .expect("sip over tcp");
    // The gateway's own SIP/TLS connection: its socket hands TC egress TSO super-packets
    // (headers in the skb head, payload in page fragments), rewritten once for all
    // their segments.
    bed.tb
        .gw
        .run(|| tcp_exchange(Some(40003), node(5062), SIP_BYTES))
        .expect("gateway sip over tcp");
    for (sink, n) in sinks.iter().zip([AUDIO, VIDEO, OTHER, OTHER_MARKED]) {
        assert_eq!(sink.wait_for(n as u64, Duration::from_secs(10)), n as u64);
    }
    let status = bed.wait_status("the SIP flow on wan0", |s| {
        find(s, "wan0", "egress", 5061).is_some_and(|f| {
            f["packets"].as_u64() == Some(dscp_u64(&f, "matched"))
                && f["idle_s"].as_f64() > Some(0.5)
        })
    });
    let (counts, max_len) = finish(capture, IpAddr::V4(GW_WAN_V4));
    drop(echo);
    drop(echo_gw);

    let node_ip = format!("udp {WEBEX_NODE_V4}");
    let host_ip = format!("udp {WAN_HOST_V4}");
    let tcp_node = format!("tcp {WEBEX_NODE_V4}");
    let per = |dst: &str, port: u16| -> BTreeMap<(u8, u8), u64> {
        counts
            .iter()
            .filter(|((d, p, _, _), _)| d == dst && *p == port)
            .map(|((_, _, dscp, ecn), n)| ((*dscp, *ecn), *n))
            .collect()
    };
    assert_eq!(
        per(&node_ip, 5004),
        BTreeMap::from([((46, 0), AUDIO as u64)]),
        "audio EF"
    );
    assert_eq!(
        per(&node_ip, 9000),
        BTreeMap::from([((34, 0), VIDEO as u64)]),
        "video AF41"
    );
    assert_eq!(
        per(&host_ip, 5004),
        BTreeMap::from([((0, 0), OTHER as u64)]),
        "not Webex: unchanged"
    );
    assert_eq!(
        per(&host_ip, 5005),
        BTreeMap::from([((8, 0), OTHER_MARKED as u64)]),
        "not Webex, marked CS1 by its sender: unchanged"
    );
    let sip = per(&tcp_node, 5061);
    assert_eq!(
        sip.keys().copied().collect::<Vec<_>>(),
        vec![(24, 0)],
        "SIP CS3: {sip:?}"
    );
    let sip_captured = sip[&(24, 0)];

    // The daemon's view agrees: every packet rewritten, none left wrong.
    let f = find(&status, "wan0", "egress", 5004).expect("audio flow");
    assert_eq!(
        (f["class"].as_str(), f["classified_by"].as_str()),
        (Some("audio"), Some("port_range"))
    );
    assert_eq!(
        (
            dscp_u64(&f, "matched"),
            dscp_u64(&f, "mismatched"),
            dscp_u64(&f, "rewritten")
        ),
        (AUDIO as u64, 0, AUDIO as u64)
    );
    let f = find(&status, "wan0", "egress", 9000).expect("video flow");
    assert_eq!(f["class"], "video");
    assert_eq!(dscp_u64(&f, "rewritten"), VIDEO as u64);
    let f = find(&status, "wan0", "egress", 5061).expect("sip flow");
    let sip_packets = f["packets"].as_u64().unwrap();
    assert_eq!(dscp_u64(&f, "rewritten"), sip_packets);
    assert_eq!(dscp_u64(&f, "mismatched"), 0);
    // Forwarded from the LAN (veth with native XDP carries no GSO): the wire count is
    // the flow's count exactly.
    assert!(
        max_len[&5061] <= 1500,
        "no GSO expected on the forwarded path"
    );
    assert_eq!(sip_captured, sip_packets);
    // The gateway's own connection left as GSO super-packets (tshark on the veth peer
    // sees them unsegmented), every one of them CS3, and the flow counts their segments.
    let gw_sip = per(&tcp_node, 5062);
    assert_eq!(
        gw_sip.keys().copied().collect::<Vec<_>>(),
        vec![(24, 0)],
        "gateway SIP CS3: {gw_sip:?}"
    );
    assert!(
        max_len[&5062] > 1500,
        "expected TSO super-packets from the gateway's socket, largest {}",
        max_len[&5062]
    );
    let f = find(&status, "wan0", "egress", 5062).expect("gateway sip flow");
    let segments = f["packets"].as_u64().unwrap();
    assert!(
        gw_sip[&(24, 0)] < segments,
        "{gw_sip:?} vs {segments} segments"
    );
    assert_eq!(
        (
            dscp_u64(&f, "matched"),
            dscp_u64(&f, "rewritten"),
            dscp_u64(&f, "mismatched")
        ),
        (segments, segments, 0)
    );
    // Compliance on the WAN: 100 % per class.
    let rows = status["dscp"].as_array().unwrap();
    for class in ["audio", "video", "sip_signalling"] {
        let r = rows
            .iter()
            .find(|r| r["interface"] == "wan0" && r["direction"] == "egress" && r["class"] == class)
            .unwrap_or_else(|| panic!("no compliance row for {class}: {rows:?}"));
        assert_eq!(r["compliance_pct"], 100.0, "{r}");
    }
}

#[test]
fn verify_counts_unmarked_lan_traffic_exactly() {
    const N: u32 = 150;
    let bed = Bed::new("", false);
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let sink = bed.tb.wan.run(|| udp_sink(node)).expect("sink");
    bed.send(40000, node, N);
    assert_eq!(sink.wait_for(N as u64, Duration::from_secs(10)), N as u64);
    let status = bed.wait_status("both sides counted", |s| {
        ["lan0", "wan0"]
            .iter()
            .zip(["ingress", "egress"])
            .all(|(i, d)| {
                find(s, i, d, 5004).is_some_and(|f| dscp_u64(&f, "mismatched") == N as u64)
            })
            && anomaly(s, "dscp_missing", "audio").is_some()
    });
    for (iface, dir) in [("lan0", "ingress"), ("wan0", "egress")] {
        let f = find(&status, iface, dir, 5004).unwrap();
        assert_eq!(f["packets"], N as u64);
        assert_eq!(f["dscp"]["matched"], 0);
        assert_eq!(f["dscp"]["mismatched"], N as u64);
        assert_eq!(f["dscp"]["rewritten"], 0);
        assert_eq!(f["dscp"]["seen"], serde_json::json!([0]));
        // Media of unknown kind, 188-byte packets: audio by profile, expected EF.
        assert_eq!(f["classified_by"], "profile");
        assert_eq!(f["dscp_class"], "audio");
        assert_eq!(f["dscp"]["expected"], 46);
    }
    // One finding for the class and its cause (the phone), measured where it can be
    // fixed; the WAN copy of the same unmarked packets is not a second one.
    let a = anomaly(&status, "dscp_missing", "audio").unwrap();
    assert_eq!(evidence(&a, "packets_mismatched"), N.to_string());
    assert_eq!(evidence(&a, "measured_at"), "lan0 ingress");
    assert_eq!(evidence(&a, "flows"), "1");
    assert_eq!(
        dscp_findings(&status),
        [("dscp_missing".to_string(), "audio".to_string())]
    );
    let rows = status["dscp"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["compliance_pct"] == 0.0), "{rows:?}");
}

/// The DSCP window plus the book's clear hold-down (README "DSCP": detectors): a DSCP
/// finding clears within this after its last offending packet, plus a poll.
const DSCP_CLEARS_WITHIN: Duration = Duration::from_secs(20 + 10 + 2);

/// An unmarked phone in a two-way call, seen at four points (LAN ingress, WAN egress,
/// WAN ingress, LAN egress): exactly one DSCP finding, for audio, the phones not
/// marking. It clears within the documented time after the call, and stays cleared
/// after a daemon restart that adopts the pinned flow counters.
#[test]
fn an_unmarked_phone_is_one_finding_that_clears_and_stays_cleared_after_a_restart() {
    const N: u32 = 200;
    let mut bed = xtask::bed::GatewayBed::launch();
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let echo = bed
        .tb
        .wan
        .run(|| udp_echo(node, N, Duration::from_secs(60)))
        .expect("echo");
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 40000);
    let stats = bed
        .tb
        .lan
        .run(|| {
            udp_call(from, node, N, Duration::from_millis(5), |_| {
                vec![0; PAYLOAD]
            })
        })
        .expect("call");
    assert_eq!((stats.sent, stats.received), (N, N));
    let ended = Instant::now();
    assert_eq!(echo.replied(), N as u64);
    let status = bed.wait_status("the finding and all four copies counted", |s| {
        ["lan0", "wan0", "wan0", "lan0"]
            .iter()
            .zip(["ingress", "egress", "ingress", "egress"])
            .all(|(i, d)| {
                flows(s).iter().any(|f| {
                    f["interface"] == *i
                        && f["direction"] == d
                        && dscp_u64(f, "mismatched") == N as u64
                })
            })
            && anomaly(s, "dscp_missing", "audio").is_some()
    });
    assert_eq!(
        dscp_findings(&status),
        [("dscp_missing".to_string(), "audio".to_string())],
        "{:#}",
        status["anomalies"]
    );
    let a = anomaly(&status, "dscp_missing", "audio").unwrap();
    assert_eq!(a["severity"], "warning");
    assert_eq!(evidence(&a, "packets_mismatched"), N.to_string());
    assert_eq!(evidence(&a, "measured_at"), "lan0 ingress");
    assert!(a["remediation"].as_str().unwrap().contains("Control Hub"));

    // The call is over: cleared within the window and hold-down, and not before the
    // window has passed.
    let deadline = ended + DSCP_CLEARS_WITHIN + Duration::from_secs(5);
    let cleared = loop {
        let s = bed.status();
        let listed: Vec<&Value> = s["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["id"] == "dscp_missing")
            .collect();
        assert_eq!(listed.len(), 1, "{listed:#?}");
        if !listed[0]["cleared_unix_s"].is_null() {
            break listed[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "dscp_missing not cleared {:?} after the call: {:#}",
            ended.elapsed(),
            listed[0]
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        ended.elapsed() >= Duration::from_secs(20),
        "cleared before its window passed: {:?}",
        ended.elapsed()
    );
    let open_for =
        cleared["cleared_unix_s"].as_u64().unwrap() - cleared["last_seen_unix_s"].as_u64().unwrap();
    assert!((10..=30).contains(&open_for), "{cleared:#}");

    // One journal line per transition, at the matching level.
    let log = bed.daemon().log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("anomaly dscp_"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("anomaly dscp_missing opened warning on audio"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("INFO")
            && lines[1].contains("anomaly dscp_missing cleared warning on audio"),
        "{lines:#?}"
    );

    // A restart on the same pins: the flows and their lifetime counters are still
    // there, the finding does not come back.
    bed.stop();
    bed.start();
    let s = bed.wait_status("the adopted flows, three polls in", |s| {
        s["daemon"]["adopted_pinned_maps"] == true
            && s["daemon"]["uptime_s"].as_u64().unwrap_or(0) >= 3
            && flows(s).iter().any(|f| {
                f["interface"] == "lan0"
                    && f["direction"] == "ingress"
                    && dscp_u64(f, "mismatched") == N as u64
            })
    });
    assert!(dscp_findings(&s).is_empty(), "{:#}", s["anomalies"]);
    // The totals since this start include the adopted flows' packets.
    let row = s["dscp"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["interface"] == "lan0" && r["direction"] == "ingress" && r["class"] == "audio")
        .cloned()
        .expect("lan0 ingress audio row");
    assert_eq!(row["mismatched"], N as u64);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let s = bed.status();
        assert!(dscp_findings(&s).is_empty(), "{:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Short unmarked calls whose kind (audio or video) never settles (fewer than 20
/// packets each): no DSCP finding opens and clears per call, nothing in the journal.
#[test]
fn unsettled_media_opens_nothing_per_call() {
    const CALLS: u16 = 8;
    const PACKETS: u32 = 15;
    let bed = xtask::bed::GatewayBed::launch();
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let sink = bed.tb.wan.run(|| udp_sink(node)).expect("sink");
    for call in 0..CALLS {
        let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 41000 + call);
        bed.tb
            .lan
            .run(|| send_udp(from, node, PACKETS, PAYLOAD, Duration::from_millis(20)))
            .expect("send");
    }
    let total = u64::from(CALLS) * u64::from(PACKETS);
    assert_eq!(sink.wait_for(total, Duration::from_secs(10)), total);
    // Every call counted unmarked at LAN ingress, as media of unknown kind.
    let s = bed.wait_status("every call counted", |s| {
        let unmarked: Vec<Value> = flows(s)
            .into_iter()
            .filter(|f| f["interface"] == "lan0" && f["direction"] == "ingress")
            .collect();
        unmarked.len() == CALLS as usize
            && unmarked.iter().all(|f| {
                dscp_u64(f, "mismatched") == u64::from(PACKETS) && f["dscp_class"] == "media"
            })
    });
    // Three more polls: nothing opened, nothing listed, nothing logged.
    std::thread::sleep(Duration::from_secs(3));
    let s2 = bed.status();
    for st in [&s, &s2] {
        assert!(dscp_findings(st).is_empty(), "{:#}", st["anomalies"]);
    }
    assert!(
        !bed.daemon().log().contains("anomaly dscp_"),
        "{}",
        bed.daemon().log()
    );
}

/// The phone marks EF; a rule on the gateway clears the mark on forwarded packets. The
/// marks are lost inside the gateway: one `dscp_lost` for audio (LAN ingress marked, WAN
/// egress unmarked), exact counts, and nothing blamed on the phones.
#[test]
fn marks_cleared_inside_the_gateway_are_reported_lost() {
    const N: u32 = 120;
    let bed = xtask::bed::GatewayBed::launch_with("", |tb| {
        nft(
            &tb.lan,
            "table ip phone {\n chain out {\n type filter hook output priority 0; policy \
             accept;\n udp dport 5004 ip dscp set ef\n }\n}\n",
        );
        nft(
            &tb.gw,
            "table ip clear {\n chain clear_marks {\n type filter hook forward priority -150; policy \
             accept;\n udp dport 5004 ip dscp set cs0\n }\n}\n",
        );
    });
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let sink = bed.tb.wan.run(|| udp_sink(node)).expect("sink");
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 40000);
    bed.tb
        .lan
        .run(|| send_udp(from, node, N, PAYLOAD, Duration::from_millis(2)))
        .expect("send");
    assert_eq!(sink.wait_for(N as u64, Duration::from_secs(10)), N as u64);
    let s = bed.wait_status("the lost marks", |s| {
        find(s, "lan0", "ingress", 5004).is_some_and(|f| dscp_u64(&f, "matched") == N as u64)
            && find(s, "wan0", "egress", 5004)
                .is_some_and(|f| dscp_u64(&f, "mismatched") == N as u64)
            && anomaly(s, "dscp_lost", "audio").is_some()
    });
    assert_eq!(
        dscp_findings(&s),
        [("dscp_lost".to_string(), "audio".to_string())],
        "{:#}",
        s["anomalies"]
    );
    let a = anomaly(&s, "dscp_lost", "audio").unwrap();
    assert_eq!(a["severity"], "warning");
    assert_eq!(evidence(&a, "packets_mismatched"), N.to_string());
    assert_eq!(evidence(&a, "packets_marked_on_arrival"), N.to_string());
    assert_eq!(evidence(&a, "measured_at"), "wan0 egress");
    assert!(
        a["remediation"]
            .as_str()
            .unwrap()
            .contains("This gateway clears or changes the marks")
    );
}

#[test]
fn marks_cleared_on_the_way_back_are_reported_bleached() {
    const N: u32 = 100;
    let bed = Bed::new("dscp_egress = \"rewrite\"", true);
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let _echo = bed
        .tb
        .wan
        .run(|| udp_echo(node, 10 * N, Duration::from_secs(60)))
        .expect("echo");
    // The "Webex node" marks its replies EF, as a media node does.
    nft(
        &bed.tb.wan,
        "table ip node {\n chain out {\n type filter hook output priority 0; policy accept;\n \
         ip saddr 203.0.113.10 ip dscp set ef\n }\n}\n",
    );
    let call = |port: u16| {
        let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port);
        let stats = bed
            .tb
            .lan
            .run(|| {
                udp_call(from, node, N, Duration::from_millis(2), |_| {
                    vec![0; PAYLOAD]
                })
            })
            .expect("call");
        assert_eq!((stats.sent, stats.received), (N, N));
    };
    let reply_flow = |s: &Value, port: u16| {
        flows(s).into_iter().find(|f| {
            f["interface"] == "wan0" && f["direction"] == "ingress" && f["dst_port"] == port
        })
    };

    // Control: marks preserved on the way back, nothing bleached.
    call(AUDIO_PORT);
    let s = bed.wait_status("the marked replies", |s| {
        reply_flow(s, AUDIO_PORT).is_some_and(|f| dscp_u64(&f, "matched") == N as u64)
    });
    assert!(anomaly(&s, "dscp_bleached", "audio").is_none());

    // A hop that clears the marks (after the node marked them).
    nft(
        &bed.tb.wan,
        "table ip bleach {\n chain post {\n type filter hook postrouting priority 100; \
         policy accept;\n ip saddr 203.0.113.10 ip dscp set cs0\n }\n}\n",
    );
    call(AUDIO_PORT + 1);
    let s = bed.wait_status("the bleached anomaly", |s| {
        reply_flow(s, AUDIO_PORT + 1).is_some_and(|f| dscp_u64(&f, "mismatched") == N as u64)
            && anomaly(s, "dscp_bleached", "audio").is_some()
    });
    let f = reply_flow(&s, AUDIO_PORT + 1).unwrap();
    assert_eq!(f["dscp"]["seen"], serde_json::json!([0]));
    assert_eq!(f["dscp"]["matched"], 0);
    let a = anomaly(&s, "dscp_bleached", "audio").unwrap();
    // Information: the ISP path, not a fault of the site.
    assert_eq!(a["severity"], "info");
    assert_eq!(evidence(&a, "measured_at"), "wan0 ingress");
    assert_eq!(evidence(&a, "flows"), "1");
    assert_eq!(evidence(&a, "inbound_packets_without_mark"), N.to_string());
    assert_eq!(evidence(&a, "outbound_packets_marked"), N.to_string());
    assert!(a["remediation"].as_str().unwrap().contains("preserve DSCP"));
}

/// `struct virtio_net_hdr` (no GSO): what a packet socket with PACKET_VNET_HDR reads
/// before the frame. `hdr_len` is how many bytes the kernel puts in the skb's linear part.
fn vnet_hdr(hdr_len: u16) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[2..4].copy_from_slice(&hdr_len.to_le_bytes());
    h
}

fn mac(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", ifname]).expect("ip link");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    let text = v[0]["address"].as_str().expect("address").to_string();
    let mut m = [0u8; 6];
    for (i, part) in text.split(':').enumerate() {
        m[i] = u8::from_str_radix(part, 16).expect("hex");
    }
    m
}

#[test]
fn rewrite_works_on_packets_whose_ip_header_is_outside_the_linear_skb() {
    const N: u32 = 40;
    let bed = Bed::new("dscp_egress = \"rewrite\"", false);
    // A receiver on the node that records the TOS byte of every datagram.
    let socket = bed
        .tb
        .wan
        .run(|| std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004)))
        .expect("bind");
    let tos_reader = std::thread::spawn(move || read_tos(&socket, N as usize));
    let dst_mac = mac(&bed.tb.wan, "eth0");
    let src_mac = mac(&bed.tb.gw, "wan0");
    // An unmarked media packet from the gateway's WAN address to the Webex node.
    let mut frame = xtask::frames::v4(
        &xtask::frames::Ipv4::new(GW_WAN_V4, WEBEX_NODE_V4),
        &xtask::frames::L4::udp(52000, 5004, PAYLOAD),
    );
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&src_mac);
    assert_eq!(frame[15] >> 2, 0, "sent unmarked");

    // A packet socket with a virtio-net header of hdr_len 14 makes the kernel build skbs
    // whose linear part is the Ethernet header only: the IP header sits in a page
    // fragment when the TC egress program on wan0 sees it.
    bed.tb.gw.run(|| {
        // SAFETY: plain socket calls on buffers that outlive them.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let one: libc::c_int = 1;
            let rc = libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
            assert_eq!(
                rc,
                0,
                "PACKET_VNET_HDR: {}",
                std::io::Error::last_os_error()
            );
            let name = std::ffi::CString::new("wan0").unwrap();
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            addr.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&dst_mac);
            let mut buf = vnet_hdr(14).to_vec();
            buf.extend_from_slice(&frame);
            for _ in 0..N {
                let sent = libc::sendto(
                    fd,
                    buf.as_ptr() as *const libc::c_void,
                    buf.len(),
                    0,
                    &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(
                    sent,
                    buf.len() as isize,
                    "{}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    });
    // The node's IP layer drops packets with a bad header checksum: all N arriving proves
    // the rewrite fixed it.
    // The receiver reads each datagram's TOS byte (IP_RECVTOS): all carry EF, ECN 0.
    let tos = tos_reader.join().expect("tos reader");
    assert_eq!(tos.len(), N as usize);
    assert!(tos.iter().all(|t| *t == 46 << 2), "TOS bytes seen: {tos:?}");
    let s = bed.wait_status("the rewritten flow", |s| {
        find(s, "wan0", "egress", 5004).is_some_and(|f| dscp_u64(&f, "rewritten") == N as u64)
    });
    let f = find(&s, "wan0", "egress", 5004).unwrap();
    assert_eq!(f["packets"], N as u64);
    assert_eq!(f["src_addr"], GW_WAN_V4.to_string());
    assert_eq!(
        s["counters"]["malformed_total"], 0,
        "nothing miscounted as malformed"
    );
}

/// Receives `count` datagrams (at most 10 s) and returns the TOS byte of each.
fn read_tos(socket: &std::net::UdpSocket, count: usize) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let fd = socket.as_raw_fd();
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and an int option.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_RECVTOS,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "IP_RECVTOS");
    let mut out = Vec::new();
    while out.len() < count {
        let mut buf = [0u8; 2048];
        let mut control = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: msghdr over our own buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
        // SAFETY: as above; blocks at most the read timeout.
        let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
        if n < 0 {
            break;
        }
        // SAFETY: walking the control messages the kernel wrote into `control`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TOS {
                    out.push(*libc::CMSG_DATA(c));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
    }
    out
}
