//! `xdp_mode = "off"` on the namespace testbed: TC on ingress instead of XDP. An RTP call
//! with known loss, duplicates and reordering counts exactly as under XDP (the
//! generator's ground truth), DSCP rewrite on WAN egress marks every packet (a packet
//! socket on the WAN host is the oracle), the hooks stay attached and counting across a
//! restart, and a switch of mode at restart leaves exactly one ingress hook: a stream
//! counted twice would show both.

mod support;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use serde_json::Value;
use support::gateway::*;
use xtask::{
    bed::GatewayBed,
    rtpgen::{self, Profile},
    testbed::{GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::send_udp,
};

const OFF: &str = "xdp_mode = \"off\"\n";

/// Writes the gateway config with `mode` (an `xdp_mode` line or "") on both interfaces
/// and DSCP rewrite on WAN egress.
fn write_config(bed: &GatewayBed, mode: &str) {
    let text = xtask::config::gateway_config(bed.pin.path(), &bed.socket())
        .replace(
            "name = \"lan0\"\nrole = \"lan\"\n",
            &format!("name = \"lan0\"\nrole = \"lan\"\ndscp_ingress = \"off\"\n{mode}"),
        )
        .replace(
            "name = \"wan0\"\nrole = \"wan\"\n",
            &format!("name = \"wan0\"\nrole = \"wan\"\ndscp_egress = \"rewrite\"\n{mode}"),
        )
        .replace(
            "[daemon]\n",
            &format!("[daemon]\npoll_interval_ms = {POLL_MS}\n"),
        )
        .replace("[webex]\n", "[webex]\ndedicated_port_ranges = true\n");
    std::fs::write(bed.config(), text).expect("config");
}

/// Restarts the daemon (SIGTERM, then start) on the config as it is now.
fn restart(bed: &mut GatewayBed) -> Value {
    bed.stop();
    bed.start();
    bed.status()
}

/// Packets of the lan0 ingress flow from the LAN host's `port` to the node.
fn lan_ingress(status: &Value, port: u16) -> u64 {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["interface"] == GW_LAN_IF
                && f["direction"] == "ingress"
                && f["src_port"] == port
                && f["dst_addr"] == WEBEX_NODE_V4.to_string()
        })
        .map(|f| f["packets"].as_u64().unwrap())
        .sum()
}

/// DSCP rewrites over the wan0 egress flows to the node's port 5004.
fn wan_rewritten(status: &Value) -> u64 {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["interface"] == GW_WAN_IF && f["direction"] == "egress" && f["dst_port"] == 5004
        })
        .map(|f| f["dscp"]["rewritten"].as_u64().unwrap_or(0))
        .sum()
}

/// Frames from the gateway's WAN address to UDP port 5004, as the WAN host sees them.
fn audio_from_gw(f: &[u8]) -> bool {
    f.len() > 38
        && f[12..14] == [0x08, 0x00]
        && f[14 + 9] == 17
        && f[14 + 12..14 + 16] == GW_WAN_V4.octets()
        && f[14 + 22..14 + 24] == 5004u16.to_be_bytes()
}

fn hooks(status: &Value) -> Vec<(String, String, bool)> {
    [GW_LAN_IF, GW_WAN_IF]
        .iter()
        .map(|name| {
            let i = iface(status, name);
            (
                i["xdp_mode"].as_str().unwrap().to_string(),
                i["ingress_hook"].as_str().unwrap().to_string(),
                i["pinned"] == true,
            )
        })
        .collect()
}

/// Sends `count` datagrams from the LAN host's `port` to the node, `gap` apart.
fn send_from(bed: &GatewayBed, port: u16, count: u32, gap: Duration) {
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port);
    bed.tb
        .lan
        .run(|| send_udp(from, node(), count, PAYLOAD, gap))
        .expect("send");
}

