//! End to end on the namespace testbed: real NAT (nftables masquerade), the real daemon
//! attached to the gateway's LAN and WAN interfaces, and `monitor status --json` read
//! back. Counts are exact: the sender knows what it sent.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use serde_json::Value;
use xtask::{
    Testbed,
    bed::GatewayBed,
    testbed::{GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{UdpSink, send_udp, udp_sink},
};

const MEDIA_PORT: u16 = 5004;
const SRC_PORT: u16 = 52000;
const PAYLOAD: usize = 160;
/// IP bytes of one datagram: IPv4 header, UDP header, payload.
const IP_BYTES: u64 = 20 + 8 + PAYLOAD as u64;

/// Sends `count` datagrams LAN host -> Webex node and waits until all arrived.
fn send(bed: &GatewayBed, sink: &UdpSink, count: u32) {
    let before = sink.received();
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), SRC_PORT);
    let to = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
    bed.tb
        .lan
        .run(|| send_udp(from, to, count, PAYLOAD, Duration::from_millis(1)))
        .expect("send");
    let got = sink.wait_for(before + count as u64, Duration::from_secs(10));
    assert_eq!(got, before + count as u64, "datagrams through the NAT");
}

/// Waits until both sides' flows report `packets`, returning (lan flow, wan flow).
fn wait_for_packets(bed: &GatewayBed, packets: u64) -> (Value, Value) {
    let count = |f: &Option<Value>| f.as_ref().map(|f| f["packets"].as_u64().unwrap());
    let status = bed.wait_status(&format!("{packets} packets on both sides"), |s| {
        count(&find_flow(s, GW_LAN_IF, "ingress")) == Some(packets)
            && count(&find_flow(s, GW_WAN_IF, "egress")) == Some(packets)
    });
    (
        find_flow(&status, GW_LAN_IF, "ingress").unwrap(),
        find_flow(&status, GW_WAN_IF, "egress").unwrap(),
    )
}

/// The single media flow towards the Webex node on `interface` in `direction`.
fn find_flow(status: &Value, interface: &str, direction: &str) -> Option<Value> {
    let matching: Vec<&Value> = status["flows"]
        .as_array()
        .expect("flows array")
        .iter()
        .filter(|f| {
            f["interface"] == interface
                && f["direction"] == direction
                && f["dst_addr"] == WEBEX_NODE_V4.to_string()
                && f["dst_port"] == MEDIA_PORT
                && f["protocol"] == "udp"
        })
        .collect();
    assert!(matching.len() <= 1, "one flow expected, got {matching:?}");
    matching.first().map(|f| (*f).clone())
}

fn sink(tb: &Testbed) -> UdpSink {
    let addr = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
    tb.wan.run(|| udp_sink(addr)).expect("sink")
}

#[test]
fn exact_packets_and_bytes_on_both_sides_of_the_nat() {
    const N: u32 = 200;
    let bed = GatewayBed::launch();
    let status = bed.status();
    for iface in status["interfaces"].as_array().unwrap() {
        assert_eq!(
            iface["xdp_mode"], "native",
            "veth supports native XDP: {iface}"
        );
    }
    let sink = sink(&bed.tb);
    send(&bed, &sink, N);
    let (lan, wan) = wait_for_packets(&bed, N as u64);

    // LAN side: the inner host as it is, before NAT.
    assert_eq!(lan["src_addr"], LAN_HOST_V4.to_string());
    assert_eq!(lan["src_port"], SRC_PORT);
    assert_eq!(lan["inner_addr"], LAN_HOST_V4.to_string());
    assert_eq!(lan["peer_addr"], WEBEX_NODE_V4.to_string());
    assert_eq!(lan["class"], "media");
    assert_eq!(lan["bytes"], N as u64 * IP_BYTES);

    // WAN side: translated by masquerade to the gateway's address; the port is whatever
    // conntrack chose, and the Webex node saw exactly that.
    assert_eq!(wan["src_addr"], GW_WAN_V4.to_string());
    assert_eq!(wan["class"], "media");
    assert_eq!(wan["bytes"], N as u64 * IP_BYTES);
    let seen_by_node = sink.sources();
    assert_eq!(
        seen_by_node.len(),
        1,
        "one source at the node: {seen_by_node:?}"
    );
    assert_eq!(seen_by_node[0].ip(), IpAddr::V4(GW_WAN_V4));
    assert_eq!(wan["src_port"], seen_by_node[0].port());

    let c = &bed.status()["counters"];
    assert_eq!(c["flow_insert_failed"], 0);
    assert_eq!(
        c["seen"].as_u64().unwrap(),
        c["parsed"].as_u64().unwrap() + c["malformed_total"].as_u64().unwrap()
    );
}

#[test]
fn restart_continues_counters_and_keeps_counting_while_stopped() {
    let mut bed = GatewayBed::launch();
    let sink = sink(&bed.tb);

    send(&bed, &sink, 50);
    let (lan1, _) = wait_for_packets(&bed, 50);
    assert_eq!(bed.status()["daemon"]["adopted_pinned_maps"], false);

    bed.stop();
    // The links are pinned: XDP stays on both gateway interfaces while the daemon is
    // down (`monitor detach` removes it) ...
    for iface in [GW_LAN_IF, GW_WAN_IF] {
        let out = bed
            .tb
            .gw
            .ip(&["-d", "link", "show", iface])
            .expect("ip link");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("prog/xdp"), "{iface} lost XDP: {text}");
    }
    // ... with the maps it counts into.
    assert!(
        bed.pin.path().join("FLOWS").exists(),
        "pinned flow map kept"
    );
    // Traffic while the daemon is down is counted all the same.
    send(&bed, &sink, 30);

    bed.start();
    let status = bed.status();
    assert_eq!(status["daemon"]["adopted_pinned_maps"], true);
    // Nothing reset, nothing missed.
    let (lan2, _) = wait_for_packets(&bed, 80);
    assert!(lan2["age_s"].as_f64().unwrap() >= lan1["age_s"].as_f64().unwrap());

    send(&bed, &sink, 40);
    let (lan, wan) = wait_for_packets(&bed, 120);
    assert_eq!(lan["bytes"], 120 * IP_BYTES);
    assert_eq!(wan["bytes"], 120 * IP_BYTES);
}
