//! Tests of `[export]` resolution against the environment (config/export.rs).

use super::*;

fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn off_by_default() {
    let s = resolve(&ExportConfig::default(), &env_of(&[])).unwrap();
    assert_eq!(s.otlp, None);
    assert_eq!(s.prometheus_listen, None);
    assert!(!s.enabled());
    assert_eq!(s.max_call_series, 100);
    assert_eq!(s.resource[0], ("service.name".into(), "monitor".into()));
    assert_eq!(s.resource[1].0, "service.version");
    assert_eq!(s.resource[2], ("host.name".into(), host_name()));
    assert_eq!(s.resource[3], ("site.name".into(), host_name()));
    assert_eq!(s.site_name(), host_name());
}

#[test]
fn a_short_interval_alone_is_valid() {
    let c = ExportConfig {
        otlp_endpoint: Some("http://127.0.0.1:4317".into()),
        interval_ms: Some(2000),
        ..Default::default()
    };
    let o = resolve(&c, &env_of(&[])).unwrap().otlp.unwrap();
    assert_eq!(o.interval, Duration::from_millis(2000));
    assert_eq!(o.timeout, Duration::from_millis(1600));
    assert_eq!(default_timeout_ms(1000), 800);
    assert_eq!(default_timeout_ms(10_000), 5000);
    assert_eq!(default_timeout_ms(3_600_000), 5000);
    // The same through the environment only.
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
    ]);
    let o = resolve(&ExportConfig::default(), &env)
        .unwrap()
        .otlp
        .unwrap();
    assert_eq!(o.timeout, Duration::from_millis(800));
}

#[test]
fn a_per_signal_endpoint_alone_enables_export_and_is_used_as_given() {
    for protocol in ["grpc", "http/protobuf"] {
        let env = env_of(if protocol == "grpc" {
            &[(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "https://metrics.example:4317",
            )]
        } else {
            &[
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "https://metrics.example:4318/custom/m",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]
        });
        let o = resolve(&ExportConfig::default(), &env)
            .unwrap()
            .otlp
            .expect("metrics export on");
        assert_eq!(o.protocol.as_str(), protocol);
        let want = if protocol == "grpc" {
            "https://metrics.example:4317"
        } else {
            "https://metrics.example:4318/custom/m"
        };
        assert_eq!(o.metrics_url, want, "used as given");
        assert_eq!(o.endpoint, want);
        assert_eq!(o.logs_url, None, "no logs endpoint: no log records");
        assert!(o.uses_tls());
    }
    // Base endpoint: paths appended for HTTP; a per-signal one overrides its signal.
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9000/in"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ]);
    let o = resolve(&ExportConfig::default(), &env)
        .unwrap()
        .otlp
        .unwrap();
    assert_eq!(o.metrics_url, "http://c:4318/v1/metrics");
    assert_eq!(o.logs_url.as_deref(), Some("http://logs:9000/in"));
    assert_eq!(o.compression, OtlpCompression::Gzip);
    assert!(!o.uses_tls());
    let grpc = ExportConfig {
        otlp_endpoint: Some("https://c:4317".into()),
        otlp_protocol: Some(OtlpProtocol::Grpc),
        ..Default::default()
    };
    let o = resolve(&grpc, &env_of(&[])).unwrap().otlp.unwrap();
    assert_eq!(o.metrics_url, "https://c:4317");
    assert_eq!(o.logs_url.as_deref(), Some("https://c:4317"));
    assert_eq!(o.compression, OtlpCompression::None);
}

#[test]
fn tls_files_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("monitor-tls-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("x.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let path: &'static str = Box::leak(pem.to_string_lossy().into_owned().into_boxed_str());
    let env = env_of(Box::leak(Box::new([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path),
    ])));
    let o = resolve(&ExportConfig::default(), &env)
        .unwrap()
        .otlp
        .unwrap();
    assert_eq!(o.tls.ca_file.as_deref(), Some(path));
    assert_eq!(o.tls.client, Some((path.to_string(), path.to_string())));
    // A certificate without its key is a config error naming the missing key.
    let c = ExportConfig {
        otlp_endpoint: Some("https://c:4317".into()),
        otlp_client_cert_file: Some(path.into()),
        ..Default::default()
    };
    assert_eq!(
        resolve(&c, &env_of(&[])).unwrap_err().field,
        "export.otlp_client_key_file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn site_name_from_the_file_or_the_resource_attributes() {
    let env = env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "site.name=branch-7,rack=2")]);
    let s = resolve(&ExportConfig::default(), &env).unwrap();
    assert_eq!(s.site_name(), "branch-7");
    assert_eq!(
        s.resource.iter().filter(|(k, _)| k == "site.name").count(),
        1
    );
    assert_eq!(s.resource[4], ("rack".into(), "2".into()));
    let c = ExportConfig {
        site_name: Some("hq".into()),
        ..Default::default()
    };
    assert_eq!(resolve(&c, &env).unwrap().site_name(), "hq");
}

