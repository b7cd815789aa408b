//! The daemon's configuration (`/etc/monitor/monitor.toml`): its schema with every
//! default, and its validation. A config is validated whole before the daemon touches
//! the kernel; a bad one is reported as one line naming the file, the field and the fix.

pub mod detect;
pub mod dscp;
pub mod export;
pub mod learn;
pub mod mtu;
mod ports;
mod prefix;
pub mod quality;
#[cfg(test)]
mod tests;

pub use dscp::{DscpConfig, DscpMode};
pub use ports::{PortRange, PortRangeError};
pub use prefix::{DEFAULT_WEBEX_PREFIXES, Prefix, PrefixError};

use serde::Deserialize;
use std::collections::HashSet;
use std::ffi::CString;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Where the daemon pins its maps by default.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/monitor";
/// Where the daemon serves status by default.
pub const DEFAULT_STATUS_SOCKET: &str = "/run/monitor/monitor.sock";
/// Valid `daemon.poll_interval_ms` values.
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_INTERFACE_NAME: usize = 15;
pub const POLL_INTERVAL_MS: RangeInclusive<u64> = 50..=60_000;
/// Valid `daemon.flow_table_size` values.
pub const FLOW_TABLE_SIZE: RangeInclusive<u32> = 256..=16_777_216;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[daemon]`: the daemon's own settings.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// `[[interfaces]]`: the monitored interfaces; at least one.
    #[serde(default)]
    pub interfaces: Vec<InterfaceConfig>,
    /// `[webex]`: how Webex peers are recognised.
    #[serde(default)]
    pub webex: WebexConfig,
    /// `[ports]`: the port rules that give a Webex flow its class.
    #[serde(default)]
    pub ports: PortsConfig,
    /// `[dscp]`: the mark each class should carry (see `config/dscp.rs`).
    #[serde(default)]
    pub dscp: DscpConfig,
    /// `[export]`: OTLP export and the Prometheus endpoint (see `config/export.rs`).
    #[serde(default)]
    pub export: export::ExportConfig,
    /// `[quality]`: call-quality thresholds (see `config/quality.rs`).
    #[serde(default)]
    pub quality: quality::QualityConfig,
    /// `[learn]`: learning Webex peers from DNS answers and TLS SNI (see `config/learn.rs`).
    #[serde(default)]
    pub learn: learn::LearnConfig,
    /// `[mtu]`: the path MTU packets are judged by (see `config/mtu.rs`).
    #[serde(default)]
    pub mtu: mtu::MtuConfig,
    /// `[detect]`: failure-detector thresholds (see `config/detect.rs`).
    #[serde(default)]
    pub detect: detect::DetectConfig,
}

/// `[daemon]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// bpffs directory where the maps are pinned, so a restart keeps the counters.
    /// Default `/sys/fs/bpf/monitor`; must be absolute.
    pub pin_path: PathBuf,
    /// Unix socket the daemon serves status on (root-only). Default
    /// `/run/monitor/monitor.sock`; must be absolute.
    pub status_socket: PathBuf,
    /// How often the maps are read, in milliseconds. Default 1000; 50 to 60000.
    pub poll_interval_ms: u64,
    /// Maximum entries of the LRU flow map. Default 65536; 256 to 16777216.
    pub flow_table_size: u32,
    /// Also keep non-Webex flows in the flow map (costs map space). Default false.
    pub track_all_flows: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            pin_path: PathBuf::from(DEFAULT_PIN_PATH),
            status_socket: PathBuf::from(DEFAULT_STATUS_SOCKET),
            poll_interval_ms: 1000,
            flow_table_size: 65536,
            track_all_flows: false,
        }
    }
}

/// `[[interfaces]]`: one monitored interface.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// Interface name; required. One that does not exist yet is waited for (an anomaly
    /// names it meanwhile).
    pub name: String,
    /// Which side of the site it faces; required.
    pub role: Role,
    /// How XDP is attached on ingress; `off` attaches TC on ingress instead. Default
    /// `auto`.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// DSCP of Webex packets arriving here: `off` or `verify`. Default `verify`.
    #[serde(default)]
    pub dscp_ingress: DscpMode,
    /// DSCP of Webex packets leaving here: `off`, `verify` or `rewrite` (set the
    /// class's mark). Default `verify`.
    #[serde(default)]
    pub dscp_egress: DscpMode,
}

/// Which side of the site an interface faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Towards the site's hosts and phones (inside the NAT).
    Lan,
    /// Towards the internet (outside the NAT).
    Wan,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Lan => "lan",
            Role::Wan => "wan",
        }
    }
}

/// XDP attach mode, or `off`: TC on ingress instead of XDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic with a warning.
    #[default]
    Auto,
    /// Native mode only; attaching fails if the driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works on every driver, slower.
    Generic,
    /// No XDP: the TC program runs on ingress too. For virtual gateways, where native
    /// XDP on a veth switches it to NAPI mode and costs the forwarding path more than
    /// the TC hook does.
    Off,
}

impl XdpMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Off => "off",
        }
    }
}

