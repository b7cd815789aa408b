//! The exported metrics, computed from one status report: every name, unit, type and
//! attribute lives here (README "Metrics" documents the same list), so OTLP and the
//! Prometheus endpoint cannot disagree.
//!
//! Cardinality is bounded by construction: aggregates are keyed by class, interface,
//! direction, transport and IP version (a few hundred series at most); per-call series
//! are limited to the `max_call_series` busiest media flows.

use std::collections::BTreeMap;

use crate::status::model::StatusReport;

/// OTel instrument kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic cumulative sum (Prometheus `counter`, name gets `_total`).
    Counter,
    /// Current value (Prometheus `gauge`).
    Gauge,
    /// Cumulative explicit-bucket histogram (Prometheus `histogram`: `_bucket`, `_sum`,
    /// `_count`); the call window histograms (`super::call_series`).
    Histogram,
}

/// One metric's identity.
#[derive(Debug, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    /// UCUM unit as OTel writes it.
    pub unit: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

/// An attribute value: semantic-convention ports are integers, the rest strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
        }
    }
}

/// One data point: attributes (in a fixed order) and a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub value: u64,
}

macro_rules! def {
    ($ident:ident, $name:literal, $unit:literal, $kind:ident, $desc:literal) => {
        pub const $ident: MetricDef = MetricDef {
            name: $name,
            unit: $unit,
            kind: Kind::$kind,
            description: $desc,
        };
    };
}
pub(crate) use def;

