//! The failure matrix (README "Failure detectors"): each way a Webex Calling deployment
//! fails at the network, built for real in its own namespace testbed (real nftables NAT,
//! conntrack, SIPp), with the real daemon on the gateway. Each scenario asserts that the
//! right detector fires with the right evidence within a bounded time; the baseline asserts
//! that none fires. `monitor check` is run on a misconfigured and on a clean gateway.
//!
//! Time is scaled where the real values would make CI slow: the NAT timeout scenario uses
//! a 5 s conntrack UDP timeout and an 8 s keepalive instead of 20 s and 30 s (same ratio of
//! gap to timeout, same mechanism).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    PinDir, TempDir, Testbed,
    bed::GatewayBed,
    monitor_bin,
    rtp::RtpStream,
    testbed::{GW_LAN_IF, GW_WAN_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{send_udp, udp_call, udp_echo, udp_sink},
};

const MEDIA_PORT: u16 = 5004;
const SIP_PORT: u16 = 5060;
/// How long any detector may take to fire once its condition holds.
const FIRE_WITHIN: Duration = Duration::from_secs(15);
/// The anomaly book's clear hold-down (README "Anomalies"): an anomaly clears this long
/// after its condition ended.
const CLEAR_HOLD: Duration = Duration::from_secs(10);

/// Detector thresholds shared by the scenarios: 5060/udp is SIP signalling (Webex itself
/// uses TLS; a plaintext SIPp call needs the port classified), media silent for 2 s is
/// judged.
const BASE_TOML: &str = "\n[ports]\nsip_udp = [\"5060\"]\n\n[detect]\nmedia_silence_s = 2\n";

/// The gateway fixture with the matrix's own waits and `monitor check`.
struct Bed(GatewayBed);

impl std::ops::Deref for Bed {
    type Target = GatewayBed;
    fn deref(&self) -> &GatewayBed {
        &self.0
    }
}

impl Bed {
    /// A testbed whose gateway has recommended conntrack timeouts (30 min for replied UDP
    /// bindings), `prepare` applied to it, then the daemon with `extra_toml`.
    fn new(extra_toml: &str, prepare: impl FnOnce(&Testbed)) -> Bed {
        Bed(GatewayBed::launch_with(
            &format!("{BASE_TOML}{extra_toml}"),
            |tb| {
                tb.gw
                    .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", "1800")
                    .expect("sysctl");
                prepare(tb);
            },
        ))
    }

