//! Text rendering of a [`StatusReport`] for `monitor status`: a header, then aligned
//! INTERFACES, MAPS, COUNTERS and FLOWS sections, readable at a glance.

pub mod ago;
pub mod anomalies;
pub mod call;
pub mod calls;
pub mod compact;
pub mod filter;
pub mod fit;
pub mod views;

use super::model::{FlowStatus, StatusReport};
use std::fmt::Write as _;

/// At most this many flows are listed (the busiest); `--json` has them all.
pub const MAX_FLOWS_SHOWN: usize = 25;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Renders `report`; with `color`, section titles and classes carry ANSI colours, and
/// without it the text has no escape codes at all.
pub fn render(report: &StatusReport, color: bool) -> String {
    let paint = Paint(color);
    let mut out = String::new();
    header(&mut out, report, paint);
    // Health first: what on-call needs before any table.
    out.push_str(&super::health::sections(report, color));
    out.push_str(&crate::quality::render::section(report, color));
    interfaces(&mut out, report, paint);
    maps(&mut out, report, paint);
    counters(&mut out, report, paint);
    flows(&mut out, report, paint);
    out.push_str(&crate::dscp::render::section(report, color));
    out.push_str(&crate::learn::render::section(report, color));
    out
}

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

fn header(out: &mut String, report: &StatusReport, paint: Paint) {
    let d = &report.daemon;
    let adopted = if d.adopted_pinned_maps { "yes" } else { "no" };
    let first = format!(
        "monitor {}  pid {}  up {}  snapshot {} old  adopted pinned maps: {adopted}",
        d.version,
        d.pid,
        human_duration(d.uptime_s as f64),
        human_duration(d.snapshot_age_ms as f64 / 1000.0),
    );
    out.push_str(&paint.wrap(BOLD, &first));
    out.push('\n');
    let _ = writeln!(
        out,
        "config {}  pins {}  poll every {} ms",
        d.config_path, d.pin_path, d.poll_interval_ms
    );
    // An upgrade across a map layout change: what was and was not kept.
    for line in &d.pin_migrations {
        let _ = writeln!(out, "upgrade: {line}");
    }
}

fn interfaces(out: &mut String, report: &StatusReport, paint: Paint) {
    paint.title(out, "INTERFACES");
    if report.interfaces.is_empty() {
        out.push_str("  none attached\n");
        return;
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("IFINDEX", Align::Right),
        ("ROLE", Align::Left),
        ("XDP", Align::Left),
        ("TC", Align::Left),
        ("STATE", Align::Left),
    ]);
    for i in &report.interfaces {
        let mut state = i.state.clone();
        if i.reattached > 0 {
            state.push_str(&format!(" (re-attached {}x)", i.reattached));
        }
        // What keeps working while the daemon is down.
        for (on, what) in [(i.pinned, ", pinned"), (i.dscp_rewrite, ", rewriting DSCP")] {
            if on {
                state.push_str(what);
            }
        }
        table.row(vec![
            Cell::plain(&i.name),
            Cell::plain(i.ifindex.to_string()),
            Cell::plain(&i.role),
            Cell::plain(&i.xdp_mode),
            Cell::plain(&i.tc_attach),
            Cell::plain(state),
        ]);
    }
    table.write(out, paint);
}

fn maps(out: &mut String, report: &StatusReport, paint: Paint) {
    paint.title(out, "MAPS");
    if report.maps.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("ENTRIES", Align::Right),
        ("MAX", Align::Right),
        ("FILL", Align::Right),
    ]);
    for m in &report.maps {
        let (fill, style) = if m.max_entries == 0 {
            ("-".to_string(), "")
        } else {
            let pct = m.entries as f64 * 100.0 / m.max_entries as f64;
            let style = if pct >= 90.0 {
                RED
            } else if pct >= 75.0 {
                YELLOW
            } else {
                ""
            };
            (format!("{pct:.1}%"), style)
        };
        table.row(vec![
            Cell::plain(&m.name),
            Cell::plain(m.entries.to_string()),
            Cell::plain(m.max_entries.to_string()),
            Cell::styled(fill, style),
        ]);
    }
    table.write(out, paint);
    scale_notes(out, &report.scale);
    detector_notes(out, &report.detectors);
}

