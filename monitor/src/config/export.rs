//! `[export]`: OpenTelemetry (OTLP) export and the Prometheus scrape endpoint, and the
//! standard `OTEL_*` environment variables that fill in what the file leaves unset.
//!
//! Precedence: a key set in the file wins; otherwise the environment variable; otherwise
//! the default. Export is off unless an endpoint comes from one of them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Valid `export.interval_ms` values.
pub const INTERVAL_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;
/// Default export interval (the OTel default is 60 s; a router's on-call wants fresher).
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;
/// Default per-export timeout (the OTel default is 10 s; it must fit in one interval).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default cap on per-call (per media flow) series.
pub const DEFAULT_MAX_CALL_SERIES: u32 = 100;
/// Hard ceiling for `max_call_series`: keeps every metric stream far below the SDK's
/// cardinality limit, which is set from it.
pub const MAX_CALL_SERIES: u32 = 1_000;
/// Default Prometheus listen address: loopback only.
pub const DEFAULT_PROMETHEUS_LISTEN: &str = "127.0.0.1:9464";

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, path /v1/metrics and /v1/logs).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

/// `[export]`
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// OTLP collector endpoint, e.g. "http://127.0.0.1:4317" (gRPC) or
    /// "http://127.0.0.1:4318" (HTTP; "/v1/metrics" and "/v1/logs" are appended).
    /// Unset (the default) and no OTEL_EXPORTER_OTLP_ENDPOINT: no OTLP export.
    /// Plain http:// only (no TLS stack is built in): export to a local collector/agent.
    pub otlp_endpoint: Option<String>,
    /// "grpc" or "http/protobuf". Default OTEL_EXPORTER_OTLP_PROTOCOL, else "grpc".
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Extra request headers (e.g. an API key). Default from OTEL_EXPORTER_OTLP_HEADERS
    /// ("k1=v1,k2=v2"), else none.
    pub otlp_headers: Option<BTreeMap<String, String>>,
    /// Milliseconds between exports (1000 to 3600000). Default
    /// OTEL_METRIC_EXPORT_INTERVAL, else 10000.
    pub interval_ms: Option<u64>,
    /// Milliseconds one export may take before it is abandoned and counted as dropped
    /// (100 to interval_ms). Default OTEL_EXPORTER_OTLP_TIMEOUT, else 5000.
    pub timeout_ms: Option<u64>,
    /// At most this many per-call series (the busiest media flows) per metric
    /// (0 to 1000). Default 100. Aggregates per class and interface are always exported.
    pub max_call_series: Option<u32>,
    /// Extra resource attributes, added to service.name, service.version and host.name.
    /// Default from OTEL_RESOURCE_ATTRIBUTES, else none.
    pub resource_attributes: Option<BTreeMap<String, String>>,
    /// Serve the same metrics for Prometheus on http://<prometheus_listen>/metrics.
    /// Default false.
    pub prometheus: bool,
    /// Address:port of the Prometheus endpoint. Default "127.0.0.1:9464" (loopback only:
    /// opening it to the network is a deliberate choice).
    pub prometheus_listen: Option<String>,
}

/// The export settings in force, after the environment filled the gaps.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSettings {
    /// `None`: no OTLP export.
    pub otlp: Option<OtlpSettings>,
    pub max_call_series: u32,
    /// Resource attributes in the order they are sent, service.name first.
    pub resource: Vec<(String, String)>,
    /// `None`: no Prometheus endpoint.
    pub prometheus_listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSettings {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub headers: BTreeMap<String, String>,
    pub interval: Duration,
    pub timeout: Duration,
}

impl ExportSettings {
    /// Whether anything is exported at all.
    pub fn enabled(&self) -> bool {
        self.otlp.is_some() || self.prometheus_listen.is_some()
    }
}

/// A bad `[export]` key or `OTEL_*` variable: `field` names it.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

fn problem(field: &str, text: String) -> Problem {
    Problem {
        field: field.to_string(),
        problem: text,
    }
}

