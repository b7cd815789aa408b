//! Nothing from the wire is believed without a reason (README "Learning peers", trust
//! model), end to end on the namespace testbed: forged answers and hellos from the WAN
//! side and the LAN side teach nothing and are counted under their reason, a flood from
//! one LAN host does not stop real learning, a call outlives its peer's TTL, flows
//! opened before learning become Webex, and split DNS-over-TCP and ClientHellos teach.
//!
//! Forged packets are injected with AF_PACKET and TTL 1, so the gateway sees each once
//! (on the link it arrives on) and never forwards it: the counts are exact.

mod learn_bed;

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use learn_bed::*;
use xtask::{
    frames::L4,
    testbed::{GW_LAN_IF, GW_LAN_V4, GW_WAN_IF, GW_WAN_V4, LAN_HOST_IF, LAN_HOST_V4, WAN_HOST_IF},
    traffic::{send_udp, udp_sink},
};

/// Addresses the forgers claim are Webex: outside the configured prefixes.
const POISON_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 30);
/// A second resolver address on the WAN host, for a resolver written by the test.
const FAKE_RESOLVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
/// A plain TCP server on the WAN host's :443 that reads and discards.
const HELLO_SINK_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 22);

fn udp(src: u16, dst: u16, payload: Vec<u8>) -> L4 {
    L4::Udp { src, dst, payload }
}

fn tcp(src: u16, dst: u16, payload: Vec<u8>) -> L4 {
    L4::Tcp {
        src,
        dst,
        flags: 0x18,
        payload,
    }
}

fn add_wan_addr(bed_tb: &xtask::Testbed, a: Ipv4Addr) {
    bed_tb
        .wan
        .ip(&["addr", "add", &format!("{a}/24"), "dev", "eth0"])
        .expect("extra WAN host address");
}

