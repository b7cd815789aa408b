//! `monitor status call ID`: one call in depth — its recent window and whole-call
//! figures, each segment's loss, both legs, every stream, its window history (one row
//! per poll, newest last), and (for an ended call) its record.

use super::ago::{ago, report_now, span};
use super::calls::{health_style, host_port, ms, opt, pct, segment_short, window_mos};
use super::fit::{Cell, Column, Table, cut, paint};
use crate::report::calls::{CallRecord, CallStatus, HistoryPoint, SegmentStatus, WindowStatus};
use crate::status::model::StatusReport;
use std::fmt::Write as _;

const BOLD: &str = "\x1b[1m";

/// What `monitor status call ID` found.
pub enum Found<'a> {
    Active(&'a CallStatus),
    Ended(&'a CallRecord),
}

impl Found<'_> {
    /// The health the drill-down exits with: the call's now, a record's worst.
    pub fn health(&self) -> &str {
        match self {
            Found::Active(c) => &c.health,
            Found::Ended(r) => &r.worst_health,
        }
    }
}

/// The active call or record with this ID (case-insensitive).
pub fn find<'a>(report: &'a StatusReport, id: &str) -> Option<Found<'a>> {
    report
        .calls
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(id))
        .map(Found::Active)
        .or_else(|| {
            report
                .call_records
                .iter()
                .find(|r| r.id.eq_ignore_ascii_case(id))
                .map(Found::Ended)
        })
}

fn title(out: &mut String, color: bool, text: &str) {
    out.push('\n');
    out.push_str(&paint(color, BOLD, text));
    out.push('\n');
}

fn line(out: &mut String, width: usize, text: &str) {
    out.push_str(&cut(text, width));
    out.push('\n');
}

fn window_text(w: &WindowStatus) -> String {
    format!(
        "loss {}% ({} of {}), jitter {} ms, MOS {}{}",
        pct(w.loss_pct),
        w.lost,
        w.expected,
        ms(w.jitter_ms),
        opt(w.mos, |m| format!("{m:.2}")),
        if w.sufficient {
            ""
        } else {
            " (too few packets for a verdict)"
        }
    )
}

