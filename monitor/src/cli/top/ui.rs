//! Drawing one frame of `monitor top`: health line, calls with sparklines, anomalies,
//! interfaces, keys; or one call's drill-down.

use super::app::{App, HISTORY};
use crate::report::calls::CallStatus;
use crate::status::health::{Health, health};
use crate::status::render::anomalies;
use crate::status::render::call;
use crate::status::render::calls::{bad_where, health_rank, host_port, ms, opt, pct, window_mos};
use crate::status::render::compact::reason;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};
use std::collections::VecDeque;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `values` scaled to `full` (and above), one bar per value, padded on
/// the left to `width`.
pub fn sparkline(values: impl Iterator<Item = f64>, full: f64, width: usize) -> String {
    let bars: String = values
        .map(|v| {
            let level = (v / full * 7.0).round().clamp(0.0, 7.0) as usize;
            BARS[level]
        })
        .collect();
    let count = bars.chars().count();
    let bars: String = bars.chars().skip(count.saturating_sub(width)).collect();
    format!(
        "{}{bars}",
        " ".repeat(width.saturating_sub(bars.chars().count()))
    )
}

fn health_color(h: Health) -> Color {
    match h {
        Health::Ok => Color::Green,
        Health::Warning => Color::Yellow,
        Health::Critical => Color::Red,
    }
}

