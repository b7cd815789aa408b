//! Call metrics from the real daemon on the NAT testbed, where users read them: the
//! Prometheus endpoint (checked by `promtool check metrics`) and OTLP (gRPC receiver).
//! A call of 300 packets with every tenth lost: while it runs, the per-call gauges carry
//! its ID and window figures and one call is active; once it ends, both exporters carry
//! the daemon's window histograms with exactly the daemon's counts, sums and buckets,
//! and the call's record arrives as exactly one `monitor.call.record` log record with
//! the exact totals.

mod otlp_receiver;

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr, TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use otlp_receiver::{Protocol, Received, Receiver, int_attr, str_attr};
use serde_json::Value as Json;
use xtask::{
    bed::GatewayBed,
    rtp::RtpStream,
    testbed::{LAN_HOST_V4, WEBEX_NODE_V4},
    traffic::udp_sink,
};

const PORT: u16 = 45000;
const PROMETHEUS_ENDPOINT: &str = "127.0.0.1:9464";
const OTLP_PORT: u16 = 4317;
const WAIT: Duration = Duration::from_secs(30);

fn config() -> String {
    format!(
        "\n[quality]\ncall_idle_s = 3\nwindow_s = 2\nmin_window_packets = 50\n\n[export]\n\
         site_name = \"{SITE}\"\nprometheus = true\nprometheus_listen = \"{PROMETHEUS_ENDPOINT}\"\n\
         otlp_endpoint = \"http://127.0.0.1:{OTLP_PORT}\"\notlp_protocol = \"grpc\"\n\
         interval_ms = 1000\ntimeout_ms = 800\n"
    )
}

const SITE: &str = "calls-site";

fn scrape(bed: &GatewayBed) -> String {
    let body = xtask::prometheus::http_get(&bed.tb.gw, PROMETHEUS_ENDPOINT, "/metrics")
        .expect("the Prometheus endpoint answers");
    // Every series carries the site first (README "Fleets"); the assertions below name
    // the call's own labels.
    let site = format!("site_name=\"{SITE}\"");
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        assert!(line.contains(&site), "no site label: {line}");
    }
    body.replace(&format!("{{{site},"), "{")
        .replace(&format!("{{{site}}}"), "")
}

/// The value of the sample line `series` (name and labels as written) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The gauge points of `name` in the latest metrics export.
fn gauge(r: &Received, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
    let Some(last) = r.metrics.last() else {
        return Vec::new();
    };
    last.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .flat_map(|m| match m.data.as_ref() {
            Some(Data::Gauge(g)) => g.data_points.clone(),
            _ => Vec::new(),
        })
        .map(|p| {
            let v = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => f64::NAN,
            };
            (p.attributes, v)
        })
        .collect()
}

/// (class, interface, count, sum, bucket counts) of histogram `name` in the latest export.
type Hist = (String, String, u64, f64, Vec<u64>);