    fn log(&self) -> String {
        self.0.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// Polls status until an open anomaly `id` whose subject satisfies `subject` is listed
    /// and `ready` holds for it and its report; returns (anomaly, report).
    fn wait_for(
        &self,
        id: &str,
        subject: impl Fn(&str) -> bool,
        ready: impl Fn(&Value, &Value) -> bool,
    ) -> (Value, Value) {
        let deadline = Instant::now() + FIRE_WITHIN;
        loop {
            let status = self.status();
            if let Some(a) = open(&status)
                .into_iter()
                .find(|a| a["id"] == id && subject(a["subject"].as_str().unwrap()))
                && ready(&a, &status)
            {
                return (a, status);
            }
            if Instant::now() > deadline {
                panic!(
                    "no {id} anomaly within {FIRE_WITHIN:?}; anomalies:\n{}\nflows:\n{}\nlog:\n{}",
                    serde_json::to_string_pretty(&open(&status)).unwrap(),
                    serde_json::to_string_pretty(&status["flows"]).unwrap(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until the anomaly `id` whose subject satisfies `subject` is listed as
    /// cleared (its condition ended `media_silence_s`-style windows ago and the book's
    /// clear hold-down passed), within `FIRE_WITHIN + CLEAR_HOLD`; returns it.
    fn wait_cleared(&self, id: &str, subject: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + FIRE_WITHIN + CLEAR_HOLD;
        loop {
            let status = self.status();
            let listed: Vec<&Value> = status["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["id"] == id && subject(a["subject"].as_str().unwrap()))
                .collect();
            assert!(!listed.is_empty(), "{id} not listed at all");
            if listed
                .iter()
                .all(|a| a["cleared_unix_s"].as_u64().is_some())
            {
                return listed[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{id} never cleared: {listed:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The first report (polled for up to 5 s) for which `done` holds: the daemon polls
    /// the maps once a second, so a report right after the traffic may lag it.
    fn settled(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.status();
            if done(&status) || Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `monitor check --json` in the gateway's namespace (nsenter: bpffs stays visible).
    fn check(&self) -> (i32, Value) {
        check_in(&self.tb, &self.config())
    }
}

fn check_in(tb: &Testbed, config: &std::path::Path) -> (i32, Value) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(["check", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("monitor check");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check output is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), json)
}

/// The failure detectors under test. (Test traffic carries no DSCP marks, so the DSCP
/// detectors of README "DSCP" fire on it; they are tested elsewhere.)
const FAILURE_IDS: [&str; 6] = [
    "sip_alg",
    "udp_media_blocked",
    "one_way_media",
    "nat_timeout_short",
    "nat_port_exhaustion",
    "mtu_fragmentation",
];

/// Open failure-detector anomalies of a report.
fn open(status: &Value) -> Vec<Value> {
    status["anomalies"]
        .as_array()
        .expect("anomalies array")
        .iter()
        .filter(|a| a["cleared_unix_s"].is_null())
        .filter(|a| FAILURE_IDS.iter().any(|id| a["id"] == *id))
        .cloned()
        .collect()
}

fn ev_u64(a: &Value, name: &str) -> u64 {
    evidence(a, name)
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The flow of a report by interface, direction and both ends.
fn flow(status: &Value, iface: &str, dir: &str, src: (&str, u16), dst: (&str, u16)) -> Value {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["interface"] == iface
                && f["direction"] == dir
                && f["src_addr"] == src.0
                && f["src_port"] == src.1
                && f["dst_addr"] == dst.0
                && f["dst_port"] == dst.1
        })
        .cloned()
        .unwrap_or_else(|| panic!("no flow {iface} {dir} {src:?} -> {dst:?}"))
}

fn gw_nft(tb: &Testbed, ruleset: &str) {
    tb.gw.exec(&["nft", ruleset]).expect("nft");
}

fn lan(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port)
}

fn node(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), port)
}

const NODE: &str = "203.0.113.10";
const LAN_HOST: &str = "192.0.2.10";
const GW_WAN: &str = "198.51.100.1";

/// A two-way call: `count` datagrams every 20 ms to the node's echo, on a thread, while
/// `during` runs; returns `during`'s result and the call's counts.
fn two_way_call<T: Send>(
    bed: &Bed,
    src_port: u16,
    count: u32,
    during: impl FnOnce() -> T + Send,
) -> (T, xtask::traffic::CallStats) {
    std::thread::scope(|s| {
        let call = s.spawn(|| {
            bed.tb.lan.run(|| {
                udp_call(
                    lan(src_port),
                    node(MEDIA_PORT),
                    count,
                    Duration::from_millis(20),
                    |_| vec![0x80; 160],
                )
                .expect("call")
            })
        });
        let r = during();
        (r, call.join().expect("call thread"))
    })
}

#[test]
fn baseline_call_fires_nothing_and_check_passes() {
    let bed = Bed::new("", |_| {});
    let echo = bed
        .tb
        .wan
        .run(|| udp_echo(node(MEDIA_PORT), 100_000, Duration::from_secs(60)))
        .expect("echo");
    let (seen, stats) = two_way_call(&bed, 52000, 300, || {
        // Watch the whole call (6 s, three times the silence threshold).
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            seen.extend(open(&bed.status()));
            std::thread::sleep(Duration::from_millis(300));
        }
        seen
    });
    assert_eq!(stats.sent, 300);
    assert_eq!(stats.received, 300, "every datagram echoed");
    assert_eq!(echo.replied(), 300);
    assert!(seen.is_empty(), "no anomaly on a clean call: {seen:#?}");
    let status = bed.settled(|s| {
        flow(
            s,
            GW_LAN_IF,
            "ingress",
            (LAN_HOST, 52000),
            (NODE, MEDIA_PORT),
        )["packets"]
            == 300
    });
    assert!(open(&status).is_empty(), "{:#?}", open(&status));
    let out = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 52000),
        (NODE, MEDIA_PORT),
    );
    assert_eq!(out["packets"], 300);
    assert_eq!(out["oversize"], 0);
    assert_eq!(out["icmp_unreachable"], 0);
    assert_eq!(out["icmp_frag_needed"], 0);

    let (code, report) = bed.check();
    let failing: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect();
    assert!(failing.is_empty(), "clean gateway: {failing:#?}");
    assert_eq!(code, 0);
    for name in [
        "sip_helper",
        "conntrack_udp_timeout_stream",
        "conntrack_tcp_timeout_established",
        "mtu_lan0",
        "mtu_wan0",
        "xdp_kernel",
        "btf",
        "bpffs",
    ] {
        assert!(
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == name),
            "check {name} missing: {report:#}"
        );
    }
}

/// The gateway's SIP ALG: an nftables ct helper "sip" on UDP 5060.
const SIP_HELPER: &str = r#"table ip sipalg {
    ct helper sip-5060 {
        type "sip" protocol udp
        l3proto ip
    }
    chain pre {
        type filter hook prerouting priority filter; policy accept;
        udp dport 5060 ct helper set "sip-5060"
    }
}"#;

/// One plaintext SIPp call (built-in uac/uas scenarios) LAN host -> node, bounded.
fn sipp_call(tb: &Testbed) {
    let uas = tb
        .wan
        .command(&[
            "timeout", "30", "sipp", "-sn", "uas", "-i", NODE, "-p", "5060", "-m", "1", "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uas");
    // Kill the server if the client fails, so nothing is left behind.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut uas = Reap(uas);
    std::thread::sleep(Duration::from_millis(500));
    let uac = tb
        .lan
        .command(&[
            "timeout",
            "30",
            "sipp",
            "-sn",
            "uac",
            &format!("{NODE}:5060"),
            "-i",
            LAN_HOST,
            "-p",
            "5060",
            "-m",
            "1",
            "-timeout",
            "20s",
            "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp uac");
    assert!(uac.success(), "SIPp call failed: {uac:?}");
    let uas_status = uas.0.wait().expect("uas wait");
    assert!(uas_status.success(), "SIPp server: {uas_status:?}");
}

#[test]
fn sip_alg_fires_with_the_helper_and_not_without() {
    // With the helper.
    let bed = Bed::new("", |tb| gw_nft(tb, SIP_HELPER));
    sipp_call(&bed.tb);
    let (a, _) = bed.wait_for("sip_alg", |s| s.starts_with("conntrack udp"), |_, _| true);
    assert_eq!(a["severity"], "critical");
    assert_eq!(evidence(&a, "conntrack_helper"), "sip");
    assert_eq!(
        evidence(&a, "original"),
        format!("{LAN_HOST}:5060 -> {NODE}:5060")
    );
    assert_eq!(evidence(&a, "nft_sip_helpers"), "sip-5060");
    assert!(evidence(&a, "nft_helper_rules").contains("ct helper set \"sip-5060\""));
    assert!(
        a["remediation"]
            .as_str()
            .unwrap()
            .contains("Disable SIP ALG")
    );
    // The second sign: the ALG rewrote SIP/SDP (192.0.2.10 -> 198.51.100.1 is 2 bytes
    // longer), so the same packets are longer on the WAN side.
    let (r, status) = bed.wait_for(
        "sip_alg",
        |s| s.starts_with("lan0 ingress udp"),
        |_, _| true,
    );
    let lan = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 5060),
        (NODE, 5060),
    );
    assert_eq!(lan["class"], "sip_signalling");
    assert_eq!(ev_u64(&r, "packets"), lan["packets"].as_u64().unwrap());
    assert_eq!(ev_u64(&r, "lan_bytes"), lan["bytes"].as_u64().unwrap());
    // SIPp's uac sends INVITE, ACK and BYE.
    assert_eq!(ev_u64(&r, "packets"), 3);
    let wan: Vec<&Value> = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["interface"] == GW_WAN_IF && f["direction"] == "egress")
        .filter(|f| f["dst_port"] == 5060)
        .collect();
    assert_eq!(wan.len(), 1, "{wan:#?}");
    assert_eq!(ev_u64(&r, "wan_bytes"), wan[0]["bytes"].as_u64().unwrap());
    assert!(ev_u64(&r, "wan_bytes") > ev_u64(&r, "lan_bytes"), "{r:#}");
    // `monitor check` names the helper.
    let (code, report) = bed.check();
    let helper = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sip_helper")
        .unwrap()
        .clone();
    assert_eq!(helper["status"], "fail", "{helper:#}");
    assert!(helper["value"].as_str().unwrap().contains("sip-5060"));
    assert_eq!(code, 2);
    drop(bed);

    // The same call without the helper: nothing.
    let bed = Bed::new("", |_| {});
    sipp_call(&bed.tb);
    std::thread::sleep(Duration::from_secs(3));
    let status = bed.status();
    let lan = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 5060),
        (NODE, 5060),
    );
    let wan_bytes: u64 = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["interface"] == GW_WAN_IF && f["direction"] == "egress")
        .filter(|f| f["dst_port"] == 5060)
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        wan_bytes,
        lan["bytes"].as_u64().unwrap(),
        "NAT alone keeps sizes"
    );
    assert!(open(&status).is_empty(), "{:#?}", open(&status));
    // The raw list too: nothing of ours, cleared or open.
    assert!(
        !status["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| FAILURE_IDS.iter().any(|id| a["id"] == *id)),
        "{:#}",
        status["anomalies"]
    );
}