/// `[webex]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebexConfig {
    /// Include Cisco's published Webex ranges ([`DEFAULT_WEBEX_PREFIXES`]). Default true.
    pub use_default_prefixes: bool,
    /// Extra Webex prefixes, e.g. `"203.0.113.0/24"`, `"2001:db8::/32"`. Default none.
    pub prefixes: Vec<Prefix>,
    /// Split media into audio and video by the Webex App's dedicated source ports
    /// (52000-52049 audio, 52100-52199 video); turn on when the organisation enabled
    /// them in Control Hub. Default false.
    pub dedicated_port_ranges: bool,
}

impl Default for WebexConfig {
    fn default() -> Self {
        WebexConfig {
            use_default_prefixes: true,
            prefixes: Vec::new(),
            dedicated_port_ranges: false,
        }
    }
}

/// `[ports]`: ports on the Webex side of a flow; each entry a number or `"a-b"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsConfig {
    /// UDP media (SRTP, STUN, ...). Default 5004, 9000, 19560-65535.
    pub media_udp: Vec<PortRange>,
    /// SIP over TLS. Default 5061, 5062, 8934.
    pub sip_tcp: Vec<PortRange>,
    /// HTTPS control. Default 443.
    pub https_tcp: Vec<PortRange>,
    /// DNS, over UDP and TCP. Default 53.
    pub dns: Vec<PortRange>,
    /// NTP. Default 123.
    pub ntp_udp: Vec<PortRange>,
    /// Plain SIP over UDP (e.g. 5060), signalling like `sip_tcp`. Default none: Webex
    /// Calling signals over TLS; list it where devices or a Local Gateway use SIP/UDP.
    pub sip_udp: Vec<PortRange>,
}

impl Default for PortsConfig {
    fn default() -> Self {
        let singles = |ports: &[u16]| ports.iter().map(|&p| PortRange::single(p)).collect();
        let mut media_udp: Vec<PortRange> = singles(&[5004, 9000]);
        media_udp.push(PortRange {
            first: 19560,
            last: 65535,
        });
        PortsConfig {
            media_udp,
            sip_tcp: singles(&[5061, 5062, 8934]),
            https_tcp: singles(&[443]),
            dns: singles(&[53]),
            ntp_udp: singles(&[123]),
            sip_udp: Vec::new(),
        }
    }
}

/// A config that passed validation, with what the daemon derives from it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedConfig {
    pub config: Config,
    /// Interface indexes, in the order of `config.interfaces`; 0 for an interface that
    /// does not exist (yet): the daemon waits for it.
    pub ifindexes: Vec<u32>,
    /// Default prefixes (when enabled) then the configured ones, without duplicates.
    pub prefixes: Vec<Prefix>,
    /// The kernel port table: `ports::TABLE_ENTRIES` bytes, each a `Class as u8`.
    pub port_table: Vec<u8>,
}

/// A config that cannot be used. Display is one line naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not valid TOML.
    #[error("config {}: line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid TOML, but a field is wrong.
    #[error("config {}: {field}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// Reads and validates the config file at `path`, resolving interface names on this host.
pub fn load(path: &Path) -> Result<ValidatedConfig, ConfigError> {
    let text = read(path)?;
    parse_and_validate(&text, path, &if_nametoindex)
}

