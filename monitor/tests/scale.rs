//! The daemon at scale and under abuse (issue 16), on the namespace testbed: hundreds of
//! concurrent status requests past hundreds of idle and non-reading connections, a real
//! Prometheus scrape past idle TCP connections, and fragments from 10,000 sources folded
//! to the anomaly cap. Counts are exact: the test knows every connection and packet it
//! made.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use monitor::anomaly::fold::{CAP_PER_ID, SHOWN_PER_ID};
use monitor::report::scale::StatusSocket;
use monitor::status::client;
use monitor::status::server::REQUEST_TIMEOUT;
use serde_json::Value;
use xtask::prometheus::{PrometheusServer, http_get};
use xtask::{
    PinDir, TempDir, Testbed,
    bed::GatewayBed,
    frames::{Ext, Ipv4, Ipv6, L4},
    rtp::RtpStream,
    testbed::{
        GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_IF, LAN_HOST_V4, WAN_HOST_IF, WEBEX_NODE_V4,
        WEBEX_NODE_V6,
    },
    traffic::{
        raw::{PacketSocket, mac},
        udp_sink,
    },
};

const CONCURRENT: usize = 200;
const IDLE: usize = 200;
const NON_READERS: usize = 20;
/// Every normal status request answers within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The daemon's resident memory may grow at most this much under the clients.
const RSS_GROWTH_MAX_KIB: u64 = 16 * 1024;
const PROMETHEUS_ENDPOINT: &str = "127.0.0.1:9464";

/// Prometheus instant query: the value of the single resulting series, if exactly one.
fn prom_query(ns: &xtask::Netns, query: &str) -> Option<String> {
    let result = xtask::prometheus::query(ns, query).ok()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str().map(str::to_string),
        _ => None,
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("daemon /proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The status socket's counters, fetched with the client `monitor status` uses.
fn socket_stats(bed: &GatewayBed) -> StatusSocket {
    client::fetch(&bed.socket(), Duration::from_secs(5))
        .expect("status")
        .scale
        .status_socket
}

#[test]
fn status_answers_many_clients_past_idle_and_non_reading_ones() {
    let bed = GatewayBed::launch();
    let pid = bed.daemon().pid();
    let socket = bed.socket();
    // Past the reply reuse window of the daemon's readiness checks: a fresh count.
    std::thread::sleep(Duration::from_millis(250));
    let before = socket_stats(&bed);
    let rss_before = vm_rss_kib(pid);

    // Connections that never send anything, and ones that ask but never read.
    let idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&socket).expect("idle connection"))
        .collect();
    let non_readers: Vec<UnixStream> = (0..NON_READERS)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).expect("non-reading connection");
            s.write_all(b"status\n").expect("request");
            s
        })
        .collect();
    let opened = Instant::now();

    // All at once, each timed from its own connect to the whole reply.
    let start = Arc::new(Barrier::new(CONCURRENT));
    let clients: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (start, socket) = (start.clone(), socket.clone());
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                let report = client::fetch(&socket, Duration::from_secs(5));
                (t.elapsed(), report.map(|r| r.daemon.pid))
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for c in clients {
        let (took, pid_seen) = c.join().expect("client thread");
        assert_eq!(pid_seen.expect("status answered"), pid);
        slowest = slowest.max(took);
    }
    assert!(
        opened.elapsed() < REQUEST_TIMEOUT,
        "the idle connections must still be open while the clients ask"
    );
    assert!(
        slowest < ANSWER_WITHIN,
        "slowest status answer took {slowest:?}"
    );

    // The idle ones are closed by their deadline; nobody was turned away.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut polls = 0;
    let after = loop {
        let s = socket_stats(&bed);
        polls += 1;
        // Each poll's report counts what was delivered before it (`before` itself, the
        // clients, the non-readers whose small reply fit their socket buffer, and the
        // earlier polls), once the idle connections' deadline has passed.
        let expected = before.served + 1 + (CONCURRENT + NON_READERS) as u64 + polls - 1;
        if s.request_timeouts == before.request_timeouts + IDLE as u64 && s.served == expected {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "counters never settled: {s:?}; served {} before, {expected} expected at poll {polls}",
            before.served
        );
        // Past the reply reuse window, so the next poll's report is built afresh.
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(after.refused_busy, before.refused_busy);
    assert_eq!(after.closed_idle, before.closed_idle);
    assert_eq!(after.reply_timeouts, before.reply_timeouts);
    assert!(
        after.peak_clients > (IDLE + NON_READERS) as u64,
        "peak {} with {} connections held",
        after.peak_clients,
        IDLE + NON_READERS
    );
    assert_eq!(after.max_clients, 512);
    // Only the poll itself is held now.
    assert_eq!(after.clients, 1);
    let rss_after = vm_rss_kib(pid);
    eprintln!(
        "slowest of {CONCURRENT} status answers: {slowest:?}; daemon RSS {rss_before} -> \
         {rss_after} KiB; peak {} connections",
        after.peak_clients
    );
    assert!(
        rss_after < rss_before + RSS_GROWTH_MAX_KIB,
        "daemon RSS grew from {rss_before} to {rss_after} KiB"
    );
    drop((idle, non_readers));
}