#[test]
fn udp_media_blocked_by_a_gateway_drop_rule() {
    let bed = Bed::new("", |tb| {
        gw_nft(
            tb,
            r#"table inet block {
                chain media_drop {
                    type filter hook forward priority filter - 10; policy accept;
                    iifname "wan0" udp sport 5004 drop
                }
            }"#,
        )
    });
    let echo = bed
        .tb
        .wan
        .run(|| udp_echo(node(MEDIA_PORT), 100_000, Duration::from_secs(60)))
        .expect("echo");
    let ((a, status), stats) = two_way_call(&bed, 52000, 300, || {
        bed.wait_for(
            "udp_media_blocked",
            |s| s.starts_with("wan0 ingress udp 203.0.113.10:5004"),
            |_, _| true,
        )
    });
    assert_eq!(stats.received, 0, "the gateway dropped every reply");
    assert_eq!(a["severity"], "critical");
    let wan_port = echo.sources()[0].port();
    let inbound = flow(
        &status,
        GW_WAN_IF,
        "ingress",
        (NODE, MEDIA_PORT),
        (GW_WAN, wan_port),
    );
    assert_eq!(
        ev_u64(&a, "wan_inbound_packets"),
        inbound["packets"].as_u64().unwrap()
    );
    assert_eq!(ev_u64(&a, "lan_forwarded_packets"), 0);
    assert_eq!(evidence(&a, "media_silence_s"), "2");
    // Ground truth after the call: every reply reached the WAN interface.
    std::thread::sleep(Duration::from_millis(1500));
    let status = bed.status();
    let inbound = flow(
        &status,
        GW_WAN_IF,
        "ingress",
        (NODE, MEDIA_PORT),
        (GW_WAN, wan_port),
    );
    assert_eq!(inbound["packets"].as_u64().unwrap(), echo.replied());
    assert!(
        !open(&status).iter().any(|a| a["id"] == "one_way_media"),
        "media did come back to the WAN: not one-way"
    );
    // The call is over: the media stopped, the anomaly clears.
    bed.wait_cleared("udp_media_blocked", |s| {
        s.starts_with("wan0 ingress udp 203.0.113.10:5004")
    });
}