#[test]
fn forged_answers_and_hellos_teach_nothing_and_are_counted_by_reason() {
    let bed = Bed::new(|tb, dir| vec![openssl_server_at(&tb.gw, IpAddr::V4(GW_LAN_V4), dir)]);
    let tb = &bed.tb;
    let gw_wan_mac = mac(&tb.gw, GW_WAN_IF);
    let gw_lan_mac = mac(&tb.gw, GW_LAN_IF);
    let wan_host = xtask::testbed::WAN_HOST_V4;

    // From the WAN side: answers to the gateway (naming the gateway itself) and to a LAN
    // host, no query asked; hellos to the gateway's WAN address and to a LAN host.
    inject(
        &tb.wan,
        WAN_HOST_IF,
        gw_wan_mac,
        &[
            ttl1_packet(
                wan_host,
                GW_WAN_V4,
                &udp(53, 40000, answer(7, "gw.webex.com", GW_WAN_V4)),
            ),
            ttl1_packet(
                wan_host,
                LAN_HOST_V4,
                &udp(53, 40000, answer(8, "x.webex.com", POISON_V4)),
            ),
            ttl1_packet(
                wan_host,
                GW_WAN_V4,
                &tcp(40000, 443, client_hello("poison.webex.com", 0)),
            ),
            ttl1_packet(
                wan_host,
                LAN_HOST_V4,
                &tcp(40001, 443, client_hello("poison.webex.com", 0)),
            ),
        ],
    );
    // From the LAN side: an answer a LAN host forges for a resolver, and a hello on a
    // connection whose handshake nobody saw.
    inject(
        &tb.lan,
        LAN_HOST_IF,
        gw_lan_mac,
        &[
            ttl1_packet(
                LAN_HOST_V4,
                wan_host,
                &udp(53, 40000, answer(9, "y.webex.com", POISON_V4)),
            ),
            ttl1_packet(
                LAN_HOST_V4,
                POISON_V4,
                &tcp(40002, 443, client_hello("poison.webex.com", 0)),
            ),
        ],
    );
    let s = bed.wait_until(10, "the six forged samples", |s| {
        s["learn"]["samples"].as_u64() == Some(6)
    });
    assert_eq!(refused(&s, "unsolicited"), 2, "{}", s["learn"]);
    assert_eq!(refused(&s, "wrong_side"), 3, "{}", s["learn"]);
    assert_eq!(refused(&s, "no_handshake"), 1, "{}", s["learn"]);
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);

    // An answer to a different query: the LAN host asks a resolver the test runs, which
    // answers with another ID. Refused on the WAN side (the gateway's NATed query) and
    // on the LAN side (the host's query).
    add_wan_addr(tb, FAKE_RESOLVER_V4);
    let resolver = tb
        .wan
        .run(|| UdpSocket::bind(SocketAddr::new(IpAddr::V4(FAKE_RESOLVER_V4), 53)))
        .expect("fake resolver");
    resolver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = resolver.recv_from(&mut buf).expect("the query");
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        assert_eq!(&buf[..n], query(id, "media.webex.com").as_slice());
        let wrong = answer(id.wrapping_add(1), "media.webex.com", POISON_V4);
        resolver.send_to(&wrong, from).expect("answer");
    });
    tb.lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.send_to(&query(0x5151, "media.webex.com"), (FAKE_RESOLVER_V4, 53))?;
            let mut buf = [0u8; 512];
            s.recv_from(&mut buf)
        })
        .expect("the wrong answer arrives");
    answering.join().unwrap();

    // A hello towards the gateway's own LAN address, on a real TLS connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s_client_to(tb, IpAddr::V4(GW_LAN_V4), "media.webex.com") {
        assert!(
            Instant::now() < deadline,
            "s_server on the gateway did not answer"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = bed.wait_until(10, "the wrong answers and the hello to the gateway", |s| {
        refused(s, "other_query") == 2 && refused(s, "gateway_address") >= 1
    });
    assert_eq!(refused(&s, "gateway_address"), 1, "{}", s["learn"]);
    assert_eq!(refused(&s, "unsolicited"), 2, "{}", s["learn"]);
    assert_eq!(refused(&s, "wrong_side"), 3, "{}", s["learn"]);
    assert_eq!(refused(&s, "no_handshake"), 1, "{}", s["learn"]);
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);
    assert_eq!(s["learn"]["learned_dns"], 0);
    assert_eq!(s["learn"]["learned_sni"], 0);
}

#[test]
fn a_real_resolution_through_the_gateway_resolver_teaches() {
    // dnsmasq upstream on the WAN host, and dnsmasq on the gateway forwarding to it: the
    // LAN host asks the gateway, the gateway asks upstream.
    let bed = Bed::new(|tb, dir| {
        let upstream = dnsmasq(tb, dir);
        let child = tb
            .gw
            .command(&[
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
                &format!("--listen-address={GW_LAN_V4}"),
                &format!("--server={}", xtask::testbed::WAN_HOST_V4),
                &format!("--pid-file={}", dir.join("dnsmasq-gw.pid").display()),
                "--user=root",
                "--cache-size=0",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq on the gateway");
        vec![upstream, Helper(child)]
    });
    let ask = |id: u16, name: &str| {
        bed.tb.lan.run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 0)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            s.send_to(&query(id, name), (GW_LAN_V4, 53)).ok()?;
            let mut buf = [0u8; 512];
            s.recv_from(&mut buf).ok().map(|(n, _)| n)
        })
    };
    // Both resolvers answer (a name outside the domains teaches nothing).
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(1, "edge.cdn.example").is_none() {
        assert!(Instant::now() < deadline, "the resolvers did not answer");
    }
    assert!(ask(0x4343, "media.webex.com").is_some());
    let s = bed.wait_until(10, "the learned peer", |s| !peers(s).is_empty());
    let p = &peers(&s)[0];
    assert_eq!(p["addr"], LEARNED_V4.to_string());
    assert_eq!(p["name"], "media.webex.com");
    let s = bed.wait_until(5, "both answers", |s| {
        s["learn"]["learned_dns"].as_u64() == Some(2)
    });
    // Upstream's answer to the gateway and the gateway's answer to the host: each
    // matched its own query.
    assert!(
        s["learn"]["refused"].as_object().unwrap().is_empty(),
        "{}",
        s["learn"]
    );
    assert_eq!(s["learn"]["queries_waiting"], 0, "{}", s["learn"]);
    assert_eq!(peers(&s).len(), 1);
}

