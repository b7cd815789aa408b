//! The namespace testbed, for real: these tests create namespaces, veths and an nftables
//! NAT, so they must run as root (`cargo xtask test` does). All traffic stays inside the
//! testbed and uses documentation addresses only.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;
use xtask::traffic::{
    is_documentation_addr, send_udp, tcp_echo_server, tcp_exchange, udp_call, udp_echo, udp_sink,
};
use xtask::*;

const WAIT: Duration = Duration::from_secs(5);

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(out.status.success(), "ip netns list: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn creates_three_namespaces_and_deletes_them_on_drop() {
    let testbed = Testbed::new().unwrap();
    let names: Vec<String> = testbed
        .namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    let prefix = format!("{NETNS_PREFIX}{}x", std::process::id());
    assert!(
        testbed.prefix().starts_with(&prefix),
        "{}",
        testbed.prefix()
    );
    assert_eq!(
        names,
        ["lan", "gw", "wan"].map(|role| format!("{}-{role}", testbed.prefix()))
    );
    let listed = netns_list();
    for name in &names {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} not in:\n{listed}"
        );
    }
    // The veths were created straight into the namespaces: none of them in the root one.
    let root_links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap()
        .stdout;
    let root_links = String::from_utf8(root_links).unwrap();
    assert!(
        !root_links.contains(" lan0") && !root_links.contains(" wan0"),
        "{root_links}"
    );

    drop(testbed);
    let listed = netns_list();
    for name in &names {
        assert!(
            !listed.contains(name.as_str()),
            "{name} still in:\n{listed}"
        );
        assert!(!Netns::new(name.as_str()).path().exists());
    }
}

