//! The daemon runs with the systemd unit's capabilities and nothing more: started under
//! setpriv with exactly CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (the unit's
//! CapabilityBoundingSet), it attaches, counts exactly, and holds no other capability.
//! With one of them missing it says which on one line, exits 77 (which the unit does not
//! restart on) and leaves nothing behind; a pin path off bpffs fails `--check-config`.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
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

/// systemd/monitor.service.
fn unit_file() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../systemd/monitor.service"
    ))
    .unwrap()
}

/// A testbed with a daemon config for its gateway: the testbed, the scratch directory,
/// the pin directory, the config file and the status socket's path.
fn gateway() -> (
    Testbed,
    TempDir,
    PinDir,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let tb = Testbed::new().expect("testbed");
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    let config = dir.join("monitor.toml");
    let socket = dir.join("monitor.sock");
    xtask::config::write_gateway_config(&config, pin.path(), &socket).unwrap();
    (tb, dir, pin, config, socket)
}

#[test]
fn the_unit_capability_set_is_enough_and_nothing_more_is_held() {
    let unit = unit_file();
    assert!(
        unit.contains("CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON\n"),
        "the test's set must be the unit's"
    );

    let (tb, dir, _pin, config, socket) = gateway();
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

/// Runs `monitor run` in the testbed gateway's namespace under setpriv with `caps` as
/// its bounding set; returns the exit code and stderr.
fn run_with_caps(tb: &Testbed, caps: &str, config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", tb.gw.path().display()))
        .args(["--", "setpriv"])
        .arg(format!("--bounding-set=-all,{caps}"))
        .args(["--no-new-privs", "--"])
        .arg(monitor_bin())
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("nsenter setpriv monitor");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Nothing attached to the gateway's interfaces: no XDP program, no TC filter.
fn nothing_attached(tb: &Testbed) {
    for ifname in [GW_LAN_IF, xtask::testbed::GW_WAN_IF] {
        let link = tb.gw.ip(&["-d", "link", "show", "dev", ifname]).unwrap();
        let link = String::from_utf8_lossy(&link.stdout);
        assert!(!link.contains("xdp"), "{ifname}: {link}");
        let tc = tb
            .gw
            .exec(&["tc", "filter", "show", "dev", ifname, "egress"])
            .unwrap();
        assert!(
            tc.stdout.is_empty(),
            "{ifname}: {}",
            String::from_utf8_lossy(&tc.stdout)
        );
    }
}

#[test]
fn a_missing_capability_is_named_with_exit_77_and_nothing_is_left() {
    let unit = unit_file();
    assert!(
        unit.contains("\nRestartPreventExitStatus=64 77\n"),
        "the unit must not restart on a missing capability"
    );
    let (tb, _dir, pin, config, socket) = gateway();
    for (caps, missing) in [
        ("+bpf,+perfmon", "CAP_NET_ADMIN"),
        ("+net_admin,+perfmon", "CAP_BPF"),
    ] {
        let (code, stderr) = run_with_caps(&tb, caps, &config);
        assert_eq!(code, Some(77), "{caps}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: missing capability {missing}, needed ")),
            "{stderr}"
        );
        assert!(
            !socket.exists(),
            "{caps}: the status socket was left behind"
        );
        assert!(
            !pin.path().exists(),
            "{caps}: the pin directory was created"
        );
        nothing_attached(&tb);
    }
}

#[test]
fn a_pin_path_off_bpffs_fails_check_config_with_64() {
    let dir = TempDir::new().expect("tempdir");
    let config = dir.join("monitor.toml");
    let pins = dir.join("pins");
    // The host's loopback: the check needs no testbed.
    std::fs::write(
        &config,
        format!(
            "[daemon]\npin_path = {:?}\nstatus_socket = {:?}\n\n[[interfaces]]\nname = \"lo\"\nrole = \"lan\"\n",
            pins.display().to_string(),
            dir.join("monitor.sock").display().to_string()
        ),
    )
    .unwrap();
    for args in [&["run", "--check-config"][..], &["run"][..]] {
        let out = Command::new(monitor_bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "daemon.pin_path: {} is not on a bpf filesystem",
                pins.display()
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("choose a directory under a bpffs mount"),
            "{stderr}"
        );
        assert!(!pins.exists());
    }
}

#[test]
fn a_start_that_fails_after_loading_leaves_no_socket_and_no_pins() {
    // The Prometheus port is taken: the daemon has loaded its programs, pinned its maps
    // and bound its socket by the time export starts and fails. (An interface that
    // refuses to attach is not fatal: it is an `interface_attach_failed` anomaly.)
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    let config = dir.join("monitor.toml");
    let socket = dir.join("monitor.sock");
    std::fs::write(
        &config,
        format!(
            "[daemon]\npin_path = {:?}\nstatus_socket = {:?}\n\n[[interfaces]]\nname = \"lo\"\nrole = \"lan\"\nxdp_mode = \"native\"\n\n[export]\nprometheus = true\nprometheus_listen = \"127.0.0.1:{port}\"\n",
            pin.path().display().to_string(),
            socket.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(monitor_bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the daemon did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    drop(taken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("starting export"), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!socket.exists(), "the status socket was left behind");
    assert!(
        !pin.path().exists(),
        "the pins of a failed first start were left"
    );
}
