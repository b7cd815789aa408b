//! OTLP export end to end, in process: the daemon's export thread, fed a fixed status
//! report, sends to a receiver built on `opentelemetry-proto` (gRPC and HTTP/protobuf) on
//! 127.0.0.1. Asserts names, units, attributes and exact values, the anomaly log records,
//! and what happens when the collector is down or a black hole.

mod otlp_receiver;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monitor::anomaly::{Anomaly, Evidence, Severity};
use monitor::config::export::{ExportConfig, OtlpProtocol, resolve};
use monitor::export::{self, StatusCell};
use monitor::status::model::{FlowStatus, SCHEMA_VERSION, StatusReport};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Metric, metric::Data};
use otlp_receiver::{Protocol, Received, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// Built from JSON so fields other engineers add (with serde defaults) need no change here.
fn flow(class: &str, inner_port: u16, packets: u64, bytes: u64) -> FlowStatus {
    serde_json::from_value(serde_json::json!({
        "interface": "wan0", "direction": "egress", "protocol": "udp", "ip_version": 4,
        "src_addr": "198.51.100.1", "src_port": inner_port,
        "dst_addr": "203.0.113.10", "dst_port": 5004,
        "inner_addr": "198.51.100.1", "inner_port": inner_port,
        "peer_addr": "203.0.113.10", "peer_port": 5004,
        "class": class, "packets": packets, "bytes": bytes, "fragments": 0,
        "last_dscp": 46, "age_s": 10.0, "idle_s": 0.1
    }))
    .unwrap()
}

fn sip_alg(cleared: Option<u64>) -> Anomaly {
    Anomaly {
        id: "sip_alg".into(),
        severity: Severity::Critical,
        subject: "wan0".into(),
        summary: "a SIP ALG rewrites SIP on wan0".into(),
        evidence: vec![Evidence {
            name: "rewritten_messages".into(),
            value: "3".into(),
        }],
        remediation: "Turn the SIP ALG off on this router.".into(),
        first_seen_unix_s: 1_700_000_000,
        last_seen_unix_s: 1_700_000_010,
        cleared_unix_s: cleared,
    }
}

fn report() -> StatusReport {
    let sip = FlowStatus {
        protocol: "tcp".into(),
        dst_port: 5061,
        peer_port: 5061,
        ..flow("sip_signalling", 40004, 7, 1_400)
    };
    serde_json::from_value(serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "daemon": {
            "version": "0.1.0", "pid": 1, "started_at_unix_s": 1_700_000_000u64,
            "uptime_s": 60, "config_path": "/etc/monitor/monitor.toml",
            "pin_path": "/sys/fs/bpf/monitor", "poll_interval_ms": 1000,
            "snapshot_age_ms": 250, "adopted_pinned_maps": false, "last_poll_ms": 1.0
        },
        "interfaces": [],
        "maps": [{"name": "FLOWS", "entries": 3, "max_entries": 65536}],
        "counters": {
            "seen": 1234, "parsed": 1200, "non_ip": 0, "ipv4": 1200, "ipv6": 0,
            "fragments": 0, "webex_packets": 157, "not_webex_packets": 0,
            "flows_created": 3, "flow_insert_failed": 0, "malformed_total": 3,
            "malformed": {"truncated_l4": 3, "ipv4_bad_ihl": 0}
        },
        "flows": [
            flow("media", 40000, 100, 20_000),
            flow("media", 40002, 50, 10_000),
            sip
        ],
        "anomalies": [sip_alg(None)],
        "export": null
    }))
    .unwrap()
}

struct Running {
    exporter: Option<export::Exporter>,
    status: StatusCell,
    report: Arc<Mutex<StatusReport>>,
}

fn start(endpoint: String, protocol: OtlpProtocol, timeout_ms: u64) -> Running {
    let cfg = ExportConfig {
        otlp_endpoint: Some(endpoint),
        otlp_protocol: Some(protocol),
        interval_ms: Some(1000),
        timeout_ms: Some(timeout_ms),
        max_call_series: Some(1),
        resource_attributes: Some([("site".to_string(), "lab".to_string())].into()),
        ..Default::default()
    };
    start_with(&cfg, &|_| None)
}

