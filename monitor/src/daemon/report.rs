//! Turning a map snapshot into the status report.

use monitor_common::{FlowKey, FlowStats, MalformedReason};

use crate::fasthash::HashMap;
pub use crate::flows::text::{
    addr, busiest_key, flow_status, interface_names, interface_rank, protocol_name,
};
use crate::{
    kernel::snapshot::Snapshot,
    status::model::{
        Counters, DaemonInfo, FlowStatus, InterfaceStatus, SCHEMA_VERSION, StatusReport,
    },
};

/// What does not change while the daemon runs.
#[derive(Clone, Debug)]
pub struct StaticInfo {
    pub pid: u32,
    pub started_at_unix_s: u64,
    pub started_mono_ns: u64,
    pub config_path: String,
    pub pin_path: String,
    pub poll_interval_ms: u64,
    pub adopted_pinned_maps: bool,
    /// What an upgrade across a map layout change kept and did not keep, per map.
    pub pin_migrations: Vec<String>,
    pub interfaces: Vec<InterfaceStatus>,
    /// DSCP marks and modes, for the per-flow DSCP fields and compliance.
    pub dscp: crate::dscp::Setup,
    /// Call-quality thresholds (`[quality]`), for each call's health.
    pub quality: crate::config::quality::QualityConfig,
}

impl StaticInfo {
    /// What tools and tests need of a daemon that polls `interfaces` every second with
    /// the default marks and thresholds (no pid, config or pins).
    pub fn for_interfaces(interfaces: Vec<InterfaceStatus>) -> StaticInfo {
        StaticInfo {
            pid: 1,
            started_at_unix_s: 0,
            started_mono_ns: 0,
            config_path: String::new(),
            pin_path: String::new(),
            poll_interval_ms: 1000,
            adopted_pinned_maps: false,
            pin_migrations: Vec::new(),
            interfaces,
            dscp: Default::default(),
            quality: Default::default(),
        }
    }
}

/// The report of a single poll (calls start with it), for tests and tools; the daemon
/// follows calls across polls with [`build_tracked`].
pub fn build(info: &StaticInfo, snap: &Snapshot, now_mono_ns: u64) -> StatusReport {
    build_tracked(
        info,
        &info.interfaces,
        snap,
        now_mono_ns,
        &mut crate::quality::tracker::Tracker::new(),
    )
}

/// The report of one poll with the interfaces as they are now (they change when one is
/// deleted and comes back with a new ifindex) and the calls followed across polls by
/// `tracker`.
pub fn build_tracked(
    info: &StaticInfo,
    interfaces: &[InterfaceStatus],
    snap: &Snapshot,
    now_mono_ns: u64,
    tracker: &mut crate::quality::tracker::Tracker,
) -> StatusReport {
    let names = interface_names(interfaces);
    let flows: Vec<FlowStatus> = busiest_first(&snap.flows, &names)
        .into_iter()
        .map(|(k, v)| {
            let mut f = flow_status(k, v, &names, snap.taken_mono_ns);
            crate::dscp::annotate(&mut f, v, &info.dscp.marks);
            f
        })
        .collect();
    let dscp = crate::dscp::compliance(&flows);
    let mut report = assemble(info, interfaces, snap, now_mono_ns, tracker, flows, dscp);
    report.media = media(info, snap, &snap.flows);
    report
}

