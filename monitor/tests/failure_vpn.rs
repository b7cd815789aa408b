//! `vpn_hairpin` (README "Failure detectors") in the namespace testbed with the real
//! daemon: a VPN client's media (from an address of the configured client pool, as the
//! concentrator on the LAN forwards it) is reported with exact counts and clears after
//! the call; a plain LAN host's media in the same site is not.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    bed::GatewayBed,
    testbed::{LAN_HOST_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{udp_call, udp_echo},
};

/// A VPN client address, in the pool the config names (inside the LAN's documentation
/// range, where the concentrator would route it).
const VPN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 130);
const CONFIG: &str = "\n[detect]\nvpn_client_pools = [\"192.0.2.128/26\"]\n";

fn hairpins(status: &Value) -> Vec<Value> {
    status["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"] == "vpn_hairpin")
        .cloned()
        .collect()
}

fn evidence(a: &Value, name: &str) -> String {
    a["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no evidence {name} in {a}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
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

    // The VPN client's call: 200 datagrams each way through the LAN interface.
    assert_eq!(call(&bed, VPN_CLIENT, 200), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let a = loop {
        let s = bed.status();
        if let Some(a) = hairpins(&s)
            .into_iter()
            .find(|a| a["cleared_unix_s"].is_null() && evidence(a, "media_packets") == "400")
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no vpn_hairpin with 400 packets: {:#}",
            s["anomalies"]
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(a["subject"], "vpn client 192.0.2.130");
    assert_eq!(a["severity"], "warning");
    assert_eq!(evidence(&a, "vpn_client_pool"), "192.0.2.128/26");
    assert_eq!(evidence(&a, "peers"), "203.0.113.10:5004");
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