def!(
    PACKETS_SEEN,
    "monitor.packets.seen",
    "{packet}",
    Counter,
    "Packets the kernel programs saw, on all monitored interfaces and directions."
);
def!(
    PACKETS_PARSED,
    "monitor.packets.parsed",
    "{packet}",
    Counter,
    "Packets parsed far enough to classify."
);
def!(
    PACKETS_NON_IP,
    "monitor.packets.non_ip",
    "{packet}",
    Counter,
    "Packets that were not IPv4 or IPv6."
);
def!(
    PACKETS_IP,
    "monitor.packets.ip",
    "{packet}",
    Counter,
    "IP packets by network.type (ipv4, ipv6)."
);
def!(
    PACKETS_FRAGMENTS,
    "monitor.packets.fragments",
    "{packet}",
    Counter,
    "IP fragments."
);
def!(
    PACKETS_FRAGMENTS_UNMATCHED,
    "monitor.packets.fragments.unmatched",
    "{packet}",
    Counter,
    "Later IP fragments whose first fragment was not seen, counted on a port-less flow."
);
def!(
    PACKETS_STAGE_FAILED,
    "monitor.packets.stage_failed",
    "{packet}",
    Counter,
    "Packets counted only globally because a kernel tail call failed (never expected)."
);
def!(
    PACKETS_WEBEX,
    "monitor.packets.webex",
    "{packet}",
    Counter,
    "Packets to or from a Webex prefix."
);
def!(
    PACKETS_NOT_WEBEX,
    "monitor.packets.not_webex",
    "{packet}",
    Counter,
    "Packets not to or from a Webex prefix."
);
def!(
    PACKETS_MALFORMED,
    "monitor.packets.malformed",
    "{packet}",
    Counter,
    "Packets the parser rejected, by monitor.malformed.reason."
);
def!(
    FLOWS_CREATED,
    "monitor.flows.created",
    "{flow}",
    Counter,
    "Flows added to the kernel flow table."
);
def!(
    FLOWS_INSERT_FAILED,
    "monitor.flows.insert_failed",
    "{flow}",
    Counter,
    "Flows the kernel could not add (table full)."
);
def!(
    FLOWS_EVICTED,
    "monitor.flows.evicted",
    "{flow}",
    Counter,
    "Flows the kernel's LRU flow tables evicted to make room, per table (monitor.flow.table: media for audio, video and media flows, other for the rest; a full table: raise daemon.flow_table_size)."
);
def!(
    FLOW_PACKETS,
    "monitor.flow.packets",
    "{packet}",
    Counter,
    "Packets of the tracked flows, summed per class, interface, direction, transport and IP version."
);
def!(
    FLOW_BYTES,
    "monitor.flow.bytes",
    "By",
    Counter,
    "IP bytes of the tracked flows, summed like monitor.flow.packets."
);
def!(
    FLOW_ACTIVE,
    "monitor.flow.active",
    "{flow}",
    Gauge,
    "Tracked flows, counted like monitor.flow.packets."
);
def!(
    CALL_PACKETS,
    "monitor.call.packets",
    "{packet}",
    Counter,
    "Per-call media packets: one series per media flow (busiest first, capped by export.max_call_series)."
);
def!(
    CALL_BYTES,
    "monitor.call.bytes",
    "By",
    Counter,
    "Per-call media IP bytes, like monitor.call.packets."
);
def!(
    MAP_ENTRIES,
    "monitor.map.entries",
    "{entry}",
    Gauge,
    "Entries in each kernel map (monitor.map.name)."
);
def!(
    MAP_CAPACITY,
    "monitor.map.capacity",
    "{entry}",
    Gauge,
    "Capacity of each kernel map (monitor.map.name)."
);
def!(
    CONNTRACK_ENTRIES,
    "monitor.conntrack.entries",
    "{entry}",
    Gauge,
    "Entries in the gateway's conntrack table (nf_conntrack_count): every NAT binding is one."
);
def!(
    CONNTRACK_CAPACITY,
    "monitor.conntrack.capacity",
    "{entry}",
    Gauge,
    "Capacity of the gateway's conntrack table (nf_conntrack_max)."
);
def!(
    ANOMALIES_OPEN,
    "monitor.anomalies.open",
    "{anomaly}",
    Gauge,
    "Open anomalies by monitor.anomaly.id (the detector) and monitor.anomaly.severity (info, warning, critical); every detector's series is there, 0 when nothing is open."
);
def!(
    INTERFACE_UP,
    "monitor.interface.up",
    "{interface}",
    Gauge,
    "1 while the programs are attached to a configured interface that is up, else 0; monitor.interface.state says why (attached, down, missing, waiting, refused, attach_failed)."
);
def!(
    SNAPSHOT_AGE,
    "monitor.snapshot.age",
    "s",
    Gauge,
    "Age of the map snapshot behind this export, in whole seconds; grows when polling stalls."
);
def!(
    EXPORT_EXPORTED,
    "monitor.export.exported",
    "{export}",
    Counter,
    "OTLP exports the collector accepted."
);
def!(
    EXPORT_DROPPED,
    "monitor.export.dropped",
    "{export}",
    Counter,
    "OTLP exports dropped (failed, timed out, or skipped while one was in flight)."
);

def!(
    DSCP_PACKETS,
    "monitor.dscp.packets",
    "{packet}",
    Counter,
    "Webex packets checked against their class's expected DSCP mark, by monitor.dscp.result (matched, mismatched, rewritten; rewritten ones are also matched). Compliance = matched / (matched + mismatched)."
);

/// Every metric, in export order.
pub const ALL: &[&MetricDef] = &[
    &PACKETS_SEEN,
    &PACKETS_PARSED,
    &PACKETS_NON_IP,
    &PACKETS_IP,
    &PACKETS_FRAGMENTS,
    &PACKETS_FRAGMENTS_UNMATCHED,
    &PACKETS_STAGE_FAILED,
    &PACKETS_WEBEX,
    &PACKETS_NOT_WEBEX,
    &PACKETS_MALFORMED,
    &FLOWS_CREATED,
    &FLOWS_INSERT_FAILED,
    &FLOWS_EVICTED,
    &FLOW_PACKETS,
    &FLOW_BYTES,
    &FLOW_ACTIVE,
    &CALL_PACKETS,
    &CALL_BYTES,
    &MAP_ENTRIES,
    &MAP_CAPACITY,
    &CONNTRACK_ENTRIES,
    &CONNTRACK_CAPACITY,
    &ANOMALIES_OPEN,
    &INTERFACE_UP,
    &SNAPSHOT_AGE,
    &EXPORT_EXPORTED,
    &EXPORT_DROPPED,
    &DSCP_PACKETS,
];