/// The drill-down text.
pub fn render(report: &StatusReport, found: &Found, width: usize, color: bool) -> String {
    let now = report_now(report);
    let mut out = String::new();
    match found {
        Found::Active(c) => {
            let head = format!(
                "CALL {}  {} {} -> {}  {}",
                c.id,
                c.kind,
                host_port(&c.inner_addr, c.inner_port),
                host_port(&c.peer_addr, c.peer_port),
                c.health.to_uppercase()
            );
            let head = cut(&head, width);
            let word = c.health.to_uppercase();
            out.push_str(&head.replacen(&word, &paint(color, health_style(&c.health), &word), 1));
            out.push('\n');
            line(
                &mut out,
                width,
                &format!(
                    "  active, started {}, last packet {}; {} packets, media {}",
                    ago(now, now.saturating_sub(c.duration_s as u64)),
                    ago(now, now.saturating_sub(c.idle_s as u64)),
                    c.packets,
                    c.direction.replace('_', " ")
                ),
            );
            line(
                &mut out,
                width,
                &format!(
                    "  window {} s: {}",
                    c.window.seconds,
                    window_text(&c.window)
                ),
            );
            line(
                &mut out,
                width,
                &format!(
                    "  whole call: loss {}%, jitter {} ms; RTT {} ms; MOS {} {}",
                    pct(c.loss_pct),
                    ms(c.jitter_ms),
                    opt(c.rtt_ms, ms),
                    opt(window_mos(c), |m| format!("{m:.2}")),
                    c.mos_codec
                ),
            );
            if !c.breaches.is_empty() {
                line(
                    &mut out,
                    width,
                    &format!("  breaches: {}", c.breaches.join("; ")),
                );
            }
            if let Some(s) = &c.bad_segment {
                line(&mut out, width, &format!("  the loss is on: {s}"));
            }
            segments(&mut out, &c.segments, width, color);
            let rows = c
                .legs
                .iter()
                .map(|l| {
                    let mut row = leg_cells(
                        &l.direction,
                        &l.measured_at,
                        l.packets,
                        l.expected,
                        l.lost,
                        l.loss_pct,
                    );
                    row.extend([
                        Cell::plain(l.duplicates.to_string()),
                        Cell::plain(l.reordered.to_string()),
                        Cell::plain(ms(l.jitter_ms)),
                    ]);
                    row
                })
                .collect();
            let extra = [
                Column::right("DUP", 3).optional(),
                Column::right("REORD", 3).optional(),
                Column::right("JITms", 5),
            ];
            legs(&mut out, &extra, rows, width, color);
            title(&mut out, color, "STREAMS (window and last poll)");
            let mut streams = Table::new(&[
                Column::left("AT", 5),
                Column::left("SSRC", 8),
                Column::right("PT", 2),
                Column::left("MEDIA", 3),
                Column::right("PKTS", 4),
                Column::right("LOST", 4),
                Column::right("WIN LOST/EXP", 5),
                Column::right("JITms", 5),
                Column::right("MOS", 3),
                Column::right("POLL LOST/EXP", 5).optional(),
                Column::right("PPS", 3).optional(),
            ]);
            for l in &c.legs {
                for s in &l.streams {
                    streams.row(vec![
                        Cell::plain(format!(
                            "{} {}",
                            s.interface,
                            if s.direction == "ingress" {
                                "in"
                            } else {
                                "out"
                            }
                        )),
                        Cell::plain(format!("{:08x}", s.ssrc)),
                        Cell::plain(s.payload_type.to_string()),
                        Cell::plain(&s.media),
                        Cell::plain(s.packets.to_string()),
                        Cell::plain(s.call_lost.to_string()),
                        Cell::plain(format!("{}/{}", s.window_lost, s.window_expected)),
                        Cell::plain(ms(s.window_jitter_ms)),
                        Cell::plain(opt(s.mos, |m| format!("{m:.2}"))),
                        Cell::plain(format!("{}/{}", s.last_poll.lost, s.last_poll.expected)),
                        Cell::plain(format!("{:.0}", s.packets_per_s)),
                    ]);
                }
            }
            streams.write(&mut out, width, color);
            history(&mut out, &c.window_history, (now, "ago"), width, color);
        }
        Found::Ended(r) => {
            let word = r.worst_health.to_uppercase();
            let head = cut(
                &format!(
                    "CALL {}  {} {} -> {}  ended, worst {}",
                    r.id,
                    r.kind,
                    host_port(&r.inner_addr, r.inner_port),
                    host_port(&r.peer_addr, r.peer_port),
                    word
                ),
                width,
            );
            out.push_str(&head.replacen(
                &word,
                &paint(color, health_style(&r.worst_health), &word),
                1,
            ));
            out.push('\n');
            line(
                &mut out,
                width,
                &format!(
                    "  started {}, ended {}, lasted {}; {} packets",
                    ago(now, r.started_unix_s),
                    ago(now, r.ended_unix_s),
                    super::super::render::human_duration(r.duration_s),
                    r.packets
                ),
            );
            line(
                &mut out,
                width,
                &format!(
                    "  whole call: loss {}%, jitter {} ms, RTT {} ms, MOS min {} mean {}",
                    pct(r.loss_pct),
                    ms(r.jitter_ms),
                    opt(r.rtt_ms, ms),
                    opt(r.mos_min, |m| format!("{m:.2}")),
                    opt(r.mos_mean, |m| format!("{m:.2}")),
                ),
            );
            if let Some(w) = &r.worst_window {
                line(
                    &mut out,
                    width,
                    &format!("  worst window: {}", window_text(w)),
                );
            }
            segments(&mut out, &r.segments, width, color);
            let rows = r
                .legs
                .iter()
                .map(|l| {
                    leg_cells(
                        &l.direction,
                        &l.measured_at,
                        l.packets,
                        l.expected,
                        l.lost,
                        l.loss_pct,
                    )
                })
                .collect();
            legs(&mut out, &[], rows, width, color);
            history(
                &mut out,
                &r.window_history,
                (r.ended_unix_s, "before end"),
                width,
                color,
            );
        }
    }
    out
}