#[test]
fn tc_ingress_counts_a_call_exactly_rewrites_every_mark_and_survives_restarts_and_mode_switches() {
    let mut bed = GatewayBed {
        daemon: None,
        tb: xtask::Testbed::new().expect("testbed"),
        pin: xtask::PinDir::new(),
        dir: xtask::TempDir::new().expect("tempdir"),
    };
    write_config(&bed, OFF);
    bed.start();
    let s = bed.status();
    let tc = ("off".to_string(), "tc".to_string(), true);
    assert_eq!(hooks(&s), [tc.clone(), tc.clone()], "{s}");
    assert!(!has_xdp(&bed, GW_LAN_IF) && !has_xdp(&bed, GW_WAN_IF));
    let sink = sink(&bed.tb);
    let wan_host = bed.tb.wan.run(|| RawLink::open("eth0"));

    // 1. An RTP call with known impairments, from the dedicated audio port.
    let profile = Profile {
        name: "tc ingress",
        packets: 300,
        random_loss_pct: 3.0,
        reorder_every: Some(41),
        duplicate_every: Some(59),
        ..Default::default()
    };
    let plan = rtpgen::plan(&profile, 0x7c1e_0001, 0x5eed_7c1e);
    let truth = plan.truth[0].clone();
    assert!(
        truth.lost > 0 && truth.duplicates > 0 && truth.reordered > 0,
        "{truth:?}"
    );
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), AUDIO_PORT);
    let wire = std::thread::scope(|scope| {
        let wire = scope.spawn(|| {
            wan_host.recv_matching(audio_from_gw, truth.sent as usize, Duration::from_secs(60))
        });
        bed.tb
            .lan
            .run(|| rtpgen::send(&plan, from, node()))
            .expect("rtp send");
        wire.join().expect("wire reader")
    });
    let s = bed.wait_status("the call counted", |s| {
        lan_ingress(s, AUDIO_PORT) == truth.sent && wan_rewritten(s) == truth.sent
    });
    let stream = s["calls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["legs"].as_array().unwrap().iter())
        .flat_map(|l| l["streams"].as_array().unwrap().iter())
        .find(|m| m["ssrc"] == truth.ssrc && m["interface"] == GW_LAN_IF)
        .unwrap_or_else(|| panic!("no lan0 stream {:#x}: {s}", truth.ssrc))
        .clone();
    assert_eq!(stream["direction"], "ingress", "{stream}");
    assert_eq!(stream["packets"], truth.sent, "{stream}");
    assert_eq!(stream["lost"], truth.lost, "{stream}");
    assert_eq!(stream["lost_rfc"], truth.lost_rfc(), "{stream}");
    assert_eq!(stream["duplicates"], truth.duplicates, "{stream}");
    assert_eq!(stream["reordered"], truth.reordered, "{stream}");
    assert_eq!(wire.len() as u64, truth.sent, "call frames on the WAN host");
    assert!(
        wire.iter().all(|f| f[14 + 1] >> 2 == EF),
        "a call frame without EF"
    );

    // 2. A stream across a restart: the TC hooks keep counting and rewriting.
    const N: u32 = 1500;
    let port = AUDIO_PORT + 1;
    let wire = std::thread::scope(|scope| {
        let wan_host = &wan_host;
        let lan = &bed.tb.lan;
        let sender = scope.spawn(move || {
            let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), port);
            lan.run(|| send_udp(from, node(), N, PAYLOAD, Duration::from_millis(3)))
                .expect("send")
        });
        let wire = scope.spawn(move || {
            wan_host.recv_matching(audio_from_gw, N as usize, Duration::from_secs(120))
        });
        let before = sink.received();
        wait_received(&sink, before + u64::from(N) / 4);
        let daemon = bed.daemon.take().unwrap();
        assert!(daemon.stop().success());
        let stopped_at = sink.received();
        wait_received(&sink, stopped_at + 100);
        let daemon = start(&bed);
        let s = daemon.status_json().unwrap();
        assert_eq!(iface(&s, GW_LAN_IF)["adopted"], true, "{s}");
        assert_eq!(iface(&s, GW_WAN_IF)["adopted"], true, "{s}");
        bed.daemon = Some(daemon);
        assert!(
            sink.received() < before + u64::from(N),
            "the stream ended before the restart"
        );
        sender.join().expect("sender");
        wire.join().expect("wire reader")
    });
    bed.wait_status("the stream counted across the restart", |s| {
        lan_ingress(s, port) == u64::from(N) && wan_rewritten(s) == truth.sent + u64::from(N)
    });
    assert_eq!(wire.len(), N as usize, "frames on the WAN host");
    assert!(
        wire.iter().all(|f| f[14 + 1] >> 2 == EF),
        "a frame without EF"
    );

    // 3. Back to XDP at a restart: XDP replaces TC on ingress, no packet counted twice.
    write_config(&bed, "");
    let s = restart(&mut bed);
    let xdp = ("native".to_string(), "xdp".to_string(), true);
    assert_eq!(hooks(&s), [xdp.clone(), xdp], "{s}");
    assert!(has_xdp(&bed, GW_LAN_IF) && has_xdp(&bed, GW_WAN_IF));
    let links = monitor::kernel::pins::pinned_links(bed.pin.path());
    assert!(!links.iter().any(|l| l.1 == "tcx-ingress"), "{links:?}");
    let port = AUDIO_PORT + 2;
    send_from(&bed, port, 200, Duration::from_millis(1));
    bed.wait_status("200 packets under XDP", |s| lan_ingress(s, port) == 200);

    // 4. And off again: TC replaces XDP, again exactly once.
    write_config(&bed, OFF);
    let s = restart(&mut bed);
    assert_eq!(hooks(&s), [tc.clone(), tc], "{s}");
    assert!(!has_xdp(&bed, GW_LAN_IF) && !has_xdp(&bed, GW_WAN_IF));
    let port = AUDIO_PORT + 3;
    send_from(&bed, port, 200, Duration::from_millis(1));
    bed.wait_status("200 packets under TC ingress", |s| {
        lan_ingress(s, port) == 200
    });

    // With the daemon stopped, `monitor check` names the hooks and the object's BTF.
    bed.stop();
    let config = bed.config();
    let out = monitor_in_gw(
        &bed,
        &["check", "--json", "--config", config.to_str().unwrap()],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
            .clone()
    };
    let lan = check("attached_lan0");
    assert_eq!(lan["value"], "attached (tcx, tcx-ingress)", "{lan}");
    assert!(
        lan["detail"].as_str().unwrap().contains("TC on ingress"),
        "{lan}"
    );
    let btf = check("btf");
    assert_eq!(btf["status"], "pass", "{btf}");
    assert!(
        btf["value"]
            .as_str()
            .unwrap()
            .ends_with("object BTF loaded: 2 of 2 attached programs"),
        "{btf}"
    );
}