/// The class of flow that per-call series are made from.
use crate::report::flows::CALL_CLASSES;

/// All series of one report, by metric name. Every metric in [`ALL`] has an entry.
pub type Series = BTreeMap<&'static str, Vec<Point>>;

fn s(v: impl Into<String>) -> AttrValue {
    AttrValue::Str(v.into())
}

fn single(value: u64) -> Vec<Point> {
    vec![Point {
        attrs: Vec::new(),
        value,
    }]
}

/// OTel `network.io.direction` for our "ingress"/"egress".
fn io_direction(direction: &str) -> &str {
    match direction {
        "ingress" => "receive",
        "egress" => "transmit",
        other => other,
    }
}

/// Computes every series from `report`, with at most `max_call_series` per-call series.
pub fn collect(report: &StatusReport, max_call_series: u32) -> Series {
    let c = &report.counters;
    let mut out = Series::new();
    out.insert(PACKETS_SEEN.name, single(c.seen));
    out.insert(PACKETS_PARSED.name, single(c.parsed));
    out.insert(PACKETS_NON_IP.name, single(c.non_ip));
    out.insert(
        PACKETS_IP.name,
        [("ipv4", c.ipv4), ("ipv6", c.ipv6)]
            .into_iter()
            .map(|(t, value)| Point {
                attrs: vec![("network.type", s(t))],
                value,
            })
            .collect(),
    );
    out.insert(PACKETS_FRAGMENTS.name, single(c.fragments));
    out.insert(
        PACKETS_FRAGMENTS_UNMATCHED.name,
        single(c.fragments_unmatched),
    );
    out.insert(PACKETS_STAGE_FAILED.name, single(c.stage_failed));
    out.insert(PACKETS_WEBEX.name, single(c.webex_packets));
    out.insert(PACKETS_NOT_WEBEX.name, single(c.not_webex_packets));
    out.insert(
        PACKETS_MALFORMED.name,
        c.malformed
            .iter()
            .map(|(reason, value)| Point {
                attrs: vec![("monitor.malformed.reason", s(reason))],
                value: *value,
            })
            .collect(),
    );
    out.insert(FLOWS_CREATED.name, single(c.flows_created));
    out.insert(FLOWS_INSERT_FAILED.name, single(c.flow_insert_failed));
    let tables = &report.scale.flow_tables;
    out.insert(
        FLOWS_EVICTED.name,
        [("media", &tables.media), ("other", &tables.other)]
            .into_iter()
            .map(|(table, t)| Point {
                attrs: vec![("monitor.flow.table", s(table))],
                value: t.evicted,
            })
            .collect(),
    );

    // Aggregates per class, interface, direction, transport and IP version.
    // Totals of every flow, also those the published report no longer lists.
    let mut agg: BTreeMap<[String; 5], (u64, u64, u64)> = BTreeMap::new();
    for a in report.flow_totals() {
        let key = [
            a.class,
            a.interface,
            io_direction(&a.direction).to_string(),
            a.protocol,
            format!("ipv{}", a.ip_version),
        ];
        let e = agg.entry(key).or_default();
        e.0 += a.packets;
        e.1 += a.bytes;
        e.2 += a.flows;
    }
    let agg_attrs = |k: &[String; 5]| {
        vec![
            ("monitor.class", s(&k[0])),
            ("network.interface.name", s(&k[1])),
            ("network.io.direction", s(&k[2])),
            ("network.transport", s(&k[3])),
            ("network.type", s(&k[4])),
        ]
    };
    let pick = |which: fn(&(u64, u64, u64)) -> u64| {
        agg.iter()
            .map(|(k, v)| Point {
                attrs: agg_attrs(k),
                value: which(v),
            })
            .collect::<Vec<_>>()
    };
    out.insert(FLOW_PACKETS.name, pick(|v| v.0));
    out.insert(FLOW_BYTES.name, pick(|v| v.1));
    out.insert(FLOW_ACTIVE.name, pick(|v| v.2));

    // Packets and bytes of the busiest media flows (one direction of one call leg on one
    // interface; `report.flows` is sorted busiest first), capped like the per-call
    // gauges of `super::call_series`.
    let calls: Vec<_> = report
        .flows
        .iter()
        .filter(|f| CALL_CLASSES.contains(&f.class.as_str()))
        .take(max_call_series as usize)
        .collect();
    let call_attrs = |f: &crate::status::model::FlowStatus| {
        vec![
            ("monitor.class", s(f.class.as_str())),
            ("network.interface.name", s(f.interface.as_str())),
            ("network.io.direction", s(io_direction(&f.direction))),
            ("network.transport", s(f.protocol.as_str())),
            ("network.local.address", s(f.inner_addr.as_str())),
            ("network.local.port", AttrValue::Int(f.inner_port.into())),
            ("network.peer.address", s(f.peer_addr.as_str())),
            ("network.peer.port", AttrValue::Int(f.peer_port.into())),
        ]
    };
    out.insert(
        CALL_PACKETS.name,
        calls
            .iter()
            .map(|f| Point {
                attrs: call_attrs(f),
                value: f.packets,
            })
            .collect(),
    );
    out.insert(
        CALL_BYTES.name,
        calls
            .iter()
            .map(|f| Point {
                attrs: call_attrs(f),
                value: f.bytes,
            })
            .collect(),
    );

    let map_points = |which: fn(&crate::status::model::MapFill) -> u64| {
        report
            .maps
            .iter()
            .map(|m| Point {
                attrs: vec![("monitor.map.name", s(&m.name))],
                value: which(m),
            })
            .collect::<Vec<_>>()
    };
    out.insert(MAP_ENTRIES.name, map_points(|m| m.entries));
    out.insert(MAP_CAPACITY.name, map_points(|m| m.max_entries));

    // Read when exported (two small procfs files of the daemon's network namespace);
    // no series when conntrack is not loaded.
    let (entries, capacity) = conntrack_usage();
    out.insert(
        CONNTRACK_ENTRIES.name,
        entries.map(single).unwrap_or_default(),
    );
    out.insert(
        CONNTRACK_CAPACITY.name,
        capacity.map(single).unwrap_or_default(),
    );

    // Every detector's id at every severity, open or not, so the series never vanish
    // (an alert on `> 0` sees the drop to 0); ids of other findings are added.
    use crate::anomaly::Severity;
    let mut ids: std::collections::BTreeSet<&str> = crate::anomaly::DETECTOR_IDS.into();
    ids.extend(report.anomalies.iter().map(|a| a.id.as_str()));
    out.insert(
        ANOMALIES_OPEN.name,
        ids.iter()
            .flat_map(|id| Severity::ALL.map(|sev| (*id, sev)))
            .map(|(id, sev)| Point {
                attrs: vec![
                    ("monitor.anomaly.id", s(id)),
                    ("monitor.anomaly.severity", s(sev.as_str())),
                ],
                value: report
                    .anomalies
                    .iter()
                    .filter(|a| a.cleared_unix_s.is_none() && a.severity == sev && a.id == id)
                    .count() as u64,
            })
            .collect(),
    );
    out.insert(
        INTERFACE_UP.name,
        report
            .interfaces
            .iter()
            .map(|i| Point {
                attrs: vec![
                    ("network.interface.name", s(&i.name)),
                    ("monitor.interface.state", s(&i.state)),
                ],
                value: u64::from(i.state == crate::kernel::attach::ATTACHED),
            })
            .collect(),
    );
    // Whole seconds (the base unit; the series carry integers): a stall of a poll
    // interval or more shows, sub-second jitter does not.
    out.insert(
        SNAPSHOT_AGE.name,
        single(report.daemon.snapshot_age_ms / 1000),
    );
    let (exported, dropped) = report
        .export
        .as_ref()
        .map(|e| (e.exported, e.dropped))
        .unwrap_or_default();
    out.insert(EXPORT_EXPORTED.name, single(exported));
    out.insert(EXPORT_DROPPED.name, single(dropped));
    // DSCP compliance rows: already aggregated per interface, direction and class.
    out.insert(
        DSCP_PACKETS.name,
        report
            .dscp
            .iter()
            .flat_map(|r| {
                [
                    ("matched", r.matched),
                    ("mismatched", r.mismatched),
                    ("rewritten", r.rewritten),
                ]
                .map(|(result, value)| Point {
                    attrs: vec![
                        ("monitor.class", s(&r.class)),
                        ("network.interface.name", s(&r.interface)),
                        ("network.io.direction", s(io_direction(&r.direction))),
                        ("monitor.dscp.result", s(result)),
                    ],
                    value,
                })
            })
            .collect(),
    );
    out
}

