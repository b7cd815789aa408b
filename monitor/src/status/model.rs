//! The status report: what `monitor status --json` prints and what the daemon serves on
//! its Unix socket. This is a stable, documented schema (see README "Status JSON").
//! Fields are only ever added; a change that removes or renames one bumps
//! [`SCHEMA_VERSION`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use compact_str::CompactString;

use crate::report::flows::{CALL_CLASSES, FlowAggregate};

pub const SCHEMA_VERSION: u32 = 1;

/// Flows in a report served on the status socket: enough for any screen or script, and
/// a reply that stays small when the map holds a million flows.
pub const MAX_FLOWS_SERVED: usize = 1000;

impl StatusReport {
    /// Keeps the busiest `max` flows (the list is sorted busiest first) and records the
    /// total in `flows_total`.
    pub fn limit_flows(&mut self, max: usize) {
        self.flows_total = self.flows_total.max(self.flows.len() as u64);
        self.flows.truncate(max);
    }

    /// A copy with only the busiest `max` flows, without copying the others (a report
    /// can hold a million).
    pub fn clone_limited(&self, max: usize) -> StatusReport {
        // Every field by name, so a new one cannot be forgotten here.
        StatusReport {
            schema_version: self.schema_version,
            daemon: self.daemon.clone(),
            interfaces: self.interfaces.clone(),
            maps: self.maps.clone(),
            counters: self.counters.clone(),
            flows: self.flows[..self.flows.len().min(max)].to_vec(),
            flows_total: self.flows_total.max(self.flows.len() as u64),
            anomalies: self.anomalies.clone(),
            calls: self.calls.clone(),
            call_records: self.call_records.clone(),
            call_tracking: self.call_tracking.clone(),
            call_histograms: self.call_histograms.clone(),
            call_window_observations: self.call_window_observations.clone(),
            media: self.media.clone(),
            export: self.export.clone(),
            dscp: self.dscp.clone(),
            learned_peers: self.learned_peers.clone(),
            learn: self.learn.clone(),
            scale: self.scale.clone(),
            detectors: self.detectors.clone(),
            flow_aggregates: self.flow_aggregates.clone(),
        }
    }

    /// Totals of every flow per class, interface, direction, transport and IP version,
    /// sorted by those: the ones the analysis made before cutting the list, else from the
    /// flows listed.
    pub fn flow_totals(&self) -> Vec<FlowAggregate> {
        if let Some(a) = &self.flow_aggregates {
            return a.clone();
        }
        aggregate(&self.flows)
    }

    /// Cuts a finished poll's flows to what a reader shows: the busiest `served` (the
    /// status socket) and after them the busiest `call_flows` media flows among the rest
    /// (export's per-call series), with the totals of all kept in `flow_aggregates`. A
    /// million flows are then not kept (and copied) between polls.
    pub fn keep_shown_flows(&mut self, served: usize, call_flows: usize) {
        if self.flow_aggregates.is_none() {
            self.flow_aggregates = Some(aggregate(&self.flows));
        }
        self.flows_total = self.flows_total.max(self.flows.len() as u64);
        if self.flows.len() <= served {
            return;
        }
        // In place: moving a million flows to a second list would double the peak.
        let (mut seen, mut calls) = (0, 0);
        self.flows.retain(|f| {
            seen += 1;
            let keep =
                seen <= served || (calls < call_flows && CALL_CLASSES.contains(&f.class.as_str()));
            if seen > served && keep {
                calls += 1;
            }
            keep
        });
        self.flows.shrink_to_fit();
    }
}