#[test]
fn ten_thousand_forged_answers_from_one_lan_host_do_not_stop_real_learning() {
    const FORGED: u32 = 10_000;
    let bed = Bed::new(|tb, dir| vec![dnsmasq(tb, dir)]);
    let gw_lan_mac = mac(&bed.tb.gw, GW_LAN_IF);
    let wan_host = xtask::testbed::WAN_HOST_V4;
    let forged: Vec<Vec<u8>> = (0..FORGED)
        .map(|i| {
            let addr = Ipv4Addr::new(198, 51, 100, 100 + (i % 100) as u8);
            ttl1_packet(
                LAN_HOST_V4,
                wan_host,
                &udp(
                    53,
                    40000 + (i % 1000) as u16,
                    answer(i as u16, "z.webex.com", addr),
                ),
            )
        })
        .collect();
    inject(&bed.tb.lan, LAN_HOST_IF, gw_lan_mac, &forged);
    // During the flood's aftermath, a real resolution through the NAT still teaches.
    wait_for_dnsmasq(&bed.tb);
    assert!(resolve(&bed.tb, "media.webex.com") > 0);
    let s = bed.wait_until(10, "the real peer and every forged answer accounted", |s| {
        !peers(s).is_empty()
            && refused(s, "wrong_side") + s["learn"]["rate_limited"].as_u64().unwrap_or(0)
                == FORGED as u64
    });
    assert_eq!(peers(&s).len(), 1, "{}", s["learned_peers"]);
    assert_eq!(peers(&s)[0]["addr"], LEARNED_V4.to_string());
    // The kernel let a burst through and limited the rest before the ring.
    let limited = s["learn"]["rate_limited"].as_u64().unwrap();
    assert!(limited >= FORGED as u64 / 2, "{}", s["learn"]);
    assert_eq!(s["learn"]["sample_drops"], 0, "{}", s["learn"]);
    // Memory: nothing of the flood is kept.
    assert_eq!(s["learn"]["queries_waiting"], 0, "{}", s["learn"]);
    assert_eq!(s["learn"]["partial_waiting"], 0, "{}", s["learn"]);
    assert_eq!(s["learn"]["learned_dns"], 1, "{}", s["learn"]);
}

