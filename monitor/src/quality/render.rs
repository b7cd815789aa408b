//! The CALLS section of `monitor status`.

use crate::status::model::StatusReport;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Renders the calls as an aligned table (or says there are none), where each call's
/// loss happens, and the latest call records.
pub fn section(report: &StatusReport, color: bool) -> String {
    let mut out = String::new();
    let title = |t: &str| {
        if color {
            format!("{BOLD}{t}{RESET}\n")
        } else {
            format!("{t}\n")
        }
    };
    out.push('\n');
    let window_s = report.call_tracking.as_ref().map_or(0, |t| t.window_s);
    if report.calls.is_empty() {
        out.push_str(&title("CALLS"));
        out.push_str("  no active calls\n");
    } else {
        out.push_str(&title(&format!(
            "CALLS ({}; LOSS, JITTER, MOS and HEALTH over the last {window_s} s)",
            report.calls.len()
        )));
        let headers = [
            "ID",
            "INNER HOST",
            "WEBEX PEER",
            "KIND",
            "DIRECTION",
            "PACKETS",
            "LOSS",
            "CALL LOSS",
            "JITTER",
            "RTT",
            "MOS",
            "CLOCK",
            "HEALTH",
        ];
        let rows: Vec<Vec<String>> = report
            .calls
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    format!("{}:{}", c.inner_addr, c.inner_port),
                    format!("{}:{}", c.peer_addr, c.peer_port),
                    c.kind.clone(),
                    c.direction.clone(),
                    c.packets.to_string(),
                    if c.window.sufficient {
                        format!("{:.2}%", c.window.loss_pct)
                    } else {
                        "-".to_string()
                    },
                    format!("{:.2}%", c.loss_pct),
                    format!("{:.1} ms", c.window.jitter_ms),
                    c.rtt_ms
                        .map(|r| format!("{r:.1} ms"))
                        .unwrap_or_else(|| "-".into()),
                    c.mos
                        .map(|m| format!("{m:.2}"))
                        .unwrap_or_else(|| "-".into()),
                    if c.clock_rate == 0 {
                        "unknown".to_string()
                    } else {
                        format!("{} kHz {}", c.clock_rate / 1000, c.clock_source)
                    },
                    c.health.clone(),
                ]
            })
            .collect();
        table(&mut out, &headers, &rows, 5..=10, color);
        for c in &report.calls {
            if !c.breaches.is_empty() {
                out.push_str(&format!("  {}: {}\n", c.id, c.breaches.join("; ")));
            }
            if let Some(seg) = &c.bad_segment {
                out.push_str(&format!("  {}: loss is {}\n", c.id, segment_words(seg)));
            }
        }
        out.push_str(
            "  (- : too few packets in the window for a verdict; RTT from STUN consent checks;\n",
        );
        out.push_str("   one-way latency is estimated as RTT/2)\n");
    }
    if !report.call_records.is_empty() {
        out.push('\n');
        out.push_str(&title(&format!(
            "CALL RECORDS ({} kept, newest first)",
            report.call_records.len()
        )));
        let headers = [
            "ID",
            "INNER HOST",
            "WEBEX PEER",
            "KIND",
            "DURATION",
            "PACKETS",
            "LOSS",
            "JITTER",
            "MOS MIN",
            "WORST",
        ];
        let rows: Vec<Vec<String>> = report
            .call_records
            .iter()
            .take(MAX_RECORDS_SHOWN)
            .map(|r| {
                vec![
                    r.id.clone(),
                    format!("{}:{}", r.inner_addr, r.inner_port),
                    format!("{}:{}", r.peer_addr, r.peer_port),
                    r.kind.clone(),
                    format!("{:.0} s", r.duration_s),
                    r.packets.to_string(),
                    format!("{:.2}%", r.loss_pct),
                    format!("{:.1} ms", r.jitter_ms),
                    r.mos_min
                        .map(|m| format!("{m:.2}"))
                        .unwrap_or_else(|| "-".into()),
                    r.worst_health.clone(),
                ]
            })
            .collect();
        table(&mut out, &headers, &rows, 4..=8, color);
    }
    out
}

/// Records listed in the text view (`--json` has them all).
const MAX_RECORDS_SHOWN: usize = 10;

fn segment_words(segment: &str) -> &'static str {
    match segment {
        "phone_to_gateway" => "between the phone and this gateway (LAN side)",
        "gateway" => "inside this gateway (in on one side, not out on the other)",
        "isp_from_webex" => "on the ISP path from Webex (before the WAN interface)",
        _ => "on an unknown segment",
    }
}