/// A normal hang-up: the phone closes its socket while the node sends 20 more packets,
/// which the phone answers with ICMP port unreachable. That is the end of a call, not
/// blocked media: no anomaly at all (of any detector), open or cleared. A new call on the same 5-tuple
/// right after is clean too (the old ICMP count is not judged again).
#[test]
fn hang_up_is_not_blocked_media() {
    let bed = Bed::new("", |tb| {
        // Every refused packet answered, so the ICMP count is exact.
        tb.lan
            .sysctl("net.ipv4.icmp_ratelimit", "0")
            .expect("sysctl");
        // Both ends mark their media EF, as configured phones and media nodes do, so no
        // DSCP finding either: the list must stay empty.
        for (ns, port) in [(&tb.lan, "dport"), (&tb.wan, "sport")] {
            ns.exec(&[
                "nft",
                &format!(
                    "table ip marks {{\n chain out {{\n type filter hook output priority 0; \
                     policy accept;\n udp {port} 5004 ip dscp set ef\n }}\n}}"
                ),
            ])
            .expect("nft");
        }
    });
    let node_socket = bed
        .tb
        .wan
        .run(|| UdpSocket::bind(node(MEDIA_PORT)))
        .expect("node socket");
    node_socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // A call of `count` RTP exchanges (PCMU, 172-byte datagrams) at 20 ms from the
    // phone's port 52000, with the streams `ssrc` (phone) and `ssrc + 1` (node); returns
    // the phone's address as the node sees it (after NAT), the phone's socket and the
    // node's stream.
    let call = |count: u32, ssrc: u32| {
        let mut phone_rtp = RtpStream::pcmu(ssrc);
        let mut node_rtp = RtpStream::pcmu(ssrc + 1);
        let phone = bed
            .tb
            .lan
            .run(|| UdpSocket::bind(lan(52000)))
            .expect("phone socket");
        phone
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 512];
        let mut public = None;
        for _ in 0..count {
            phone
                .send_to(&phone_rtp.next_packet(172), node(MEDIA_PORT))
                .unwrap();
            let (_, from) = node_socket.recv_from(&mut buf).expect("node receives");
            node_socket
                .send_to(&node_rtp.next_packet(172), from)
                .unwrap();
            phone.recv_from(&mut buf).expect("phone receives");
            public = Some(from);
            std::thread::sleep(Duration::from_millis(20));
        }
        (public.unwrap(), phone, node_rtp)
    };
    let (public, phone, mut node_rtp) = call(100, 0x1000);
    // Hang up, then the node's last 20 packets.
    drop(phone);
    for _ in 0..20 {
        node_socket
            .send_to(&node_rtp.next_packet(172), public)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let all_anomalies = |s: &Value| -> Vec<Value> { s["anomalies"].as_array().unwrap().clone() };
    // Ground truth first: the 20 were forwarded and each refused by the phone.
    let status = bed.settled(|s| {
        flow(
            s,
            GW_LAN_IF,
            "egress",
            (NODE, MEDIA_PORT),
            (LAN_HOST, 52000),
        )["icmp_unreachable"]
            == 20
    });
    let to_phone = flow(
        &status,
        GW_LAN_IF,
        "egress",
        (NODE, MEDIA_PORT),
        (LAN_HOST, 52000),
    );
    assert_eq!(to_phone["packets"], 120);
    assert_eq!(to_phone["dscp"]["matched"], 120, "{to_phone:#}");
    assert_eq!(to_phone["icmp_unreachable"], 20, "{to_phone:#}");
    // Watched for longer than media_silence_s (2 s) plus two polls: nothing.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let s = bed.status();
        assert!(all_anomalies(&s).is_empty(), "{:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(300));
    }

    // A new call on the same 5-tuple.
    let (again, phone, _) = call(100, 0x2000);
    assert_eq!(again, public, "the same 5-tuple through the NAT");
    drop(phone);
    let status = bed.settled(|s| {
        flow(
            s,
            GW_LAN_IF,
            "ingress",
            (LAN_HOST, 52000),
            (NODE, MEDIA_PORT),
        )["packets"]
            == 200
    });
    assert_eq!(
        flow(
            &status,
            GW_LAN_IF,
            "egress",
            (NODE, MEDIA_PORT),
            (LAN_HOST, 52000),
        )["icmp_unreachable"],
        20
    );
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let s = bed.status();
        assert!(all_anomalies(&s).is_empty(), "{:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn one_way_media_when_the_far_end_sends_nothing() {
    let bed = Bed::new("", |_| {});
    let sink = bed.tb.wan.run(|| udp_sink(node(MEDIA_PORT))).expect("sink");
    let ((a, status), ()) = std::thread::scope(|s| {
        let send = s.spawn(|| {
            bed.tb.lan.run(|| {
                send_udp(
                    lan(52000),
                    node(MEDIA_PORT),
                    300,
                    160,
                    Duration::from_millis(20),
                )
                .expect("send")
            })
        });
        let r = bed.wait_for(
            "one_way_media",
            |s| s.starts_with("wan0 egress"),
            |_, _| true,
        );
        send.join().unwrap();
        (r, ())
    });
    assert_eq!(a["severity"], "critical");
    let port = sink.sources()[0].port();
    let out = flow(
        &status,
        GW_WAN_IF,
        "egress",
        (GW_WAN, port),
        (NODE, MEDIA_PORT),
    );
    assert_eq!(
        a["subject"],
        format!("wan0 egress udp {GW_WAN}:{port} -> {NODE}:{MEDIA_PORT}")
    );
    assert_eq!(
        ev_u64(&a, "outbound_packets"),
        out["packets"].as_u64().unwrap()
    );
    assert_eq!(ev_u64(&a, "inbound_packets"), 0);
    assert_eq!(evidence(&a, "inbound_idle_s"), "never seen");
    assert_eq!(sink.wait_for(300, Duration::from_secs(5)), 300);
    // The call is over: the anomaly clears once the flow is idle for media_silence_s
    // and the book's 10 s clear hold-down has passed.
    let cleared = bed.wait_cleared("one_way_media", |s| s.starts_with("wan0 egress"));
    assert!(
        cleared["cleared_unix_s"].as_u64().unwrap()
            >= cleared["last_seen_unix_s"].as_u64().unwrap() + 10,
        "held down: {cleared:#}"
    );
}

#[test]
fn short_nat_timeout_gap_and_rebinding() {
    // The issue's scenario as it is: a 20 s UDP timeout and a keepalive every 30 s
    // (a phone's REGISTER refresh comes every 1-2 minutes, so real gateways fail alike).
    const TIMEOUT_S: &str = "20";
    const KEEPALIVE: Duration = Duration::from_secs(30);
    const KEEPALIVES: u32 = 3;
    let bed = Bed::new("", |tb| {
        tb.gw
            .sysctl("net.netfilter.nf_conntrack_udp_timeout", TIMEOUT_S)
            .unwrap();
        tb.gw
            .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", TIMEOUT_S)
            .unwrap();
        // Each new binding gets a random public port, as many NATs do.
        tb.gw
            .exec(&["nft", "flush", "chain", "inet", "nat", "postrouting"])
            .unwrap();
        tb.gw
            .exec(&[
                "nft",
                "add",
                "rule",
                "inet",
                "nat",
                "postrouting",
                "oifname",
                "wan0",
                "masquerade",
                "fully-random",
            ])
            .unwrap();
    });
    let echo = bed
        .tb
        .wan
        .run(|| udp_echo(node(SIP_PORT), 100, Duration::from_secs(150)))
        .expect("echo");
    // Keepalives every 30 s, answered by the node.
    bed.tb.lan.run(|| {
        udp_call(lan(SIP_PORT), node(SIP_PORT), KEEPALIVES, KEEPALIVE, |_| {
            b"OPTIONS sip:keepalive SIP/2.0\r\n\r\n".to_vec()
        })
        .expect("keepalives")
    });
    let sources = echo.sources();
    assert_eq!(echo.received(), KEEPALIVES as u64);

    let subject = format!("lan0 ingress udp {LAN_HOST}:5060 -> {NODE}:5060");
    // Until the daemon has polled after the last keepalive.
    let (gap, status) = bed.wait_for(
        "nat_timeout_short",
        |s| s == subject,
        |a, _| ev_u64(a, "gaps_beyond_timeout") == (KEEPALIVES - 1) as u64,
    );
    let lan = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 5060),
        (NODE, 5060),
    );
    assert_eq!(lan["packets"], KEEPALIVES as u64);
    let measured: f64 = evidence(&gap, "idle_gap_s").parse().unwrap();
    assert!(
        (measured - 30.0).abs() < 0.5,
        "gap {measured} s for a 30 s keepalive"
    );
    assert_eq!(ev_u64(&gap, "binding_timeout_s"), 20);
    assert_eq!(
        evidence(&gap, "setting"),
        "net.netfilter.nf_conntrack_udp_timeout_stream"
    );
    assert_eq!(ev_u64(&gap, "gaps_beyond_timeout"), (KEEPALIVES - 1) as u64);

    // The setting itself, with its value.
    let (setting, _) = bed.wait_for(
        "nat_timeout_short",
        |s| s == "net.netfilter.nf_conntrack_udp_timeout_stream",
        |_, _| true,
    );
    assert_eq!(ev_u64(&setting, "value_s"), 20);
    assert_eq!(ev_u64(&setting, "recommended_min_s"), 1800);

    // Rebinding: the node saw the keepalives come from these public ports in turn.
    let ports: Vec<u16> = sources.iter().map(|s| s.port()).collect();
    assert_eq!(ports.len(), KEEPALIVES as usize, "{sources:?}");
    let (r, _) = bed.wait_for(
        "nat_timeout_short",
        |s| s == format!("rebinding udp {LAN_HOST}:5060 -> {NODE}:5060"),
        |a, _| ev_u64(a, "rebindings") == (KEEPALIVES - 1) as u64,
    );
    let last = KEEPALIVES as usize - 1;
    assert_eq!(
        evidence(&r, "new_public"),
        format!("{GW_WAN}:{}", ports[last])
    );
    assert_eq!(
        evidence(&r, "old_public"),
        format!("{GW_WAN}:{}", ports[last - 1])
    );
    assert_eq!(ev_u64(&r, "rebindings"), (KEEPALIVES - 1) as u64);
}

