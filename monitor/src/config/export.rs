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
/// With a short interval and no timeout set, the timeout is this share of the interval
/// (percent), so an export that hangs ends before the next one is due and the next
/// one starts on a fresh connection.
pub const DEFAULT_TIMEOUT_SHARE_PCT: u64 = 80;
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

/// OTLP request compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpCompression {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "gzip")]
    Gzip,
}

impl OtlpCompression {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// `[export]`
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// OTLP collector endpoint, e.g. "http://127.0.0.1:4317" (gRPC) or
    /// "https://collector.example:4318" (HTTP; "/v1/metrics" and "/v1/logs" are
    /// appended). https:// is TLS (rustls; the system's roots plus `otlp_ca_file`).
    /// Unset (the default) and no OTEL_EXPORTER_OTLP_ENDPOINT: no OTLP export (unless a
    /// per-signal endpoint below is set).
    pub otlp_endpoint: Option<String>,
    /// Metrics endpoint, used exactly as given (no path appended). Default
    /// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else derived from `otlp_endpoint`.
    pub otlp_metrics_endpoint: Option<String>,
    /// Logs (anomaly records) endpoint, used exactly as given. Default
    /// OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, else derived from `otlp_endpoint`; with only a
    /// metrics endpoint, no log records are exported.
    pub otlp_logs_endpoint: Option<String>,
    /// PEM file of the CA(s) that signed the collector's certificate, trusted besides
    /// the system's roots. Default OTEL_EXPORTER_OTLP_CERTIFICATE.
    pub otlp_ca_file: Option<String>,
    /// PEM client certificate for mutual TLS (with `otlp_client_key_file`). Default
    /// OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE.
    pub otlp_client_cert_file: Option<String>,
    /// PEM private key of the client certificate. Default OTEL_EXPORTER_OTLP_CLIENT_KEY.
    pub otlp_client_key_file: Option<String>,
    /// "gzip" or "none". Default OTEL_EXPORTER_OTLP_COMPRESSION, else "none".
    pub otlp_compression: Option<OtlpCompression>,
    /// This site's name: resource attribute `site.name` on every OTLP series and log
    /// record, and label `site_name` on every Prometheus series. Default `site.name` of
    /// OTEL_RESOURCE_ATTRIBUTES / `resource_attributes`, else the host name.
    pub site_name: Option<String>,
    /// "grpc" or "http/protobuf". Default OTEL_EXPORTER_OTLP_PROTOCOL, else "grpc".
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Extra request headers (e.g. an API key). Default from OTEL_EXPORTER_OTLP_HEADERS
    /// ("k1=v1,k2=v2"), else none.
    pub otlp_headers: Option<BTreeMap<String, String>>,
    /// Milliseconds between exports (1000 to 3600000). Default
    /// OTEL_METRIC_EXPORT_INTERVAL, else 10000.
    pub interval_ms: Option<u64>,
    /// Milliseconds one export may take before it is abandoned and counted as dropped
    /// (100 to interval_ms). Default OTEL_EXPORTER_OTLP_TIMEOUT, else 5000 or 80 % of
    /// interval_ms, whichever is shorter.
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
    /// What status and the journal show: the base endpoint, else the metrics endpoint.
    pub endpoint: String,
    /// Full URL metrics are sent to (HTTP: with its path).
    pub metrics_url: String,
    /// Full URL log records are sent to; `None`: log records are not exported.
    pub logs_url: Option<String>,
    pub protocol: OtlpProtocol,
    pub headers: BTreeMap<String, String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub compression: OtlpCompression,
    pub tls: TlsFiles,
}

/// TLS material beyond the system's roots (paths to PEM files, checked readable).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsFiles {
    pub ca_file: Option<String>,
    /// Client certificate and key, always both or neither.
    pub client: Option<(String, String)>,
}

impl OtlpSettings {
    /// Whether any endpoint is https:// (the TLS settings matter).
    pub fn uses_tls(&self) -> bool {
        std::iter::once(&self.metrics_url)
            .chain(self.logs_url.as_ref())
            .any(|u| u.starts_with("https://"))
    }
}