/// Totals of `flows` per class, interface, direction, transport and IP version.
fn aggregate(flows: &[FlowStatus]) -> Vec<FlowAggregate> {
    // (class, interface, direction, protocol, IP version) -> (packets, bytes, flows)
    type Group<'a> = (&'a str, &'a str, &'a str, &'a str, u8);
    let mut agg: crate::fasthash::HashMap<Group<'_>, (u64, u64, u64)> = Default::default();
    for f in flows {
        let e = agg
            .entry((
                &f.class,
                &f.interface,
                &f.direction,
                &f.protocol,
                f.ip_version,
            ))
            .or_default();
        e.0 += f.packets;
        e.1 += f.bytes;
        e.2 += 1;
    }
    let mut out: Vec<FlowAggregate> = agg
        .into_iter()
        .map(
            |((class, interface, direction, protocol, ip_version), (p, b, n))| FlowAggregate {
                class: class.to_string(),
                interface: interface.to_string(),
                direction: direction.to_string(),
                protocol: protocol.to_string(),
                ip_version,
                packets: p,
                bytes: b,
                flows: n,
            },
        )
        .collect();
    out.sort();
    out
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub schema_version: u32,
    pub daemon: DaemonInfo,
    pub interfaces: Vec<InterfaceStatus>,
    pub maps: Vec<MapFill>,
    pub counters: Counters,
    /// Tracked flows, busiest first; on the status socket at most the busiest
    /// [`MAX_FLOWS_SERVED`] (export sees them all).
    pub flows: Vec<FlowStatus>,
    /// How many flows the map holds; more than `flows.len()` when the list was cut.
    #[serde(default)]
    pub flows_total: u64,
    /// Open anomalies (most severe first), then those cleared in the last 15 minutes.
    #[serde(default)]
    pub anomalies: Vec<crate::anomaly::Anomaly>,
    /// Active calls with their quality, busiest first (README "Call quality").
    #[serde(default)]
    pub calls: Vec<crate::report::calls::CallStatus>,
    /// Ended calls, newest first (README "Call quality: records").
    #[serde(default)]
    pub call_records: Vec<crate::report::calls::CallRecord>,
    /// The call windows and caps in effect; `null` when not built by a daemon poll.
    #[serde(default)]
    pub call_tracking: Option<crate::report::calls::CallTracking>,
    /// Histograms of the calls' window MOS, jitter and loss per class and interface
    /// (README "Call quality: histograms").
    #[serde(default)]
    pub call_histograms: Vec<crate::report::calls::WindowHistogram>,
    /// The latest observations behind `call_histograms`, for the OTLP exporter (not in
    /// the JSON).
    #[serde(skip)]
    pub call_window_observations: Vec<crate::report::calls::WindowObservation>,
    /// Media demultiplexing, STUN and TCP handshake RTT counters (README "Call quality").
    #[serde(default)]
    pub media: crate::report::calls::MediaStatus,
    /// OTLP export and Prometheus endpoint health; `null` when export is off.
    #[serde(default)]
    pub export: Option<ExportStatus>,
    /// DSCP compliance per interface, direction and class (README "DSCP").
    #[serde(default)]
    pub dscp: Vec<crate::dscp::model::DscpCompliance>,
    /// Webex peers learned from DNS answers and TLS server names (README "Learning
    /// peers"), by name.
    #[serde(default)]
    pub learned_peers: Vec<crate::report::learn::LearnedPeer>,
    /// Learning counters; `null` when the report was not built by a running daemon.
    #[serde(default)]
    pub learn: Option<crate::report::learn::LearnStatus>,
    /// The daemon's own load and caps: status socket clients (README "Scale and caps").
    #[serde(default)]
    pub scale: crate::report::scale::ScaleStatus,
    /// The failure detectors' tables: fill, cap, and what each dropped when full.
    #[serde(default)]
    pub detectors: crate::report::detectors::DetectorsStatus,
    /// Totals of every flow when `flows` was cut after the analysis (see
    /// [`StatusReport::keep_shown_flows`]), for export (not in the JSON); `None`: the
    /// list holds every flow.
    #[serde(skip)]
    pub flow_aggregates: Option<Vec<FlowAggregate>>,
}