#[test]
fn prometheus_scrape_succeeds_past_three_idle_connections() {
    let bed = GatewayBed::launch_with(
        &format!("\n[export]\nprometheus = true\nprometheus_listen = \"{PROMETHEUS_ENDPOINT}\"\n"),
        |_| {},
    );
    let addr: SocketAddr = PROMETHEUS_ENDPOINT.parse().unwrap();
    // A real Prometheus server, scraping every second with a 1 s scrape timeout.
    let dir = TempDir::new().expect("tempdir");
    let prometheus =
        PrometheusServer::start(&bed.tb.gw, dir.path(), PROMETHEUS_ENDPOINT).expect("prometheus");
    let up = "up{job=\"monitor\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom_query(&bed.tb.gw, up).as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the endpoint; log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Three clients that connect and say nothing, held open through what follows.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            bed.tb
                .gw
                .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
                .expect("idle connection")
        })
        .collect();
    let opened = unix_now();
    let t = Instant::now();
    let body = http_get(&bed.tb.gw, PROMETHEUS_ENDPOINT, "/metrics").expect("scrape");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(body.contains("\n# TYPE monitor_packets_seen_total counter\n"));

    // Prometheus' own next scrapes succeed, within its 1 s timeout, while the idle
    // connections are still open (the endpoint closes them after its 5 s read timeout).
    let scraped_at = |q: &str| -> Option<f64> {
        prom_query(&bed.tb.gw, &format!("timestamp({q})"))?
            .parse()
            .ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let at = scraped_at(up);
        if at.is_some_and(|at| at > opened + 1.0) {
            let at = at.unwrap();
            assert!(
                at < opened + 4.0,
                "first scrape after the idle connections at +{} s",
                at - opened
            );
            assert_eq!(prom_query(&bed.tb.gw, up).as_deref(), Some("1"));
            let took: f64 = prom_query(&bed.tb.gw, "scrape_duration_seconds{job=\"monitor\"}")
                .expect("scrape_duration_seconds")
                .parse()
                .unwrap();
            assert!(took < 1.0, "scrape took {took} s");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Prometheus scrape after the idle connections; last at {at:?}, opened at {opened}\n\
             prometheus log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
}

// ---------------------------------------------------------------- anomaly folding

/// Sources of the fragments: distinct, pseudo-random, in the LAN's documentation prefix.
const FRAGMENT_SOURCES: usize = 10_000;
/// A status reply stays under this (README "Scale and caps").
const MAX_STATUS_REPLY_BYTES: usize = 2 * 1024 * 1024;

/// `n` distinct addresses in 2001:db8:1::/64 with pseudo-random interface ids.
fn random_lan_sources(n: usize) -> Vec<Ipv6Addr> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if seen.insert(x) {
            let s = |i: u32| (x >> (48 - 16 * i)) as u16;
            out.push(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, s(0), s(1), s(2), s(3)));
        }
    }
    out
}

/// Sends one IPv6 later fragment (offset 1480, last) of a UDP datagram from each of
/// `sources` to the Webex node, as frames from the LAN host straight onto its link.
fn send_later_fragments(bed: &GatewayBed, sources: &[Ipv6Addr]) {
    let dst_mac = mac(&bed.tb.gw, GW_LAN_IF).expect("MAC");
    let src_mac = mac(&bed.tb.lan, LAN_HOST_IF).expect("MAC");
    let frames: Vec<Vec<u8>> = sources
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let mut ip = Ipv6::new(*src, WEBEX_NODE_V6);
            ip.ext.push(Ext::Fragment {
                offset: 185,
                more: false,
                id: i as u32 + 1,
            });
            let mut frame = xtask::frames::ethernet(&[], 0x86dd, &ip.packet(17, &[0x5a; 64]));
            frame[0..6].copy_from_slice(&dst_mac);
            frame[6..12].copy_from_slice(&src_mac);
            frame
        })
        .collect();
    bed.tb.lan.run(|| {
        let socket = PacketSocket::open(LAN_HOST_IF, dst_mac).expect("packet socket");
        for frame in &frames {
            socket.send(frame).expect("send");
        }
    });
}