/// The site name every series carries (resource `site.name`, Prometheus `site_name`).
pub const SITE_ATTRIBUTE: &str = "site.name";

impl ExportSettings {
    /// The value of resource attribute `site.name` (always present).
    pub fn site_name(&self) -> &str {
        self.resource
            .iter()
            .find(|(k, _)| k == SITE_ATTRIBUTE)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
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

    let endpoint = from_file_or_env(
        &c.otlp_endpoint,
        "export.otlp_endpoint",
        &env,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
    let metrics_endpoint = from_file_or_env(
        &c.otlp_metrics_endpoint,
        "export.otlp_metrics_endpoint",
        &env,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    );
    let logs_endpoint = from_file_or_env(
        &c.otlp_logs_endpoint,
        "export.otlp_logs_endpoint",
        &env,
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    );
    let otlp = if endpoint.is_none() && metrics_endpoint.is_none() && logs_endpoint.is_none() {
        None
    } else {
        Some(resolve_otlp(
            c,
            &env,
            Endpoints {
                base: endpoint,
                metrics: metrics_endpoint,
                logs: logs_endpoint,
            },
        )?)
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
    // export.site_name wins over a site.name attribute; without either, the host name
    // (every series of a fleet then still says where it came from).
    let host = host_name();
    let attribute_site = extra.remove(SITE_ATTRIBUTE);
    let site_name = match (&c.site_name, attribute_site) {
        (Some(name), _) if name.trim().is_empty() => {
            return Err(problem(
                "export.site_name",
                "is empty; name the site (e.g. \"hq\") or leave the key out".into(),
            ));
        }
        (Some(name), _) => name.trim().to_string(),
        (None, Some(name)) if !name.trim().is_empty() => name.trim().to_string(),
        (None, _) => host.clone(),
    };
    let mut resource = vec![
        ("service.name".to_string(), service_name),
        (
            "service.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("host.name".to_string(), host),
        (SITE_ATTRIBUTE.to_string(), site_name),
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

/// A value and the key or variable it came from (for messages).
type Sourced = Option<(String, &'static str)>;

fn from_file_or_env(
    configured: &Option<String>,
    key: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Sourced {
    match configured {
        Some(v) => Some((v.trim().to_string(), key)),
        None => env(var).map(|v| (v.trim().to_string(), var)),
    }
}

struct Endpoints {
    base: Sourced,
    metrics: Sourced,
    logs: Sourced,
}

fn check_url((url, field): &(String, &'static str)) -> Result<(), Problem> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(problem(
            field,
            format!(
                "\"{url}\" is not an http:// or https:// URL such as \"https://collector:4317\""
            ),
        )),
    }
}

fn resolve_otlp(
    c: &ExportConfig,
    env: &dyn Fn(&str) -> Option<String>,
    endpoints: Endpoints,
) -> Result<OtlpSettings, Problem> {
    for e in [&endpoints.base, &endpoints.metrics, &endpoints.logs]
        .into_iter()
        .flatten()
    {
        check_url(e)?;
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
    // The base endpoint gets the signal's path (HTTP only); a per-signal one is used as
    // given (OTel specification).
    let base = endpoints
        .base
        .as_ref()
        .map(|(u, _)| u.trim_end_matches('/').to_string());
    let derive = |path: &str| {
        base.as_ref().map(|b| match protocol {
            OtlpProtocol::Grpc => b.clone(),
            OtlpProtocol::HttpProtobuf => format!("{b}{path}"),
        })
    };
    let metrics_url = match endpoints.metrics {
        Some((u, _)) => u,
        None => derive("/v1/metrics").ok_or_else(|| {
            problem(
                "export.otlp_metrics_endpoint",
                "only a logs endpoint is set; set otlp_endpoint (or \
                 OTEL_EXPORTER_OTLP_ENDPOINT) or a metrics endpoint too"
                    .into(),
            )
        })?,
    };
    let logs_url = match endpoints.logs {
        Some((u, _)) => Some(u),
        None => derive("/v1/logs"),
    };
    let headers = match &c.otlp_headers {
        Some(h) => h.clone(),
        None => match env("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(text) => parse_pairs(&text, "OTEL_EXPORTER_OTLP_HEADERS")?,
            None => BTreeMap::new(),
        },
    };
    let compression = match c.otlp_compression {
        Some(v) => v,
        None => match env("OTEL_EXPORTER_OTLP_COMPRESSION") {
            Some(text) => OtlpCompression::parse(&text).ok_or_else(|| {
                problem(
                    "OTEL_EXPORTER_OTLP_COMPRESSION",
                    format!("\"{text}\" is not supported; use \"gzip\" or \"none\""),
                )
            })?,
            None => OtlpCompression::None,
        },
    };
    let interval = number(
        c.interval_ms,
        "export.interval_ms",
        env,
        "OTEL_METRIC_EXPORT_INTERVAL",
    )?;
    let interval_ms = interval.map(|(v, _)| v).unwrap_or(DEFAULT_INTERVAL_MS);
    if !INTERVAL_MS.contains(&interval_ms) {
        return Err(problem(
            interval.map(|(_, f)| f).unwrap_or("export.interval_ms"),
            format!(
                "{interval_ms} is out of range; use {} to {} (milliseconds)",
                INTERVAL_MS.start(),
                INTERVAL_MS.end()
            ),
        ));
    }
    let timeout = number(
        c.timeout_ms,
        "export.timeout_ms",
        env,
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    )?;
    let timeout_ms = match timeout {
        Some((ms, field)) => {
            if !(100..=interval_ms).contains(&ms) {
                return Err(problem(
                    field,
                    format!(
                        "{ms} is out of range; use 100 to interval_ms ({interval_ms}): an \
                         export must end before the next one starts"
                    ),
                ));
            }
            ms
        }
        None => default_timeout_ms(interval_ms),
    };
    let tls = TlsFiles {
        ca_file: pem_file(
            &c.otlp_ca_file,
            "export.otlp_ca_file",
            env,
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        )?,
        client: match (
            pem_file(
                &c.otlp_client_cert_file,
                "export.otlp_client_cert_file",
                env,
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            )?,
            pem_file(
                &c.otlp_client_key_file,
                "export.otlp_client_key_file",
                env,
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            )?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(problem(
                    "export.otlp_client_key_file",
                    "a client certificate needs its key (or OTEL_EXPORTER_OTLP_CLIENT_KEY)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(problem(
                    "export.otlp_client_cert_file",
                    "a client key needs its certificate (or \
                     OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)"
                        .into(),
                ));
            }
        },
    };
    Ok(OtlpSettings {
        endpoint: base.unwrap_or_else(|| metrics_url.clone()),
        metrics_url,
        logs_url,
        protocol,
        headers,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        compression,
        tls,
    })
}

/// The timeout when none is set: [`DEFAULT_TIMEOUT_MS`], or a share of a short interval.
pub fn default_timeout_ms(interval_ms: u64) -> u64 {
    DEFAULT_TIMEOUT_MS.min(interval_ms * DEFAULT_TIMEOUT_SHARE_PCT / 100)
}

/// A PEM file named by a key or variable: it must be readable and hold a PEM block
/// (checked here, so a typo is a config error, not a failing export).
fn pem_file(
    configured: &Option<String>,
    key: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<String>, Problem> {
    let Some((path, field)) = from_file_or_env(configured, key, env, var) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| problem(field, format!("cannot read \"{path}\": {e}")))?;
    if !text.contains("-----BEGIN ") {
        return Err(problem(
            field,
            format!("\"{path}\" holds no PEM block (\"-----BEGIN ...\"); give a PEM file"),
        ));
    }
    Ok(Some(path))
}

fn number(
    configured: Option<u64>,
    key: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<(u64, &'static str)>, Problem> {
    if let Some(v) = configured {
        return Ok(Some((v, key)));
    }
    env(var)
        .map(|text| {
            text.trim()
                .parse::<u64>()
                .map(|v| (v, var))
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
#[path = "export_tests.rs"]
mod tests;
