//! Webex traffic blocked towards Webex (README "Failure detectors"), built for real in the
//! namespace testbed with the real daemon on the gateway: nftables drop and reject rules in
//! the gateway's forward path (`webex_blocked_here`, naming the rule whose counter moved),
//! and a TCP reset from a firewall on the far side (`signalling_blocked`). Each fires
//! within 15 s with exact counts and clears within 20 s of traffic passing again; a clean
//! exchange on the same ports fires neither.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    bed::GatewayBed,
    testbed::{GW_LAN_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{send_udp, tcp_echo_server, tcp_exchange, udp_sink},
};

const IDS: [&str; 2] = ["webex_blocked_here", "signalling_blocked"];
/// How long a detector may take to fire once its condition holds.
const FIRE_WITHIN: Duration = Duration::from_secs(15);
/// How long after traffic passes again an anomaly must be cleared (README: the 10 s
/// window plus the book's 10 s clear hold-down), with one poll and one status call of
/// slack.
const CLEAR_WITHIN: Duration = Duration::from_secs(22);

fn lan(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port)
}

fn node(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), port)
}

/// Anomalies of the two detectors under test (open and cleared).
fn listed(status: &Value) -> Vec<Value> {
    status["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| IDS.iter().any(|id| a["id"] == *id))
        .cloned()
        .collect()
}

fn flow_packets(status: &Value, iface: &str, dir: &str, proto: &str, dst: u16) -> u64 {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["interface"] == iface
                && f["direction"] == dir
                && f["protocol"] == proto
                && f["dst_port"] == dst
        })
        .map(|f| f["packets"].as_u64().unwrap())
        .sum()
}