#[test]
fn environment_fills_what_the_file_leaves_unset() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret, x=1"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
        ("OTEL_RESOURCE_ATTRIBUTES", "site=lab,service.name=ignored"),
        ("OTEL_SERVICE_NAME", "edge-1"),
    ]);
    let s = resolve(&ExportConfig::default(), &env).unwrap();
    let o = s.otlp.unwrap();
    assert_eq!(o.endpoint, "http://collector:4318");
    assert_eq!(o.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(o.headers["api-key"], "s=cret");
    assert_eq!(o.headers["x"], "1");
    assert_eq!(o.timeout, Duration::from_millis(2000));
    assert_eq!(o.interval, Duration::from_millis(15000));
    assert_eq!(s.resource[0].1, "edge-1");
    assert_eq!(s.resource[4], ("site".into(), "lab".into()));

    let file = ExportConfig {
        otlp_endpoint: Some("http://127.0.0.1:4317".into()),
        otlp_protocol: Some(OtlpProtocol::Grpc),
        timeout_ms: Some(1000),
        ..Default::default()
    };
    let o = resolve(&file, &env).unwrap().otlp.unwrap();
    assert_eq!(o.endpoint, "http://127.0.0.1:4317");
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.timeout, Duration::from_millis(1000));
}

#[test]
fn problems_name_the_key_or_variable() {
    let bad = |c: ExportConfig, env: &'static [(&'static str, &'static str)]| {
        resolve(&c, &env_of(env)).unwrap_err().field
    };
    let with_endpoint = || ExportConfig {
        otlp_endpoint: Some("http://127.0.0.1:4317".into()),
        ..Default::default()
    };
    assert_eq!(
        bad(
            ExportConfig {
                otlp_endpoint: Some("ftp://x:4317".into()),
                ..Default::default()
            },
            &[]
        ),
        "export.otlp_endpoint"
    );
    assert_eq!(
        bad(
            with_endpoint(),
            &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://")]
        ),
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    );
    assert_eq!(
        bad(
            with_endpoint(),
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]
        ),
        "OTEL_EXPORTER_OTLP_COMPRESSION"
    );
    assert_eq!(
        bad(
            with_endpoint(),
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")]
        ),
        "OTEL_EXPORTER_OTLP_CERTIFICATE"
    );
    assert_eq!(
        bad(
            ExportConfig {
                otlp_ca_file: Some("/proc/self/status".into()),
                ..with_endpoint()
            },
            &[]
        ),
        "export.otlp_ca_file"
    );
    assert_eq!(
        bad(
            with_endpoint(),
            &[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "20000"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "2000")
            ]
        ),
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    );
    assert_eq!(
        bad(
            ExportConfig {
                site_name: Some(" ".into()),
                ..Default::default()
            },
            &[]
        ),
        "export.site_name"
    );
    assert_eq!(
        bad(
            ExportConfig::default(),
            &[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://c:4318/v1/logs")]
        ),
        "export.otlp_metrics_endpoint"
    );
    assert_eq!(
        bad(
            ExportConfig::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]
        ),
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    );
    assert_eq!(
        bad(
            with_endpoint(),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]
        ),
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    );
    assert_eq!(
        bad(with_endpoint(), &[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]),
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    );
    assert_eq!(
        bad(
            ExportConfig {
                timeout_ms: Some(20_000),
                ..with_endpoint()
            },
            &[]
        ),
        "export.timeout_ms"
    );
    assert_eq!(
        bad(
            ExportConfig {
                interval_ms: Some(10),
                ..with_endpoint()
            },
            &[]
        ),
        "export.interval_ms"
    );
    assert_eq!(
        bad(
            ExportConfig {
                max_call_series: Some(5000),
                ..Default::default()
            },
            &[]
        ),
        "export.max_call_series"
    );
    assert_eq!(
        bad(
            ExportConfig {
                prometheus: true,
                prometheus_listen: Some("localhost".into()),
                ..Default::default()
            },
            &[]
        ),
        "export.prometheus_listen"
    );
    assert_eq!(
        bad(
            ExportConfig::default(),
            &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")]
        ),
        "OTEL_RESOURCE_ATTRIBUTES"
    );
}

#[test]
fn prometheus_is_loopback_by_default() {
    let c = ExportConfig {
        prometheus: true,
        ..Default::default()
    };
    let s = resolve(&c, &env_of(&[])).unwrap();
    assert_eq!(s.prometheus_listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert!(s.enabled());
}
