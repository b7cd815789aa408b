//! The sub-views of `monitor status`: calls, records, anomalies, flows, peers,
//! interfaces (and the full report of old), each fitted to the terminal's width.

use super::ago::{report_now, span};
use super::anomalies;
use super::calls::{calls_table, records_table, sort_worst_first};
use super::compact;
use super::fit::{Cell, Column, Table, paint};
use crate::report::calls::{CallRecord, CallStatus};
use crate::status::model::StatusReport;
use std::fmt::Write as _;

/// What `monitor status VIEW` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// Active calls, worst first, with health, duration and packets.
    Calls,
    /// Ended calls (call records), newest first.
    Records,
    /// Open and recently cleared anomalies, grouped by finding, each fix once.
    Anomalies,
    /// Tracked flows, busiest first.
    Flows,
    /// Webex peers learned from DNS and TLS.
    Peers,
    /// Monitored interfaces and map fill.
    Interfaces,
    /// One call in depth: `monitor status call ID`.
    Call,
    /// Every section in full: the views above, counters, DSCP compliance, export.
    Full,
}

const BOLD: &str = "\x1b[1m";

fn title(out: &mut String, color: bool, text: &str) {
    out.push('\n');
    out.push_str(&paint(color, BOLD, text));
    out.push('\n');
}

/// Renders one list view (not `call`, which needs an ID) of an already filtered report.
pub fn render(view: Option<View>, report: &StatusReport, width: usize, color: bool) -> String {
    let Some(view) = view else {
        return compact::render(report, width, color);
    };
    let mut out = compact::head(report, width, color).join("\n");
    out.push('\n');
    if view == View::Full {
        for part in [
            View::Anomalies,
            View::Calls,
            View::Records,
            View::Interfaces,
            View::Flows,
            View::Peers,
        ] {
            body(&mut out, part, report, width, color);
        }
        super::counters(&mut out, report, super::Paint(color));
        dscp(&mut out, report, width, color);
        export(&mut out, report, width);
    } else {
        body(&mut out, view, report, width, color);
    }
    out
}

/// The section of one view (without the head lines).
fn body(out: &mut String, view: View, report: &StatusReport, width: usize, color: bool) {
    let now = report_now(report);
    match view {
        View::Calls => {
            let mut calls: Vec<&CallStatus> = report.calls.iter().collect();
            sort_worst_first(&mut calls);
            title(
                out,
                color,
                &format!("CALLS ({} active, worst first)", calls.len()),
            );
            if calls.is_empty() {
                out.push_str("  none\n");
            } else {
                calls_table(&calls, true).write(out, width, color);
            }
        }
        View::Records => {
            let records: Vec<&CallRecord> = report.call_records.iter().collect();
            title(
                out,
                color,
                &format!("CALL RECORDS ({}, newest first)", records.len()),
            );
            if records.is_empty() {
                out.push_str("  none\n");
            } else {
                records_table(&records, now).write(out, width, color);
            }
        }
        View::Anomalies => {
            let findings = anomalies::group(&report.anomalies);
            title(
                out,
                color,
                &format!("ANOMALIES ({} findings)", findings.len()),
            );
            if findings.is_empty() {
                out.push_str("  none\n");
            }
            for f in &findings {
                anomalies::full(out, f, now, width, color);
            }
        }
        View::Flows => flows(out, report, width, color),
        View::Peers => peers(out, report, width, color),
        View::Interfaces => interfaces(out, report, width, color),
        View::Call | View::Full => unreachable!("handled by the caller"),
    }
}

/// DSCP compliance per interface, direction and class (totals since the daemon started).
fn dscp(out: &mut String, report: &StatusReport, width: usize, color: bool) {
    title(out, color, "DSCP (packets with the expected mark)");
    if report.dscp.is_empty() {
        out.push_str("  no packet checked yet\n");
        return;
    }
    let mut table = Table::new(&[
        Column::left("IFACE", 4),
        Column::left("DIR", 3),
        Column::left("CLASS", 5),
        Column::right("WANT", 4),
        Column::right("FLOWS", 5).optional(),
        Column::right("MATCHED", 4),
        Column::right("MISMATCHED", 4),
        Column::right("REWRITTEN", 4).optional(),
        Column::right("OK %", 4),
    ]);
    for d in &report.dscp {
        table.row(vec![
            Cell::plain(&d.interface),
            Cell::plain(
                d.direction
                    .replace("ingress", "in")
                    .replace("egress", "out"),
            ),
            Cell::plain(&d.class),
            Cell::plain(d.expected.map_or_else(|| "-".into(), |e| e.to_string())),
            Cell::plain(d.flows.to_string()),
            Cell::plain(d.matched.to_string()),
            Cell::plain(d.mismatched.to_string()),
            Cell::plain(d.rewritten.to_string()),
            Cell::plain(
                d.compliance_pct
                    .map_or_else(|| "-".into(), |p| format!("{p:.1}")),
            ),
        ]);
    }
    table.write(out, width, color);
}