/// Resolves `[export]` against the environment (`env` looks a variable up).
pub fn resolve(
    c: &ExportConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ExportSettings, Problem> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());

    let endpoint = match &c.otlp_endpoint {
        Some(e) => Some((e.clone(), "export.otlp_endpoint")),
        None => env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| (e, "OTEL_EXPORTER_OTLP_ENDPOINT")),
    };
    let otlp = match endpoint {
        None => None,
        Some((endpoint, field)) => Some(resolve_otlp(c, &env, endpoint.trim(), field)?),
    };

    let max_call_series = c.max_call_series.unwrap_or(DEFAULT_MAX_CALL_SERIES);
    if max_call_series > MAX_CALL_SERIES {
        return Err(problem(
            "export.max_call_series",
            format!("{max_call_series} is out of range; use 0 to {MAX_CALL_SERIES}"),
        ));
    }

    let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "monitor".to_string());
    let mut extra = match &c.resource_attributes {
        Some(a) => a.clone(),
        None => match env("OTEL_RESOURCE_ATTRIBUTES") {
            Some(text) => parse_pairs(&text, "OTEL_RESOURCE_ATTRIBUTES")?,
            None => BTreeMap::new(),
        },
    };
    // OTEL_SERVICE_NAME wins over a service.name in the attributes (OTel spec).
    let service_name = if env("OTEL_SERVICE_NAME").is_none() {
        extra.remove("service.name").unwrap_or(service_name)
    } else {
        extra.remove("service.name");
        service_name
    };
    let mut resource = vec![
        ("service.name".to_string(), service_name),
        (
            "service.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("host.name".to_string(), host_name()),
    ];
    for (k, v) in extra {
        match resource.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => resource.push((k, v)),
        }
    }

    let prometheus_listen = if c.prometheus {
        let text = c
            .prometheus_listen
            .as_deref()
            .unwrap_or(DEFAULT_PROMETHEUS_LISTEN);
        Some(text.parse::<SocketAddr>().map_err(|_| {
            problem(
                "export.prometheus_listen",
                format!("\"{text}\" is not an address:port such as \"127.0.0.1:9464\""),
            )
        })?)
    } else {
        None
    };

    Ok(ExportSettings {
        otlp,
        max_call_series,
        resource,
        prometheus_listen,
    })
}

fn resolve_otlp(
    c: &ExportConfig,
    env: &dyn Fn(&str) -> Option<String>,
    endpoint: &str,
    endpoint_field: &str,
) -> Result<OtlpSettings, Problem> {
    if !endpoint.starts_with("http://") {
        return Err(problem(
            endpoint_field,
            format!(
                "\"{endpoint}\" must start with http:// (this build has no TLS: export to a \
                 local collector or agent)"
            ),
        ));
    }
    let protocol = match c.otlp_protocol {
        Some(p) => p,
        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(text) => OtlpProtocol::parse(&text).ok_or_else(|| {
                problem(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("\"{text}\" is not supported; use \"grpc\" or \"http/protobuf\""),
                )
            })?,
            None => OtlpProtocol::Grpc,
        },
    };
    let headers = match &c.otlp_headers {
        Some(h) => h.clone(),
        None => match env("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(text) => parse_pairs(&text, "OTEL_EXPORTER_OTLP_HEADERS")?,
            None => BTreeMap::new(),
        },
    };
    let interval_ms =
        number(c.interval_ms, env, "OTEL_METRIC_EXPORT_INTERVAL")?.unwrap_or(DEFAULT_INTERVAL_MS);
    if !INTERVAL_MS.contains(&interval_ms) {
        return Err(problem(
            "export.interval_ms",
            format!(
                "{interval_ms} is out of range; use {} to {} (milliseconds)",
                INTERVAL_MS.start(),
                INTERVAL_MS.end()
            ),
        ));
    }
    let timeout_ms =
        number(c.timeout_ms, env, "OTEL_EXPORTER_OTLP_TIMEOUT")?.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100..=interval_ms).contains(&timeout_ms) {
        return Err(problem(
            "export.timeout_ms",
            format!(
                "{timeout_ms} is out of range; use 100 to interval_ms ({interval_ms}): an \
                 export must end before the next one starts"
            ),
        ));
    }
    Ok(OtlpSettings {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        protocol,
        headers,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn number(
    configured: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
) -> Result<Option<u64>, Problem> {
    if configured.is_some() {
        return Ok(configured);
    }
    env(var)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| problem(var, format!("\"{text}\" is not a number of milliseconds")))
        })
        .transpose()
}

/// Parses the W3C-baggage-like "k1=v1,k2=v2" lists of the OTel variables (values may be
/// percent-encoded).
fn parse_pairs(text: &str, var: &str) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(problem(
                var,
                format!("\"{item}\" is not key=value (use \"k1=v1,k2=v2\")"),
            ));
        };
        let k = percent_decode(k.trim());
        if k.is_empty() {
            return Err(problem(var, format!("\"{item}\" has an empty key")));
        }
        out.insert(k, percent_decode(v.trim()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This host's name (uname), for the host.name resource attribute.
pub fn host_name() -> String {
    // SAFETY: uname fills the struct it is given; an all-zero utsname is valid.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: nodename is NUL-terminated by uname.
    unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
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
        assert_eq!(s.resource[3], ("site".into(), "lab".into()));

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
                    otlp_endpoint: Some("https://x:4317".into()),
                    ..Default::default()
                },
                &[]
            ),
            "export.otlp_endpoint"
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
}