#[test]
fn a_long_call_outlives_its_ttl_and_older_flows_become_webex() {
    // Every flow tracked, so flows opened before learning exist as not_webex.
    let bed = Bed::with_daemon("track_all_flows = true\n", "idle_s = 3\n", |tb, dir| {
        vec![dnsmasq(tb, dir), openssl_server(tb, dir)]
    });
    let tb = &bed.tb;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s_client(tb, "www.example.org") {
        assert!(Instant::now() < deadline, "s_server did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A TCP connection to the TLS server's address (its SIP-over-TLS port: s_server
    // serves one connection at a time) opened before the address is learned.
    let wan_host = xtask::testbed::WAN_HOST_V4;
    let sip = tb
        .wan
        .run(|| TcpListener::bind((wan_host, 5061)))
        .expect("SIP listener");
    let sip_side = std::thread::spawn(move || {
        let (mut c, _) = sip.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all)
            .map(|_| all)
            .map_err(|e| e.to_string())
    });
    let mut old = tb
        .lan
        .run(|| TcpStream::connect((wan_host, 5061)))
        .expect("connect");
    let old_port = old.local_addr().unwrap().port();
    // A call to the DNS peer, 25 packets a second for 12 s, started before learning.
    let sink_addr = SocketAddr::new(IpAddr::V4(LEARNED_V4), MEDIA_PORT);
    let sink = tb.wan.run(|| udp_sink(sink_addr)).expect("sink");
    let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000);
    let call = {
        // Netns is a name: the clone does not own the namespace.
        let lan = tb.lan.clone();
        std::thread::spawn(move || {
            lan.run(|| send_udp(from, sink_addr, 300, 100, Duration::from_millis(40)))
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    let before = flows_to(&s, LEARNED_V4);
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);
    assert!(
        s["flows"].as_array().unwrap().iter().any(|f| {
            f["class"] == "not_webex" && f["dst_port"] == MEDIA_PORT && f["src_port"] == 52000
        }),
        "the call is tracked as not Webex first: {before:?}"
    );

    // Learning the name makes the running call and the open connection Webex.
    assert!(resolve(tb, "media.webex.com") > 0);
    assert!(s_client(tb, "media.webex.com"));
    old.write_all(b"after learning").unwrap();
    let media = |s: &serde_json::Value| {
        s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["src_port"] == 52000 && f["dst_port"] == MEDIA_PORT)
            .map(|f| f["class"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    bed.wait_until(10, "the call and the old connection re-classified", |s| {
        media(s) == ["media", "media"]
            && s["flows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["src_port"] == old_port && f["class"] == "sip_signalling")
    });
    let learned_at = Instant::now();
    // Every flow to or from a learned address is Webex now: the call, the old
    // connection, the hellos' own connections and the earlier ones to the server.
    let learned = [LEARNED_V4.to_string(), wan_host.to_string()];
    let s = bed.wait_until(5, "no not_webex flow of a learned peer", |s| {
        s["flows"].as_array().unwrap().iter().all(|f| {
            f["class"] != "not_webex"
                || !(learned
                    .iter()
                    .any(|a| f["src_addr"] == *a || f["dst_addr"] == *a))
        })
    });
    assert!(
        s["learn"]["flows_reclassified"].as_u64().unwrap() >= 4,
        "{}",
        s["learn"]
    );
    // Past the DNS TTL (4 s) the call keeps its class and its peer.
    while learned_at.elapsed() < Duration::from_secs(DNS_TTL_S + 3) {
        let s = bed.status();
        assert_eq!(media(&s), ["media", "media"], "lost its class mid-call");
        assert!(
            peers(&s)
                .iter()
                .any(|p| p["addr"] == LEARNED_V4.to_string()),
            "{}",
            s["learned_peers"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    call.join().unwrap().expect("the call");
    assert_eq!(sink.wait_for(300, Duration::from_secs(10)), 300);
    // Once the call is idle for idle_s, the peer goes and its flows with it.
    let s = bed.wait_until(DNS_TTL_S + 10, "expiry after the call", |s| {
        !peers(s).iter().any(|p| p["addr"] == LEARNED_V4.to_string())
    });
    assert!(
        s["learn"]["flows_deleted"].as_u64().unwrap() >= 2,
        "{}",
        s["learn"]
    );
    drop(old);
    // The connection carried its bytes through all of it.
    assert_eq!(
        sip_side.join().unwrap().as_deref(),
        Ok(&b"after learning"[..]),
        "{}",
        bed.daemon.log()
    );
}

#[test]
fn split_dns_over_tcp_and_a_two_segment_hello_teach() {
    let bed = Bed::new(|_, _| Vec::new());
    let tb = &bed.tb;
    add_wan_addr(tb, FAKE_RESOLVER_V4);
    add_wan_addr(tb, HELLO_SINK_V4);
    let dns_peer = Ipv4Addr::new(198, 51, 100, 21);
    // A TCP resolver that writes the answer's length in a segment of its own.
    let listener = tb
        .wan
        .run(|| TcpListener::bind((FAKE_RESOLVER_V4, 53)))
        .expect("TCP resolver");
    let resolver = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut len = [0u8; 2];
        c.read_exact(&mut len).unwrap();
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        c.read_exact(&mut q).unwrap();
        let id = u16::from_be_bytes([q[0], q[1]]);
        let a = answer(id, "tcp.webex.com", dns_peer);
        c.write_all(&(a.len() as u16).to_be_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        c.write_all(&a).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    tb.lan
        .run(|| -> std::io::Result<()> {
            let mut c = TcpStream::connect((FAKE_RESOLVER_V4, 53))?;
            c.set_nodelay(true)?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let q = query(0x7777, "tcp.webex.com");
            c.write_all(&(q.len() as u16).to_be_bytes())?;
            std::thread::sleep(Duration::from_millis(200));
            c.write_all(&q)?;
            let mut len = [0u8; 2];
            c.read_exact(&mut len)?;
            let mut a = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut a)
        })
        .expect("the TCP answer");
    resolver.join().unwrap();
    let s = bed.wait_until(10, "the peer taught over TCP", |s| {
        peers(s).iter().any(|p| p["addr"] == dns_peer.to_string())
    });
    assert!(
        s["learn"]["dns_malformed"].as_object().unwrap().is_empty(),
        "{}",
        s["learn"]
    );

    // A ClientHello of 1,600 bytes sent as 600 + 1,000, the name in the second part.
    let listener = tb
        .wan
        .run(|| TcpListener::bind((HELLO_SINK_V4, 443)))
        .expect("TLS sink");
    let sink = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut all = Vec::new();
        let _ = c.read_to_end(&mut all);
        all.len()
    });
    let hello = client_hello("split.webex.com", 1500);
    tb.lan
        .run(|| -> std::io::Result<()> {
            let mut c = TcpStream::connect((HELLO_SINK_V4, 443))?;
            c.set_nodelay(true)?;
            // Let the SYN-ACK be read before the hello is judged.
            std::thread::sleep(Duration::from_millis(300));
            c.write_all(&hello[..600])?;
            std::thread::sleep(Duration::from_millis(200));
            c.write_all(&hello[600..])?;
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        })
        .expect("the split hello");
    assert_eq!(sink.join().unwrap(), hello.len());
    let s = bed.wait_until(10, "the peer taught by the split hello", |s| {
        peers(s)
            .iter()
            .any(|p| p["addr"] == HELLO_SINK_V4.to_string() && p["source"] == "sni")
    });
    // DNS: the query and the answer, each split, each seen on both gateway links; the
    // hello seen on both links.
    assert_eq!(s["learn"]["reassembled"], 6, "{}", s["learn"]);
    assert!(
        s["learn"]["refused"].as_object().unwrap().is_empty(),
        "{}",
        s["learn"]
    );
    assert!(
        s["learn"]["sni_malformed"].as_object().unwrap().is_empty(),
        "{}",
        s["learn"]
    );
    assert_eq!(s["learn"]["partial_waiting"], 0, "{}", s["learn"]);
}

#[test]
fn the_site_is_found_from_the_gateway_interfaces() {
    use monitor::{config::Role, learn::trust::Site};
    use xtask::testbed::{GW_LAN_V6, GW_WAN_V6, LAN_PREFIX_V4, LAN_PREFIX_V6};
    let tb = xtask::Testbed::new().expect("testbed");
    let dir = xtask::TempDir::new().expect("tempdir");
    let pin = xtask::PinDir::new();
    let path = dir.join("monitor.toml");
    xtask::config::write_gateway_config(&path, pin.path(), &dir.join("monitor.sock")).unwrap();
    let site = tb.gw.run(|| {
        let cfg = monitor::config::load(&path).expect("config");
        Site::discover(&cfg.config)
    });
    for a in [
        IpAddr::V4(GW_LAN_V4),
        IpAddr::V4(GW_WAN_V4),
        IpAddr::V6(GW_LAN_V6),
        IpAddr::V6(GW_WAN_V6),
    ] {
        assert!(site.gateway.contains(&a), "{a} in {:?}", site.gateway);
        assert!(site.refuse(a).is_some());
    }
    let mut lan: Vec<String> = site.lan.iter().map(|p| p.to_string()).collect();
    lan.sort();
    assert_eq!(lan, [LAN_PREFIX_V4, LAN_PREFIX_V6]);
    let mut roles: Vec<Role> = site.roles.values().copied().collect();
    roles.sort_by_key(|r| r.as_str());
    assert_eq!(roles, [Role::Lan, Role::Wan]);
    // The LAN hosts are refused, the WAN side's other hosts are not.
    assert_eq!(site.refuse(IpAddr::V4(LAN_HOST_V4)), Some("lan_address"));
    assert_eq!(
        site.refuse("2001:db8:1::10".parse().unwrap()),
        Some("lan_address")
    );
    assert_eq!(site.refuse(IpAddr::V4(POISON_V4)), None);
    assert_eq!(site.refuse("2001:db8:2::2".parse().unwrap()), None);
}

/// A query for `name` AAAA.
fn query_aaaa(id: u16, name: &str) -> Vec<u8> {
    let mut q = query(id, name);
    let n = q.len();
    q[n - 3] = 28;
    q
}

/// The answer to [`query_aaaa`]: AAAA `addr`, TTL 60.
fn answer_aaaa(id: u16, name: &str, addr: std::net::Ipv6Addr) -> Vec<u8> {
    let mut m = query_aaaa(id, name);
    m[2] = 0x81;
    m[3] = 0x80;
    m[7] = 1;
    m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
    m.extend_from_slice(&addr.octets());
    m
}

#[test]
fn ipv6_answers_teach_through_the_nat_and_forged_ones_do_not() {
    use std::net::Ipv6Addr;
    use xtask::testbed::{GW_WAN_V6, LAN_HOST_V6, WAN_HOST_V6};
    let bed = Bed::new(|_, _| Vec::new());
    let tb = &bed.tb;
    let learned: Ipv6Addr = "2001:db8:2::30".parse().unwrap();
    // A forged AAAA answer from the WAN host to the gateway's v6 address: no query.
    inject(
        &tb.wan,
        WAN_HOST_IF,
        mac(&tb.gw, GW_WAN_IF),
        &[ttl1_v6(
            WAN_HOST_V6,
            GW_WAN_V6,
            &udp(53, 40000, answer_aaaa(3, "v6.webex.com", GW_WAN_V6)),
        )],
    );
    let s = bed.wait_until(10, "the forged v6 answer", |s| {
        refused(s, "unsolicited") == 1
    });
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);

    // A resolver the test runs on the WAN host's v6 address answers the LAN host.
    let resolver = tb
        .wan
        .run(|| UdpSocket::bind(SocketAddr::new(IpAddr::V6(WAN_HOST_V6), 53)))
        .expect("v6 resolver");
    resolver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (_, from) = resolver.recv_from(&mut buf).expect("the query");
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        resolver
            .send_to(&answer_aaaa(id, "v6.webex.com", learned), from)
            .expect("answer");
    });
    tb.lan
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V6(LAN_HOST_V6), 0))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.send_to(&query_aaaa(0x6666, "v6.webex.com"), (WAN_HOST_V6, 53))?;
            let mut buf = [0u8; 512];
            s.recv_from(&mut buf)
        })
        .expect("the v6 answer arrives");
    answering.join().unwrap();
    let s = bed.wait_until(10, "the v6 peer", |s| !peers(s).is_empty());
    assert_eq!(peers(&s)[0]["addr"], learned.to_string());
    assert_eq!(peers(&s).len(), 1);
    assert_eq!(refused(&s, "unsolicited"), 1, "{}", s["learn"]);
    // Seen after NAT on the WAN side and before it on the LAN side: taught once, the
    // second a duplicate.
    assert_eq!(s["learn"]["learned_dns"], 1, "{}", s["learn"]);
    assert_eq!(s["learn"]["duplicates"], 1, "{}", s["learn"]);
}

/// An IPv6 packet with hop limit 1 (never forwarded), as [`ttl1_packet`].
fn ttl1_v6(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, l4: &L4) -> Vec<u8> {
    let mut p = xtask::frames::Ipv6::new(src, dst).packet(17, &l4.bytes());
    p[7] = 1;
    p
}
