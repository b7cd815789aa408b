//! The status report: what `monitor status --json` prints and what the daemon serves on
//! its Unix socket. This is a stable, documented schema (see README "Status JSON").
//! Fields are only ever added; a change that removes or renames one bumps
//! [`SCHEMA_VERSION`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub schema_version: u32,
    pub daemon: DaemonInfo,
    pub interfaces: Vec<InterfaceStatus>,
    pub maps: Vec<MapFill>,
    pub counters: Counters,
    /// Tracked flows, busiest first.
    pub flows: Vec<FlowStatus>,
    /// Open anomalies (most severe first), then those cleared in the last 15 minutes.
    #[serde(default)]
    pub anomalies: Vec<crate::anomaly::Anomaly>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when this daemon process started.
    pub started_at_unix_s: u64,
    pub uptime_s: u64,
    pub config_path: String,
    pub pin_path: String,
    pub poll_interval_ms: u64,
    /// How old the map snapshot behind this report is.
    pub snapshot_age_ms: u64,
    /// True when this process found pinned maps from an earlier run and continued them.
    pub adopted_pinned_maps: bool,
    /// How long the last poll of the maps took, in milliseconds.
    #[serde(default)]
    pub last_poll_ms: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    /// "lan" or "wan", from the config.
    pub role: String,
    /// XDP attach mode in effect on ingress: "native" or "generic".
    pub xdp_mode: String,
    /// How the egress TC program is attached: "tcx" or "netlink".
    pub tc_attach: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MapFill {
    pub name: String,
    pub entries: u64,
    pub max_entries: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    pub seen: u64,
    pub parsed: u64,
    pub non_ip: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub fragments: u64,
    pub webex_packets: u64,
    pub not_webex_packets: u64,
    pub flows_created: u64,
    pub flow_insert_failed: u64,
    pub malformed_total: u64,
    /// Per reason, by the stable names of `MalformedReason::as_str` (all reasons present).
    pub malformed: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FlowStatus {
    /// Interface name the flow was seen on.
    pub interface: String,
    /// "ingress" (XDP) or "egress" (TC).
    pub direction: String,
    /// "udp", "tcp", "icmp", "icmpv6" or the protocol number as a string.
    pub protocol: String,
    /// 4 or 6.
    pub ip_version: u8,
    pub src_addr: String,
    pub src_port: u16,
    pub dst_addr: String,
    pub dst_port: u16,
    /// The non-Webex side of the flow (on the LAN side of a NAT, the inner host).
    pub inner_addr: String,
    pub inner_port: u16,
    /// The Webex side of the flow.
    pub peer_addr: String,
    pub peer_port: u16,
    /// Stable class name (`Class::as_str`), e.g. "media", "sip_signalling", "not_webex".
    pub class: String,
    pub packets: u64,
    /// IP bytes (IP datagram lengths, no L2 header).
    pub bytes: u64,
    pub fragments: u64,
    pub last_dscp: u8,
    /// Seconds since the first packet.
    pub age_s: f64,
    /// Seconds since the last packet.
    pub idle_s: f64,
}