/// Starts export with `cfg`, the environment looked up in `env`.
fn start_with(cfg: &ExportConfig, env: &dyn Fn(&str) -> Option<String>) -> Running {
    let settings = resolve(cfg, env).unwrap();
    let status = StatusCell::new(&settings);
    let report = Arc::new(Mutex::new(report()));
    let report_fn: export::ReportFn = {
        let report = report.clone();
        let status = status.clone();
        Arc::new(move || {
            let mut r = report.lock().unwrap().clone();
            r.export = status.get();
            r
        })
    };
    let exporter = export::start(settings, report_fn, status.clone())
        .unwrap()
        .expect("export is configured");
    Running {
        exporter: Some(exporter),
        status,
        report,
    }
}

fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn endpoint(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

fn str_value(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Option<AnyValue>> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

fn find_metric<'a>(r: &'a Received, name: &str) -> &'a Metric {
    r.metrics
        .last()
        .unwrap()
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("metric {name} not exported"))
}

fn sum_points(m: &Metric) -> Vec<(Vec<KeyValue>, u64)> {
    match m.data.as_ref().unwrap() {
        Data::Sum(s) => {
            assert!(s.is_monotonic, "{} is a counter", m.name);
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            s.data_points
                .iter()
                .map(|p| (p.attributes.clone(), number(&p.value)))
                .collect()
        }
        other => panic!("{} is not a sum: {other:?}", m.name),
    }
}

fn number(v: &Option<opentelemetry_proto::tonic::metrics::v1::number_data_point::Value>) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    match v.unwrap() {
        N::AsInt(i) => i as u64,
        N::AsDouble(d) => d as u64,
    }
}

