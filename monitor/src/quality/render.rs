//! The CALLS section of `monitor status`.

use crate::status::model::StatusReport;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Renders the calls as an aligned table (or says there are none).
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
    if report.calls.is_empty() {
        out.push_str(&title("CALLS"));
        out.push_str("  no active calls\n");
        return out;
    }
    out.push_str(&title(&format!("CALLS ({})", report.calls.len())));
    let headers = [
        "INNER HOST",
        "WEBEX PEER",
        "KIND",
        "DIRECTION",
        "PACKETS",
        "LOSS",
        "JITTER",
        "RTT",
        "MOS",
        "CLOCK",
        "HEALTH",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &report.calls {
        rows.push(vec![
            c.inner_addr.clone(),
            format!("{}:{}", c.peer_addr, c.peer_port),
            c.kind.clone(),
            c.direction.clone(),
            c.packets.to_string(),
            format!("{:.2}%", c.loss_pct),
            format!("{:.1} ms", c.jitter_ms),
            c.rtt_ms
                .map(|r| format!("{r:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            format!("{:.2}", c.mos),
            if c.clock_rate == 0 {
                "unknown".to_string()
            } else {
                format!("{} kHz {}", c.clock_rate / 1000, c.clock_source)
            },
            c.health.clone(),
        ]);
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String], out: &mut String, paint_last: bool| {
        out.push_str("  ");
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            // Numbers right-aligned, text left.
            let numeric = (4..=8).contains(&i);
            let padded = if numeric {
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
    line(&header, &mut out, false);
    for r in &rows {
        line(r, &mut out, true);
    }
    for c in report.calls.iter().filter(|c| !c.breaches.is_empty()) {
        out.push_str(&format!(
            "  {} <-> {}: {}\n",
            c.inner_addr,
            c.peer_addr,
            c.breaches.join("; ")
        ));
    }
    out.push_str("  (RTT from STUN consent checks; one-way latency is estimated as RTT/2)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::model::CallStatus;

    fn call(inner: &str, health: &str, breaches: Vec<String>) -> CallStatus {
        CallStatus {
            inner_addr: inner.into(),
            peer_addr: "203.0.113.10".into(),
            peer_port: 5004,
            kind: "audio".into(),
            direction: "both".into(),
            packets: 812,
            loss_pct: 0.25,
            jitter_ms: 3.456,
            rtt_ms: Some(40.2),
            one_way_latency_ms_estimate: Some(20.1),
            mos: 4.38,
            mos_codec: "G.711".into(),
            health: health.into(),
            breaches,
            clock_rate: 8000,
            clock_source: "static".into(),
            idle_s: 0.1,
            legs: Vec::new(),
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
        let text = section(&report, false);
        assert_eq!(
            text,
            "
CALLS (2)
  INNER HOST   WEBEX PEER         KIND   DIRECTION  PACKETS   LOSS  JITTER      RTT   MOS  CLOCK         HEALTH
  192.0.2.10   203.0.113.10:5004  audio  both           812  0.25%  3.5 ms  40.2 ms  4.38  8 kHz static  ok
  192.0.2.123  203.0.113.10:5004  audio  both           812  0.25%  3.5 ms        -  4.38  8 kHz static  warning
  192.0.2.123 <-> 203.0.113.10: jitter 41.0 ms > 30 ms
  (RTT from STUN consent checks; one-way latency is estimated as RTT/2)
"
        );
        assert!(section(&report, true).contains("\x1b[33mwarning"));
    }
}
