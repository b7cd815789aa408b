//! The daemon under faults, on the namespace testbed: killed with SIGKILL mid-stream, a
//! monitored interface deleted and created again, SIGHUP with a bad and a good config.
//! Counts are exact: the sender knows what it sent.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use serde_json::Value;
use xtask::{
    Testbed,
    bed::GatewayBed,
    testbed::{GW_LAN_IF, LAN_HOST_V4, WAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{UdpSink, send_udp, udp_sink},
};

const PAYLOAD: usize = 100;
const IP_BYTES: u64 = 20 + 8 + PAYLOAD as u64;

/// Sends `count` datagrams from the LAN host to `to`:5004 and waits until all arrived.
fn send(bed: &GatewayBed, sink: &UdpSink, to: IpAddr, count: u32) {
    let before = sink.received();
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000);
    bed.tb
        .lan
        .run(|| {
            send_udp(
                from,
                SocketAddr::new(to, 5004),
                count,
                PAYLOAD,
                Duration::from_millis(1),
            )
        })
        .expect("send");
    assert_eq!(
        sink.wait_for(before + count as u64, Duration::from_secs(10)),
        before + count as u64,
        "datagrams through the NAT"
    );
}

fn lan_packets(status: &Value, dst: IpAddr) -> Option<u64> {
    status["flows"].as_array()?.iter().find_map(|f| {
        (f["interface"] == GW_LAN_IF
            && f["direction"] == "ingress"
            && f["dst_addr"] == dst.to_string()
            && f["dst_port"] == 5004)
            .then(|| f["packets"].as_u64().unwrap())
    })
}

fn webex() -> IpAddr {
    IpAddr::V4(WEBEX_NODE_V4)
}

fn sink(tb: &Testbed, addr: IpAddr) -> UdpSink {
    tb.wan
        .run(|| udp_sink(SocketAddr::new(addr, 5004)))
        .expect("sink")
}

#[test]
fn sigkill_mid_stream_then_restart_loses_no_counter() {
    let mut bed = GatewayBed::launch();
    let sink = sink(&bed.tb, webex());
    send(&bed, &sink, webex(), 50);
    bed.wait_status("50 packets", |s| lan_packets(s, webex()) == Some(50));

    let status = bed.kill();
    assert!(!status.success(), "killed, not exited: {status:?}");
    // The links are pinned: the programs stay attached and count without the daemon.
    let out = bed.tb.gw.ip(&["-d", "link", "show", GW_LAN_IF]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("prog/xdp"));
    send(&bed, &sink, webex(), 30);

    bed.start();
    let s = bed.status();
    assert_eq!(s["daemon"]["adopted_pinned_maps"], true);
    assert_eq!(s["interfaces"][0]["adopted"], true);
    bed.wait_status("the 80 from before the restart", |s| {
        lan_packets(s, webex()) == Some(80)
    });
    send(&bed, &sink, webex(), 40);
    let s = bed.wait_status("120 packets", |s| lan_packets(s, webex()) == Some(120));
    let flow = s["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["interface"] == GW_LAN_IF && f["direction"] == "ingress")
        .unwrap();
    assert_eq!(flow["bytes"], 120 * IP_BYTES);
    assert!(bed.pin.path().join("FLOWS").exists());
}

#[test]
fn a_deleted_and_recreated_interface_is_attached_again_and_reported() {
    let bed = GatewayBed::launch();
    let before = bed.status();
    let old_index = before["interfaces"][0]["ifindex"].as_u64().unwrap();
    assert_eq!(before["interfaces"][0]["name"], GW_LAN_IF);

    bed.tb.replug_lan().expect("replug lan0");
    let s = bed.wait_status("lan0 re-attached", |s| {
        let i = &s["interfaces"][0];
        i["state"] == "attached" && i["reattached"] == 1 && i["ifindex"].as_u64() != Some(old_index)
    });
    assert_eq!(s["interfaces"][0]["xdp_mode"], "native");

    // Traffic on the new lan0 is accounted under its name.
    let sink = sink(&bed.tb, webex());
    send(&bed, &sink, webex(), 25);
    bed.wait_status("25 packets on the new lan0", |s| {
        lan_packets(s, webex()) == Some(25)
    });
    let out = bed.tb.gw.ip(&["-d", "link", "show", GW_LAN_IF]).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp"),
        "XDP on the new lan0"
    );
}

#[test]
fn sighup_keeps_the_running_config_when_the_new_one_is_bad_and_applies_a_good_one() {
    let bed = GatewayBed::launch();
    let config = bed.config();
    let good = std::fs::read_to_string(&config).unwrap();
    let pid = bed.daemon().pid() as i32;
    let hup = || {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };

    // A bad config: refused whole, with the reason; the daemon keeps running.
    std::fs::write(
        &config,
        good.replace("[webex]", "[webex]\nprefixes_typo = []"),
    )
    .unwrap();
    hup();
    let s = bed.wait_status("the refused reload", |s| {
        !s["daemon"]["last_reload"].is_null()
    });
    let r = &s["daemon"]["last_reload"];
    assert_eq!(r["ok"], false);
    assert!(
        r["message"].as_str().unwrap().contains("prefixes_typo"),
        "{r}"
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("keeping the running config"),
        "{r}"
    );
    let sink_webex = sink(&bed.tb, webex());
    send(&bed, &sink_webex, webex(), 10);
    bed.wait_status("still counting", |s| lan_packets(s, webex()) == Some(10));

    // A good config that makes the WAN host's own address Webex too, and changes the poll
    // interval (which needs a restart).
    let wan = IpAddr::V4(WAN_HOST_V4);
    let sink_wan = sink(&bed.tb, wan);
    send(&bed, &sink_wan, wan, 5);
    // Two polls later the WAN host's flow is still not tracked.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        lan_packets(&bed.status(), wan),
        None,
        "not Webex before the reload"
    );
    let widened = good
        .replace(
            "prefixes = [",
            &format!("prefixes = [\"{}/32\", ", WAN_HOST_V4),
        )
        .replace("[daemon]", "[daemon]\npoll_interval_ms = 500");
    std::fs::write(&config, widened).unwrap();
    hup();
    let s = bed.wait_status("the applied reload", |s| {
        s["daemon"]["last_reload"]["ok"] == true
    });
    assert_eq!(
        s["daemon"]["last_reload"]["needs_restart"],
        serde_json::json!(["daemon.poll_interval_ms"])
    );
    assert_eq!(
        s["daemon"]["poll_interval_ms"], 1000,
        "poll interval waits for a restart"
    );
    send(&bed, &sink_wan, wan, 7);
    bed.wait_status("the new prefix tracked", |s| lan_packets(s, wan) == Some(7));
}