/// How export is doing (README "Export").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ExportStatus {
    /// OTLP endpoint, `null` when only Prometheus is on.
    pub otlp_endpoint: Option<String>,
    /// "grpc" or "http/protobuf".
    pub otlp_protocol: Option<String>,
    /// Milliseconds between OTLP exports.
    pub interval_ms: u64,
    /// Per-export timeout in milliseconds.
    pub timeout_ms: u64,
    /// Address of the Prometheus endpoint, `null` when off.
    pub prometheus_listen: Option<String>,
    /// When the collector last accepted an export (Unix seconds).
    pub last_success_unix_s: Option<u64>,
    /// Metric exports the collector accepted.
    pub exported: u64,
    /// Metric exports dropped: failed, timed out, or skipped while one was in flight.
    /// Counters are cumulative, so the next accepted export carries the totals again.
    pub dropped: u64,
    /// Anomaly log records the collector accepted.
    pub log_records_exported: u64,
    /// Anomaly log records dropped because the retry queue was full.
    pub log_records_dropped: u64,
    /// The last export error, `null` after a success.
    pub last_error: Option<String>,
    /// The site every series is labelled with (resource `site.name`).
    #[serde(default)]
    pub site_name: String,
    /// Whether OTLP goes over TLS (an https:// endpoint).
    #[serde(default)]
    pub otlp_tls: bool,
    /// OTLP request compression: "none" or "gzip".
    #[serde(default)]
    pub otlp_compression: Option<String>,
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
    /// After an upgrade across a map layout change: per map, what was migrated and what
    /// was not kept (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pin_migrations: Vec<String>,
    /// How long the last poll of the maps took, in milliseconds.
    #[serde(default)]
    pub last_poll_ms: f64,
    /// The last SIGHUP reload, if any.
    #[serde(default)]
    pub last_reload: Option<crate::daemon::reload::ReloadStatus>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct InterfaceStatus {
    pub name: String,
    /// Its index now (0 while it does not exist).
    pub ifindex: u32,
    /// "lan" or "wan", from the config.
    pub role: String,
    /// XDP attach mode in effect on ingress: "native" or "generic", or "off" when the TC
    /// program runs on ingress instead (`xdp_mode = "off"`); "" when not attached.
    pub xdp_mode: String,
    /// How the egress TC program is attached: "tcx" or "netlink".
    pub tc_attach: String,
    /// "attached"; "down" (attached, but the interface is down or has no carrier);
    /// "missing" while it does not exist (deleted: the kernel dropped the programs with
    /// it); "waiting" when it has not existed since the daemon started (attached when it
    /// appears); "refused" when its link type is one the parser cannot read;
    /// "attach_failed" when attaching failed (see the log; tried again every poll).
    #[serde(default = "attached")]
    pub state: String,
    /// Times the programs were attached again after the interface came back.
    #[serde(default)]
    pub reattached: u32,
    /// The link type: "ethernet", "loopback", "ppp", "none (tun, wireguard)", ...
    #[serde(default)]
    pub link_type: String,
    /// `xdp_mode = "auto"` fell back to generic XDP: the driver refused native.
    #[serde(default)]
    pub xdp_fallback: bool,
    /// The program on ingress: "xdp", or "tc" with `xdp_mode = "off"` ("" when not
    /// attached).
    #[serde(default)]
    pub ingress_hook: String,
    /// The links are pinned: XDP and TC stay attached and counting while the daemon is
    /// stopped, restarted or upgraded (`monitor detach` removes them).
    #[serde(default)]
    pub pinned: bool,
    /// The programs were attached already (an earlier run) and this run swapped its own
    /// in atomically: no packet went unseen.
    #[serde(default)]
    pub adopted: bool,
    /// DSCP rewrite is configured on egress and the TC program runs here: Webex packets
    /// leave with their class's mark, also while the daemon is down.
    #[serde(default)]
    pub dscp_rewrite: bool,
    /// Earlier indexes of this interface (deleted and created again): their flows keep
    /// its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_ifindexes: Vec<u32>,
}