/// [`build_tracked`] with the flows' rows kept across polls by `rows` (text made only
/// for new and changed flows): the report's flows are in the rows' order, not sorted,
/// and lent by `rows` (give them back after the detectors); also returns what each
/// counted since the last poll and whether this is the first poll.
pub fn build_rows(
    info: &StaticInfo,
    interfaces: &[InterfaceStatus],
    snap: &Snapshot,
    now_mono_ns: u64,
    tracker: &mut crate::quality::tracker::Tracker,
    rows: &mut crate::flows::rows::FlowRows,
) -> (StatusReport, Vec<crate::anomaly::window::Counts>, bool) {
    let names = interface_names(interfaces);
    let polled = rows.update(&snap.flows, &names, &info.dscp.marks, snap.taken_mono_ns);
    // Compliance counts only the flows whose marks were checked: the rows know them.
    let dscp = crate::dscp::model::compliance(
        rows.of_interest(crate::flows::rows::Interest::DscpChecked)
            .iter()
            .filter_map(|&i| crate::dscp::marks(&polled.flows[i])),
    );
    let mut report = assemble(
        info,
        interfaces,
        snap,
        now_mono_ns,
        tracker,
        polled.flows,
        dscp,
    );
    // The timed handshakes from the rows' list, not a pass over every flow.
    report.media = media(info, snap, rows.handshakes());
    (report, polled.deltas, polled.baseline)
}

/// The report of a snapshot around its flows' statuses.
fn assemble(
    info: &StaticInfo,
    interfaces: &[InterfaceStatus],
    snap: &Snapshot,
    now_mono_ns: u64,
    tracker: &mut crate::quality::tracker::Tracker,
    flows: Vec<FlowStatus>,
    dscp: Vec<crate::dscp::model::DscpCompliance>,
) -> StatusReport {
    let calls = calls(info, snap, tracker);

    StatusReport {
        schema_version: SCHEMA_VERSION,
        daemon: DaemonInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: info.pid,
            started_at_unix_s: info.started_at_unix_s,
            uptime_s: now_mono_ns.saturating_sub(info.started_mono_ns) / 1_000_000_000,
            config_path: info.config_path.clone(),
            pin_path: info.pin_path.clone(),
            poll_interval_ms: info.poll_interval_ms,
            snapshot_age_ms: now_mono_ns.saturating_sub(snap.taken_mono_ns) / 1_000_000,
            adopted_pinned_maps: info.adopted_pinned_maps,
            pin_migrations: info.pin_migrations.clone(),
            last_poll_ms: snap.took_ns as f64 / 1e6,
            last_reload: None,
        },
        interfaces: interfaces.to_vec(),
        maps: snap.maps.clone(),
        counters: counters(&snap.counters, snap.flows.len() as u64),
        flows_total: flows.len() as u64,
        flows,
        anomalies: Vec::new(),
        calls: calls.calls,
        call_records: calls.records,
        call_tracking: Some(calls.tracking),
        call_histograms: calls.histograms,
        call_window_observations: calls.observations,
        // Filled by the caller from the flows it has at hand ([`media`]).
        media: Default::default(),
        export: None,
        dscp,
        learned_peers: Vec::new(),
        learn: None,
        scale: crate::report::scale::ScaleStatus {
            flow_tables: flow_tables(snap),
            ..Default::default()
        },
        detectors: Default::default(),
        flow_aggregates: None,
    }
}

/// Fill and evictions of the main and the media flow table.
fn flow_tables(snap: &Snapshot) -> crate::report::scale::FlowTables {
    let fill = |name: &str| {
        snap.maps
            .iter()
            .find(|m| m.name == name)
            .map_or((0, 0), |m| (m.entries, m.max_entries))
    };
    crate::report::scale::FlowTables::from_counts(
        snap.counters.flows_created,
        snap.counters.media_flows_created,
        fill(monitor_common::map_names::FLOWS),
        fill(monitor_common::map_names::MEDIA_FLOWS),
    )
}

/// The flows in [`busiest_key`] order.
fn busiest_first<'a>(
    flows: &'a crate::flows::table::FlowTable,
    names: &HashMap<u32, &str>,
) -> Vec<(&'a FlowKey, &'a FlowStats)> {
    let rank = interface_rank(names);
    let mut sorted: Vec<(&FlowKey, &FlowStats)> = flows.iter().collect();
    // Keys made once per flow, not once per comparison.
    sorted.sort_by_cached_key(|(k, v)| busiest_key(k, v, &rank));
    sorted
}

