//! `media_in_tunnel` (README "Failure detectors") with a real OpenVPN tunnel (UDP 1194,
//! static key, tun) from the LAN host to a concentrator on the WAN host, through the real
//! gateway and daemon: voice-cadence media inside the tunnel (160-byte datagrams every
//! 20 ms) is a likely finding with the tunnel's measured cadence and size, and clears when
//! it stops; the same host's direct media before is not.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    TempDir,
    bed::GatewayBed,
    testbed::{LAN_HOST_V4, WAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{send_udp, udp_call, udp_echo},
};

/// The tunnel's inner addresses (point to point, documentation range).
const CLIENT_TUN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 250);
const SERVER_TUN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 251);
const MEDIA: u32 = 400;

/// An openvpn process this test started; killed (by its pid) on drop.
struct Vpn(Child);

impl Drop for Vpn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openvpn(ns: &xtask::Netns, key: &std::path::Path, log: &std::path::Path, extra: &[&str]) -> Vpn {
    let key = key.to_str().unwrap();
    let mut argv = vec![
        "openvpn",
        "--dev",
        "tun",
        "--proto",
        "udp",
        "--secret",
        key,
        "--cipher",
        "AES-256-CBC",
        "--auth",
        "SHA256",
        "--disable-dco",
        "--disable-occ",
        "--verb",
        "3",
    ];
    argv.extend_from_slice(extra);
    let child = ns
        .command(&argv)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("openvpn");
    Vpn(child)
}

fn tunnel_findings(status: &Value) -> Vec<Value> {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == "media_in_tunnel")
        .cloned()
        .collect()
}

/// Packets and bytes of the tunnel flow at LAN ingress ((0, 0) before it exists).
fn tunnel_flow(status: &Value) -> (u64, u64) {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["interface"] == "lan0" && f["direction"] == "ingress" && f["dst_port"] == 1194)
        .map_or((0, 0), |f| {
            assert_eq!(f["class"], "not_webex");
            (f["packets"].as_u64().unwrap(), f["bytes"].as_u64().unwrap())
        })
}

#[test]
fn voice_inside_an_openvpn_tunnel_is_likely_media_in_tunnel() {
    let bed = GatewayBed::launch();
    let dir = TempDir::new().expect("tempdir");
    let key = dir.join("static.key");
    let out = std::process::Command::new("openvpn")
        .args(["--genkey", "secret"])
        .arg(&key)
        .output()
        .expect("openvpn --genkey");
    assert!(out.status.success());

    // Direct media first: Webex media leaves the host itself, nothing in a tunnel.
    let _echo = bed
        .tb
        .wan
        .run(|| {
            udp_echo(
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004),
                1000,
                Duration::from_secs(60),
            )
        })
        .expect("echo");
    let direct = bed
        .tb
        .lan
        .run(|| {
            udp_call(
                SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000),
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004),
                150,
                Duration::from_millis(20),
                |_| vec![0x80; 160],
            )
        })
        .expect("direct call");
    assert_eq!(direct.received, 150);

    // The tun devices get no IPv6 (no router solicitations or MLD reports inside the
    // tunnel): the tunnel then carries only what the test sends.
    for ns in [&bed.tb.lan, &bed.tb.wan] {
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            .expect("sysctl");
    }
    let server_ip = format!("{SERVER_TUN}");
    let client_ip = format!("{CLIENT_TUN}");
    let wan_host = format!("{WAN_HOST_V4}");
    let _server = openvpn(
        &bed.tb.wan,
        &key,
        &dir.join("server.log"),
        &["--lport", "1194", "--ifconfig", &server_ip, &client_ip],
    );
    let _client = openvpn(
        &bed.tb.lan,
        &key,
        &dir.join("client.log"),
        &[
            "--remote",
            &wan_host,
            "1194",
            "--nobind",
            "--ifconfig",
            &client_ip,
            &server_ip,
        ],
    );
    // Both ends up: the tun addresses set and the sockets open (a static-key tunnel has
    // no handshake; it completes with the first packets).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = |log: &str, line: &str| {
        std::fs::read_to_string(dir.join(log))
            .unwrap_or_default()
            .contains(line)
    };
    while !(ready("client.log", "UDPv4 link remote") && ready("server.log", "UDPv4 link local")) {
        assert!(
            Instant::now() < deadline,
            "openvpn never came up:\n{}\n{}",
            std::fs::read_to_string(dir.join("client.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No direct media found so far in the window: wait until the direct call left it.
    std::thread::sleep(Duration::from_secs(8));
    let s = bed.status();
    assert!(tunnel_findings(&s).is_empty(), "{:#}", s["anomalies"]);
    // What the tunnel carried before the media, if anything.
    let before = tunnel_flow(&s);

    // Voice cadence inside the tunnel: 400 datagrams of 160 bytes, one every 20 ms.
    let (a, _) = std::thread::scope(|sc| {
        let media = sc.spawn(|| {
            bed.tb.lan.run(|| {
                send_udp(
                    SocketAddr::new(IpAddr::V4(CLIENT_TUN), 40000),
                    SocketAddr::new(IpAddr::V4(SERVER_TUN), 5004),
                    MEDIA,
                    160,
                    Duration::from_millis(20),
                )
            })
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let found = loop {
            let s = bed.status();
            if let Some(a) = tunnel_findings(&s)
                .into_iter()
                .find(|a| a["cleared_unix_s"].is_null())
            {
                break (a, s);
            }
            assert!(
                Instant::now() < deadline,
                "no media_in_tunnel: {:#}\n{:#}",
                s["anomalies"],
                s["flows"]
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        media.join().expect("media thread").expect("tunnel media");
        found
    });
    assert_eq!(a["severity"], "warning");
    let subject = a["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("lan0 ingress udp 192.0.2.10:")
            && subject.ends_with(" -> 198.51.100.2:1194"),
        "{subject}"
    );
    assert_eq!(evidence(&a, "tunnel"), "openvpn");
    assert_eq!(evidence(&a, "inner_addr"), "192.0.2.10");
    assert_eq!(evidence(&a, "concentrator"), "198.51.100.2:1194");
    assert_eq!(evidence(&a, "direct_webex_media_packets"), "0");
    let pps: f64 = evidence(&a, "packets_per_s").parse().unwrap();
    assert!(
        (45.0..=55.0).contains(&pps),
        "one packet every 20 ms: {pps}"
    );
    // The media stops: cleared within the window and the hold-down (plus slack).
    let deadline = Instant::now() + Duration::from_secs(22);
    loop {
        let s = bed.status();
        let t = tunnel_findings(&s);
        if !t.is_empty() && t.iter().all(|a| a["cleared_unix_s"].as_u64().is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "not cleared: {t:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Ground truth: the tunnel carried exactly the media since (static key, no pings),
    // each datagram in one tunnel packet of one size, which the finding stated.
    let after = tunnel_flow(&bed.status());
    let (packets, bytes) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(packets, MEDIA as u64);
    assert_eq!(
        bytes % packets,
        0,
        "one size: {bytes} bytes in {packets} packets"
    );
    assert_eq!(
        evidence(&a, "mean_packet_bytes"),
        format!("{:.1}", (bytes / packets) as f64)
    );
}
