//! Call rows for the compact view, `monitor status calls|records` and `monitor top`:
//! worst first, the recent window's numbers, where the loss is.

use super::fit::{Cell, Column, Table};
use crate::report::calls::{CallRecord, CallStatus};

pub const RED: &str = "\x1b[31m";
pub const YELLOW: &str = "\x1b[33m";
pub const GREEN: &str = "\x1b[32m";

/// 2 critical, 1 warning, 0 ok (anything else).
pub fn health_rank(health: &str) -> u8 {
    match health {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

pub fn health_style(health: &str) -> &'static str {
    match health {
        "critical" => RED,
        "warning" => YELLOW,
        _ => "",
    }
}

/// The recent window's MOS (falling back to the call's), `None` without voice.
pub fn window_mos(c: &CallStatus) -> Option<f64> {
    c.window.mos.or(c.mos)
}

/// Worst first: health, then the lowest recent MOS, then the most recent loss; the call
/// ID last so the order is stable.
pub fn sort_worst_first(calls: &mut [&CallStatus]) {
    calls.sort_by(|a, b| {
        health_rank(&b.health)
            .cmp(&health_rank(&a.health))
            .then(
                window_mos(a)
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&window_mos(b).unwrap_or(f64::INFINITY)),
            )
            .then(b.window.loss_pct.total_cmp(&a.window.loss_pct))
            .then(a.id.cmp(&b.id))
    });
}

/// `addr:port` or `[v6]:port`.
pub fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// A segment and direction in a few characters: "phone>gw", "gw>wan", "gw>lan",
/// "isp>gw".
pub fn segment_short(segment: &str, direction: &str) -> String {
    match (segment, direction) {
        ("phone_to_gateway", _) => "phone>gw".into(),
        ("gateway", "to_webex") => "gw>wan".into(),
        ("gateway", _) => "gw>lan".into(),
        ("isp_from_webex", _) => "isp>gw".into(),
        (other, _) => other.into(),
    }
}

/// What is bad about a call, short: the lossy segment and its direction, else the first
/// threshold it breaches ("jitter", "mos", ...), "-" when healthy.
pub fn bad_where(c: &CallStatus) -> String {
    if let Some(segment) = &c.bad_segment {
        let direction = c
            .segments
            .iter()
            .filter(|s| &s.segment == segment)
            .max_by_key(|s| s.window_lost)
            .map_or("", |s| s.direction.as_str());
        return segment_short(segment, direction);
    }
    if health_rank(&c.health) == 0 {
        return "-".into();
    }
    c.breaches
        .first()
        .and_then(|b| b.split_whitespace().next())
        .unwrap_or("?")
        .to_lowercase()
}

pub fn pct(v: f64) -> String {
    format!("{v:.1}")
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

pub fn mos(v: f64) -> String {
    format!("{v:.1}")
}

/// The active-calls table: with `full`, also health, duration and packets.
pub fn calls_table(calls: &[&CallStatus], full: bool) -> Table {
    let mut columns = vec![
        Column::left("CALL", 8),
        Column::left("HOST:PORT", 9),
        Column::left("PEER", 7),
        // The peer's port: left out first when the width is short (the drill-down has it).
        Column::right("PORT", 4).optional(),
        Column::left("KIND", 3),
        Column::right("LOSS%", 5),
        Column::right("JITms", 5),
        Column::right("RTTms", 5),
        Column::right("MOS", 3),
        Column::left("BAD", 3),
    ];
    if full {
        columns.insert(1, Column::left("HEALTH", 4).optional());
        columns.push(Column::right("DUR", 3).optional());
        columns.push(Column::right("PKTS", 4).optional());
    }
    let mut table = Table::new(&columns);
    for c in calls {
        let style = health_style(&c.health);
        let window = c.window.expected > 0;
        let mut row = vec![
            Cell::styled(&c.id, style),
            Cell::plain(host_port(&c.inner_addr, c.inner_port)),
            Cell::plain(&c.peer_addr),
            Cell::plain(c.peer_port.to_string()),
            Cell::plain(&c.kind),
            Cell::styled(
                if window {
                    pct(c.window.loss_pct)
                } else {
                    "-".into()
                },
                style,
            ),
            Cell::plain(if window {
                ms(c.window.jitter_ms)
            } else {
                "-".into()
            }),
            Cell::plain(opt(c.rtt_ms, ms)),
            Cell::styled(opt(window_mos(c), mos), style),
            Cell::styled(bad_where(c), style),
        ];
        if full {
            row.insert(1, Cell::styled(&c.health, style));
            row.push(Cell::plain(super::super::render::human_duration(
                c.duration_s,
            )));
            row.push(Cell::plain(c.packets.to_string()));
        }
        table.row(row);
    }
    table
}

/// Call records, newest first as the daemon lists them.
pub fn records_table(records: &[&CallRecord], now: u64) -> Table {
    let mut table = Table::new(&[
        Column::left("CALL", 8),
        Column::left("HOST:PORT", 9),
        Column::left("PEER", 7),
        Column::left("KIND", 3),
        Column::left("ENDED", 5),
        Column::right("DUR", 3).optional(),
        Column::right("LOSS%", 5),
        Column::right("JITms", 5).optional(),
        Column::right("MOS", 3),
        Column::left("WORST", 4),
        Column::right("PKTS", 4).optional(),
    ]);
    for r in records {
        let style = health_style(&r.worst_health);
        let mos_range = match (r.mos_min, r.mos_mean) {
            (Some(min), Some(mean)) => format!("{min:.1}/{mean:.1}"),
            _ => "-".into(),
        };
        table.row(vec![
            Cell::styled(&r.id, style),
            Cell::plain(host_port(&r.inner_addr, r.inner_port)),
            Cell::plain(&r.peer_addr),
            Cell::plain(&r.kind),
            Cell::plain(super::ago::ago(now, r.ended_unix_s)),
            Cell::plain(super::super::render::human_duration(r.duration_s)),
            Cell::plain(pct(r.loss_pct)),
            Cell::plain(ms(r.jitter_ms)),
            Cell::plain(mos_range),
            Cell::styled(&r.worst_health, style),
            Cell::plain(r.packets.to_string()),
        ]);
    }
    table
}