fn quality_ifaces(
    info: &StaticInfo,
) -> std::collections::HashMap<u32, crate::quality::calls::Iface<'_>> {
    info.interfaces
        .iter()
        .map(|i| {
            (
                i.ifindex,
                crate::quality::calls::Iface {
                    name: &i.name,
                    role: &i.role,
                },
            )
        })
        .collect()
}

/// Media counters and timed TCP handshakes (see `crate::quality::calls`).
fn media<'a>(
    info: &StaticInfo,
    snap: &Snapshot,
    flows: impl IntoIterator<Item = (&'a FlowKey, &'a FlowStats)>,
) -> crate::quality::model::MediaStatus {
    crate::quality::calls::media_status(flows, &snap.quality, &quality_ifaces(info))
}

/// The active calls and the records of ended ones (see `crate::quality::tracker`).
fn calls(
    info: &StaticInfo,
    snap: &Snapshot,
    tracker: &mut crate::quality::tracker::Tracker,
) -> crate::quality::tracker::Polled {
    let now_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tracker.poll(
        &snap.flows,
        &snap.quality,
        &quality_ifaces(info),
        &info.quality,
        snap.taken_mono_ns,
        now_unix_s,
    )
}

fn counters(c: &monitor_common::GlobalCounters, flows_present: u64) -> Counters {
    Counters {
        seen: c.seen,
        parsed: c.parsed,
        non_ip: c.non_ip,
        ipv4: c.ipv4,
        ipv6: c.ipv6,
        fragments: c.fragments,
        fragments_matched: c.fragments_matched,
        fragments_unmatched: c.fragments_unmatched,
        stage_failed: c.stage_failed,
        webex_packets: c.webex_packets,
        not_webex_packets: c.not_webex_packets,
        flows_created: c.flows_created,
        flow_insert_failed: c.flow_insert_failed,
        // The daemon never deletes flows, so every created flow not present any more was
        // evicted by the kernel's LRU (the least recently seen go first).
        flows_evicted: c.flows_created.saturating_sub(flows_present),
        malformed_total: c.malformed_total(),
        malformed: MalformedReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), c.malformed[*r as usize]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::model::MapFill;
    use monitor_common::{Class, WebexSide};

    fn info() -> StaticInfo {
        StaticInfo {
            pid: 7,
            started_at_unix_s: 1_700_000_000,
            started_mono_ns: 1_000_000_000,
            config_path: "/etc/monitor/monitor.toml".into(),
            pin_path: "/sys/fs/bpf/monitor".into(),
            poll_interval_ms: 1000,
            adopted_pinned_maps: false,
            pin_migrations: Vec::new(),
            interfaces: vec![InterfaceStatus {
                name: "wan0".into(),
                ifindex: 3,
                role: "wan".into(),
                xdp_mode: "native".into(),
                tc_attach: "tcx".into(),
                state: "attached".into(),
                reattached: 0,
                ..Default::default()
            }],
            dscp: Default::default(),
            quality: Default::default(),
        }
    }

    #[test]
    fn flows_are_busiest_first_then_by_interface_direction_and_numeric_address() {
        let key = |ifindex, direction, last: u8, port| FlowKey {
            src_addr: FlowKey::v4_mapped([192, 0, 2, last]),
            dst_addr: FlowKey::v4_mapped([203, 0, 113, 10]),
            ifindex,
            src_port: port,
            dst_port: 5004,
            protocol: 17,
            family: 4,
            direction,
            _pad: 0,
        };
        let stats = |packets| FlowStats {
            packets,
            class: Class::Media as u32,
            ..Default::default()
        };
        // ifindex 3 is wan0, 2 is lan0 (named after it), 9 has no name.
        let mut info = info();
        let mut lan = info.interfaces[0].clone();
        lan.name = "lan0".into();
        lan.ifindex = 2;
        info.interfaces.push(lan);
        let snap = Snapshot {
            flows: vec![
                (key(9, 0, 1, 1), stats(5)),
                (key(3, 0, 10, 1), stats(5)),
                (key(3, 0, 9, 1), stats(5)),
                (key(3, 1, 50, 1), stats(5)),
                (key(2, 0, 70, 1), stats(5)),
                (key(3, 0, 9, 0), stats(5)),
                (key(3, 0, 1, 1), stats(6)),
            ]
            .into(),
            ..Default::default()
        };
        let r = build(&info, &snap, 0);
        let order: Vec<(u64, &str, &str, &str, u16)> = r
            .flows
            .iter()
            .map(|f| {
                (
                    f.packets,
                    f.interface.as_str(),
                    f.direction.as_str(),
                    f.src_addr.as_str(),
                    f.src_port,
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                (6, "wan0", "ingress", "192.0.2.1", 1),
                (5, "lan0", "ingress", "192.0.2.70", 1),
                (5, "wan0", "egress", "192.0.2.50", 1),
                // Numerically, not as text: .9 before .10.
                (5, "wan0", "ingress", "192.0.2.9", 0),
                (5, "wan0", "ingress", "192.0.2.9", 1),
                (5, "wan0", "ingress", "192.0.2.10", 1),
                (5, "if9", "ingress", "192.0.2.1", 1),
            ]
        );
    }

    #[test]
    fn webex_side_picks_inner_and_peer_and_times_are_relative() {
        let key = FlowKey {
            src_addr: [0; 16],
            dst_addr: FlowKey::v4_mapped([203, 0, 113, 10]),
            ifindex: 3,
            src_port: 40000,
            dst_port: 5004,
            protocol: 17,
            family: 4,
            direction: 1,
            _pad: 0,
        };
        let mut src = FlowKey::v4_mapped([198, 51, 100, 1]);
        src[0] = 0;
        let key = FlowKey {
            src_addr: src,
            ..key
        };
        let stats = FlowStats {
            packets: 10,
            bytes: 2000,
            first_seen_ns: 2_000_000_000,
            last_seen_ns: 4_500_000_000,
            class: Class::Media as u32,
            last_dscp: 46,
            webex_side: WebexSide::Dst as u32,
            ..Default::default()
        };
        let snap = Snapshot {
            taken_mono_ns: 5_000_000_000,
            flows: vec![(key, stats)].into(),
            maps: vec![MapFill {
                name: "FLOWS".into(),
                entries: 1,
                max_entries: 1024,
            }],
            ..Default::default()
        };
        let r = build(&info(), &snap, 6_000_000_000);
        assert_eq!(r.daemon.uptime_s, 5);
        assert_eq!(r.daemon.snapshot_age_ms, 1000);
        let f = &r.flows[0];
        assert_eq!(f.interface, "wan0");
        assert_eq!(f.direction, "egress");
        assert_eq!(f.protocol, "udp");
        assert_eq!(f.inner_addr, "198.51.100.1");
        assert_eq!(f.inner_port, 40000);
        assert_eq!(f.peer_addr, "203.0.113.10");
        assert_eq!(f.peer_port, 5004);
        assert_eq!(f.class, "media");
        assert_eq!(f.age_s, 3.0);
        assert_eq!(f.idle_s, 0.5);
        assert_eq!(f.last_dscp, 46);
        assert_eq!(r.counters.malformed.len(), MalformedReason::ALL.len());
    }

    #[test]
    fn v6_addresses_and_unknown_interfaces() {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        a[15] = 1;
        assert_eq!(addr(6, &a).to_string(), "2001:db8::1");
        let key = FlowKey {
            src_addr: a,
            dst_addr: a,
            ifindex: 99,
            family: 6,
            protocol: 58,
            ..Default::default()
        };
        let f = flow_status(&key, &FlowStats::default(), &HashMap::default(), 0);
        assert_eq!(f.interface, "if99");
        assert_eq!(f.protocol, "icmpv6");
        assert_eq!(f.ip_version, 6);
        assert_eq!(f.class, "not_webex");
    }
}