/// nf_conntrack_count and nf_conntrack_max, each `None` when unreadable.
fn conntrack_usage() -> (Option<u64>, Option<u64>) {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    };
    (read("nf_conntrack_count"), read("nf_conntrack_max"))
}

/// The most series one metric can have for a cap, for the SDK's cardinality limit:
/// anything above it would mean a bug here, and the SDK folds it into an overflow series
/// instead of growing.
pub fn cardinality_limit(max_call_series: u32) -> usize {
    // Aggregates: classes (~12) x interfaces (a handful) x 2 directions x transports x 2.
    2_000usize.max(max_call_series as usize + 100)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::status::render::tests::sample_report;

    #[test]
    fn every_metric_has_an_entry_and_unique_names() {
        let series = collect(&sample_report(), 10);
        for def in ALL {
            assert!(series.contains_key(def.name), "{}", def.name);
            assert!(def.name.starts_with("monitor."));
        }
        assert_eq!(series.len(), ALL.len());
    }

    #[test]
    fn interface_up_is_one_only_while_attached_and_names_the_state() {
        let mut report = sample_report();
        report.interfaces[1].state = "missing".into();
        let points = &collect(&report, 10)[INTERFACE_UP.name];
        let got: Vec<(AttrValue, AttrValue, u64)> = points
            .iter()
            .map(|p| (p.attrs[0].1.clone(), p.attrs[1].1.clone(), p.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (s("eth0"), s("attached"), 1),
                (s("lan-bridge0"), s("missing"), 0),
            ]
        );
    }

    #[test]
    fn aggregates_sum_flows_and_calls_are_capped() {
        let mut report = sample_report();
        let template = report.flows[0].clone();
        report.flows.clear();
        for i in 0..5u16 {
            let mut f = template.clone();
            f.class = "media".into();
            f.interface = "wan0".into();
            f.direction = "egress".into();
            f.protocol = "udp".into();
            f.ip_version = 4;
            f.inner_port = 40000 + i;
            f.packets = 100 - u64::from(i);
            f.bytes = 1000;
            report.flows.push(f);
        }
        let mut other = template.clone();
        other.class = "sip_signalling".into();
        other.protocol = "tcp".into();
        other.packets = 7;
        report.flows.push(other);

        let series = collect(&report, 3);
        let media = series[FLOW_PACKETS.name]
            .iter()
            .find(|p| p.attrs[0].1 == s("media"))
            .unwrap();
        assert_eq!(media.value, 100 + 99 + 98 + 97 + 96);
        assert_eq!(
            media.attrs,
            vec![
                ("monitor.class", s("media")),
                ("network.interface.name", s("wan0")),
                ("network.io.direction", s("transmit")),
                ("network.transport", s("udp")),
                ("network.type", s("ipv4")),
            ]
        );
        let active = series[FLOW_ACTIVE.name]
            .iter()
            .find(|p| p.attrs[0].1 == s("media"))
            .unwrap();
        assert_eq!(active.value, 5);
        assert_eq!(series[FLOW_BYTES.name].len(), 2);

        let calls = &series[CALL_PACKETS.name];
        assert_eq!(calls.len(), 3, "capped");
        assert_eq!(
            calls.iter().map(|p| p.value).collect::<Vec<_>>(),
            [100, 99, 98]
        );
        assert_eq!(
            calls[0].attrs[5],
            ("network.local.port", AttrValue::Int(40000))
        );
        assert!(collect(&report, 0)[CALL_BYTES.name].is_empty());
    }
}
