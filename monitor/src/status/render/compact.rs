//! The default `monitor status`: one screen (at most [`MAX_LINES`] lines) answering "are
//! calls OK, which one is bad, why, what do I do": the health line with its reason, the
//! active calls worst first, then the anomalies grouped by finding, each fix once.

use super::ago::report_now;
use super::anomalies::{self, brief};
use super::calls::{calls_table, health_rank, sort_worst_first};
use super::fit::{cut, paint};
use crate::report::calls::CallStatus;
use crate::status::health::{Health, health};
use crate::status::model::StatusReport;

/// The compact view never prints more lines than this (with ten active calls).
pub const MAX_LINES: usize = 38;
/// Active calls listed; the rest are in `monitor status calls`.
pub const MAX_CALLS: usize = 10;

const BOLD: &str = "\x1b[1m";

/// The header lines: who answers, and the HEALTH line with its reason.
pub fn head(report: &StatusReport, width: usize, color: bool) -> Vec<String> {
    let d = &report.daemon;
    let down: Vec<String> = report
        .interfaces
        .iter()
        .filter(|i| i.state != "attached")
        .map(|i| format!("{} {}", i.name, i.state))
        .collect();
    let interfaces = if down.is_empty() {
        format!("{} interfaces attached", report.interfaces.len())
    } else {
        down.join(", ")
    };
    let first = format!(
        "monitor {}  up {}  snapshot {} old  {interfaces}",
        d.version,
        super::super::render::human_duration(d.uptime_s as f64),
        super::super::render::human_duration(d.snapshot_age_ms as f64 / 1000.0),
    );
    let h = health(report);
    let word = h.as_str();
    let line = cut(&format!("HEALTH {word}  {}", reason(report, h)), width);
    let style = match h {
        Health::Ok => super::calls::GREEN,
        Health::Warning => super::calls::YELLOW,
        Health::Critical => super::calls::RED,
    };
    let painted = line.replacen(word, &paint(color, style, word), 1);
    vec![
        cut(&first, width),
        painted.replacen("HEALTH", &paint(color, BOLD, "HEALTH"), 1),
    ]
}

/// Why the site has its health: the worst open finding, and how many calls are not ok.
pub fn reason(report: &StatusReport, h: Health) -> String {
    let calls = report.calls.len();
    let bad = report
        .calls
        .iter()
        .filter(|c| health_rank(&c.health) > 0)
        .count();
    let calls_part = match (calls, bad) {
        (0, _) => "no active calls".to_string(),
        (n, 0) => format!("{n} active call{} ok", plural(n)),
        (n, b) => format!("{b} of {n} call{} not ok", plural(n)),
    };
    // The first of the most severe (the daemon lists the open ones most severe first).
    let worst = report
        .anomalies
        .iter()
        .filter(|a| a.cleared_unix_s.is_none())
        .fold(None::<&crate::anomaly::Anomaly>, |worst, a| match worst {
            Some(w) if w.severity >= a.severity => Some(w),
            _ => Some(a),
        });
    match (h, worst) {
        (Health::Ok, _) | (_, None) => format!("{calls_part}, no open finding"),
        (_, Some(a)) => format!("{calls_part}; {}: {}", a.id, a.summary),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The compact view, at most [`MAX_LINES`] lines of at most `width` columns.
pub fn render(report: &StatusReport, width: usize, color: bool) -> String {
    let now = report_now(report);
    let mut lines = head(report, width, color);

    let mut calls: Vec<&CallStatus> = report.calls.iter().collect();
    sort_worst_first(&mut calls);
    lines.push(String::new());
    let window = report
        .call_tracking
        .as_ref()
        .map_or(String::new(), |t| format!("; window {} s", t.window_s));
    if calls.is_empty() {
        lines.push(paint(color, BOLD, "CALLS"));
        lines.push("  no active calls".into());
    } else {
        let title = format!("CALLS ({} active, worst first{window})", calls.len());
        lines.push(paint(color, BOLD, &cut(&title, width)));
        let shown = calls.len().min(MAX_CALLS);
        let mut table = String::new();
        calls_table(&calls[..shown], false).write(&mut table, width, color);
        lines.extend(table.lines().map(str::to_string));
        if shown < calls.len() {
            lines.push(format!(
                "  ... {} more: monitor status calls",
                calls.len() - shown
            ));
        }
    }

    let findings = anomalies::group(&report.anomalies);
    let open: Vec<_> = findings
        .iter()
        .filter(|f| f.open_severity().is_some())
        .collect();
    let cleared = findings.len() - open.len();
    lines.push(String::new());
    let cleared_note = if cleared > 0 {
        format!(", {cleared} recently cleared")
    } else {
        String::new()
    };
    lines.push(paint(
        color,
        BOLD,
        &cut(
            &format!(
                "ANOMALIES ({} finding{} open{cleared_note})",
                open.len(),
                plural(open.len())
            ),
            width,
        ),
    ));
    if open.is_empty() {
        lines.push("  none open".into());
    }
    for (i, f) in open.iter().enumerate() {
        // Keep a line for "... more" when findings remain after this one.
        let room = MAX_LINES.saturating_sub(lines.len() + usize::from(i + 1 < open.len()));
        let full = brief(f, now, width, 3, color);
        let text = if full.len() <= room {
            full
        } else {
            brief(f, now, width, 1, color)
        };
        if text.len() > room {
            lines.push(format!(
                "  ... {} more: monitor status anomalies",
                open.len() - i
            ));
            break;
        }
        lines.extend(text);
    }
    // A cap that acted or an upgrade that lost data: one line, the rest in the view.
    let limits = super::limits::notes(report);
    if let Some(first) = limits.first()
        && lines.len() + 2 <= MAX_LINES
    {
        let more = match limits.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        lines.push(String::new());
        lines.push(cut(
            &format!("LIMITS {first}{more}: monitor status interfaces"),
            width,
        ));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