#[test]
fn nat_port_exhaustion_with_a_ten_port_range() {
    const FLOWS: u16 = 20;
    let bed = Bed::new("", |tb| {
        tb.gw
            .exec(&["nft", "flush", "chain", "inet", "nat", "postrouting"])
            .unwrap();
        tb.gw
            .exec(&[
                "nft",
                "add",
                "rule",
                "inet",
                "nat",
                "postrouting",
                "oifname",
                "wan0",
                "meta",
                "l4proto",
                "udp",
                "masquerade",
                "to",
                ":40000-40009",
            ])
            .unwrap();
    });
    let echo = bed
        .tb
        .wan
        .run(|| udp_echo(node(MEDIA_PORT), 100_000, Duration::from_secs(60)))
        .expect("echo");
    let (a, _) = std::thread::scope(|s| {
        for i in 0..FLOWS {
            let bed = &bed;
            s.spawn(move || {
                bed.tb.lan.run(|| {
                    udp_call(
                        lan(52000 + i),
                        node(MEDIA_PORT),
                        250,
                        Duration::from_millis(20),
                        |_| vec![0x80; 160],
                    )
                    .expect("call")
                })
            });
        }
        bed.wait_for(
            "nat_port_exhaustion",
            |s| s == format!("{GW_WAN} udp"),
            |a, _| ev_u64(a, "flows_without_binding") == 10,
        )
    });
    // Ground truth: the node saw exactly ten public ports, all in the range.
    let ports: std::collections::BTreeSet<u16> = echo.sources().iter().map(|s| s.port()).collect();
    assert_eq!(ports.len(), 10, "{ports:?}");
    assert!(ports.iter().all(|p| (40000..=40009).contains(p)));
    assert_eq!(a["severity"], "critical");
    assert_eq!(ev_u64(&a, "ports_in_use"), 10);
    assert_eq!(evidence(&a, "port_range"), "40000-40009");
    assert_eq!(ev_u64(&a, "port_range_size"), 10);
    assert_eq!(ev_u64(&a, "flows_without_binding"), 10);
}

