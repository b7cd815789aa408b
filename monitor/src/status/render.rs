//! Text rendering of a [`StatusReport`] for `monitor status`: the views (compact, the
//! list views, one call), and the pieces they share here (the COUNTERS section, units
//! for people, endpoints).

pub mod ago;
pub mod anomalies;
pub mod call;
pub mod calls;
pub mod compact;
pub mod filter;
pub mod fit;
pub mod limits;
pub mod views;

use super::model::{FlowStatus, StatusReport};

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn wrap(self, style: &str, text: &str) -> String {
        if self.0 && !style.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn title(self, out: &mut String, title: &str) {
        out.push('\n');
        out.push_str(&self.wrap(BOLD, title));
        out.push('\n');
    }
}

fn counters(out: &mut String, report: &StatusReport, paint: Paint) {
    paint.title(out, "COUNTERS");
    let c = &report.counters;
    let warn = |v: u64, style: &'static str| if v > 0 { style } else { "" };
    let mut rows: Vec<(String, u64, &str)> = vec![
        ("packets seen".into(), c.seen, ""),
        ("parsed".into(), c.parsed, ""),
        ("non-IP".into(), c.non_ip, ""),
        ("IPv4".into(), c.ipv4, ""),
        ("IPv6".into(), c.ipv6, ""),
        ("fragments".into(), c.fragments, ""),
        ("  attributed to flow".into(), c.fragments_matched, ""),
        (
            "  first not seen".into(),
            c.fragments_unmatched,
            warn(c.fragments_unmatched, YELLOW),
        ),
        ("Webex packets".into(), c.webex_packets, ""),
        ("not-Webex packets".into(), c.not_webex_packets, ""),
        ("flows created".into(), c.flows_created, ""),
        (
            "flows evicted".into(),
            c.flows_evicted,
            warn(c.flows_evicted, YELLOW),
        ),
        (
            "flow insert failures".into(),
            c.flow_insert_failed,
            warn(c.flow_insert_failed, RED),
        ),
        (
            "malformed".into(),
            c.malformed_total,
            warn(c.malformed_total, YELLOW),
        ),
    ];
    if c.stage_failed > 0 {
        rows.push(("kernel stage calls failed".into(), c.stage_failed, RED));
    }
    for (reason, count) in c.malformed.iter().filter(|(_, n)| **n > 0) {
        rows.push((format!("  {reason}"), *count, ""));
    }
    let mut table = Table::new(&[("", Align::Left), ("", Align::Right)]);
    for (label, value, style) in rows {
        table.row(vec![
            Cell::plain(label),
            Cell::styled(value.to_string(), style),
        ]);
    }
    table.write_body(out, paint);
}

/// `addr:port`, `[v6addr]:port`, or the bare address for protocols without ports.
pub fn endpoint(flow: &FlowStatus, addr: &str, port: u16) -> String {
    let has_ports = matches!(flow.protocol.as_str(), "udp" | "tcp");
    match (has_ports, addr.contains(':')) {
        (false, _) => addr.to_string(),
        (true, true) => format!("[{addr}]:{port}"),
        (true, false) => format!("{addr}:{port}"),
    }
}

/// Bytes in SI units: `512 B`, `1.2 kB`, `34.5 MB`, `1.0 GB`, ...
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people: `0.4s`, `42s`, `5m 03s`, `2h 05m`, `3d 04h`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    if seconds < 10.0 {
        return format!("{:.1}s", (seconds * 10.0).floor() / 10.0);
    }
    let s = seconds as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

struct Cell {
    text: String,
    style: &'static str,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Self {
        Cell::styled(text, "")
    }

    fn styled(text: impl Into<String>, style: &'static str) -> Self {
        Cell {
            text: text.into(),
            style,
        }
    }
}

