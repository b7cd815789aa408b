//! The next-hop MTU in `mtu_fragmentation` (README "Failure detectors"): DF media through
//! the real gateway to a router hop beyond the WAN host whose link carries 1400 bytes.
//! That router (the WAN host, forwarding) answers each packet with a real ICMP
//! fragmentation-needed stating MTU 1400; the kernel matches it to the WAN flow and keeps
//! the MTU, and the finding states it.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{Netns, bed::GatewayBed, testbed::LAN_HOST_V4};

/// The node behind the 1400-byte hop (inside the testbed's Webex prefix).
const FAR_NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The hop link: the WAN host's end and the far namespace's end.
const HOP_NEAR: &str = "203.0.113.253";
const HOP_FAR: &str = "203.0.113.254";
const N: u32 = 40;

/// A fourth namespace, `<testbed prefix>-hop`, removed (with its link) on drop.
struct Hop(Netns);

impl Drop for Hop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", self.0.name()])
            .status();
    }
}

/// The far namespace behind the WAN host over a 1400-byte veth link; the WAN host
/// forwards to it and sends ICMP errors without rate limit (exact counts).
fn hop(bed: &GatewayBed) -> Hop {
    let name = format!("{}-hop", bed.tb.prefix());
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add");
    assert!(ok.success());
    let hop = Hop(Netns::new(name.clone()));
    let wan = &bed.tb.wan;
    wan.ip(&[
        "link", "add", "hop0", "mtu", "1400", "type", "veth", "peer", "name", "eth0", "mtu",
        "1400", "netns", &name,
    ])
    .expect("veth");
    wan.ip(&["addr", "add", &format!("{HOP_NEAR}/30"), "dev", "hop0"])
        .expect("addr");
    wan.ip(&["link", "set", "hop0", "up"]).expect("up");
    wan.ip(&["route", "add", &format!("{FAR_NODE}/32"), "via", HOP_FAR])
        .expect("route");
    wan.sysctl("net.ipv4.ip_forward", "1").expect("forward");
    wan.sysctl("net.ipv4.icmp_ratelimit", "0")
        .expect("ratelimit");
    let far = &hop.0;
    far.ip(&["addr", "add", &format!("{HOP_FAR}/30"), "dev", "eth0"])
        .expect("addr");
    far.ip(&["addr", "add", &format!("{FAR_NODE}/32"), "dev", "lo"])
        .expect("addr");
    far.ip(&["link", "set", "eth0", "up"]).expect("up");
    far.ip(&["link", "set", "lo", "up"]).expect("up");
    far.ip(&["route", "add", "default", "via", HOP_NEAR])
        .expect("route");
    hop
}

/// `count` datagrams of `ip_len` bytes with DF set (IP_PMTUDISC_PROBE: the local path
/// MTU is ignored, as a phone that never learns it), from the LAN host to the far node.
fn send_df(bed: &GatewayBed, src_port: u16, count: u32, ip_len: usize) {
    bed.tb.lan.run(|| {
        let s = UdpSocket::bind(SocketAddr::from((LAN_HOST_V4, src_port))).expect("bind");
        let mode: i32 = libc::IP_PMTUDISC_PROBE;
        // SAFETY: a valid socket and an int option.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&raw const mode).cast(),
                size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "IP_MTU_DISCOVER");
        let payload = vec![0x80u8; ip_len - 28];
        for _ in 0..count {
            s.send_to(&payload, SocketAddr::from((FAR_NODE, 5004)))
                .expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

#[test]
fn frag_needed_from_a_1400_byte_hop_states_mtu_1400() {
    let bed = GatewayBed::launch();
    let _hop = hop(&bed);
    // Fits the hop: no error, and the flow states no next-hop MTU.
    send_df(&bed, 52010, 5, 1400);
    // Too big for it: each answered by fragmentation-needed, MTU 1400.
    send_df(&bed, 52011, N, 1450);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (a, status) = loop {
        let status = bed.status();
        let found = status["anomalies"].as_array().unwrap().iter().find(|a| {
            a["id"] == "mtu_fragmentation"
                && a["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("frag-needed wan0 egress udp")
                && evidence(a, "icmp_frag_needed") == N.to_string()
        });
        if let Some(a) = found {
            break (a.clone(), status);
        }
        assert!(
            Instant::now() < deadline,
            "no frag-needed finding: {:#}\n{:#}",
            status["anomalies"],
            status["flows"]
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(evidence(&a, "next_hop_mtu"), "1400");
    assert_eq!(evidence(&a, "packets"), N.to_string());
    assert!(
        a["summary"].as_str().unwrap().contains("next-hop MTU 1400"),
        "{a:#}"
    );
    let wan_flows: Vec<&Value> = status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["interface"] == "wan0"
                && f["direction"] == "egress"
                && f["dst_addr"] == FAR_NODE.to_string()
        })
        .collect();
    assert_eq!(wan_flows.len(), 2, "{wan_flows:#?}");
    for f in wan_flows {
        let (expected_mtu, expected_errors) = if f["packets"] == N { (1400, N) } else { (0, 0) };
        assert_eq!(f["next_hop_mtu"], expected_mtu, "{f:#}");
        assert_eq!(f["icmp_frag_needed"], expected_errors, "{f:#}");
    }
}