/// Sends `count` UDP datagrams of `ip_len` bytes (IP length) with path MTU discovery mode
/// `pmtudisc` (IP_PMTUDISC_DONT: no DF; IP_PMTUDISC_PROBE: DF set, local PMTU ignored).
fn send_sized(tb: &Testbed, src_port: u16, count: u32, ip_len: usize, pmtudisc: i32) {
    tb.lan.run(|| {
        let s = UdpSocket::bind(lan(src_port)).expect("bind");
        // SAFETY: a valid socket and an int option.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                &pmtudisc as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "IP_MTU_DISCOVER");
        let payload = vec![0x80u8; ip_len - 28];
        for _ in 0..count {
            s.send_to(&payload, node(MEDIA_PORT)).expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

#[test]
fn mtu_oversize_fragments_and_frag_needed() {
    const N: u32 = 50;
    let bed = Bed::new("\n[mtu]\npath_mtu = 1400\n", |tb| {
        // The WAN link carries at most 1400 bytes; the gateway answers every DF packet
        // that does not fit (no ICMP rate limit, so the count is exact).
        tb.gw.ip(&["link", "set", "wan0", "mtu", "1400"]).unwrap();
        tb.wan.ip(&["link", "set", "eth0", "mtu", "1400"]).unwrap();
        tb.gw.sysctl("net.ipv4.icmp_ratelimit", "0").unwrap();
    });
    let _echo = bed
        .tb
        .wan
        .run(|| udp_echo(node(MEDIA_PORT), 100_000, Duration::from_secs(60)))
        .expect("echo");

    // 1450-byte media without DF: oversize on the LAN side, fragmented on the WAN side.
    send_sized(&bed.tb, 52000, N, 1450, libc::IP_PMTUDISC_DONT);
    let (a, status) = bed.wait_for(
        "mtu_fragmentation",
        |s| s == format!("oversize lan0 ingress udp {LAN_HOST}:52000 -> {NODE}:5004"),
        |a, _| ev_u64(a, "oversize_packets") == N as u64,
    );
    assert_eq!(ev_u64(&a, "path_mtu"), 1400);
    let lan = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 52000),
        (NODE, 5004),
    );
    assert_eq!(lan["oversize"], N as u64);
    assert_eq!(lan["fragments"], 0);
    let (f, status) = bed.wait_for(
        "mtu_fragmentation",
        |s| s.starts_with(&format!("fragments wan0 egress udp {GW_WAN} -> {NODE}")),
        |a, _| ev_u64(a, "fragments") == 2 * N as u64,
    );
    let first = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["interface"] == GW_WAN_IF
                && f["direction"] == "egress"
                && f["dst_port"] == MEDIA_PORT
                && f["src_port"] != 0
        })
        .expect("WAN egress media flow")
        .clone();
    // Every datagram became two fragments on the WAN link (1450 bytes over a 1400-byte
    // link): the first carries the ports, the later one is given them by the kernel, so
    // both count on the media flow and no port-less flow appears.
    assert_eq!(first["fragments"], 2 * N as u64);
    assert_eq!(first["packets"], 2 * N as u64);
    assert_eq!(first["oversize"], 0, "fragments fit the link");
    assert_eq!(ev_u64(&f, "fragments"), 2 * N as u64);
    // The echoed datagrams come back fragmented the same way (WAN ingress), and the
    // gateway, which reassembles them for conntrack, forwards them to the LAN in the
    // fragment sizes they arrived in (lan0 egress): three places with one later fragment
    // per datagram, each attributed to its media flow, none on a port-less flow.
    let public = first["src_port"].as_u64().unwrap() as u16;
    for (iface, dir, to) in [
        (GW_WAN_IF, "ingress", (GW_WAN, public)),
        (GW_LAN_IF, "egress", (LAN_HOST, 52000)),
    ] {
        let f = flow(&status, iface, dir, (NODE, MEDIA_PORT), to);
        assert_eq!(
            (f["packets"].as_u64(), f["fragments"].as_u64()),
            (Some(2 * N as u64), Some(2 * N as u64))
        );
    }
    let flows = status["flows"].as_array().unwrap();
    assert!(
        !flows
            .iter()
            .any(|f| f["src_port"] == 0 && f["protocol"] == "udp"),
        "{flows:#?}"
    );
    assert_eq!(status["counters"]["fragments_matched"], 3 * N as u64);
    assert_eq!(status["counters"]["fragments_unmatched"], 0);

    // `monitor check` reads the WAN link's MTU in the gateway's namespace (ioctl).
    let (_, report) = bed.check();
    let wan = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mtu_wan0")
        .unwrap()
        .clone();
    assert_eq!(
        wan["status"], "pass",
        "1400 is the configured path MTU: {wan}"
    );

    // With DF through the gateway's own 1400-byte WAN link: the gateway drops each packet
    // and answers fragmentation-needed itself (no ICMP rate limit: the count is exact).
    send_sized(&bed.tb, 52001, N, 1450, libc::IP_PMTUDISC_PROBE);
    let (g, _) = bed.wait_for(
        "mtu_fragmentation",
        |s| s == "gateway frag-needed",
        |a, _| ev_u64(a, "dropped_too_big") == N as u64,
    );
    assert_eq!(ev_u64(&g, "dropped_too_big"), N as u64);

    // The same size with DF through a 1500-byte gateway, to a hop beyond it with a
    // 1400-byte limit (the WAN host rejects with fragmentation-needed, as a tunnel router
    // would; no ICMP rate limit, so the count is exact). The kernel matches each error,
    // arriving on wan0, to the flow its quoted header names.
    bed.tb
        .gw
        .ip(&["link", "set", "wan0", "mtu", "1500"])
        .unwrap();
    bed.tb
        .wan
        .ip(&["link", "set", "eth0", "mtu", "1500"])
        .unwrap();
    bed.tb.wan.sysctl("net.ipv4.icmp_ratelimit", "0").unwrap();
    bed.tb
        .wan
        .exec(&[
            "nft",
            "add table ip hop; add chain ip hop in { type filter hook input priority 0; }; \
             add rule ip hop in udp dport 5004 ip length > 1400 reject with icmp frag-needed",
        ])
        .unwrap();
    send_sized(&bed.tb, 52002, N, 1450, libc::IP_PMTUDISC_PROBE);
    let (a, status) = bed.wait_for(
        "mtu_fragmentation",
        |s| s.starts_with("frag-needed wan0 egress udp"),
        |a, _| ev_u64(a, "icmp_frag_needed") == N as u64,
    );
    let out = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["interface"] == GW_WAN_IF
                && f["direction"] == "egress"
                && f["dst_port"] == MEDIA_PORT
                && f["icmp_frag_needed"] != 0
        })
        .expect("WAN egress flow answered by frag-needed")
        .clone();
    assert_eq!(out["packets"], N as u64);
    assert_eq!(out["icmp_frag_needed"], N as u64);
    assert_eq!(out["fragments"], 0, "DF: nothing fragmented");
    assert_eq!(
        a["subject"],
        format!(
            "frag-needed wan0 egress udp {GW_WAN}:{} -> {NODE}:5004",
            out["src_port"]
        )
    );
    assert_eq!(ev_u64(&a, "packets"), N as u64);
    let lan = flow(
        &status,
        GW_LAN_IF,
        "ingress",
        (LAN_HOST, 52002),
        (NODE, 5004),
    );
    assert_eq!(lan["oversize"], N as u64);
}