/// Where export goes and how it is doing.
fn export(out: &mut String, report: &StatusReport, width: usize) {
    let Some(e) = &report.export else {
        return;
    };
    out.push_str("\nEXPORT\n");
    let now = report_now(report);
    let mut lines = Vec::new();
    if let Some(endpoint) = &e.otlp_endpoint {
        lines.push(format!(
            "  OTLP {} {endpoint} every {} ms: {} exported, {} dropped, last success {}",
            e.otlp_protocol.as_deref().unwrap_or("?"),
            e.interval_ms,
            e.exported,
            e.dropped,
            e.last_success_unix_s
                .map_or_else(|| "never".to_string(), |t| super::ago::ago(now, t))
        ));
    }
    if let Some(error) = &e.last_error {
        lines.push(format!("  last error: {error}"));
    }
    if let Some(listen) = &e.prometheus_listen {
        lines.push(format!("  Prometheus http://{listen}/metrics"));
    }
    for line in lines {
        out.push_str(&super::fit::cut(&line, width));
        out.push('\n');
    }
}

fn flows(out: &mut String, report: &StatusReport, width: usize, color: bool) {
    title(
        out,
        color,
        &format!("FLOWS ({}, busiest first)", report.flows.len()),
    );
    if report.flows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let mut table = Table::new(&[
        Column::left("IFACE", 4),
        Column::left("DIR", 3),
        Column::left("PROTO", 3),
        Column::left("INNER", 9),
        Column::left("WEBEX PEER", 9),
        Column::left("CLASS", 5),
        Column::right("PACKETS", 4),
        Column::right("BYTES", 5).optional(),
        Column::right("IDLE", 4).optional(),
    ]);
    for f in &report.flows {
        table.row(vec![
            Cell::plain(f.interface.as_str()),
            Cell::plain(
                f.direction
                    .replace("ingress", "in")
                    .replace("egress", "out"),
            ),
            Cell::plain(f.protocol.as_str()),
            Cell::plain(super::super::render::endpoint(
                f,
                &f.inner_addr,
                f.inner_port,
            )),
            Cell::plain(super::super::render::endpoint(f, &f.peer_addr, f.peer_port)),
            Cell::plain(f.class.as_str()),
            Cell::plain(f.packets.to_string()),
            Cell::plain(super::super::render::human_bytes(f.bytes)),
            Cell::plain(super::super::render::human_duration(f.idle_s)),
        ]);
    }
    table.write(out, width, color);
    if (report.flows_total as usize) > report.flows.len() {
        let _ = writeln!(
            out,
            "  ... {} more in the map (the daemon serves the busiest)",
            report.flows_total as usize - report.flows.len()
        );
    }
}

fn peers(out: &mut String, report: &StatusReport, width: usize, color: bool) {
    title(
        out,
        color,
        &format!("LEARNED PEERS ({})", report.learned_peers.len()),
    );
    if report.learned_peers.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let mut table = Table::new(&[
        Column::left("ADDRESS", 9),
        Column::left("NAME", 8),
        Column::left("SOURCE", 3),
        Column::right("FORGOTTEN IN", 5),
    ]);
    for p in &report.learned_peers {
        table.row(vec![
            Cell::plain(&p.addr),
            Cell::plain(&p.name),
            Cell::plain(&p.source),
            Cell::plain(span(p.expires_in_s)),
        ]);
    }
    table.write(out, width, color);
}

fn interfaces(out: &mut String, report: &StatusReport, width: usize, color: bool) {
    title(
        out,
        color,
        &format!("INTERFACES ({})", report.interfaces.len()),
    );
    if report.interfaces.is_empty() {
        out.push_str("  none attached\n");
    } else {
        let mut table = Table::new(&[
            Column::left("NAME", 4),
            Column::right("IFINDEX", 3),
            Column::left("ROLE", 3),
            Column::left("XDP", 3),
            Column::left("TC", 2),
            Column::left("STATE", 5),
        ]);
        for i in &report.interfaces {
            let mut state = if i.reattached > 0 {
                format!("{} (re-attached {}x)", i.state, i.reattached)
            } else {
                i.state.clone()
            };
            // What keeps working while the daemon is down (README "Never blind").
            for (on, what) in [(i.pinned, ", pinned"), (i.dscp_rewrite, ", rewriting DSCP")] {
                if on {
                    state.push_str(what);
                }
            }
            let style = if i.state == "attached" {
                ""
            } else {
                super::calls::RED
            };
            table.row(vec![
                Cell::plain(&i.name),
                Cell::plain(i.ifindex.to_string()),
                Cell::plain(&i.role),
                Cell::plain(&i.xdp_mode),
                Cell::plain(&i.tc_attach),
                Cell::styled(state, style),
            ]);
        }
        table.write(out, width, color);
    }
    title(out, color, "MAPS");
    let mut table = Table::new(&[
        Column::left("NAME", 6),
        Column::right("ENTRIES", 3),
        Column::right("MAX", 3),
        Column::right("FILL", 4),
    ]);
    for m in &report.maps {
        let fill = if m.max_entries == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", m.entries as f64 * 100.0 / m.max_entries as f64)
        };
        table.row(vec![
            Cell::plain(&m.name),
            Cell::plain(m.entries.to_string()),
            Cell::plain(m.max_entries.to_string()),
            Cell::plain(fill),
        ]);
    }
    table.write(out, width, color);
    for line in super::limits::notes(report) {
        out.push_str(&super::fit::cut(&format!("  {line}"), width));
        out.push('\n');
    }
}