/// Polls until an open anomaly `id` with `subject` satisfies `ready`, within `within`.
fn wait_open(
    bed: &GatewayBed,
    id: &str,
    subject: &str,
    within: Duration,
    ready: impl Fn(&Value, &Value) -> bool,
) -> (Value, Value) {
    let deadline = Instant::now() + within;
    loop {
        let status = bed.status();
        if let Some(a) = listed(&status)
            .into_iter()
            .find(|a| a["id"] == id && a["subject"] == subject && a["cleared_unix_s"].is_null())
            && ready(&a, &status)
        {
            return (a, status);
        }
        assert!(
            Instant::now() < deadline,
            "no ready {id} {subject:?} within {within:?}: {:#?}\nlog:\n{}",
            listed(&status),
            bed.daemon().log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls until `id` with `subject` is listed as cleared, within `within`.
fn wait_cleared(bed: &GatewayBed, id: &str, subject: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = bed.status();
        let mine: Vec<Value> = listed(&status)
            .into_iter()
            .filter(|a| a["id"] == id && a["subject"] == subject)
            .collect();
        assert!(!mine.is_empty(), "{id} {subject} not listed at all");
        if mine.iter().all(|a| a["cleared_unix_s"].as_u64().is_some()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} {subject} not cleared within {within:?}: {mine:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A TCP connect from the LAN host's `src_port` to `to` that gives up after 2 SYN retries
/// worth of time (TCP_SYNCNT 2: 7 s; kernels with linear first timeouts send more SYNs
/// in it); returns the connect's error, if any.
fn connect_3_syns(src_port: u16, to: SocketAddr) -> Option<std::io::Error> {
    let SocketAddr::V4(to) = to else {
        unreachable!()
    };
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let two: libc::c_int = 2;
        let opt = |level, name, v: &libc::c_int| {
            let r = libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            );
            assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
        };
        opt(libc::SOL_SOCKET, libc::SO_REUSEADDR, &one);
        opt(libc::IPPROTO_TCP, libc::TCP_SYNCNT, &two);
        let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = sin(LAN_HOST_V4, src_port);
        let len = size_of::<libc::sockaddr_in>() as u32;
        let r = libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len);
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let remote = sin(*to.ip(), to.port());
        let r = libc::connect(fd.as_raw_fd(), (&raw const remote).cast(), len);
        (r != 0).then(std::io::Error::last_os_error)
    }
}

const FORWARD_DROPS: &str = r#"table inet block {
    chain forward_drops {
        type filter hook forward priority filter - 10; policy accept;
        iifname "lan0" udp dport 5004 counter drop
        iifname "lan0" tcp dport 8934 counter drop
        iifname "lan0" tcp dport 5061 counter reject with tcp reset
    }
}"#;

#[test]
fn gateway_forward_drops_are_blocked_here_with_the_rule_and_clear_when_passing() {
    let bed = GatewayBed::launch_with("", |tb| {
        tb.gw.exec(&["nft", FORWARD_DROPS]).expect("nft");
    });
    let sink = bed.tb.wan.run(|| udp_sink(node(5004))).expect("sink");
    let echo = bed
        .tb
        .wan
        .run(|| tcp_echo_server(node(8934)))
        .expect("echo");
    // 200 media datagrams (4 s) and one connect's SYNs (7 s until it gives up), all
    // dropped by the gateway. The media finding is read while the connect still runs, so
    // all of its packets are in the 10 s window.
    let udp_subject = "lan0 ingress udp 192.0.2.10:52000 -> 203.0.113.10:5004";
    let tcp_subject = "lan0 ingress tcp 192.0.2.10:41000 -> 203.0.113.10:8934";
    let (refused, (a, status)) = std::thread::scope(|s| {
        let syns = s.spawn(|| bed.tb.lan.run(|| connect_3_syns(41000, node(8934))));
        bed.tb
            .lan
            .run(|| send_udp(lan(52000), node(5004), 200, 160, Duration::from_millis(20)))
            .expect("media");
        let found = wait_open(
            &bed,
            "webex_blocked_here",
            udp_subject,
            FIRE_WITHIN,
            |a, _| evidence(a, "lan_packets") == "200",
        );
        (syns.join().expect("connect thread"), found)
    });
    assert!(
        refused.is_some(),
        "the connect must fail: every SYN dropped"
    );
    assert_eq!(sink.received(), 0);
    assert_eq!(echo.connections(), 0);
    assert_eq!(a["severity"], "critical");
    assert_eq!(evidence(&a, "port"), "5004");
    assert_eq!(evidence(&a, "wan_packets"), "0");
    assert_eq!(evidence(&a, "gateway_answers"), "0");
    assert_eq!(
        flow_packets(&status, GW_LAN_IF, "ingress", "udp", 5004),
        200
    );
    assert_eq!(flow_packets(&status, "wan0", "egress", "udp", 5004), 0);
    let rules = evidence(&a, "nft_rules");
    assert!(
        rules.contains("inet block forward_drops handle 2 drop (200 packets)"),
        "{rules}"
    );
    // The SYNs the kernel sent (its retry schedule decides how many): the LAN flow, the
    // rule's counter and the finding agree, read while all of them are in the window.
    let (t, status) = wait_open(
        &bed,
        "webex_blocked_here",
        tcp_subject,
        FIRE_WITHIN,
        |a, s| {
            let syns = flow_packets(s, GW_LAN_IF, "ingress", "tcp", 8934);
            syns >= 3 && evidence(a, "lan_packets") == syns.to_string()
        },
    );
    let syns = flow_packets(&status, GW_LAN_IF, "ingress", "tcp", 8934);
    assert_eq!(evidence(&t, "protocol"), "tcp");
    assert_eq!(evidence(&t, "port"), "8934");
    assert_eq!(evidence(&t, "wan_packets"), "0");
    assert_eq!(flow_packets(&status, "wan0", "egress", "tcp", 8934), 0);
    let listing = bed
        .tb
        .gw
        .exec(&["nft", "list", "table", "inet", "block"])
        .expect("nft list");
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .contains(&format!("tcp dport 8934 counter packets {syns} ")),
        "{}",
        String::from_utf8_lossy(&listing.stdout)
    );
    // The rules whose counters moved, with their exact counts (handles 2 and 3 of the
    // fresh table).
    let rules = evidence(&t, "nft_rules");
    assert_eq!(
        rules,
        format!(
            "inet block forward_drops handle 2 drop (200 packets); \
             inet block forward_drops handle 3 drop ({syns} packets)"
        )
    );
    // Nothing left the WAN: not an upstream block.
    assert!(
        !listed(&status)
            .iter()
            .any(|a| a["id"] == "signalling_blocked"),
        "{:#?}",
        listed(&status)
    );

    // The gateway answers a SYN to 5061 itself with a reset: blocked here, answered by
    // the gateway (one SYN in, one reset back, nothing out on the WAN).
    let refused = bed.tb.lan.run(|| connect_3_syns(41001, node(5061)));
    assert_eq!(
        refused.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let reset_subject = "lan0 ingress tcp 192.0.2.10:41001 -> 203.0.113.10:5061";
    let (r, _) = wait_open(
        &bed,
        "webex_blocked_here",
        reset_subject,
        FIRE_WITHIN,
        |a, _| evidence(a, "nft_rules").contains("handle 4"),
    );
    assert_eq!(evidence(&r, "port"), "5061");
    assert_eq!(evidence(&r, "lan_packets"), "1");
    assert_eq!(evidence(&r, "gateway_answers"), "1");
    assert_eq!(evidence(&r, "wan_packets"), "0");
    assert!(
        evidence(&r, "nft_rules")
            .contains("inet block forward_drops handle 4 reject with tcp reset (1 packets)"),
        "{r:#}"
    );

    // The rules go; the same media and connection pass.
    bed.tb
        .gw
        .exec(&["nft", "delete table inet block"])
        .expect("nft");
    let passing = Instant::now();
    std::thread::scope(|s| {
        let media = s.spawn(|| {
            bed.tb.lan.run(|| {
                send_udp(lan(52000), node(5004), 100, 160, Duration::from_millis(20))
                    .expect("media")
            })
        });
        bed.tb
            .lan
            .run(|| tcp_exchange(Some(41000), node(8934), 100))
            .expect("the connection passes now");
        media.join().expect("media thread");
    });
    assert_eq!(sink.wait_for(100, Duration::from_secs(5)), 100);
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "webex_blocked_here", udp_subject, left);
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "webex_blocked_here", tcp_subject, left);
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "webex_blocked_here", reset_subject, left);
}