#[test]
fn check_fails_on_sip_helper_and_short_udp_timeout() {
    let tb = Testbed::new().expect("testbed");
    gw_nft(&tb, SIP_HELPER);
    tb.gw
        .sysctl("net.netfilter.nf_conntrack_udp_timeout", "30")
        .unwrap();
    tb.gw
        .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", "30")
        .unwrap();
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    xtask::config::write_gateway_config(
        &dir.join("monitor.toml"),
        pin.path(),
        &dir.join("monitor.sock"),
    )
    .unwrap();
    let (code, report) = check_in(&tb, &dir.join("monitor.toml"));
    let get = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
            .clone()
    };
    let sip = get("sip_helper");
    assert_eq!(sip["status"], "fail");
    assert!(sip["value"].as_str().unwrap().contains("sip-5060"), "{sip}");
    assert!(!sip["fix"].as_str().unwrap().is_empty());
    let udp = get("conntrack_udp_timeout_stream");
    assert_eq!(udp["status"], "fail");
    assert_eq!(
        udp["value"],
        "net.netfilter.nf_conntrack_udp_timeout_stream = 30"
    );
    assert_eq!(get("conntrack_udp_timeout")["status"], "pass");
    assert_eq!(report["status"], "fail");
    assert_eq!(code, 2);
}