fn attached() -> String {
    "attached".to_string()
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
    /// Later fragments counted on their datagram's flow (by the first fragment's ports).
    #[serde(default)]
    pub fragments_matched: u64,
    /// Later fragments whose first fragment was not seen: on a port-less flow.
    #[serde(default)]
    pub fragments_unmatched: u64,
    /// Packets counted only here because the kernel's next stage could not be called.
    #[serde(default)]
    pub stage_failed: u64,
    pub webex_packets: u64,
    pub not_webex_packets: u64,
    pub flows_created: u64,
    pub flow_insert_failed: u64,
    /// Flows the kernel evicted from the full flow map (least recently seen first).
    #[serde(default)]
    pub flows_evicted: u64,
    pub malformed_total: u64,
    /// Per reason, by the stable names of `MalformedReason::as_str` (all reasons present).
    pub malformed: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FlowStatus {
    /// Interface name the flow was seen on.
    pub interface: CompactString,
    /// "ingress" (XDP) or "egress" (TC).
    pub direction: CompactString,
    /// "udp", "tcp", "icmp", "icmpv6" or the protocol number as a string.
    pub protocol: CompactString,
    /// 4 or 6.
    pub ip_version: u8,
    pub src_addr: CompactString,
    pub src_port: u16,
    pub dst_addr: CompactString,
    pub dst_port: u16,
    /// The non-Webex side of the flow (on the LAN side of a NAT, the inner host).
    pub inner_addr: CompactString,
    pub inner_port: u16,
    /// The Webex side of the flow.
    pub peer_addr: CompactString,
    pub peer_port: u16,
    /// Stable class name (`Class::as_str`), e.g. "media", "sip_signalling", "not_webex".
    pub class: CompactString,
    pub packets: u64,
    /// IP bytes (IP datagram lengths, no L2 header).
    pub bytes: u64,
    pub fragments: u64,
    pub last_dscp: u8,
    /// Seconds since the first packet.
    pub age_s: f64,
    /// Seconds since the last packet.
    pub idle_s: f64,
    /// How the class its marks are judged by was found: "port_range" (dedicated
    /// audio/video source ports), "profile" (media split by its measured packet sizes)
    /// or "port_rule" (the class of the Webex-side port).
    #[serde(default)]
    pub classified_by: Option<CompactString>,
    /// The class its marks are judged by: `class`, or "audio"/"video" for profiled media.
    #[serde(default)]
    pub dscp_class: Option<CompactString>,
    /// DSCP expected, matched, mismatched, rewritten and seen; `null` for non-Webex.
    #[serde(default)]
    pub dscp: Option<crate::dscp::model::FlowDscp>,
    /// ICMP destination-unreachable / ICMPv6 unreachable messages answering this flow
    /// (matched by the header they quote), fragmentation-needed excluded.
    #[serde(default)]
    pub icmp_unreachable: u64,
    /// ICMP fragmentation-needed / ICMPv6 Packet Too Big answering this flow.
    #[serde(default)]
    pub icmp_frag_needed: u64,
    /// Packets longer than `[mtu] path_mtu`.
    #[serde(default)]
    pub oversize: u64,
    /// TCP: a SYN of this flow is still waiting for its SYN/ACK (signalling and HTTPS
    /// control flows, whose handshakes the kernel times).
    #[serde(default)]
    pub handshake_pending: bool,
    /// The next-hop MTU the last fragmentation-needed / Packet Too Big answering this flow
    /// announced; 0 when none did.
    #[serde(default)]
    pub next_hop_mtu: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` flows of `class`, busiest first, with `packets` counting down from `n`.
    fn report(classes: &[&str]) -> StatusReport {
        let mut r = crate::status::render::tests::sample_report();
        let template = r.flows[0].clone();
        r.flows = classes
            .iter()
            .enumerate()
            .map(|(i, class)| FlowStatus {
                class: (*class).into(),
                src_port: i as u16,
                packets: (classes.len() - i) as u64,
                bytes: 100,
                ..template.clone()
            })
            .collect();
        r.flows_total = r.flows.len() as u64;
        r
    }

    #[test]
    fn kept_flows_are_the_served_then_the_busiest_media_and_totals_count_them_all() {
        let classes = [
            "sip_signalling",
            "media",
            "not_webex",
            "not_webex",
            "audio",
            "not_webex",
            "video",
            "media",
        ];
        let full = report(&classes);
        let mut r = full.clone();
        r.keep_shown_flows(3, 2);
        let ports: Vec<u16> = r.flows.iter().map(|f| f.src_port).collect();
        // The busiest 3 as they are, then 2 media flows of the rest (audio, video).
        assert_eq!(ports, [0, 1, 2, 4, 6]);
        assert_eq!(r.flows_total, 8);
        // The totals are those of all 8 flows, as computed from the uncut list.
        assert_eq!(r.flow_totals(), full.flow_totals());
        let not_webex = r
            .flow_totals()
            .into_iter()
            .find(|a| a.class == "not_webex")
            .unwrap();
        assert_eq!((not_webex.flows, not_webex.packets), (3, 6 + 5 + 3));
        assert_eq!(r.flow_totals().iter().map(|a| a.flows).sum::<u64>(), 8);
        // Served copies are cut to the first `max`, as before.
        assert_eq!(r.clone_limited(3).flows.len(), 3);
        // A list within `served` is kept whole.
        let mut small = report(&classes[..2]);
        small.keep_shown_flows(3, 2);
        assert_eq!(small.flows.len(), 2);
        assert_eq!(small.flow_totals(), report(&classes[..2]).flow_totals());
    }
}
