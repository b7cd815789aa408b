//! The Grafana dashboard in deploy/grafana/: valid JSON whose every panel query, run
//! against a real Prometheus scraping the testbed daemon during a real call (RTP from
//! the LAN host to the "Webex" media node through the NAT), returns data; every metric
//! it names is one the monitor exports.
//!
//! Until the "calls" and "blind" branches are merged, the queries of their metrics

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use monitor::export::{call_series, prometheus::prom_name, series};
use serde_json::Value;
use xtask::bed::GatewayBed;
use xtask::prometheus::{PrometheusServer, query};
use xtask::rtp::RtpStream;
use xtask::testbed::{LAN_HOST_V4, WEBEX_NODE_V4};
use xtask::traffic::udp_responder;

const SITE: &str = "testbed-site";
const ENDPOINT: &str = "127.0.0.1:9464";
/// The call: 20 ms packets for 25 s, longer than every wait below.
const CALL_PACKETS: u32 = 1250;
const MEDIA_PORT: u16 = 5004;

/// Metrics with data only while a call (Webex media) flows.
const NEEDS_CALL: &[&str] = &[
    "monitor_call_",
    "monitor_calls_active",
    "monitor_dscp_packets_total",
];

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// A STUN binding request whose transaction ID ends in `n`.
fn stun_request(n: u32) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00];
    m.extend_from_slice(&STUN_MAGIC);
    m.extend_from_slice(&[0x7a; 8]);
    m.extend_from_slice(&n.to_be_bytes());
    m
}

fn dashboard() -> Value {
    let path = xtask::workspace_dir().join("deploy/grafana/monitor-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every (panel title, query) of the dashboard.
fn queries(d: &Value) -> Vec<(String, String)> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("panel {title} has no targets"))
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// The metric names a query uses: identifiers right before a `{` (every dashboard query
/// selects by site, so every metric has one; label names never do).
fn metrics_of(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if c == '{' && !word.is_empty() {
            out.insert(word.clone());
        }
        word.clear();
    }
    out
}

fn needs_call(expr: &str) -> bool {
    metrics_of(expr)
        .iter()
        .any(|m| NEEDS_CALL.iter().any(|p| m.starts_with(p)))
}

/// What Grafana substitutes before the query reaches Prometheus.
fn instantiate(expr: &str) -> String {
    expr.replace("$site", SITE)
        .replace("$__rate_interval", "10s")
}

#[test]
fn the_dashboard_is_valid_and_names_only_exported_metrics() {
    let d = dashboard();
    assert_eq!(d["uid"], "webex-edge-monitor");
    let site = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "site")
        .expect("a site variable");
    assert_eq!(site["multi"], true);
    assert_eq!(site["includeAll"], true);
    let mut exported: BTreeSet<String> = series::ALL.iter().map(|d| prom_name(d)).collect();
    exported.extend(call_series::GAUGES.iter().map(|d| prom_name(d)));
    for (_, h) in call_series::HISTOGRAMS {
        let base = prom_name(h);
        exported.extend(["bucket", "sum", "count"].map(|s| format!("{base}_{s}")));
    }
    exported.insert("up".into());
    exported.insert("target_info".into());
    let qs = queries(&d);
    assert!(qs.len() >= 25, "{}", qs.len());
    let mut titles = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                titles.insert(p["title"].as_str().unwrap()),
                "{}",
                p["title"]
            );
        }
    }
    for (title, expr) in &qs {
        assert!(
            expr.contains("site_name=~\"$site\""),
            "{title}: not per site"
        );
        for m in metrics_of(expr) {
            assert!(exported.contains(&m), "{title}: {m} is not exported");
        }
    }
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let bed = GatewayBed::launch_with(
        &format!(
            "\n[export]\nprometheus = true\nprometheus_listen = \"{ENDPOINT}\"\n\
             site_name = \"{SITE}\"\n"
        ),
        |_| {},
    );
    let prometheus =
        PrometheusServer::start(&bed.tb.gw, bed.dir.path(), ENDPOINT).expect("prometheus");
    // The media node: answers STUN binding requests (ICE consent checks, which give the
    // call's RTT) and echoes the RTP, so the call has both directions.
    let _node = bed
        .tb
        .wan
        .run(|| {
            udp_responder(
                SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT),
                2 * CALL_PACKETS,
                Duration::from_secs(60),
                |req| {
                    if req.len() >= 20 && req[0..2] == [0x00, 0x01] && req[4..8] == STUN_MAGIC {
                        let mut resp = req[..20].to_vec();
                        resp[0..2].copy_from_slice(&[0x01, 0x01]);
                        resp[2..4].copy_from_slice(&[0, 0]);
                        resp
                    } else {
                        req.to_vec()
                    }
                },
            )
        })
        .expect("media node");
    let qs = queries(&dashboard());
    std::thread::scope(|s| {
        let call = s.spawn(|| {
            bed.tb.lan.run(|| {
                let socket =
                    UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), 41000)).unwrap();
                let to = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), MEDIA_PORT);
                let mut rtp = RtpStream::pcmu(0x5eed_0001);
                for i in 0..CALL_PACKETS {
                    socket.send_to(&rtp.next_packet(172), to).unwrap();
                    if i % 50 == 25 {
                        socket.send_to(&stun_request(i), to).unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        // Every query that can have data now must get it while the call runs.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut pending: Vec<&(String, String)> = qs.iter().collect();
        let mut errors = Vec::new();
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(
                |(title, expr)| match query(&bed.tb.gw, &instantiate(expr)) {
                    Ok(result) => result.is_empty(),
                    // Still starting.
                    Err(e) if e == xtask::prometheus::NOT_ANSWERING => true,
                    Err(e) => {
                        errors.push(format!("{title}: {expr}: {e}"));
                        false
                    }
                },
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(errors.is_empty(), "query errors:\n{}", errors.join("\n"));
        // The report the lead reads: each query, whether it needs a call, and what it got.
        println!("panel | needs call | data");
        for (title, expr) in &qs {
            let data = query(&bed.tb.gw, &instantiate(expr))
                .map(|r| !r.is_empty())
                .unwrap_or(false);
            println!(
                "{title} | {} | {}",
                if needs_call(expr) { "yes" } else { "no" },
                if data { "data" } else { "NO DATA" }
            );
        }
        assert!(
            pending.is_empty(),
            "panels without data during the call:\n{}\nscrape:\n{}\nprometheus log:\n{}",
            pending
                .iter()
                .map(|(t, e)| format!("{t}: {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
            xtask::prometheus::http_get(&bed.tb.gw, ENDPOINT, "/metrics").unwrap_or_default(),
            prometheus.log()
        );
        call.join().unwrap();
    });
}

#[test]
fn metric_names_are_found_in_queries() {
    assert_eq!(
        metrics_of(
            "sum by (site_name, monitor_class) (rate(monitor_flow_bytes_total{site_name=~\"$site\",monitor_class=\"x\"}[5m])) / up{job=\"monitor\"}"
        ),
        ["monitor_flow_bytes_total", "up"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(needs_call("rate(monitor_call_packets_total{a=\"b\"}[1m])"));
    assert!(!needs_call(
        "monitor_map_entries{} / monitor_map_capacity{}"
    ));
}
