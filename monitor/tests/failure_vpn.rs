//! `vpn_hairpin` (README "Failure detectors") in the namespace testbed with the real
//! daemon: a VPN client's media (from an address of the configured client pool, as the
//! concentrator on the LAN forwards it) is reported with exact counts and clears after
//! the call; a plain LAN host's media in the same site is not. The media node sends STUN
//! consent checks to the client, which answers each after a fixed 30 ms (the trip through
//! the tunnel and back): the finding states that leg's RTT. And with the delay on the
//! path instead (no netem here): a relay namespace between the LAN host and the gateway
//! resends every frame 15 ms late each way while the client answers at once; the leg's
//! RTT is the relay's 30 ms round trip.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::daemon::evidence;
use xtask::{
    bed::GatewayBed,
    testbed::{LAN_HOST_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{udp_call, udp_echo},
};

/// A VPN client address, in the pool the config names (inside the LAN's documentation
/// range, where the concentrator would route it).
const VPN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 130);
const CONFIG: &str = "\n[detect]\nvpn_client_pools = [\"192.0.2.128/26\"]\n";
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// How long the VPN client takes to answer a consent check (the tunnel leg).
const LEG: Duration = Duration::from_millis(30);
/// Consent checks the node sends, one every 250 ms once media arrives.
const CHECKS: u8 = 10;
/// Media datagrams the client sends (every 20 ms), each echoed by the node.
const MEDIA: u32 = 200;

fn is_stun(m: &[u8], kind: [u8; 2]) -> bool {
    m.len() >= 20 && m[0..2] == kind && m[4..8] == MAGIC
}

/// The VPN client: `MEDIA` datagrams to the node every 20 ms; each consent check from the
/// node answered `leg` later. Returns (media echoes received, checks answered).
fn vpn_client(from: SocketAddr, node: SocketAddr, leg: Duration) -> (u32, u32) {
    let s = UdpSocket::bind(from).expect("bind");
    s.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut due: Vec<(Instant, Vec<u8>)> = Vec::new();
    let (mut sent, mut echoes, mut answered) = (0u32, 0u32, 0u32);
    let mut buf = [0u8; 2048];
    // Bounded: the media takes 4 s; 2 s more for the last answers and echoes.
    while start.elapsed() < Duration::from_secs(6) {
        let now = Instant::now();
        if sent < MEDIA && now >= start + Duration::from_millis(20) * sent {
            s.send_to(&[0x80; 160], node).expect("send");
            sent += 1;
        }
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            if is_stun(&buf[..n], [0x00, 0x01]) {
                let mut resp = buf[..20].to_vec();
                resp[0..2].copy_from_slice(&[0x01, 0x01]);
                due.push((Instant::now() + leg, resp));
            } else {
                echoes += 1;
            }
        }
        due.retain(|(at, resp)| {
            if Instant::now() >= *at {
                s.send_to(resp, node).expect("answer");
                answered += 1;
                false
            } else {
                true
            }
        });
        if sent == MEDIA && due.is_empty() && echoes == MEDIA && answered == CHECKS as u32 {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (echoes, answered)
}

/// The media node: echoes media; once media arrives, sends `CHECKS` consent checks to
/// its source, one every 250 ms. Returns the answers received.
fn media_node(node: SocketAddr) -> u32 {
    let s = UdpSocket::bind(node).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let start = Instant::now();
    let (mut peer, mut checks, mut answers) = (None, 0u8, 0u32);
    let mut next_check = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(8) {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            if is_stun(&buf[..n], [0x01, 0x01]) {
                answers += 1;
            } else {
                s.send_to(&buf[..n], from).expect("echo");
                peer.get_or_insert(from);
            }
        }
        if let Some(p) = peer
            && checks < CHECKS
            && Instant::now() >= next_check
        {
            let mut m = vec![0x00, 0x01, 0x00, 0x00];
            m.extend_from_slice(&MAGIC);
            m.extend_from_slice(&[0x76, 0x70, 0x6e, 0, 0, 0, 0, 0, 0, 0, 0, checks]);
            s.send_to(&m, p).expect("check");
            checks += 1;
            next_check = Instant::now() + Duration::from_millis(250);
        }
        if checks == CHECKS && answers == CHECKS as u32 && start.elapsed() > Duration::from_secs(5)
        {
            break;
        }
    }
    answers
}

/// The VPN client's call to the node (media, and consent checks answered `leg` late):
/// every datagram echoed, every check answered.
fn vpn_call(bed: &GatewayBed, leg: Duration) {
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 9000);
    let ((echoes, answered), answers) = std::thread::scope(|s| {
        let far = s.spawn(|| bed.tb.wan.run(|| media_node(node)));
        std::thread::sleep(Duration::from_millis(100));
        let near = bed
            .tb
            .lan
            .run(|| vpn_client(SocketAddr::new(IpAddr::V4(VPN_CLIENT), 52000), node, leg));
        (near, far.join().expect("node thread"))
    });
    assert_eq!(
        (echoes, answered, answers),
        (MEDIA, CHECKS as u32, CHECKS as u32)
    );
}