fn exports_metrics_and_anomaly_logs(protocol: Protocol, otlp: OtlpProtocol) {
    let receiver = Receiver::start(loopback(), protocol, false);
    let run = start(endpoint(receiver.addr), otlp, 800);
    assert!(
        receiver.wait_for(WAIT, |r| !r.metrics.is_empty() && !r.logs.is_empty()),
        "no export arrived"
    );
    {
        let r = receiver.received.lock().unwrap();
        let resource = r.metrics[0].resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .clone();
        assert_eq!(
            str_value(attr(&resource, "service.name").unwrap()),
            Some("monitor")
        );
        assert_eq!(
            str_value(attr(&resource, "service.version").unwrap()),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert!(attr(&resource, "host.name").is_some());
        assert_eq!(str_value(attr(&resource, "site").unwrap()), Some("lab"));

        let seen = find_metric(&r, "monitor.packets.seen");
        assert_eq!(seen.unit, "{packet}");
        assert_eq!(sum_points(seen), vec![(vec![], 1234)]);

        let flow_packets = find_metric(&r, "monitor.flow.packets");
        let media = sum_points(flow_packets)
            .into_iter()
            .find(|(a, _)| str_value(attr(a, "monitor.class").unwrap()) == Some("media"))
            .unwrap();
        assert_eq!(media.1, 150, "two media flows summed");
        for (k, v) in [
            ("network.interface.name", "wan0"),
            ("network.io.direction", "transmit"),
            ("network.transport", "udp"),
            ("network.type", "ipv4"),
        ] {
            assert_eq!(str_value(attr(&media.0, k).unwrap()), Some(v), "{k}");
        }
        let bytes = find_metric(&r, "monitor.flow.bytes");
        assert_eq!(bytes.unit, "By");
        assert_eq!(sum_points(bytes).iter().map(|p| p.1).sum::<u64>(), 31_400);

        // max_call_series = 1: only the busiest media flow gets a per-call series.
        let calls = sum_points(find_metric(&r, "monitor.call.packets"));
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, 100);
        assert_eq!(
            attr(&calls[0].0, "network.peer.port")
                .unwrap()
                .as_ref()
                .unwrap()
                .value,
            Some(Value::IntValue(5004))
        );
        assert_eq!(
            str_value(attr(&calls[0].0, "network.peer.address").unwrap()),
            Some("203.0.113.10")
        );

        let malformed = sum_points(find_metric(&r, "monitor.packets.malformed"));
        let truncated = malformed
            .iter()
            .find(|(a, _)| {
                str_value(attr(a, "monitor.malformed.reason").unwrap()) == Some("truncated_l4")
            })
            .unwrap();
        assert_eq!(truncated.1, 3);

        let map = find_metric(&r, "monitor.map.capacity");
        match map.data.as_ref().unwrap() {
            Data::Gauge(g) => assert_eq!(number(&g.data_points[0].value), 65536),
            other => panic!("not a gauge: {other:?}"),
        }

        // One series per detector id and severity, 0 unless open.
        let open = find_metric(&r, "monitor.anomalies.open");
        let Data::Gauge(g) = open.data.as_ref().unwrap() else {
            panic!("not a gauge: {open:?}")
        };
        let value = |id: &str, sev: &str| {
            g.data_points
                .iter()
                .find(|p| {
                    str_value(attr(&p.attributes, "monitor.anomaly.id").unwrap()) == Some(id)
                        && str_value(attr(&p.attributes, "monitor.anomaly.severity").unwrap())
                            == Some(sev)
                })
                .map(|p| number(&p.value))
        };
        assert_eq!(value("sip_alg", "critical"), Some(1));
        assert_eq!(value("sip_alg", "warning"), Some(0));
        assert_eq!(value("dscp_missing", "warning"), Some(0));
        // Every detector id (series exist before one opens) times three severities.
        assert_eq!(
            g.data_points.len(),
            monitor::anomaly::DETECTOR_IDS.len() * 3
        );

        let record = &r.logs[0].resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.event_name, "monitor.anomaly.opened");
        assert_eq!(record.severity_text, "ERROR");
        assert_eq!(record.severity_number, 17);
        assert_eq!(
            str_value(&record.body),
            Some("a SIP ALG rewrites SIP on wan0")
        );
        assert_eq!(
            str_value(attr(&record.attributes, "monitor.anomaly.id").unwrap()),
            Some("sip_alg")
        );
        assert_eq!(
            str_value(
                attr(
                    &record.attributes,
                    "monitor.anomaly.evidence.rewritten_messages"
                )
                .unwrap()
            ),
            Some("3")
        );
        assert_eq!(
            record.time_unix_nano,
            1_700_000_000 * 1_000_000_000,
            "stamped when it opened"
        );
    }

    // Its severity drops: one de-escalated record at the new severity.
    run.report.lock().unwrap().anomalies = vec![Anomaly {
        severity: Severity::Warning,
        ..sip_alg(None)
    }];
    let records = |r: &Received, event: &str| -> Vec<(String, String)> {
        r.logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .filter(|rec| rec.event_name == event)
            .map(|rec| {
                (
                    rec.severity_text.clone(),
                    str_value(&rec.body).unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert!(receiver.wait_for(WAIT, |r| {
        !records(r, "monitor.anomaly.de-escalated").is_empty()
    }));
    assert_eq!(
        records(
            &receiver.received.lock().unwrap(),
            "monitor.anomaly.de-escalated"
        ),
        [(
            "WARN".to_string(),
            "de-escalated to warning: a SIP ALG rewrites SIP on wan0".to_string()
        )]
    );

    // The anomaly clears: one more record, then no repeats.
    run.report.lock().unwrap().anomalies = vec![Anomaly {
        severity: Severity::Warning,
        ..sip_alg(Some(1_700_000_020))
    }];
    let cleared = |r: &Received| {
        r.logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
            .filter(|rec| rec.event_name == "monitor.anomaly.cleared")
            .count()
    };
    assert!(receiver.wait_for(WAIT, |r| cleared(r) == 1));
    let before = receiver.received.lock().unwrap().metrics.len();
    assert!(receiver.wait_for(WAIT, |r| r.metrics.len() >= before + 2));
    assert_eq!(cleared(&receiver.received.lock().unwrap()), 1);
    let opened = receiver
        .received
        .lock()
        .unwrap()
        .logs
        .iter()
        .flat_map(|l| &l.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .filter(|rec| rec.event_name == "monitor.anomaly.opened")
        .count();
    assert_eq!(opened, 1);

    let s = run.status.get().unwrap();
    assert!(s.exported >= 3, "{s:?}");
    assert_eq!(s.dropped, 0);
    assert_eq!(s.log_records_exported, 3);
    assert!(s.last_success_unix_s.is_some() && s.last_error.is_none());
    assert_eq!(s.otlp_protocol.as_deref(), Some(otlp.as_str()));
}

#[test]
fn grpc_export_reaches_an_otlp_receiver() {
    exports_metrics_and_anomaly_logs(Protocol::Grpc, OtlpProtocol::Grpc);
}

#[test]
fn http_protobuf_export_reaches_an_otlp_receiver() {
    exports_metrics_and_anomaly_logs(Protocol::Http, OtlpProtocol::HttpProtobuf);
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn wait_status(run: &Running, pred: impl Fn(&monitor::status::model::ExportStatus) -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if pred(&run.status.get().unwrap()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("export status never got there: {:?}", run.status.get());
}

/// A loopback port bound but not listening: connections to it are refused, and the
/// kernel cannot hand it to another test (a dropped listener's port often comes back
/// from the very next bind to port 0) until [`ReservedPort::listen`] serves on it.
struct ReservedPort {
    fd: std::os::fd::OwnedFd,
    addr: std::net::SocketAddr,
}

impl ReservedPort {
    fn new() -> Self {
        use std::os::fd::FromRawFd as _;
        // SAFETY: plain socket calls on a socket we own; sockaddr_in is fully set.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            use std::os::fd::AsRawFd as _;
            assert_eq!(
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const _ as *const libc::sockaddr,
                    len
                ),
                0
            );
            let mut len = len;
            assert_eq!(
                libc::getsockname(
                    fd.as_raw_fd(),
                    &mut sa as *mut _ as *mut libc::sockaddr,
                    &mut len
                ),
                0
            );
            let addr = std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                u16::from_be(sa.sin_port),
            ));
            ReservedPort { fd, addr }
        }
    }

    fn listen(self) -> TcpListener {
        use std::os::fd::AsRawFd as _;
        // SAFETY: listen(2) on our bound socket.
        assert_eq!(unsafe { libc::listen(self.fd.as_raw_fd(), 128) }, 0);
        TcpListener::from(self.fd)
    }
}

#[test]
fn collector_down_costs_no_memory_and_export_resumes() {
    for (protocol, otlp) in [
        (Protocol::Grpc, OtlpProtocol::Grpc),
        (Protocol::Http, OtlpProtocol::HttpProtobuf),
    ] {
        // A port with nobody listening, kept reserved so no parallel test gets it.
        let reserved = ReservedPort::new();
        let addr = reserved.addr;
        let mut run = start(endpoint(addr), otlp, 800);
        wait_status(&run, |s| s.dropped >= 2);
        let rss_before = vm_rss_kib();
        wait_status(&run, |s| s.dropped >= 6);
        let rss_after = vm_rss_kib();
        assert!(
            rss_after < rss_before + 4 * 1024,
            "memory grew while the collector was down: {rss_before} -> {rss_after} KiB"
        );
        let s = run.status.get().unwrap();
        assert_eq!(s.exported, 0);
        let error = s.last_error.unwrap();
        assert!(error.contains("Connection refused"), "{otlp:?}: {error}");

        // The collector comes up on that port: the next export arrives.
        let receiver = Receiver::start(reserved.listen(), protocol, false);
        assert!(receiver.wait_for(WAIT, |r| !r.metrics.is_empty()));
        wait_status(&run, |s| s.exported >= 1 && s.last_error.is_none());
        drop(run.exporter.take());
    }
}

#[test]
fn black_hole_collector_times_out_then_resumes() {
    for (protocol, otlp) in [
        (Protocol::Grpc, OtlpProtocol::Grpc),
        (Protocol::Http, OtlpProtocol::HttpProtobuf),
    ] {
        let receiver = Receiver::start(loopback(), protocol, true);
        let mut run = start(endpoint(receiver.addr), otlp, 500);
        let started = Instant::now();
        wait_status(&run, |s| s.dropped >= 3);
        // Each attempt is cut at the timeout and the next starts on schedule: three
        // intervals of 1 s, not three hangs.
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(run.status.get().unwrap().exported, 0);
        assert!(receiver.received.lock().unwrap().metrics.is_empty());

        receiver.answer();
        assert!(receiver.wait_for(WAIT, |r| !r.metrics.is_empty()));
        wait_status(&run, |s| s.exported >= 1);
        drop(run.exporter.take());
    }
}

#[test]
fn prometheus_endpoint_serves_the_same_series() {
    let cfg = ExportConfig {
        prometheus: true,
        prometheus_listen: Some("127.0.0.1:0".into()),
        site_name: Some("lab".into()),
        ..Default::default()
    };
    let settings = resolve(&cfg, &|_| None).unwrap();
    let status = StatusCell::new(&settings);
    let exporter = export::start(settings, Arc::new(report), status)
        .unwrap()
        .unwrap();
    let addr = exporter.prometheus_addr.unwrap();
    let get = |path: &str| {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let text = get("/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\nmonitor_packets_seen_total{site_name=\"lab\"} 1234\n"));
    assert!(text.contains(
        "\nmonitor_flow_packets_total{site_name=\"lab\",monitor_class=\"media\",network_interface_name=\"wan0\",\
         network_io_direction=\"transmit\",network_transport=\"udp\",network_type=\"ipv4\"} 150\n"
    ));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
}

// ---------------------------------------------------------------- TLS, gzip, connections

fn log_records(r: &Received) -> usize {
    r.logs
        .iter()
        .flat_map(|l| &l.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

fn path(p: &std::path::Path) -> Option<String> {
    Some(p.to_string_lossy().into_owned())
}

/// OTLP over TLS to a receiver whose certificate a test CA signed, with a client
/// certificate (the receiver requires one) and gzip: metrics and log records arrive,
/// every request compressed, and the resource carries the site.
fn tls_and_gzip(protocol: Protocol, otlp: OtlpProtocol) {
    let dir = xtask::TempDir::new().unwrap();
    let pki = otlp_receiver::TestPki::create(dir.path());
    let receiver = Receiver::start_tls(loopback(), protocol, pki.server());
    let cfg = ExportConfig {
        otlp_endpoint: Some(format!("https://{}", receiver.addr)),
        otlp_protocol: Some(otlp),
        otlp_compression: Some(monitor::config::export::OtlpCompression::Gzip),
        otlp_ca_file: path(&pki.ca),
        otlp_client_cert_file: path(&pki.client_cert),
        otlp_client_key_file: path(&pki.client_key),
        site_name: Some("hq".into()),
        interval_ms: Some(1000),
        ..Default::default()
    };
    let run = start_with(&cfg, &|_| None);
    assert!(
        receiver.wait_for(WAIT, |r| r.metrics.len() >= 2 && log_records(r) == 1),
        "no export over TLS arrived: {:?}",
        run.status.get()
    );
    let s = run.status.get().unwrap();
    assert!(s.otlp_tls, "{s:?}");
    assert_eq!(s.otlp_compression.as_deref(), Some("gzip"));
    assert_eq!(s.timeout_ms, 800, "the default for a 1 s interval");
    let r = receiver.received.lock().unwrap();
    assert_eq!(
        r.gzip_requests,
        r.metrics.len() + r.logs.len(),
        "every request gzip-compressed"
    );
    let resource = r.metrics[0].resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .clone();
    assert_eq!(str_value(attr(&resource, "site.name").unwrap()), Some("hq"));
    let log_resource = r.logs[0].resource_logs[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .clone();
    assert_eq!(
        str_value(attr(&log_resource, "site.name").unwrap()),
        Some("hq")
    );
    assert_eq!(
        sum_points(find_metric(&r, "monitor.packets.seen")),
        vec![(vec![], 1234)]
    );
}

#[test]
fn grpc_over_tls_with_gzip_and_a_client_certificate() {
    tls_and_gzip(Protocol::Grpc, OtlpProtocol::Grpc);
}

#[test]
fn http_over_tls_with_gzip_and_a_client_certificate() {
    tls_and_gzip(Protocol::Http, OtlpProtocol::HttpProtobuf);
}

/// The collector's certificate is not signed by the configured CA: every export fails
/// with a message that says so, nothing is received, and the rest goes on (the
/// Prometheus endpoint answers, exports keep being attempted on schedule).
#[test]
fn a_wrong_ca_fails_with_a_clear_error_and_nothing_else_stops() {
    let dir = xtask::TempDir::new().unwrap();
    let pki = otlp_receiver::TestPki::create(dir.path());
    for (protocol, otlp) in [
        (Protocol::Grpc, OtlpProtocol::Grpc),
        (Protocol::Http, OtlpProtocol::HttpProtobuf),
    ] {
        let receiver = Receiver::start_tls(loopback(), protocol, pki.server());
        let cfg = ExportConfig {
            otlp_endpoint: Some(format!("https://{}", receiver.addr)),
            otlp_protocol: Some(otlp),
            otlp_ca_file: path(&pki.wrong_ca),
            otlp_client_cert_file: path(&pki.client_cert),
            otlp_client_key_file: path(&pki.client_key),
            interval_ms: Some(1000),
            prometheus: true,
            prometheus_listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let mut run = start_with(&cfg, &|_| None);
        // On a loaded machine an attempt may time out before the handshake fails (also a
        // dropped export, with a timeout as its error): wait for one the wrong CA failed.
        wait_status(&run, |s| {
            s.dropped >= 3
                && s.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("UnknownIssuer"))
        });
        let s = run.status.get().unwrap();
        assert_eq!(s.exported, 0);
        let error = s.last_error.unwrap();
        assert!(
            error.starts_with("exporting metrics: ")
                && error.contains("invalid peer certificate: UnknownIssuer")
                && error.contains("otlp_ca_file")
                && error.contains("signed the collector's certificate"),
            "{otlp:?}: {error}"
        );
        assert!(receiver.received.lock().unwrap().metrics.is_empty());
        // The Prometheus endpoint of the same export thread still answers.
        let addr = run.exporter.as_ref().unwrap().prometheus_addr.unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read as _, Write as _};
        c.set_read_timeout(Some(WAIT)).unwrap();
        write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\nmonitor_export_dropped_total{site_name="));
        drop(run.exporter.take());
    }
}

/// The connection goes half-open (the proxy silences it; new connections are still
/// answered): the export on it times out, the next one runs on a new connection, and
/// data arrives again within two intervals.
fn half_open_connection_recovers(protocol: Protocol, otlp: OtlpProtocol) {
    let receiver = Receiver::start(loopback(), protocol, false);
    let proxy = otlp_receiver::SilencingProxy::start(receiver.addr);
    let cfg = ExportConfig {
        otlp_endpoint: Some(endpoint(proxy.addr)),
        otlp_protocol: Some(otlp),
        interval_ms: Some(1000),
        ..Default::default()
    };
    let mut run = start_with(&cfg, &|_| None);
    wait_status(&run, |s| s.exported >= 2);
    let before = receiver.received.lock().unwrap().metrics.len();
    let dropped_before = run.status.get().unwrap().dropped;
    proxy.silence();
    let silenced = Instant::now();
    assert!(
        receiver.wait_for(WAIT, |r| r.metrics.len() > before),
        "{otlp:?}: no export after the connection went half-open: {:?}",
        run.status.get()
    );
    let recovered = silenced.elapsed();
    // One interval for the export that hangs (it times out at 800 ms), one for the next
    // on a fresh connection; slack for a loaded machine.
    assert!(
        recovered < Duration::from_millis(2 * 1000 + 500),
        "{otlp:?}: recovered after {recovered:?}"
    );
    wait_status(&run, |s| s.last_error.is_none());
    let s = run.status.get().unwrap();
    assert_eq!(
        s.dropped,
        dropped_before + 1,
        "{otlp:?}: exactly the one export that hung"
    );
    drop(run.exporter.take());
}

#[test]
fn half_open_grpc_connection_recovers_within_two_intervals() {
    half_open_connection_recovers(Protocol::Grpc, OtlpProtocol::Grpc);
}

#[test]
fn half_open_http_connection_recovers_within_two_intervals() {
    half_open_connection_recovers(Protocol::Http, OtlpProtocol::HttpProtobuf);
}

/// The per-signal variable alone turns metrics export on, its URL used as given; no logs
/// endpoint, so no log records are sent.
#[test]
fn the_metrics_endpoint_variable_alone_enables_export() {
    let receiver = Receiver::start(loopback(), Protocol::Http, false);
    let url = format!("http://{}/v1/metrics", receiver.addr);
    let env = move |name: &str| match name {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" => Some(url.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_string()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("1000".to_string()),
        _ => None,
    };
    let mut run = start_with(&ExportConfig::default(), &env);
    assert!(receiver.wait_for(WAIT, |r| r.metrics.len() >= 2));
    let s = run.status.get().unwrap();
    assert_eq!(s.dropped, 0);
    assert_eq!(s.log_records_exported, 0);
    assert_eq!(s.log_records_dropped, 0, "not wanted is not dropped");
    assert!(receiver.received.lock().unwrap().logs.is_empty());
    drop(run.exporter.take());
}

/// `promtool check metrics` (Prometheus' own linter) accepts the exposition.
#[test]
fn prometheus_exposition_passes_promtool_check_metrics() {
    let series = monitor::export::series::collect(&report(), 10);
    let text = monitor::export::prometheus::render(
        &series,
        &[
            ("service.name".into(), "monitor".into()),
            ("site.name".into(), "hq".into()),
        ],
    );
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (package prometheus, installed by `cargo xtask setup`)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