/// The status reply as the socket sends it.
fn raw_status(bed: &GatewayBed) -> Vec<u8> {
    let mut s = UnixStream::connect(bed.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"status\n").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("status reply");
    reply
}

#[test]
fn fragments_from_ten_thousand_sources_fold_to_the_cap() {
    let bed = GatewayBed::launch();
    let sources = random_lan_sources(FRAGMENT_SOURCES);
    send_later_fragments(&bed, &sources);
    let n = FRAGMENT_SOURCES as u64;
    // Each source is one port-less flow on lan0 ingress with one fragment, each a
    // distinct `mtu_fragmentation` finding.
    let s = bed.wait_status("every fragment counted and analysed", |s| {
        s["counters"]["fragments_unmatched"] == n && s["scale"]["anomalies"]["findings"] == n
    });
    let folding = &s["scale"]["anomalies"];
    assert_eq!(folding["shown"], SHOWN_PER_ID as u64, "{folding}");
    assert_eq!(folding["folded"], n - SHOWN_PER_ID as u64, "{folding}");
    // One peer prefix: one aggregate.
    assert_eq!(folding["aggregates"], 1, "{folding}");
    assert_eq!(folding["cap_per_id"], CAP_PER_ID as u64);

    let anomalies = s["anomalies"].as_array().expect("anomalies");
    let mtu: Vec<&Value> = anomalies
        .iter()
        .filter(|a| a["id"] == "mtu_fragmentation" && a["cleared_unix_s"].is_null())
        .collect();
    assert_eq!(mtu.len(), SHOWN_PER_ID + 1, "{anomalies:#?}");
    let aggregate = mtu
        .iter()
        .find(|a| a["subject"] == "folded: 2001:db8:ff::/48")
        .expect("the aggregate");
    let evidence = |name: &str| {
        aggregate["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    assert_eq!(
        evidence("folded_findings").as_deref(),
        Some((n - SHOWN_PER_ID as u64).to_string().as_str())
    );
    // Every anomaly shown is about one of the sources sent.
    let sent: HashSet<String> = sources.iter().map(|a| a.to_string()).collect();
    for a in mtu.iter().filter(|a| *a != aggregate) {
        let subject = a["subject"].as_str().unwrap();
        let src = subject
            .split_whitespace()
            .nth(4)
            .expect("source in the subject");
        assert!(sent.contains(src), "{subject}");
    }
    assert!(
        anomalies.len() <= 2 * CAP_PER_ID,
        "{} anomalies",
        anomalies.len()
    );
    let reply = raw_status(&bed);
    eprintln!("status reply with {n} flows: {} bytes", reply.len());
    assert!(
        reply.len() < MAX_STATUS_REPLY_BYTES,
        "status reply of {} bytes",
        reply.len()
    );
    assert_eq!(s["flows_total"], n, "one flow per source");
}

// ---------------------------------------------------------------- flow flood

/// The main flow table in the flood test: the flood turns it over every few ms.
const FLOOD_TABLE: u32 = 4096;
/// The call: RTP at 50 packets a second for 5 s.
const CALL_PACKETS: u32 = 250;
/// The flood stops after this many frames or this long, whichever comes first.
const FLOOD_MAX_FRAMES: u64 = 1_000_000;
const FLOOD_MAX_TIME: Duration = Duration::from_secs(3);

/// Sends new flows from the WAN host to the gateway as fast as one packet socket can:
/// UDP from 203.0.113.1-250 port 443 (a Webex address on a port without a rule: class
/// `other_webex`) to the gateway's WAN address, each frame a new destination port. The
/// IPv4 header checksum is wrong on purpose: XDP counts the flow, then the gateway's IP
/// layer drops the frame before conntrack, so the flood loads the flow table only.
/// Returns the frames sent and the time taken.
fn flood(bed: &GatewayBed) -> (u64, Duration) {
    let dst_mac = mac(&bed.tb.gw, GW_WAN_IF).expect("MAC");
    let src_mac = mac(&bed.tb.wan, WAN_HOST_IF).expect("MAC");
    // One template per source address, with its header checksum broken.
    let templates: Vec<Vec<u8>> = (1..=250u8)
        .map(|host| {
            let ip = Ipv4::new(Ipv4Addr::new(203, 0, 113, host), GW_WAN_V4);
            let mut f = xtask::frames::v4(&ip, &L4::udp(443, 1024, 18));
            f[0..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&src_mac);
            f[24] ^= 0xff;
            f
        })
        .collect();
    bed.tb.wan.run(|| {
        let socket = PacketSocket::open(WAN_HOST_IF, dst_mac).expect("packet socket");
        let started = Instant::now();
        let mut sent = 0u64;
        let mut frame = templates[0].clone();
        while sent < FLOOD_MAX_FRAMES && started.elapsed() < FLOOD_MAX_TIME {
            for t in &templates {
                frame.copy_from_slice(t);
                let port = 1024 + (sent / templates.len() as u64 % 64_000) as u16;
                frame[36..38].copy_from_slice(&port.to_be_bytes());
                socket.send(&frame).expect("flood frame");
                sent += 1;
            }
        }
        (sent, started.elapsed())
    })
}

fn flow_packets(s: &Value, interface: &str, direction: &str) -> Option<u64> {
    s["flows"].as_array()?.iter().find_map(|f| {
        (f["interface"] == interface
            && f["direction"] == direction
            && f["dst_addr"] == WEBEX_NODE_V4.to_string()
            && f["dst_port"] == 5004)
            .then(|| f["packets"].as_u64())?
    })
}

#[test]
fn a_call_keeps_exact_counts_through_a_flow_flood() {
    let tb = Testbed::new().expect("testbed");
    let mut bed = GatewayBed {
        daemon: None,
        tb,
        pin: PinDir::new(),
        dir: TempDir::new().expect("tempdir"),
    };
    let config = xtask::config::gateway_config(bed.pin.path(), &bed.socket()).replace(
        "[daemon]\n",
        &format!("[daemon]\nflow_table_size = {FLOOD_TABLE}\n"),
    );
    std::fs::write(bed.config(), config).expect("config");
    bed.start();
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let sink = bed.tb.wan.run(|| udp_sink(node)).expect("sink");

    // The call: RTP from the LAN host, 50 packets a second, on its own thread.
    let call_ns = bed.tb.lan.path().to_path_buf();
    let call = std::thread::spawn(move || {
        let ns = std::fs::File::open(call_ns).expect("netns");
        // SAFETY: setns on this thread only, with a namespace fd we hold.
        assert_eq!(
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) },
            0
        );
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 52000)).unwrap();
        let mut rtp = RtpStream::pcmu(0x5ca1_e001);
        let start = Instant::now();
        for i in 0..CALL_PACKETS {
            let due = start + Duration::from_millis(20) * i;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            socket.send_to(&rtp.next_packet(172), node).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let (sent, took) = flood(&bed);
    call.join().expect("call thread");
    eprintln!(
        "flood: {sent} new flows in {took:?} ({:.0}/s) into a {FLOOD_TABLE}-flow table",
        sent as f64 / took.as_secs_f64()
    );
    assert_eq!(
        sink.wait_for(CALL_PACKETS as u64, Duration::from_secs(10)),
        CALL_PACKETS as u64,
        "the call's packets through the NAT"
    );

    let n = CALL_PACKETS as u64;
    let s = bed.wait_status("the call counted on both sides", |s| {
        flow_packets(s, GW_LAN_IF, "ingress") == Some(n)
            && flow_packets(s, GW_WAN_IF, "egress") == Some(n)
    });
    // Exact: every packet of the call on its two flows, its two streams never evicted.
    let media = &s["media"];
    assert_eq!(media["packets"]["rtp"], 2 * n, "{media:#}");
    assert_eq!(media["streams_created"], 2, "{media:#}");
    assert_eq!(media["streams_evicted"], 0, "{media:#}");
    let tables = &s["scale"]["flow_tables"];
    assert_eq!(tables["media"]["entries"], 2, "{tables:#}");
    assert_eq!(tables["media"]["evicted"], 0, "{tables:#}");
    assert_eq!(tables["media"]["max_entries"], 1024, "{tables:#}");
    // The flood turned the main table over many times, and says so.
    let other = &tables["other"];
    assert_eq!(other["max_entries"], FLOOD_TABLE as u64);
    let created = other["created"].as_u64().unwrap();
    assert!(created >= sent, "{other:#}: {sent} flood frames");
    assert_eq!(
        other["evicted"].as_u64().unwrap(),
        created - other["entries"].as_u64().unwrap(),
        "{other:#}"
    );
    assert!(other["evicted"].as_u64().unwrap() >= sent - FLOOD_TABLE as u64);
}