/// The open `vpn_hairpin` with every datagram and check of [`vpn_call`], within 15 s.
fn open_hairpin(bed: &GatewayBed) -> Value {
    let packets = (2 * (MEDIA + CHECKS as u32)).to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = bed.status();
        if let Some(a) = hairpins(&s)
            .into_iter()
            .find(|a| a["cleared_unix_s"].is_null() && evidence(a, "media_packets") == packets)
        {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no vpn_hairpin with {packets} packets: {:#}",
            s["anomalies"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn hairpins(status: &Value) -> Vec<Value> {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == "vpn_hairpin")
        .cloned()
        .collect()
}

fn call(bed: &GatewayBed, from: Ipv4Addr, count: u32) -> u32 {
    let stats = bed
        .tb
        .lan
        .run(|| {
            udp_call(
                SocketAddr::new(IpAddr::V4(from), 52000),
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004),
                count,
                Duration::from_millis(20),
                |_| vec![0x80; 160],
            )
        })
        .expect("call");
    assert_eq!(stats.sent, count);
    stats.received
}

#[test]
fn media_from_the_vpn_pool_hairpins_and_plain_media_does_not() {
    let bed = GatewayBed::launch_with(CONFIG, |tb| {
        tb.lan
            .ip(&[
                "addr",
                "add",
                &format!("{VPN_CLIENT}/24"),
                "dev",
                LAN_HOST_IF,
            ])
            .expect("pool address");
    });
    let _echo = bed
        .tb
        .wan
        .run(|| {
            udp_echo(
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004),
                10_000,
                Duration::from_secs(90),
            )
        })
        .expect("echo");

    // A plain LAN host's call: nothing, during it and for a window after.
    assert_eq!(call(&bed, LAN_HOST_V4, 150), 150);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let s = bed.status();
        assert!(hairpins(&s).is_empty(), "{:#}", s["anomalies"]);
        std::thread::sleep(Duration::from_millis(300));
    }

    // The VPN client's call: 200 datagrams each way through the LAN interface, and 10
    // consent checks from the node, each answered (20 more packets each way).
    vpn_call(&bed, LEG);
    let a = open_hairpin(&bed);
    let leg: f64 = evidence(&a, "vpn_leg_rtt_ms")
        .parse()
        .expect("a measured leg");
    assert!(
        (30.0..34.0).contains(&leg),
        "the client answers 30 ms late: {leg} ms"
    );
    assert_eq!(a["subject"], "vpn client 192.0.2.130");
    assert_eq!(a["severity"], "warning");
    assert_eq!(evidence(&a, "vpn_client_pool"), "192.0.2.128/26");
    assert_eq!(evidence(&a, "peers"), "203.0.113.10:9000");
    // Only the pool host.
    assert_eq!(hairpins(&bed.status()).len(), 1);

    // The call is over: cleared within the window and the hold-down (20 s, plus slack).
    let deadline = Instant::now() + Duration::from_secs(22);
    loop {
        let s = bed.status();
        let h = hairpins(&s);
        if h.len() == 1 && h[0]["cleared_unix_s"].as_u64().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "not cleared: {h:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The relay's namespace; deleted on drop (after the relay, dropped first).
struct RelayNs(xtask::Netns);

impl Drop for RelayNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", self.0.name()])
            .status();
    }
}

/// The path delay each way (the relay's), and how far above twice that the measured
/// leg may be (the relay's 0.1 ms polling, scheduling on a loaded machine).
const RELAY_DELAY: Duration = Duration::from_millis(15);
const TOLERANCE_MS: f64 = 4.0;

#[test]
fn the_vpn_legs_rtt_is_the_path_delay_of_a_relay() {
    let mut relay_ns = None;
    let bed = GatewayBed::launch_with(CONFIG, |tb| {
        let name = format!("{}-relay", tb.prefix());
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {name}");
        let ns = RelayNs(xtask::Netns::new(name));
        tb.plug_lan_via(&ns.0).expect("LAN link through the relay");
        tb.lan
            .ip(&[
                "addr",
                "add",
                &format!("{VPN_CLIENT}/24"),
                "dev",
                LAN_HOST_IF,
            ])
            .expect("pool address");
        relay_ns = Some(ns);
    });
    let relay_ns = relay_ns.expect("relay namespace");
    let relay = xtask::relay::DelayRelay::start(
        &relay_ns.0,
        "lan",
        "gw",
        RELAY_DELAY,
        Duration::from_secs(120),
    );
    // The client answers at once: the leg's RTT is the path's.
    vpn_call(&bed, Duration::ZERO);
    let counts = &relay.counts;
    use std::sync::atomic::Ordering::Relaxed;
    // Every datagram and check crossed it (plus ARP and neighbour discovery).
    assert!(counts.forward.load(Relaxed) >= (MEDIA + CHECKS as u32) as u64);
    assert!(counts.back.load(Relaxed) >= (MEDIA + CHECKS as u32) as u64);
    assert_eq!(counts.dropped.load(Relaxed), 0);
    let a = open_hairpin(&bed);
    let leg: f64 = evidence(&a, "vpn_leg_rtt_ms")
        .parse()
        .expect("a measured leg");
    let path = 2.0 * RELAY_DELAY.as_secs_f64() * 1e3;
    assert!(
        (path..path + TOLERANCE_MS).contains(&leg),
        "the relay delays 15 ms each way: {leg} ms"
    );
    drop(relay);
}