#[test]
fn a_reset_or_icmp_from_outside_is_signalling_blocked_and_a_clean_connection_is_not() {
    let bed = GatewayBed::launch();
    let _clean = bed
        .tb
        .wan
        .run(|| tcp_echo_server(node(5061)))
        .expect("echo 5061");
    let _media = bed.tb.wan.run(|| udp_sink(node(5004))).expect("sink");
    // Clean baseline: connections to 5061 and media pass; neither detector fires while
    // they run and for a window after.
    for _ in 0..3 {
        bed.tb
            .lan
            .run(|| tcp_exchange(None, node(5061), 1000))
            .expect("clean connection");
    }
    bed.tb
        .lan
        .run(|| send_udp(lan(52002), node(5004), 150, 160, Duration::from_millis(20)))
        .expect("media");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let status = bed.status();
        assert!(listed(&status).is_empty(), "{:#?}", listed(&status));
        std::thread::sleep(Duration::from_millis(300));
    }

    // A firewall on the far side resets 5062.
    bed.tb
        .wan
        .exec(&[
            "nft",
            r#"table inet rst {
                chain input {
                    type filter hook input priority filter; policy accept;
                    tcp dport 5062 counter reject with tcp reset
                    tcp dport 443 counter reject with icmp type admin-prohibited
                    tcp dport 8934 counter drop
                }
            }"#,
        ])
        .expect("nft on the WAN host");
    for _ in 0..5 {
        let e = bed
            .tb
            .lan
            .run(|| std::net::TcpStream::connect_timeout(&node(5062), Duration::from_secs(3)))
            .expect_err("reset");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }
    // And refuses 443 with ICMP administratively prohibited.
    for _ in 0..3 {
        let e = bed
            .tb
            .lan
            .run(|| std::net::TcpStream::connect_timeout(&node(443), Duration::from_secs(3)))
            .expect_err("ICMP");
        assert_eq!(e.kind(), std::io::ErrorKind::HostUnreachable, "{e}");
    }
    let icmp_subject = "wan0 tcp 203.0.113.10:443 icmp_unreachable";
    let (i, _) = wait_open(
        &bed,
        "signalling_blocked",
        icmp_subject,
        FIRE_WITHIN,
        |a, _| evidence(a, "connections") == "3",
    );
    assert_eq!(evidence(&i, "port"), "443");
    assert_eq!(evidence(&i, "cause"), "icmp_unreachable");
    assert_eq!(evidence(&i, "syn_packets"), "3");
    assert_eq!(evidence(&i, "answer_packets"), "3");
    // And drops 8934 silently: SYNs with no answer at all.
    let silent_subject = "wan0 tcp 203.0.113.10:8934 no_answer";
    std::thread::scope(|sc| {
        let syns = sc.spawn(|| bed.tb.lan.run(|| connect_3_syns(41002, node(8934))));
        let (n, status) = wait_open(
            &bed,
            "signalling_blocked",
            silent_subject,
            FIRE_WITHIN,
            |a, _| evidence(a, "connections") == "1",
        );
        assert_eq!(evidence(&n, "cause"), "no_answer");
        assert_eq!(evidence(&n, "answer_packets"), "0");
        let sent = flow_packets(&status, "wan0", "egress", "tcp", 8934);
        assert!(sent >= 1);
        assert_eq!(evidence(&n, "syn_packets"), sent.to_string());
        assert!(syns.join().expect("connect thread").is_some());
    });
    let subject = "wan0 tcp 203.0.113.10:5062 reset";
    let (a, status) = wait_open(&bed, "signalling_blocked", subject, FIRE_WITHIN, |a, _| {
        evidence(a, "connections") == "5"
    });
    assert_eq!(a["severity"], "critical");
    assert_eq!(evidence(&a, "port"), "5062");
    assert_eq!(evidence(&a, "cause"), "reset");
    assert_eq!(evidence(&a, "syn_packets"), "5");
    assert_eq!(evidence(&a, "answer_packets"), "5");
    assert_eq!(flow_packets(&status, "wan0", "egress", "tcp", 5062), 5);
    // The SYNs left: nothing blocked here.
    assert!(
        !listed(&status)
            .iter()
            .any(|a| a["id"] == "webex_blocked_here"),
        "{:#?}",
        listed(&status)
    );
    // The reset's ground truth: the far side's rule counted the 5 SYNs.
    let out = bed
        .tb
        .wan
        .exec(&["nft", "list", "table", "inet", "rst"])
        .expect("nft list");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("counter packets 5 "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The reset goes, a listener answers: connections pass and the finding clears.
    bed.tb
        .wan
        .exec(&["nft", "delete table inet rst"])
        .expect("nft");
    let _open = bed
        .tb
        .wan
        .run(|| tcp_echo_server(node(5062)))
        .expect("echo 5062");
    let passing = Instant::now();
    bed.tb
        .lan
        .run(|| tcp_exchange(None, node(5062), 1000))
        .expect("passes now");
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "signalling_blocked", subject, left);
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "signalling_blocked", icmp_subject, left);
    let left = CLEAR_WITHIN.saturating_sub(passing.elapsed());
    wait_cleared(&bed, "signalling_blocked", silent_subject, left);
}