fn call_color(health: &str) -> Style {
    match health_rank(health) {
        2 => Style::new().fg(Color::Red),
        1 => Style::new().fg(Color::Yellow),
        _ => Style::new(),
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if let (Some(id), Some(report)) = (&app.open, &app.report) {
        // The drill-down carries the daemon's window history (one row per poll).
        let text = match call::find(report, id) {
            Some(found) => call::render(report, &found, usize::from(area.width), false),
            None => format!("call {id} is gone (ended longer ago than the records keep)\n"),
        };
        let [body, keys] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
        frame.render_widget(Paragraph::new(text), body);
        frame.render_widget(
            Paragraph::new("Esc back  q quit").style(Style::new().add_modifier(Modifier::REVERSED)),
            keys,
        );
        return;
    }
    let open_findings = app.report.as_ref().map_or(0, |r| {
        anomalies::group(&r.anomalies)
            .iter()
            .filter(|f| f.open_severity().is_some())
            .count()
    });
    let [head, calls, findings, interfaces, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length((open_findings as u16).clamp(1, 6) + 2),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_head(frame, app, head);
    draw_calls(frame, app, calls);
    draw_findings(frame, app, findings);
    draw_interfaces(frame, app, interfaces);
    let filter = if app.editing_filter {
        format!("filter: {}_  (Enter keep, Esc clear)", app.filter)
    } else if app.filter.is_empty() {
        String::new()
    } else {
        format!("filter: {}", app.filter)
    };
    let text = format!(
        "q quit  s sort ({})  / filter  ↑↓ select  Enter open call  r refresh   {filter}",
        app.sort.name()
    );
    frame.render_widget(
        Paragraph::new(text).style(Style::new().add_modifier(Modifier::REVERSED)),
        keys,
    );
}

fn draw_head(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines = Vec::new();
    match &app.report {
        Some(r) => {
            let h = health(r);
            lines.push(Line::from(vec![
                Span::styled("HEALTH ", Style::new().add_modifier(Modifier::BOLD)),
                Span::styled(
                    h.as_str(),
                    Style::new()
                        .fg(health_color(h))
                        .add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("  {}", reason(r, h))),
            ]));
        }
        None => lines.push(Line::from("HEALTH unknown: waiting for the daemon")),
    }
    match &app.error {
        Some(e) => lines.push(Line::styled(
            format!(
                "daemon not reachable, retrying every {} s{}: {e}",
                app.interval.as_secs(),
                app.last_report
                    .map(|t| format!(" (last report {} s ago)", t.elapsed().as_secs()))
                    .unwrap_or_default()
            ),
            Style::new().fg(Color::White).bg(Color::Red),
        )),
        None => {
            let d = app.report.as_ref().map(|r| &r.daemon);
            lines.push(Line::styled(
                format!(
                    "monitor {}  {} calls  updated {} s ago  every {} s",
                    d.map_or("?", |d| d.version.as_str()),
                    app.report.as_ref().map_or(0, |r| r.calls.len()),
                    app.last_report.map_or(0, |t| t.elapsed().as_secs()),
                    app.interval.as_secs()
                ),
                Style::new().add_modifier(Modifier::DIM),
            ))
        }
    }
    frame.render_widget(Paragraph::new(Text::from(lines)), area);
}

/// A call's recent window as this screen saw it, for the sparklines: (loss %, jitter
/// ms) per refresh, oldest first.
type History = VecDeque<(f64, f64)>;
/// Makes one cell of a call's row.
type CellFn = Box<dyn Fn(&CallStatus, Option<&History>) -> String>;

/// A column of the calls table: header, width, and the cell of a call.
struct CallColumn {
    header: &'static str,
    width: u16,
    cell: CellFn,
}

/// Sparkline width at most (one bar per refresh).
const SPARK_MAX: u16 = 12;

/// The columns that fit `width`: the essential ones always (ID, host, MOS, loss and
/// jitter with their sparklines, where the loss is), then peer, kind and RTT as room
/// allows; the sparklines narrow before anything essential does.
fn call_columns(width: u16) -> Vec<CallColumn> {
    let window = |c: &CallStatus| c.window.expected > 0;
    let col = |header, width, cell: CellFn| CallColumn {
        header,
        width,
        cell,
    };
    // Borders 2, CALL 8, HOST 16, MOS 3, LOSS 5, JIT 5, BAD 6, and 7 gaps.
    let essential = 2 + 8 + 16 + 3 + 5 + 5 + 6 + 7;
    let spark = (width.saturating_sub(essential) / 2).clamp(4, SPARK_MAX.min(HISTORY as u16));
    let mut room = width.saturating_sub(essential + 2 * spark);
    let mut optional = |need: u16| {
        let fits = room > need;
        if fits {
            room -= need + 1;
        }
        fits
    };
    let (peer, kind, rtt) = (optional(12), optional(5), optional(5));
    let spark_of = move |pick: fn(&(f64, f64)) -> f64| {
        Box::new(move |_: &CallStatus, h: Option<&History>| {
            sparkline(h.into_iter().flatten().map(pick), 1.0, usize::from(spark))
        }) as CellFn
    };
    let mut columns = vec![
        col("CALL", 8, Box::new(|c, _| c.id.clone())),
        col(
            "HOST:PORT",
            16,
            Box::new(|c, _| host_port(&c.inner_addr, c.inner_port)),
        ),
    ];
    if peer {
        columns.push(col("PEER", 12, Box::new(|c, _| c.peer_addr.clone())));
    }
    if kind {
        columns.push(col("KIND", 5, Box::new(|c, _| c.kind.clone())));
    }
    columns.extend([
        col(
            "MOS",
            3,
            Box::new(|c, _| opt(window_mos(c), |m| format!("{m:.1}"))),
        ),
        col(
            "LOSS%",
            5,
            Box::new(move |c, _| {
                if window(c) {
                    pct(c.window.loss_pct)
                } else {
                    "-".into()
                }
            }),
        ),
        // Loss scaled to 10 %, jitter to 50 ms.
        col("loss", spark, spark_of(|v| v.0 / 10.0)),
        col(
            "JITms",
            5,
            Box::new(move |c, _| {
                if window(c) {
                    ms(c.window.jitter_ms)
                } else {
                    "-".into()
                }
            }),
        ),
        col("jitter", spark, spark_of(|v| v.1 / 50.0)),
    ]);
    if rtt {
        columns.push(col("RTTms", 5, Box::new(|c, _| opt(c.rtt_ms, ms))));
    }
    columns.push(col("BAD", 6, Box::new(|c, _| bad_where(c))));
    columns
}

fn draw_calls(frame: &mut Frame, app: &App, area: Rect) {
    let calls = app.calls();
    let columns = call_columns(area.width);
    let rows: Vec<Row> = calls
        .iter()
        .map(|c| {
            let history = app.history.get(&c.id);
            Row::new(
                columns
                    .iter()
                    .map(|col| (col.cell)(c, history))
                    .collect::<Vec<_>>(),
            )
            .style(call_color(&c.health))
        })
        .collect();
    let stale = if app.error.is_some() { ", stale" } else { "" };
    let title = format!(
        " CALLS ({}{}, by {}{stale}) ",
        calls.len(),
        if app.filter.is_empty() {
            String::new()
        } else {
            format!(" matching {:?}", app.filter)
        },
        app.sort.name()
    );
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| Constraint::Length(c.width))
        .collect();
    let header = Row::new(columns.iter().map(|c| c.header).collect::<Vec<_>>())
        .style(Style::new().add_modifier(Modifier::DIM));
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected((!calls.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_findings(frame: &mut Frame, app: &App, area: Rect) {
    let mut lines = Vec::new();
    if let Some(r) = &app.report {
        for f in anomalies::group(&r.anomalies) {
            let Some(severity) = f.open_severity() else {
                continue;
            };
            let color = match severity {
                crate::anomaly::Severity::Critical => Color::Red,
                crate::anomaly::Severity::Warning => Color::Yellow,
                crate::anomaly::Severity::Info => Color::Reset,
            };
            lines.push(Line::from(vec![
                Span::styled(severity.as_str().to_uppercase(), Style::new().fg(color)),
                Span::raw(format!(
                    " {} x{}  {}  fix: {}",
                    f.id,
                    f.members.len(),
                    f.members[0].summary,
                    f.fixes().join(" / ")
                )),
            ]));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("none open"));
    }
    frame.render_widget(
        Paragraph::new(Text::from(lines)).block(Block::bordered().title(" ANOMALIES ")),
        area,
    );
}

fn draw_interfaces(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(
        "INTERFACES ",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(r) = &app.report {
        for i in &r.interfaces {
            let style = if i.state == "attached" {
                Style::new().fg(Color::Green)
            } else {
                Style::new().fg(Color::Red)
            };
            spans.push(Span::raw(format!("{} ({}) ", i.name, i.role)));
            spans.push(Span::styled(i.state.clone(), style));
            spans.push(Span::raw("  "));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_the_width_essential_ones_first() {
        let headers = |w: u16| -> Vec<&str> { call_columns(w).iter().map(|c| c.header).collect() };
        let total = |w: u16| -> u16 {
            let c = call_columns(w);
            2 + c.iter().map(|c| c.width).sum::<u16>() + c.len() as u16 - 1
        };
        let essential = [
            "CALL",
            "HOST:PORT",
            "MOS",
            "LOSS%",
            "loss",
            "JITms",
            "jitter",
            "BAD",
        ];
        assert_eq!(headers(80), essential);
        assert_eq!(headers(60), essential, "sparklines narrow first");
        assert_eq!(
            headers(120),
            [
                "CALL",
                "HOST:PORT",
                "PEER",
                "KIND",
                "MOS",
                "LOSS%",
                "loss",
                "JITms",
                "jitter",
                "RTTms",
                "BAD"
            ]
        );
        for w in [70, 80, 100, 120, 200] {
            assert!(total(w) <= w, "{w}: {}", total(w));
        }
    }

    #[test]
    fn sparklines_scale_and_pad() {
        assert_eq!(
            sparkline([0.0, 0.5, 1.0, 2.0].into_iter(), 1.0, 6),
            "  ▁▅██"
        );
        assert_eq!(sparkline((0..20).map(|_| 0.0), 1.0, 3), "▁▁▁");
    }
}