/// The LEGS table: each direction where it is measured, with `extra` columns.
fn legs(out: &mut String, extra: &[Column], rows: Vec<Vec<Cell>>, width: usize, color: bool) {
    title(out, color, "LEGS");
    let mut columns = vec![
        Column::left("DIR", 4),
        Column::left("MEASURED AT", 6),
        Column::right("PKTS", 4),
        Column::right("EXP", 3),
        Column::right("LOST", 4),
        Column::right("LOSS%", 5),
    ];
    columns.extend_from_slice(extra);
    let mut table = Table::new(&columns);
    for row in rows {
        table.row(row);
    }
    table.write(out, width, color);
}

/// The cells every leg has (the first six LEGS columns).
fn leg_cells(
    direction: &str,
    measured_at: &str,
    packets: u64,
    expected: u64,
    lost: u64,
    loss_pct: f64,
) -> Vec<Cell> {
    vec![
        Cell::plain(direction.replace('_', " ")),
        Cell::plain(measured_at),
        Cell::plain(packets.to_string()),
        Cell::plain(expected.to_string()),
        Cell::plain(lost.to_string()),
        Cell::plain(pct(loss_pct)),
    ]
}

fn segments(out: &mut String, segments: &[SegmentStatus], width: usize, color: bool) {
    title(out, color, "WHERE THE LOSS HAPPENS");
    if segments.is_empty() {
        let _ = writeln!(out, "  no segment measured");
        return;
    }
    let mut table = Table::new(&[
        Column::left("SEGMENT", 6),
        Column::left("MEASURED", 6).optional(),
        Column::right("LOST/EXP", 5),
        Column::right("LOSS%", 5),
        Column::right("WIN LOST/EXP", 5),
        Column::right("WIN%", 4),
    ]);
    for s in segments {
        let style = if s.window_lost > 0 {
            super::calls::YELLOW
        } else {
            ""
        };
        table.row(vec![
            Cell::styled(segment_short(&s.segment, &s.direction), style),
            Cell::plain(&s.measured),
            Cell::plain(format!("{}/{}", s.lost, s.expected)),
            Cell::plain(pct(s.loss_pct)),
            Cell::plain(format!("{}/{}", s.window_lost, s.window_expected)),
            Cell::styled(pct(s.window_loss_pct), style),
        ]);
    }
    table.write(out, width, color);
}

/// The WINDOW HISTORY table: one row per poll (that poll's deltas of the worse direction,
/// the call's MOS and health then), newest last. Each row says when in exact seconds
/// before `since.0` (the report's time, or an ended call's last packet), in the words
/// `since.1` ("ago", "before end"): rows a second apart stay distinct.
fn history(
    out: &mut String,
    points: &[HistoryPoint],
    since: (u64, &str),
    width: usize,
    color: bool,
) {
    title(out, color, "WINDOW HISTORY (one row per poll, newest last)");
    if points.is_empty() {
        let _ = writeln!(out, "  no poll recorded");
        return;
    }
    let mut table = Table::new(&[
        Column::left("WHEN", 8),
        Column::right("EXP", 3),
        Column::right("LOST", 4),
        Column::right("LOSS%", 5),
        Column::right("JITms", 5),
        Column::right("MOS", 4),
        Column::left("HEALTH", 6),
    ]);
    for p in points {
        let style = health_style(&p.health);
        table.row(vec![
            Cell::plain(format!(
                "{} {}",
                span(since.0.saturating_sub(p.unix_s)),
                since.1
            )),
            Cell::plain(p.expected.to_string()),
            Cell::plain(p.lost.to_string()),
            Cell::styled(pct(p.loss_pct), if p.lost > 0 { style } else { "" }),
            Cell::plain(ms(p.jitter_ms)),
            Cell::plain(opt(p.mos, |m| format!("{m:.2}"))),
            Cell::styled(&p.health, style),
        ]);
    }
    table.write(out, width, color);
}