/// Parses and validates config text. `origin` names the file in errors;
/// `resolve_ifindex` maps an interface name to its index (`None`: no such interface).
pub fn parse_and_validate(
    text: &str,
    origin: &Path,
    resolve_ifindex: &dyn Fn(&str) -> Option<u32>,
) -> Result<ValidatedConfig, ConfigError> {
    let config: Config = deserialize(text, origin)?;
    let invalid = |field: String, problem: String| ConfigError::Invalid {
        path: origin.to_path_buf(),
        field,
        problem,
    };

    let d = &config.daemon;
    for (field, value) in [
        ("pin_path", &d.pin_path),
        ("status_socket", &d.status_socket),
    ] {
        if !value.is_absolute() {
            let problem = format!("\"{}\" is not an absolute path", value.display());
            return Err(invalid(format!("daemon.{field}"), problem));
        }
    }
    if !POLL_INTERVAL_MS.contains(&d.poll_interval_ms) {
        let problem = format!(
            "{} is out of range; use {} to {} (milliseconds)",
            d.poll_interval_ms,
            POLL_INTERVAL_MS.start(),
            POLL_INTERVAL_MS.end()
        );
        return Err(invalid("daemon.poll_interval_ms".into(), problem));
    }
    if !FLOW_TABLE_SIZE.contains(&d.flow_table_size) {
        let problem = format!(
            "{} is out of range; use {} to {} (flow map entries)",
            d.flow_table_size,
            FLOW_TABLE_SIZE.start(),
            FLOW_TABLE_SIZE.end()
        );
        return Err(invalid("daemon.flow_table_size".into(), problem));
    }

    if config.interfaces.is_empty() {
        return Err(invalid(
            "interfaces".into(),
            "no interface to monitor; add at least one [[interfaces]] section with a name \
             and a role (\"lan\" or \"wan\")"
                .into(),
        ));
    }
    let mut ifindexes = Vec::with_capacity(config.interfaces.len());
    for (i, interface) in config.interfaces.iter().enumerate() {
        let field = format!("interfaces[{i}].name");
        let name = &interface.name;
        if let Some(first) = config.interfaces[..i].iter().position(|x| x.name == *name) {
            let problem = format!(
                "\"{name}\" is already configured as interfaces[{first}]; list each interface once"
            );
            return Err(invalid(field, problem));
        }
        // One that does not exist yet (PPP, WireGuard, a VLAN made later) is waited for
        // by the daemon, loudly; a name that can never exist is refused here.
        if name.is_empty()
            || name.len() > MAX_INTERFACE_NAME
            || name.contains(|c: char| c == '/' || c.is_whitespace())
            || name == "."
            || name == ".."
        {
            let problem = format!(
                "\"{name}\" is not a valid interface name (1 to {MAX_INTERFACE_NAME} characters, \
                 no '/' or spaces; `ip link` lists them)"
            );
            return Err(invalid(field, problem));
        }
        ifindexes.push(resolve_ifindex(name).unwrap_or(0));
    }

    let mut prefixes = Vec::new();
    if config.webex.use_default_prefixes {
        for text in DEFAULT_WEBEX_PREFIXES {
            prefixes.push(text.parse::<Prefix>().expect("default prefixes are valid"));
        }
    }
    prefixes.extend(config.webex.prefixes.iter().copied());
    let mut seen = HashSet::new();
    prefixes.retain(|p| seen.insert(*p));

    let port_table = ports::build_table(&config.ports).map_err(|c| invalid(c.field, c.problem))?;
    dscp::validate(&config).map_err(|p| invalid(p.field, p.problem))?;
    quality::validate(&config.quality).map_err(|p| invalid(p.field.to_string(), p.problem))?;
    learn::validate(&config.learn).map_err(|p| invalid(p.field, p.problem))?;
    mtu::validate(&config.mtu).map_err(|p| invalid(p.field.to_string(), p.problem))?;
    detect::validate(&config.detect).map_err(|p| invalid(p.field.to_string(), p.problem))?;
    export::resolve(&config.export, &|name| std::env::var(name).ok())
        .map_err(|p| invalid(p.field, p.problem))?;

    Ok(ValidatedConfig {
        config,
        ifindexes,
        prefixes,
        port_table,
    })
}

/// The status socket named in the config at `path`, or the default when it names none.
///
/// A lightweight read for `monitor status --config`: only `daemon.status_socket` is
/// looked at; the rest of the file is not validated.
pub fn read_status_socket(path: &Path) -> Result<PathBuf, ConfigError> {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        daemon: PartialDaemon,
    }
    #[derive(Deserialize, Default)]
    struct PartialDaemon {
        status_socket: Option<PathBuf>,
    }
    let text = read(path)?;
    let partial: Partial = deserialize(&text, path)?;
    Ok(partial
        .daemon
        .status_socket
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATUS_SOCKET)))
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Deserializes TOML, turning errors into one line with the field path and position.
fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
) -> Result<T, ConfigError> {
    let error = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = one_line(inner.message());
    let (line, column) = inner
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((1, 1));
    if path == "." {
        return Err(ConfigError::Syntax {
            path: origin.to_path_buf(),
            line,
            column,
            message,
        });
    }
    // Serde names an unknown key in the message; the field to report is its table.
    let (field, problem) = if message.starts_with("unknown field") {
        let table = match path.rsplit_once('.') {
            Some((table, _)) => format!("[{table}]"),
            None => "top level".to_string(),
        };
        (table, with_suggestion(&message))
    } else {
        (path, message)
    };
    Err(ConfigError::Invalid {
        path: origin.to_path_buf(),
        field,
        problem: format!("{problem} (line {line}, column {column})"),
    })
}

/// Joins a multi-line parser message into one line.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of `a`, `b`"
/// when one expected name is a near miss (a typo, or a name containing the unknown one).
fn with_suggestion(message: &str) -> String {
    let names: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let Some((unknown, expected)) = names.split_first() else {
        return message.to_string();
    };
    let allowed = (unknown.chars().count() / 3).min(2);
    let typo = expected
        .iter()
        .filter(|name| edit_distance(unknown, name) <= allowed)
        // Closest first; among equals, the one sharing the longest start.
        .min_by_key(|name| {
            let shared = unknown
                .chars()
                .zip(name.chars())
                .take_while(|(a, b)| a == b)
                .count();
            (edit_distance(unknown, name), std::cmp::Reverse(shared))
        })
        .copied();
    let containing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|name| unknown.len() >= 3 && name.contains(unknown))
        .collect();
    match (typo, containing.as_slice()) {
        (Some(name), _) | (None, &[name]) => format!("{message}; did you mean `{name}`?"),
        _ => message.to_string(),
    }
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The host's interface index for `name` (`if_nametoindex(3)`).
fn if_nametoindex(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}
