//! The DSCP section of `monitor status`: compliance per interface, direction and class.

use std::fmt::Write as _;

use crate::status::model::StatusReport;

const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Compliance at or above this is shown as good.
const GOOD_PCT: f64 = 99.0;

/// The section, or nothing when no packet was checked yet.
pub fn section(report: &StatusReport, color: bool) -> String {
    let mut out = String::new();
    if report.dscp.is_empty() {
        return out;
    }
    let title = "DSCP (packets with the expected mark, per class)";
    if color {
        let _ = writeln!(out, "\n{BOLD}{title}{RESET}");
    } else {
        let _ = writeln!(out, "\n{title}");
    }
    let _ = writeln!(
        out,
        "  {:<12} {:<7} {:<15} {:>8} {:>6} {:>10} {:>10} {:>10} {:>8}",
        "IFACE", "DIR", "CLASS", "EXPECTED", "FLOWS", "MATCHED", "MISMATCHED", "REWRITTEN", "OK %"
    );
    for r in &report.dscp {
        let pct = r
            .compliance_pct
            .map(|p| format!("{p:.1}"))
            .unwrap_or_else(|| "-".into());
        let pct = format!("{pct:>8}");
        let pct = match (color, r.compliance_pct) {
            (true, Some(p)) if p >= GOOD_PCT => format!("{GREEN}{pct}{RESET}"),
            (true, Some(_)) => format!("{YELLOW}{pct}{RESET}"),
            _ => pct,
        };
        let _ = writeln!(
            out,
            "  {:<12} {:<7} {:<15} {:>8} {:>6} {:>10} {:>10} {:>10} {pct}",
            r.interface,
            r.direction,
            r.class,
            r.expected.map(|e| e.to_string()).unwrap_or_default(),
            r.flows,
            r.matched,
            r.mismatched,
            r.rewritten,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dscp::model::DscpCompliance;

    #[test]
    fn rows_and_no_colour_without_it() {
        let mut report = crate::status::render::tests::sample_report();
        assert_eq!(section(&report, false), "");
        report.dscp = vec![DscpCompliance {
            interface: "wan0".into(),
            direction: "egress".into(),
            class: "audio".into(),
            expected: Some(46),
            flows: 2,
            matched: 150,
            mismatched: 50,
            rewritten: 100,
            compliance_pct: Some(75.0),
        }];
        let text = section(&report, false);
        assert_eq!(
            text,
            "\nDSCP (packets with the expected mark, per class)\n  \
             IFACE        DIR     CLASS           EXPECTED  FLOWS    MATCHED MISMATCHED  REWRITTEN     OK %\n  \
             wan0         egress  audio                 46      2        150         50        100     75.0\n"
        );
        assert!(section(&report, true).contains(YELLOW));
    }
}
