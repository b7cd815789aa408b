//! The daemon runs with the systemd unit's capabilities and nothing more: started under
//! setpriv with exactly CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (the unit's
//! CapabilityBoundingSet), it attaches, counts exactly, and holds no other capability.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant},
};

use xtask::{
    Daemon, PinDir, TempDir, Testbed, monitor_bin,
    testbed::{GW_LAN_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{send_udp, udp_sink},
};

/// The unit's capabilities, as in systemd/monitor.service.
const UNIT_CAPS: &str = "+bpf,+net_admin,+perfmon";
/// The same as a CapEff mask: NET_ADMIN 12, PERFMON 38, BPF 39.
const UNIT_CAP_MASK: u64 = (1 << 12) | (1 << 38) | (1 << 39);

#[test]
fn the_unit_capability_set_is_enough_and_nothing_more_is_held() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/monitor.service"
    ))
    .unwrap();
    assert!(
        unit.contains("CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON\n"),
        "the test's set must be the unit's"
    );

    let tb = Testbed::new().expect("testbed");
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    let config = dir.join("monitor.toml");
    let socket = dir.join("monitor.sock");
    xtask::config::write_gateway_config(&config, pin.path(), &socket).unwrap();
    // A wrapper that drops every capability but the unit's before running the daemon.
    let wrapper = dir.join("monitor-least-privilege");
    std::fs::write(
        &wrapper,
        format!(
            // As uid 0, what a program gets at exec is its bounding set: dropping everything
            // else from it is what systemd's CapabilityBoundingSet does.
            "#!/bin/sh\nexec setpriv --bounding-set=-all,{UNIT_CAPS} --no-new-privs -- {} \"$@\"\n",
            monitor_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let daemon = Daemon::start(&wrapper, &tb.gw, &config, &socket).expect("daemon under setpriv");
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let cap = |field: &str| {
        let hex = status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{field} in {status}"));
        u64::from_str_radix(hex, 16).unwrap()
    };
    assert_eq!(cap("CapEff:"), UNIT_CAP_MASK, "effective capabilities");
    assert_eq!(cap("CapBnd:"), UNIT_CAP_MASK, "bounding set");

    let sink = tb
        .wan
        .run(|| udp_sink(SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004)))
        .unwrap();
    tb.lan
        .run(|| {
            send_udp(
                SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000),
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004),
                40,
                120,
                Duration::from_millis(1),
            )
        })
        .unwrap();
    assert_eq!(sink.wait_for(40, Duration::from_secs(10)), 40);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = daemon.status_json().unwrap();
        let packets = s["flows"].as_array().unwrap().iter().find_map(|f| {
            (f["interface"] == GW_LAN_IF && f["direction"] == "ingress")
                .then(|| f["packets"].as_u64().unwrap())
        });
        if packets == Some(40) {
            break;
        }
        assert!(Instant::now() < deadline, "40 packets expected: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = daemon.log();
    let exit = daemon.stop();
    assert!(
        exit.success(),
        "clean exit under least privilege: {exit:?}\n{log}"
    );
}