/// An aligned table; columns in `numeric` right-aligned, the last one painted by health.
fn table(
    out: &mut String,
    headers: &[&str],
    rows: &[Vec<String>],
    numeric: std::ops::RangeInclusive<usize>,
    color: bool,
) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String], out: &mut String, paint_last: bool| {
        out.push_str("  ");
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let padded = if numeric.contains(&i) {
                format!("{cell:>w$}")
            } else {
                format!("{cell:<w$}")
            };
            let padded = if i == last {
                padded.trim_end().to_string()
            } else {
                padded
            };
            if i == last && paint_last && color {
                let style = match cell.as_str() {
                    "critical" => RED,
                    "warning" => YELLOW,
                    _ => GREEN,
                };
                out.push_str(&format!("{style}{padded}{RESET}"));
            } else {
                out.push_str(&padded);
            }
            if i != last {
                out.push_str("  ");
            }
        }
        out.push('\n');
    };
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    line(&header, out, false);
    for r in rows {
        line(r, out, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::model::CallStatus;

    fn call(inner: &str, health: &str, breaches: Vec<String>) -> CallStatus {
        CallStatus {
            id: format!("c0ffee{:02}", inner.len()),
            inner_addr: inner.into(),
            inner_port: 40000,
            peer_addr: "203.0.113.10".into(),
            peer_port: 5004,
            duration_s: 12.0,
            kind: "audio".into(),
            direction: "both".into(),
            packets: 812,
            loss_pct: 0.25,
            jitter_ms: 3.456,
            rtt_ms: Some(40.2),
            one_way_latency_ms_estimate: Some(20.1),
            mos: Some(4.38),
            mos_codec: "G.711".into(),
            health: health.into(),
            breaches,
            clock_rate: 8000,
            clock_source: "static".into(),
            idle_s: 0.1,
            legs: Vec::new(),
            window: crate::report::calls::WindowStatus {
                seconds: 10,
                expected: 500,
                lost: 2,
                loss_pct: 0.4,
                jitter_ms: 3.456,
                mos: Some(4.38),
                sufficient: true,
            },
            segments: Vec::new(),
            bad_segment: None,
            window_history: Vec::new(),
        }
    }

    #[test]
    fn calls_table_is_aligned_and_names_breaches() {
        let mut report = crate::status::render::tests::sample_report();
        report.calls = vec![
            call("192.0.2.10", "ok", vec![]),
            call(
                "192.0.2.123",
                "warning",
                vec!["jitter 41.0 ms > 30 ms".into()],
            ),
        ];
        report.calls[1].rtt_ms = None;
        report.calls[1].window.sufficient = false;
        report.calls[1].bad_segment = Some("gateway".into());
        report.call_tracking = Some(crate::report::calls::CallTracking {
            window_s: 10,
            ..Default::default()
        });
        report.call_records = vec![crate::report::calls::CallRecord {
            id: "0badf00d".into(),
            inner_addr: "192.0.2.10".into(),
            inner_port: 40002,
            peer_addr: "203.0.113.10".into(),
            peer_port: 5004,
            kind: "audio".into(),
            duration_s: 61.4,
            packets: 6100,
            loss_pct: 1.25,
            jitter_ms: 2.04,
            mos_min: Some(3.91),
            worst_health: "warning".into(),
            ..Default::default()
        }];
        let text = section(&report, false);
        assert_eq!(
            text,
            "
CALLS (2; LOSS, JITTER, MOS and HEALTH over the last 10 s)
  ID        INNER HOST         WEBEX PEER         KIND   DIRECTION  PACKETS   LOSS  CALL LOSS  JITTER      RTT   MOS  CLOCK         HEALTH
  c0ffee10  192.0.2.10:40000   203.0.113.10:5004  audio  both           812  0.40%      0.25%  3.5 ms  40.2 ms  4.38  8 kHz static  ok
  c0ffee11  192.0.2.123:40000  203.0.113.10:5004  audio  both           812      -      0.25%  3.5 ms        -  4.38  8 kHz static  warning
  c0ffee11: jitter 41.0 ms > 30 ms
  c0ffee11: loss is inside this gateway (in on one side, not out on the other)
  (- : too few packets in the window for a verdict; RTT from STUN consent checks;
   one-way latency is estimated as RTT/2)

CALL RECORDS (1 kept, newest first)
  ID        INNER HOST        WEBEX PEER         KIND   DURATION  PACKETS   LOSS  JITTER  MOS MIN  WORST
  0badf00d  192.0.2.10:40002  203.0.113.10:5004  audio      61 s     6100  1.25%  2.0 ms     3.91  warning
"
        );
        assert!(section(&report, true).contains("\x1b[33mwarning"));
    }
}