/// Columns padded to their widest cell (measured without colour codes), two spaces
/// apart, indented by two.
struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    fn new(headers: &[(&'static str, Align)]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        widths
    }

    /// Rows only.
    fn write_body(&self, out: &mut String, paint: Paint) {
        for row in &self.rows {
            self.line(out, row, paint);
        }
    }

    fn line(&self, out: &mut String, cells: &[Cell], paint: Paint) {
        let widths = self.widths();
        let mut line = String::from(" ");
        for ((cell, width), (_, align)) in cells.iter().zip(&widths).zip(&self.headers) {
            let pad = " ".repeat(width - cell.text.chars().count());
            let text = paint.wrap(cell.style, &cell.text);
            line.push(' ');
            match align {
                Align::Left => {
                    line.push_str(&text);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(&text);
                }
            }
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::status::model::{Counters, DaemonInfo, InterfaceStatus, MapFill, SCHEMA_VERSION};
    use std::collections::BTreeMap;

    /// A fixed report used by the render, server and client tests.
    pub(crate) fn sample_report() -> StatusReport {
        let flow = |interface: &str, direction: &str, v6: bool| FlowStatus {
            interface: interface.into(),
            direction: direction.into(),
            protocol: "udp".into(),
            ip_version: if v6 { 6 } else { 4 },
            src_addr: Default::default(),
            src_port: 0,
            dst_addr: Default::default(),
            dst_port: 0,
            inner_addr: Default::default(),
            inner_port: 0,
            peer_addr: Default::default(),
            peer_port: 0,
            class: "media".into(),
            packets: 0,
            bytes: 0,
            fragments: 0,
            last_dscp: 46,
            age_s: 0.0,
            idle_s: 0.0,
            classified_by: None,
            dscp_class: None,
            dscp: None,
            icmp_unreachable: 0,
            icmp_frag_needed: 0,
            oversize: 0,
            handshake_pending: false,
            next_hop_mtu: 0,
        };
        let mut malformed = BTreeMap::new();
        malformed.insert("ipv4_bad_ihl".to_string(), 0);
        malformed.insert("truncated_l4".to_string(), 3);
        malformed.insert("vlan_too_deep".to_string(), 1);
        StatusReport {
            schema_version: SCHEMA_VERSION,
            daemon: DaemonInfo {
                version: "0.1.0".into(),
                pid: 4242,
                started_at_unix_s: 1_700_000_000,
                uptime_s: 7_500,
                config_path: "/etc/monitor/monitor.toml".into(),
                pin_path: "/sys/fs/bpf/monitor".into(),
                poll_interval_ms: 1000,
                snapshot_age_ms: 420,
                adopted_pinned_maps: true,
                pin_migrations: Vec::new(),
                last_poll_ms: 1.5,
                last_reload: None,
            },
            interfaces: vec![
                InterfaceStatus {
                    name: "eth0".into(),
                    ifindex: 2,
                    role: "wan".into(),
                    xdp_mode: "native".into(),
                    tc_attach: "tcx".into(),
                    state: "attached".into(),
                    reattached: 0,
                    ..Default::default()
                },
                InterfaceStatus {
                    name: "lan-bridge0".into(),
                    ifindex: 12,
                    role: "lan".into(),
                    xdp_mode: "generic".into(),
                    tc_attach: "netlink".into(),
                    state: "attached".into(),
                    reattached: 0,
                    ..Default::default()
                },
            ],
            maps: vec![
                MapFill {
                    name: "FLOWS".into(),
                    entries: 3,
                    max_entries: 65536,
                },
                MapFill {
                    name: "WEBEX_V4".into(),
                    entries: 41,
                    max_entries: 41,
                },
            ],
            counters: Counters {
                seen: 1_234_567,
                parsed: 1_234_560,
                non_ip: 7,
                ipv4: 1_200_000,
                ipv6: 34_560,
                fragments: 2,
                fragments_matched: 1,
                fragments_unmatched: 0,
                stage_failed: 0,
                webex_packets: 1_000_000,
                not_webex_packets: 234_560,
                flows_created: 3,
                flow_insert_failed: 0,
                flows_evicted: 0,
                malformed_total: 4,
                malformed,
            },
            flows_total: 0,
            flows: vec![
                FlowStatus {
                    src_addr: "192.0.2.20".into(),
                    src_port: 52004,
                    dst_addr: "203.0.113.5".into(),
                    dst_port: 5004,
                    inner_addr: "192.0.2.20".into(),
                    inner_port: 52004,
                    peer_addr: "203.0.113.5".into(),
                    peer_port: 5004,
                    packets: 98_765,
                    bytes: 1_234_567,
                    age_s: 325.4,
                    idle_s: 0.02,
                    ..flow("lan-bridge0", "ingress", false)
                },
                FlowStatus {
                    protocol: "tcp".into(),
                    src_addr: "2001:db8::5".into(),
                    src_port: 5061,
                    dst_addr: "2001:db8:1::20".into(),
                    dst_port: 40000,
                    inner_addr: "2001:db8:1::20".into(),
                    inner_port: 40000,
                    peer_addr: "2001:db8::5".into(),
                    peer_port: 5061,
                    class: "sip_signalling".into(),
                    packets: 120,
                    bytes: 999,
                    age_s: 90_061.0,
                    idle_s: 12.7,
                    ..flow("eth0", "ingress", true)
                },
                FlowStatus {
                    protocol: "icmp".into(),
                    inner_addr: "198.51.100.1".into(),
                    peer_addr: "203.0.113.5".into(),
                    class: "other_webex".into(),
                    packets: 1,
                    bytes: 84,
                    age_s: 3.0,
                    idle_s: 3.0,
                    ..flow("eth0", "egress", false)
                },
            ],
            anomalies: Vec::new(),
            calls: Vec::new(),
            call_records: Vec::new(),
            call_tracking: None,
            call_histograms: Vec::new(),
            call_window_observations: Vec::new(),
            media: Default::default(),
            export: None,
            dscp: Vec::new(),
            learned_peers: Vec::new(),
            learn: None,
            scale: Default::default(),
            detectors: Default::default(),
            flow_aggregates: None,
        }
    }

    #[test]
    fn a_limited_copy_is_the_copy_cut_to_the_busiest_flows() {
        let r = sample_report();
        for max in [0, 2, 3, 10] {
            let mut cut = r.clone();
            cut.limit_flows(max);
            assert_eq!(r.clone_limited(max), cut, "max {max}");
        }
        assert_eq!(r.clone_limited(2).flows_total, 3);
    }

    #[test]
    fn bytes_in_si_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(999_949), "999.9 kB");
        assert_eq!(human_bytes(999_950), "1.0 MB");
        assert_eq!(human_bytes(5_000_000_000), "5.0 GB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(0.0), "0.0s");
        assert_eq!(human_duration(0.42), "0.4s");
        assert_eq!(human_duration(9.99), "9.9s");
        assert_eq!(human_duration(10.0), "10s");
        assert_eq!(human_duration(59.9), "59s");
        assert_eq!(human_duration(60.0), "1m 00s");
        assert_eq!(human_duration(3599.0), "59m 59s");
        assert_eq!(human_duration(3600.0), "1h 00m");
        assert_eq!(human_duration(86_399.0), "23h 59m");
        assert_eq!(human_duration(86_400.0 * 3.0 + 3600.0 * 4.0), "3d 04h");
        assert_eq!(human_duration(-1.0), "-");
        assert_eq!(human_duration(f64::NAN), "-");
    }
}
