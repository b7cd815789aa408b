//! The monitor's own health per interface, on the namespace testbed: an interface that
//! goes down, is deleted, comes back under a new index, or appears only after the start
//! is followed within a poll, an anomaly while it lasts (the exit status follows), and
//! counted under its name.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::*;
use xtask::testbed::{GW_LAN_IF, GW_WAN_IF};

#[test]
fn interface_down_and_deleted_are_anomalies_until_it_returns_and_flows_keep_its_name() {
    let bed = launch(NO_DSCP, "", |_| {});
    let sink = sink(&bed.tb);
    send(&bed.tb.lan, 20, Duration::from_millis(1));
    assert_eq!(sink.wait_for(20, Duration::from_secs(10)), 20);
    bed.wait_status("20 packets", |s| packets(s, GW_LAN_IF, "ingress") == [20]);
    assert_eq!(status_exit(&bed), 0);

    // Down: attached, but no traffic can pass.
    bed.tb.gw.ip(&["link", "set", GW_LAN_IF, "down"]).unwrap();
    let s = bed.wait_status("lan0 down", |s| {
        open_anomaly(s, "interface_down", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "down");
    assert_eq!(status_exit(&bed), 2);
    bed.tb.gw.ip(&["link", "set", GW_LAN_IF, "up"]).unwrap();
    let s = bed.wait_status("lan0 up again", |s| {
        cleared_anomaly(s, "interface_down", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "attached");
    assert_eq!(status_exit(&bed), 0);

    // Deleted, then created again under a new index.
    let old_index = iface(&s, GW_LAN_IF)["ifindex"].as_u64().unwrap();
    bed.tb.unplug_lan().unwrap();
    let s = bed.wait_status("lan0 missing", |s| {
        open_anomaly(s, "interface_missing", GW_LAN_IF)
    });
    assert_eq!(iface(&s, GW_LAN_IF)["state"], "missing");
    assert_eq!(status_exit(&bed), 2);
    bed.tb.plug_lan().unwrap();
    let s = bed.wait_status("lan0 back", |s| {
        cleared_anomaly(s, "interface_missing", GW_LAN_IF)
            && iface(s, GW_LAN_IF)["state"] == "attached"
    });
    let i = iface(&s, GW_LAN_IF);
    assert_ne!(i["ifindex"].as_u64().unwrap(), old_index);
    assert_eq!(i["previous_ifindexes"], serde_json::json!([old_index]));
    assert_eq!(i["reattached"], 1);
    assert_eq!(status_exit(&bed), 0);

    send(&bed.tb.lan, 30, Duration::from_millis(1));
    assert_eq!(sink.wait_for(50, Duration::from_secs(10)), 50);
    // The old index's flow and the new one's, both under the name.
    let s = bed.wait_status("30 packets on the new lan0", |s| {
        packets(s, GW_LAN_IF, "ingress") == [20, 30]
    });
    let unnamed: Vec<&Value> = s["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["interface"].as_str().unwrap().starts_with("if"))
        .collect();
    assert!(unnamed.is_empty(), "flows without a name: {unnamed:?}");
}

#[test]
fn a_wan_interface_that_appears_after_start_is_waited_for_then_attached() {
    let bed = launch(NO_DSCP, "", |tb| tb.unplug_wan().expect("unplug wan0"));
    let s = bed.status();
    let wan = iface(&s, GW_WAN_IF);
    assert_eq!(wan["state"], "waiting", "{wan}");
    assert_eq!(wan["ifindex"], 0);
    let s = bed.wait_status("the waiting anomaly", |s| {
        open_anomaly(s, "interface_waiting", GW_WAN_IF)
    });
    let waiting = s["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "interface_waiting")
        .unwrap();
    assert_eq!(waiting["severity"], "warning");
    assert!(
        waiting["summary"]
            .as_str()
            .unwrap()
            .contains("waiting for interface wan0"),
        "{waiting}"
    );
    assert_eq!(status_exit(&bed), 1);
    // `monitor check` warns about it.
    let config = bed.config();
    let out = monitor_in_gw(
        &bed,
        &["check", "--json", "--config", config.to_str().unwrap()],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "attached_wan0")
        .unwrap_or_else(|| panic!("no attached_wan0 check: {report}"));
    assert_eq!(check["status"], "warn", "{check}");
    assert_eq!(check["value"], "waiting", "{check}");

    bed.tb.plug_wan().unwrap();
    let appeared = Instant::now();
    let s = bed.wait_status("wan0 attached", |s| {
        iface(s, GW_WAN_IF)["state"] == "attached"
    });
    let took = appeared.elapsed();
    // One poll, plus the analysis and the status query on a loaded machine.
    assert!(
        took < Duration::from_millis(POLL_MS) + Duration::from_secs(2),
        "attached {took:?} after it appeared"
    );
    assert!(iface(&s, GW_WAN_IF)["ifindex"].as_u64().unwrap() > 0);

    let sink = sink(&bed.tb);
    send(&bed.tb.lan, 40, Duration::from_millis(1));
    assert_eq!(sink.wait_for(40, Duration::from_secs(10)), 40);
    bed.wait_status("40 packets on both sides", |s| {
        packets(s, GW_LAN_IF, "ingress") == [40]
            && packets(s, GW_WAN_IF, "egress") == [40]
            && cleared_anomaly(s, "interface_waiting", GW_WAN_IF)
    });
    assert_eq!(status_exit(&bed), 0);
}
