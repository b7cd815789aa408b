//! Export from the real daemon on the namespace testbed: known traffic goes LAN -> Webex
//! through the NAT, and what leaves the daemon is checked with exact values where users
//! read it — a real Prometheus server (Debian `prometheus`) scraping the endpoint, and the
//! OTLP receiver (gRPC and HTTP/protobuf) — plus a collector that is down or a black hole
//! while polling goes on. Everything listens on 127.0.0.1 inside the gateway namespace.

mod otlp_receiver;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use otlp_receiver::{Protocol, Received, Receiver, int_attr, str_attr};
use serde_json::Value as Json;
use xtask::prometheus::{PrometheusServer, http_get};
use xtask::{
    Daemon, Netns, PinDir, TempDir, Testbed,
    testbed::{GW_LAN_IF, GW_WAN_IF, LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::{UdpSink, send_udp, udp_sink},
};

const MEDIA_PORT: u16 = 5004;
const SRC_PORT: u16 = 52000;
const PAYLOAD: usize = 160;
/// IP bytes of one datagram: IPv4 header, UDP header, payload.
const IP_BYTES: u64 = 20 + 8 + PAYLOAD as u64;
/// Datagrams per test: the exact value every exported series must show.
const N: u64 = 120;
/// Ports inside the gateway namespace (fresh per test, so fixed ports cannot clash).
const PROMETHEUS_ENDPOINT: &str = "127.0.0.1:9464";
const OTLP_PORT: u16 = 4317;
/// Bound on every wait in this file.
const WAIT: Duration = Duration::from_secs(30);
/// The daemon's poll interval (the default): a snapshot older than this plus slack means
/// polling fell behind.
const POLL_MS: u64 = 1000;

/// Testbed + daemon with an `[export]` section. Field order is drop order.
struct Bed {
    daemon: Option<Daemon>,
    tb: Testbed,
    pin: PinDir,
    dir: TempDir,
}

impl Bed {
    /// The testbed alone: start listeners in it, then [`Bed::start`] the daemon.
    fn testbed() -> Bed {
        Bed {
            daemon: None,
            tb: Testbed::new().expect("testbed"),
            pin: PinDir::new(),
            dir: TempDir::new().expect("tempdir"),
        }
    }

    /// Starts the daemon on the gateway with `export_toml` as its `[export]` section.
    fn start(mut self, export_toml: &str) -> Bed {
        let config = self.dir.join("monitor.toml");
        let socket = self.dir.join("monitor.sock");
        let text = format!(
            "{}\n[export]\n{export_toml}\n",
            xtask::config::gateway_config(self.pin.path(), &socket)
        );
        std::fs::write(&config, text).expect("config");
        self.daemon = Some(
            Daemon::start(
                Path::new(env!("CARGO_BIN_EXE_monitor")),
                &self.tb.gw,
                &config,
                &socket,
            )
            .expect("daemon"),
        );
        self
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon started")
    }

    fn status(&self) -> Json {
        self.daemon().status_json().expect("status --json")
    }

    fn sink(&self) -> UdpSink {
        let addr = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
        self.tb.wan.run(|| udp_sink(addr)).expect("sink")
    }

    /// Sends `count` datagrams LAN host -> Webex node through the NAT, waits until the
    /// node has them all and the daemon's status counts them on both sides.
    fn send(&self, sink: &UdpSink, count: u64) {
        let before = sink.received();
        let from = SocketAddr::new(IpAddr::V4(LAN_HOST_V4), SRC_PORT);
        let to = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
        self.tb
            .lan
            .run(|| send_udp(from, to, count as u32, PAYLOAD, Duration::from_millis(1)))
            .expect("send");
        assert_eq!(sink.wait_for(before + count, WAIT), before + count);
        self.wait_status("both sides of the NAT counted", |s| {
            media_flow_packets(s, GW_LAN_IF, "ingress") == Some(before + count)
                && media_flow_packets(s, GW_WAN_IF, "egress") == Some(before + count)
        });
    }

    /// Polls status (bounded by [`WAIT`]) until `pred` holds; returns that status.
    fn wait_status(&self, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; last status:\n{}\ndaemon log:\n{}",
                serde_json::to_string_pretty(&s).unwrap(),
                self.daemon().log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn vm_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.daemon().pid()))
            .expect("daemon /proc status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// Packets of the one media flow to the Webex node on `interface`/`direction`.
fn media_flow_packets(status: &Json, interface: &str, direction: &str) -> Option<u64> {
    status["flows"].as_array()?.iter().find_map(|f| {
        (f["interface"] == interface
            && f["direction"] == direction
            && f["class"] == "media"
            && f["peer_addr"] == WEBEX_NODE_V4.to_string())
        .then(|| f["packets"].as_u64())?
    })
}

// ---------------------------------------------------------------- Prometheus

/// Prometheus instant query: the value of the single resulting series, if exactly one.
fn prom_query(ns: &Netns, query: &str) -> Option<String> {
    let result = xtask::prometheus::query(ns, query).ok()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str().map(str::to_string),
        _ => None,
    }
}

#[test]
fn prometheus_scrapes_exact_flow_counts() {
    let bed = Bed::testbed().start(&format!(
        "prometheus = true\nprometheus_listen = \"{PROMETHEUS_ENDPOINT}\""
    ));
    assert_eq!(
        bed.status()["export"]["prometheus_listen"],
        PROMETHEUS_ENDPOINT
    );
    let dir = TempDir::new().expect("tempdir");
    let prometheus =
        PrometheusServer::start(&bed.tb.gw, dir.path(), PROMETHEUS_ENDPOINT).expect("prometheus");
    let sink = bed.sink();
    bed.send(&sink, N);

    let series = |iface: &str, dir: &str, metric: &str| {
        format!(
            "{metric}{{job=\"monitor\",monitor_class=\"media\",network_interface_name=\"{iface}\",\
             network_io_direction=\"{dir}\",network_transport=\"udp\",network_type=\"ipv4\"}}"
        )
    };
    let expected = [
        (
            series(GW_LAN_IF, "receive", "monitor_flow_packets_total"),
            N,
        ),
        (
            series(GW_WAN_IF, "transmit", "monitor_flow_packets_total"),
            N,
        ),
        (
            series(GW_LAN_IF, "receive", "monitor_flow_bytes_total"),
            N * IP_BYTES,
        ),
        (
            series(GW_WAN_IF, "transmit", "monitor_flow_bytes_total"),
            N * IP_BYTES,
        ),
        (series(GW_LAN_IF, "receive", "monitor_flow_active"), 1),
        ("up{job=\"monitor\"}".to_string(), 1),
        (
            "target_info{job=\"monitor\",service_name=\"monitor\"}".to_string(),
            1,
        ),
        // One per-call series per media flow: the LAN side, before NAT.
        (
            format!(
                "monitor_call_packets_total{{network_interface_name=\"{GW_LAN_IF}\",\
                 network_local_address=\"{LAN_HOST_V4}\",network_local_port=\"{SRC_PORT}\",\
                 network_peer_address=\"{WEBEX_NODE_V4}\",network_peer_port=\"{MEDIA_PORT}\"}}"
            ),
            N,
        ),
    ];
    let deadline = Instant::now() + WAIT;
    for (query, value) in &expected {
        let want = value.to_string();
        loop {
            let got = prom_query(&bed.tb.gw, query);
            if got.as_deref() == Some(want.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus query {query}: got {got:?}, want {want}\nscrape:\n{}\nprometheus log:\n{}",
                http_get(&bed.tb.gw, PROMETHEUS_ENDPOINT, "/metrics").unwrap_or_default(),
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    // More traffic: the next scrapes carry the new totals.
    bed.send(&sink, N);
    let query = &expected[0].0;
    let want = (2 * N).to_string();
    let deadline = Instant::now() + WAIT;
    while prom_query(&bed.tb.gw, query).as_deref() != Some(want.as_str()) {
        assert!(Instant::now() < deadline, "{query} never reached {want}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------- OTLP

fn otlp_toml(protocol: &str, timeout_ms: u64) -> String {
    format!(
        "otlp_endpoint = \"http://127.0.0.1:{OTLP_PORT}\"\notlp_protocol = \"{protocol}\"\n\
         interval_ms = 1000\ntimeout_ms = {timeout_ms}\nresource_attributes = {{ \"site\" = \"testbed\" }}"
    )
}

fn bind_otlp(ns: &Netns) -> TcpListener {
    ns.run(|| TcpListener::bind(("127.0.0.1", OTLP_PORT)).expect("OTLP port in the gw netns"))
}

/// Points of counter `name` in the latest metrics export: (attributes, value).
fn latest_sum(r: &Received, name: &str) -> Vec<(Vec<KeyValue>, u64)> {
    let Some(last) = r.metrics.last() else {
        return Vec::new();
    };
    last.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .flat_map(|m| match m.data.as_ref() {
            Some(Data::Sum(s)) => s.data_points.clone(),
            _ => Vec::new(),
        })
        .map(|p| {
            let v = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as u64,
                Some(number_data_point::Value::AsDouble(d)) => d as u64,
                None => 0,
            };
            (p.attributes, v)
        })
        .collect()
}

/// The aggregate media value of counter `name` on `iface`/`dir` in the latest export.
fn media_aggregate(r: &Received, name: &str, iface: &str, dir: &str) -> Option<u64> {
    latest_sum(r, name).into_iter().find_map(|(a, v)| {
        (str_attr(&a, "monitor.class") == Some("media")
            && str_attr(&a, "network.interface.name") == Some(iface)
            && str_attr(&a, "network.io.direction") == Some(dir)
            && str_attr(&a, "network.transport") == Some("udp")
            && str_attr(&a, "network.type") == Some("ipv4"))
        .then_some(v)
    })
}

/// Waits until the latest export shows `packets` media packets on both sides.
fn wait_export(receiver: &Receiver, bed: &Bed, packets: u64) {
    let ok = receiver.wait_for(WAIT, |r| {
        media_aggregate(r, "monitor.flow.packets", GW_LAN_IF, "receive") == Some(packets)
            && media_aggregate(r, "monitor.flow.packets", GW_WAN_IF, "transmit") == Some(packets)
    });
    assert!(
        ok,
        "no export with {packets} media packets on both sides; status:\n{}\nlog:\n{}",
        serde_json::to_string_pretty(&bed.status()["export"]).unwrap(),
        bed.daemon().log()
    );
}

fn otlp_exact_values(protocol: Protocol, name: &str) {
    // The collector is up before the daemon, on 127.0.0.1 inside the gateway namespace.
    let bed = Bed::testbed();
    let receiver = Receiver::start(bind_otlp(&bed.tb.gw), protocol, false);
    let bed = bed.start(&otlp_toml(name, 800));
    let sink = bed.sink();
    bed.send(&sink, N);
    wait_export(&receiver, &bed, N);

    let r = receiver.received.lock().unwrap();
    for (iface, dir) in [(GW_LAN_IF, "receive"), (GW_WAN_IF, "transmit")] {
        assert_eq!(
            media_aggregate(&r, "monitor.flow.bytes", iface, dir),
            Some(N * IP_BYTES),
            "{iface} {dir}"
        );
    }
    let resource = r.metrics.last().unwrap().resource_metrics[0]
        .resource
        .clone()
        .unwrap()
        .attributes;
    assert_eq!(str_attr(&resource, "service.name"), Some("monitor"));
    assert_eq!(str_attr(&resource, "site"), Some("testbed"));

    // Per-call series: the LAN side of the call, as the phone sees it.
    let calls = latest_sum(&r, "monitor.call.packets");
    let lan_call = calls
        .iter()
        .find(|(a, _)| str_attr(a, "network.interface.name") == Some(GW_LAN_IF))
        .unwrap_or_else(|| panic!("no LAN call series in {calls:?}"));
    assert_eq!(lan_call.1, N);
    let lan_host = LAN_HOST_V4.to_string();
    let node = WEBEX_NODE_V4.to_string();
    assert_eq!(
        str_attr(&lan_call.0, "network.local.address"),
        Some(lan_host.as_str())
    );
    assert_eq!(
        int_attr(&lan_call.0, "network.local.port"),
        Some(SRC_PORT.into())
    );
    assert_eq!(
        str_attr(&lan_call.0, "network.peer.address"),
        Some(node.as_str())
    );
    assert_eq!(
        int_attr(&lan_call.0, "network.peer.port"),
        Some(MEDIA_PORT.into())
    );
    assert_eq!(calls.len(), 2, "one per side of the NAT: {calls:?}");
    drop(r);

    let export = bed.status()["export"].clone();
    assert_eq!(export["otlp_protocol"], name);
    assert_eq!(export["dropped"], 0, "{export}");
    assert!(export["exported"].as_u64().unwrap() >= 1, "{export}");
}

#[test]
fn otlp_grpc_exports_exact_flow_counts() {
    otlp_exact_values(Protocol::Grpc, "grpc");
}

#[test]
fn otlp_http_exports_exact_flow_counts() {
    otlp_exact_values(Protocol::Http, "http/protobuf");
}

/// While the collector is unusable: `intervals` more exports are dropped, one per
/// interval (each attempt ends on time instead of hanging), every status shows a fresh
/// snapshot, traffic sent meanwhile is counted, and the daemon's memory stays put.
/// Returns the number dropped so far.
fn outage_keeps_polling(bed: &Bed, sink: &UdpSink, intervals: u64) -> u64 {
    let dropped = |s: &Json| s["export"]["dropped"].as_u64().unwrap();
    let first = dropped(&bed.wait_status("first drops", |s| dropped(s) >= 2));
    let started = Instant::now();
    let rss_before = bed.vm_rss_kib();
    let deadline = Instant::now() + WAIT;
    let mut sent = false;
    loop {
        let s = bed.status();
        let age = s["daemon"]["snapshot_age_ms"].as_u64().unwrap();
        assert!(
            // Slack for a loaded test machine; a stalled poll grows without bound.
            age <= POLL_MS + 1000,
            "polling fell behind while the collector was unusable: snapshot {age} ms old"
        );
        assert_eq!(s["export"]["exported"], 0);
        assert!(s["export"]["last_error"].is_string(), "{}", s["export"]);
        if !sent {
            // Polling goes on: traffic during the outage is counted.
            bed.send(sink, N);
            sent = true;
        }
        if dropped(&s) >= first + intervals {
            break;
        }
        assert!(Instant::now() < deadline, "exports stopped being attempted");
        std::thread::sleep(Duration::from_millis(300));
    }
    // One interval (1 s) per drop, plus slack for the status polling above and a loaded
    // machine; a hung export would stop the drops altogether.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(intervals * 1000 + 4000),
        "{intervals} drops took {elapsed:?}: exports did not keep their schedule"
    );
    let rss_after = bed.vm_rss_kib();
    assert!(
        rss_after < rss_before + 4 * 1024,
        "daemon memory grew while the collector was unusable: {rss_before} -> {rss_after} KiB"
    );
    dropped(&bed.status())
}

fn collector_down_then_up(protocol: Protocol, name: &str) {
    // Nobody listens on the OTLP port: every export is refused.
    let bed = Bed::testbed().start(&otlp_toml(name, 500));
    let sink = bed.sink();
    let dropped = outage_keeps_polling(&bed, &sink, 5);

    // The collector comes up on that port: the next export arrives, with the totals.
    let receiver = Receiver::start(bind_otlp(&bed.tb.gw), protocol, false);
    wait_export(&receiver, &bed, N);
    let s = bed.wait_status("export recovered", |s| {
        s["export"]["exported"].as_u64() >= Some(1) && s["export"]["last_error"].is_null()
    });
    assert!(s["export"]["dropped"].as_u64().unwrap() >= dropped);
}

#[test]
fn otlp_grpc_collector_down_then_up() {
    collector_down_then_up(Protocol::Grpc, "grpc");
}

#[test]
fn otlp_http_collector_down_then_up() {
    collector_down_then_up(Protocol::Http, "http/protobuf");
}

fn black_hole_then_answers(protocol: Protocol, name: &str) {
    // A collector that accepts connections and never answers.
    let bed = Bed::testbed();
    let receiver = Receiver::start(bind_otlp(&bed.tb.gw), protocol, true);
    let bed = bed.start(&otlp_toml(name, 500));
    let sink = bed.sink();
    outage_keeps_polling(&bed, &sink, 3);
    assert!(receiver.received.lock().unwrap().metrics.is_empty());

    receiver.answer();
    wait_export(&receiver, &bed, N);
    bed.wait_status("export recovered", |s| {
        s["export"]["exported"].as_u64() >= Some(1) && s["export"]["last_error"].is_null()
    });
}

#[test]
fn otlp_grpc_black_hole_then_answers() {
    black_hole_then_answers(Protocol::Grpc, "grpc");
}

#[test]
fn otlp_http_black_hole_then_answers() {
    black_hole_then_answers(Protocol::Http, "http/protobuf");
}