fn histograms(r: &Received, name: &str) -> Vec<Hist> {
    let Some(last) = r.metrics.last() else {
        return Vec::new();
    };
    let mut out: Vec<Hist> = last
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .flat_map(|m| match m.data.as_ref() {
            Some(Data::Histogram(h)) => h.data_points.clone(),
            _ => Vec::new(),
        })
        .map(|p| {
            (
                str_attr(&p.attributes, "monitor.class")
                    .unwrap_or("")
                    .to_string(),
                str_attr(&p.attributes, "network.interface.name")
                    .unwrap_or("")
                    .to_string(),
                p.count,
                p.sum.unwrap_or(f64::NAN),
                p.bucket_counts.clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The daemon's own histograms of `measure`, in the same shape.
fn status_histograms(status: &Json, measure: &str) -> Vec<Hist> {
    let mut out: Vec<Hist> = status["call_histograms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["measure"] == measure)
        .map(|h| {
            (
                h["class"].as_str().unwrap().to_string(),
                h["interface"].as_str().unwrap().to_string(),
                h["count"].as_u64().unwrap(),
                h["sum"].as_f64().unwrap(),
                h["counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn wait_status(bed: &GatewayBed, what: &str, done: impl Fn(&Json) -> bool) -> Json {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = bed.status();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#}\n{}",
            s["calls"],
            bed.daemon().log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn call_gauges_histograms_and_records_reach_prometheus_and_otlp_exactly() {
    let mut listener = None;
    let bed = GatewayBed::launch_with(&config(), |tb| {
        listener = Some(tb.gw.run(|| {
            TcpListener::bind(("127.0.0.1", OTLP_PORT)).expect("OTLP port in the gw netns")
        }));
    });
    let receiver = Receiver::start(listener.unwrap(), Protocol::Grpc, false);
    let node = SocketAddr::new(IpAddr::V4(WEBEX_NODE_V4), 5004);
    let _sink = bed.tb.wan.run(|| udp_sink(node)).expect("sink");

    // The call, sent in the background: 300 packets (6 s), every tenth lost.
    let id = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            bed.tb.lan.run(|| {
                let socket =
                    UdpSocket::bind(SocketAddr::new(IpAddr::V4(LAN_HOST_V4), PORT)).unwrap();
                let mut rtp = RtpStream::pcmu(0xe000_0001);
                let start = Instant::now();
                for i in 0..300u32 {
                    if i % 10 == 5 {
                        rtp.skip(1);
                    } else {
                        socket.send_to(&rtp.next_packet(172), node).unwrap();
                    }
                    let next = start + Duration::from_millis(20 * u64::from(i + 1));
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        });

        // While it runs: a sufficient window, in both exporters under the call's ID.
        let status = wait_status(&bed, "a call with a sufficient window", |s| {
            s["calls"][0]["window"]["sufficient"] == true
        });
        let id = status["calls"][0]["id"].as_str().unwrap().to_string();
        let id_label = format!("monitor_call_id=\"{id}\"");
        let deadline = Instant::now() + WAIT;
        loop {
            let text = scrape(&bed);
            let health = text
                .lines()
                .find(|l| l.starts_with("monitor_call_health{") && l.contains(&id_label));
            let loss = text
                .lines()
                .find(|l| l.starts_with("monitor_call_loss_ratio{") && l.contains(&id_label));
            if let (Some(h), Some(l)) = (health, loss) {
                assert!(h.ends_with(" 1") || h.ends_with(" 2"), "{h}");
                let ratio: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
                assert!((0.08..=0.12).contains(&ratio), "{l}");
                assert_eq!(
                    sample(&text, "monitor_calls_active{monitor_call_kind=\"audio\"}"),
                    Some(1.0),
                    "{text}"
                );
                assert!(
                    l.contains("network_local_address=\"192.0.2.10\"")
                        && l.contains("network_peer_address=\"203.0.113.10\"")
                        && l.contains("network_peer_port=\"5004\""),
                    "{l}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "no call series in:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            receiver.wait_for(WAIT, |r| {
                gauge(r, "monitor.call.health")
                    .iter()
                    .any(|(a, v)| str_attr(a, "monitor.call.id") == Some(id.as_str()) && *v >= 1.0)
                    && gauge(r, "monitor.calls.active").iter().any(|(a, v)| {
                        str_attr(a, "monitor.call.kind") == Some("audio") && *v == 1.0
                    })
            }),
            "no OTLP call gauges for {id}"
        );
        sender.join().expect("sender");
        id
    });

    // Ended: a record; nothing changes the histograms any more.
    let status = wait_status(&bed, "the call's record", |s| {
        s["calls"].as_array().is_some_and(|c| c.is_empty())
            && s["call_records"].as_array().is_some_and(|r| r.len() == 1)
    });
    let record = &status["call_records"][0];
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["legs"][0]["expected"], 300);
    assert_eq!(record["legs"][0]["lost"], 30);

    // Prometheus: the daemon's histograms exactly, and a valid exposition.
    let text = scrape(&bed);
    for (measure, name) in [
        ("mos", "monitor_call_window_mos"),
        ("jitter", "monitor_call_window_jitter_seconds"),
        ("loss", "monitor_call_window_loss_ratio"),
    ] {
        let hists = status_histograms(&status, measure);
        assert!(
            !hists.is_empty(),
            "no {measure} histogram: {:#}",
            status["call_histograms"]
        );
        for (class, iface, count, sum, counts) in &hists {
            let labels = format!("monitor_class=\"{class}\",network_interface_name=\"{iface}\"");
            assert_eq!(
                sample(&text, &format!("{name}_count{{{labels}}}")),
                Some(*count as f64),
                "{text}"
            );
            let got_sum = sample(&text, &format!("{name}_sum{{{labels}}}")).unwrap();
            assert!(
                (got_sum - sum).abs() < 1e-9,
                "{name} sum {got_sum} vs {sum}"
            );
            assert_eq!(
                sample(&text, &format!("{name}_bucket{{{labels},le=\"+Inf\"}}")),
                Some(counts.iter().sum::<u64>() as f64)
            );
        }
    }
    assert_eq!(
        sample(&text, "monitor_calls_active{monitor_call_kind=\"audio\"}"),
        Some(0.0)
    );
    // promtool on the call families (the other families' names are another change's:
    // `monitor.snapshot.age` in seconds).
    let calls_text: String = text
        .lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            name.starts_with("monitor_call_") || name.starts_with("monitor_calls_")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(calls_text.contains("# TYPE monitor_call_window_mos histogram\n"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(calls_text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OTLP: the same histograms, and the record once.
    for (measure, name) in [
        ("mos", "monitor.call.window.mos"),
        ("jitter", "monitor.call.window.jitter"),
        ("loss", "monitor.call.window.loss"),
    ] {
        let want = status_histograms(&status, measure);
        assert!(
            receiver.wait_for(WAIT, |r| {
                let got = histograms(r, name);
                got.len() == want.len()
                    && got.iter().zip(&want).all(|(g, w)| {
                        g.0 == w.0
                            && g.1 == w.1
                            && g.2 == w.2
                            && g.4 == w.4
                            && (g.3 - w.3).abs() < 1e-9
                    })
            }),
            "OTLP {name} is not the daemon's {want:?}: {:?}",
            histograms(&receiver.received.lock().unwrap(), name)
        );
    }
    let records = |r: &Received| -> Vec<Vec<KeyValue>> {
        r.logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .filter(|rec| rec.event_name == "monitor.call.record")
            .map(|rec| rec.attributes.clone())
            .collect()
    };
    assert!(
        receiver.wait_for(WAIT, |r| !records(r).is_empty()),
        "no call record log"
    );
    // Three more exports: still exactly one.
    let exported = bed.status()["export"]["exported"].as_u64().unwrap();
    wait_status(&bed, "three more exports", |s| {
        s["export"]["exported"].as_u64().unwrap() >= exported + 3
    });
    let r = receiver.received.lock().unwrap();
    let recs = records(&r);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let a = &recs[0];
    assert_eq!(str_attr(a, "monitor.call.id"), Some(id.as_str()));
    assert_eq!(int_attr(a, "network.local.port"), Some(PORT.into()));
    assert_eq!(int_attr(a, "monitor.call.packets"), Some(270));
    assert_eq!(int_attr(a, "monitor.call.to_webex.lost"), Some(30));
    assert_eq!(
        str_attr(a, "monitor.call.to_webex.measured_at"),
        Some("lan0 ingress")
    );
}