#[test]
fn gateway_forwards_and_hosts_do_not() {
    let testbed = Testbed::new().unwrap();
    assert_eq!(testbed.gw.sysctl_get("net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(
        testbed
            .gw
            .sysctl_get("net.ipv6.conf.all.forwarding")
            .unwrap(),
        "1"
    );
    assert_eq!(testbed.lan.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");
    assert_eq!(testbed.wan.sysctl_get("net.ipv4.ip_forward").unwrap(), "0");
    let ruleset = testbed.gw.exec(&["nft", "list", "ruleset"]).unwrap().stdout;
    let ruleset = String::from_utf8(ruleset).unwrap();
    assert!(ruleset.contains("oifname \"wan0\" masquerade"), "{ruleset}");
}

/// Sends `count` datagrams from the LAN host to the media node and checks that exactly
/// that many arrive, all from the gateway's WAN address (masqueraded).
fn udp_through_nat(lan: IpAddr, node: IpAddr, gw_wan: IpAddr) {
    let testbed = Testbed::new().unwrap();
    let count = 40;
    let sink = testbed
        .wan
        .run(|| udp_sink(SocketAddr::new(node, 5004)))
        .unwrap();
    testbed
        .lan
        .run(|| {
            send_udp(
                SocketAddr::new(lan, 52000),
                sink.local_addr(),
                count,
                172,
                Duration::from_millis(1),
            )
        })
        .unwrap();
    assert_eq!(sink.wait_for(u64::from(count), WAIT), u64::from(count));
    // Nothing beyond `count` trickles in late.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.received(), u64::from(count));
    assert_eq!(sink.bytes(), u64::from(count) * 172);
    let sources = sink.sources();
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!(
        sources[0].ip(),
        gw_wan,
        "the media node must see the NAT's address"
    );
}

#[test]
fn lan_host_reaches_the_media_node_through_nat_v4() {
    udp_through_nat(LAN_HOST_V4.into(), WEBEX_NODE_V4.into(), GW_WAN_V4.into());
}

#[test]
fn lan_host_reaches_the_media_node_through_nat_v6() {
    udp_through_nat(LAN_HOST_V6.into(), WEBEX_NODE_V6.into(), GW_WAN_V6.into());
}

#[test]
fn replies_find_their_way_back_only_through_the_nat_binding() {
    let testbed = Testbed::new().unwrap();
    let node = SocketAddr::from((WEBEX_NODE_V4, 5004));
    let echo = testbed.wan.run(|| udp_echo(node, 30, WAIT)).unwrap();
    let stats = testbed
        .lan
        .run(|| {
            udp_call(
                (LAN_HOST_V4, 52001).into(),
                node,
                30,
                Duration::from_millis(1),
                |i| vec![i as u8; 100],
            )
        })
        .unwrap();
    assert_eq!((stats.sent, stats.received), (30, 30));
    assert_eq!(echo.replied(), 30);
    // And the WAN host has no route to the LAN at all: the echo did not bypass the NAT.
    let direct = testbed.wan.run(|| {
        send_udp(
            (WAN_HOST_V4, 0).into(),
            (LAN_HOST_V4, 9).into(),
            1,
            10,
            Duration::ZERO,
        )
    });
    assert!(
        direct.is_err(),
        "the WAN host must not reach 192.0.2.10 directly"
    );
}

#[test]
fn tcp_echo_through_nat_v4_and_v6() {
    let testbed = Testbed::new().unwrap();
    for (node, gw_wan) in [
        (IpAddr::from(WEBEX_NODE_V4), IpAddr::from(GW_WAN_V4)),
        (WEBEX_NODE_V6.into(), GW_WAN_V6.into()),
    ] {
        let server = SocketAddr::new(node, 5061);
        let echo = testbed.wan.run(|| tcp_echo_server(server)).unwrap();
        // Larger than the socket buffers, so the echo really streams both ways.
        testbed
            .lan
            .run(|| tcp_exchange(Some(45061), server, 300_000))
            .unwrap();
        testbed.lan.run(|| tcp_exchange(None, server, 500)).unwrap();
        assert_eq!(echo.connections(), 2);
        assert_eq!(echo.bytes_echoed(), 300_500);
        let peers = echo.peers();
        assert!(peers.iter().all(|p| p.ip() == gw_wan), "{peers:?}");
    }
}

#[test]
fn documentation_ranges_only() {
    for ok in [
        "192.0.2.1",
        "198.51.100.200",
        "203.0.113.10",
        "2001:db8::1",
        "2001:db8:ff::10",
    ] {
        assert!(is_documentation_addr(ok.parse().unwrap()), "{ok}");
    }
    for bad in [
        "10.0.0.1",
        "8.8.8.8",
        "127.0.0.1",
        "::1",
        "2001:4860::8888",
        "fe80::1",
    ] {
        assert!(!is_documentation_addr(bad.parse().unwrap()), "{bad}");
    }
    // Every sender refuses such destinations before creating a socket. Run from inside
    // the LAN namespace anyway, so even a regression could not send to the internet.
    let testbed = Testbed::new().unwrap();
    let refused = testbed.lan.run(|| {
        [
            send_udp(
                (LAN_HOST_V4, 0).into(),
                "8.8.8.8:53".parse().unwrap(),
                1,
                1,
                Duration::ZERO,
            ),
            udp_call(
                (LAN_HOST_V4, 0).into(),
                "10.0.0.1:5004".parse().unwrap(),
                1,
                Duration::ZERO,
                |_| vec![0],
            )
            .map(drop),
            tcp_exchange(None, "127.0.0.1:5061".parse().unwrap(), 1),
        ]
    });
    for result in refused {
        let error = result.unwrap_err().to_string();
        assert!(error.contains("refusing"), "{error}");
    }
}

#[test]
fn stale_namespaces_of_dead_processes_are_removed_and_live_ones_kept() {
    // A pid above the kernel's largest pid_max (2^22) cannot belong to a live process.
    let dead = Netns::new(format!("{NETNS_PREFIX}4194305x0-gw"));
    let out = Command::new("ip")
        .args(["netns", "add", dead.name()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let live = Testbed::new().unwrap();
    let removed = cleanup_stale();
    assert!(removed.contains(&dead.name().to_owned()), "{removed:?}");
    assert!(!dead.path().exists());
    for ns in live.namespaces() {
        assert!(ns.path().exists(), "{} was removed", ns.name());
    }
}

#[test]
fn netns_run_re_raises_panics() {
    let testbed = Testbed::new().unwrap();
    let result = std::panic::catch_unwind(|| testbed.lan.run(|| panic!("inside the LAN host")));
    let message = result.unwrap_err();
    assert_eq!(message.downcast_ref::<&str>(), Some(&"inside the LAN host"));
}