/// One line each for what the daemon's caps turned away or folded, only when it did
/// (README "Scale and caps"; the numbers are in the JSON's `scale`).
fn scale_notes(out: &mut String, s: &crate::report::scale::ScaleStatus) {
    let t = &s.flow_tables;
    if t.media.evicted + t.other.evicted > 0 {
        out.push_str(&format!(
            "  flows evicted: media {} of {} created, other {} of {} (media flows have their \
             own table)\n",
            t.media.evicted, t.media.created, t.other.evicted, t.other.created
        ));
    }
    let a = &s.anomalies;
    if a.folded > 0 {
        out.push_str(&format!(
            "  anomalies folded: {} of {} findings into {} aggregates (at most {} per \
             detector)\n",
            a.folded, a.findings, a.aggregates, a.cap_per_id
        ));
    }
    let c = &s.status_socket;
    if c.refused_busy + c.closed_idle > 0 {
        out.push_str(&format!(
            "  status clients turned away: {} busy, {} silent connections closed (at most \
             {} at once)\n",
            c.refused_busy, c.closed_idle, c.max_clients
        ));
    }
}

/// One line per detector table that dropped entries because it was full (README
/// "Detector tables"; the numbers are in the JSON's `detectors`).
fn detector_notes(out: &mut String, d: &crate::report::detectors::DetectorsStatus) {
    for t in d.tables.iter().filter(|t| t.dropped > 0) {
        out.push_str(&format!(
            "  {} {} table full: {} dropped (at most {})\n",
            t.detector, t.table, t.dropped, t.cap
        ));
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

fn flows(out: &mut String, report: &StatusReport, paint: Paint) {
    let total = report.flows.len().max(report.flows_total as usize);
    let shown = report.flows.len().min(MAX_FLOWS_SHOWN);
    if total == 0 {
        paint.title(out, "FLOWS");
        out.push_str("  no Webex flows seen yet\n");
        return;
    }
    paint.title(out, &format!("FLOWS ({shown} of {total}, busiest first)"));
    let mut table = Table::new(&[
        ("IFACE", Align::Left),
        ("DIR", Align::Left),
        ("PROTO", Align::Left),
        ("INNER", Align::Left),
        ("WEBEX PEER", Align::Left),
        ("CLASS", Align::Left),
        ("PACKETS", Align::Right),
        ("BYTES", Align::Right),
        ("AGE", Align::Right),
        ("IDLE", Align::Right),
    ]);
    for f in &report.flows[..shown] {
        table.row(vec![
            Cell::plain(&f.interface),
            Cell::plain(&f.direction),
            Cell::plain(&f.protocol),
            Cell::plain(endpoint(f, &f.inner_addr, f.inner_port)),
            Cell::plain(endpoint(f, &f.peer_addr, f.peer_port)),
            Cell::styled(&f.class, class_style(&f.class)),
            Cell::plain(f.packets.to_string()),
            Cell::plain(human_bytes(f.bytes)),
            Cell::plain(human_duration(f.age_s)),
            Cell::plain(human_duration(f.idle_s)),
        ]);
    }
    table.write(out, paint);
    if shown < total {
        let _ = writeln!(
            out,
            "  ... and {} more (monitor status --json lists them all)",
            total - shown
        );
    }
}

fn class_style(class: &str) -> &'static str {
    match class {
        "audio" | "video" | "media" => GREEN,
        "sip_signalling" => CYAN,
        "https_control" | "stun_ice" | "dns" | "ntp" => BLUE,
        "not_webex" => DIM,
        _ => "",
    }
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

    /// Header line and rows.
    fn write(&self, out: &mut String, paint: Paint) {
        let header: Vec<Cell> = self
            .headers
            .iter()
            .map(|(h, _)| Cell::styled(*h, DIM))
            .collect();
        self.line(out, &header, paint);
        self.write_body(out, paint);
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
            src_addr: String::new(),
            src_port: 0,
            dst_addr: String::new(),
            dst_port: 0,
            inner_addr: String::new(),
            inner_port: 0,
            peer_addr: String::new(),
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

    const EXPECTED: &str = "\
monitor 0.1.0  pid 4242  up 2h 05m  snapshot 0.4s old  adopted pinned maps: yes
config /etc/monitor/monitor.toml  pins /sys/fs/bpf/monitor  poll every 1000 ms

HEALTH OK  (0 open anomalies)

ANOMALIES
  none

CALLS
  no active calls

INTERFACES
  NAME         IFINDEX  ROLE  XDP      TC       STATE
  eth0               2  wan   native   tcx      attached
  lan-bridge0       12  lan   generic  netlink  attached

MAPS
  NAME      ENTRIES    MAX    FILL
  FLOWS           3  65536    0.0%
  WEBEX_V4       41     41  100.0%

COUNTERS
  packets seen          1234567
  parsed                1234560
  non-IP                      7
  IPv4                  1200000
  IPv6                    34560
  fragments                   2
    attributed to flow        1
    first not seen            0
  Webex packets         1000000
  not-Webex packets      234560
  flows created               3
  flows evicted               0
  flow insert failures        0
  malformed                   4
    truncated_l4              3
    vlan_too_deep             1

FLOWS (3 of 3, busiest first)
  IFACE        DIR      PROTO  INNER                   WEBEX PEER          CLASS           PACKETS   BYTES     AGE  IDLE
  lan-bridge0  ingress  udp    192.0.2.20:52004        203.0.113.5:5004    media             98765  1.2 MB  5m 25s  0.0s
  eth0         ingress  tcp    [2001:db8:1::20]:40000  [2001:db8::5]:5061  sip_signalling      120   999 B  1d 01h   12s
  eth0         egress   icmp   198.51.100.1            203.0.113.5         other_webex           1    84 B    3.0s  3.0s
";

    #[test]
    fn renders_every_section_aligned() {
        assert_eq!(render(&sample_report(), false), EXPECTED);
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
    fn colour_only_adds_escape_codes() {
        let coloured = render(&sample_report(), true);
        assert!(coloured.contains("\x1b[1mINTERFACES\x1b[0m"));
        assert!(coloured.contains("\x1b[32mmedia\x1b[0m"));
        assert!(coloured.contains("\x1b[36msip_signalling\x1b[0m"));
        assert!(coloured.contains("\x1b[31m100.0%\x1b[0m"));
        assert!(coloured.contains("\x1b[33m4\x1b[0m"));
        let mut stripped = String::new();
        let mut rest = coloured.as_str();
        while let Some(start) = rest.find('\x1b') {
            stripped.push_str(&rest[..start]);
            let end = rest[start..].find('m').unwrap();
            rest = &rest[start + end + 1..];
        }
        stripped.push_str(rest);
        assert_eq!(stripped, EXPECTED);
        assert!(!render(&sample_report(), false).contains('\x1b'));
    }

    #[test]
    fn caps_that_acted_get_a_line_under_the_maps() {
        let mut r = sample_report();
        assert!(!render(&r, false).contains("evicted:"));
        r.scale.flow_tables.other.created = 9_988;
        r.scale.flow_tables.other.evicted = 5_892;
        r.scale.flow_tables.media.created = 12;
        r.scale.anomalies = crate::report::scale::AnomalyFolding {
            shown_per_id: 16,
            cap_per_id: 20,
            findings: 10_000,
            shown: 16,
            folded: 9_984,
            aggregates: 1,
        };
        r.scale.status_socket.refused_busy = 3;
        r.scale.status_socket.max_clients = 512;
        let text = render(&r, false);
        assert!(
            text.contains(
                "  WEBEX_V4       41     41  100.0%\n  flows evicted: media 0 of 12 created, other \
             5892 of 9988 (media flows have their own table)\n  anomalies folded: 9984 of \
             10000 findings into 1 aggregates (at most 20 per detector)\n  status clients \
             turned away: 3 busy, 0 silent connections closed (at most 512 at once)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_full_detector_table_gets_a_line_under_the_maps() {
        use crate::report::detectors::DetectorTable;
        let mut r = sample_report();
        r.detectors.tables = vec![
            DetectorTable::new("vpn_hairpin", "pool_hosts", 3, 1024, 0),
            DetectorTable::new("ssl_inspection", "connections", 1024, 1024, 7),
        ];
        let text = render(&r, false);
        assert!(
            text.contains(
                "  WEBEX_V4       41     41  100.0%\n  ssl_inspection connections table full: 7 \
                 dropped (at most 1024)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("pool_hosts"));
    }

    #[test]
    fn no_flows_says_so() {
        let mut report = sample_report();
        report.flows.clear();
        let text = render(&report, false);
        assert!(
            text.ends_with("\nFLOWS\n  no Webex flows seen yet\n"),
            "{text}"
        );
    }

    #[test]
    fn long_flow_lists_are_cut_with_a_pointer_to_json() {
        let mut report = sample_report();
        let first = report.flows[0].clone();
        report.flows = vec![first; MAX_FLOWS_SHOWN + 7];
        let text = render(&report, false);
        assert!(text.contains("\nFLOWS (25 of 32, busiest first)\n"));
        assert!(text.ends_with("\n  ... and 7 more (monitor status --json lists them all)\n"));
        assert_eq!(text.matches("192.0.2.20:52004").count(), MAX_FLOWS_SHOWN);
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
