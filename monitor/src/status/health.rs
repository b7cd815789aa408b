//! Health at a glance: the overall verdict `monitor status` exits with, and the
//! HEALTH, ANOMALIES and EXPORT sections of its text.
//!
//! Health is the worst open anomaly's severity: none or info is ok (exit 0), warning is
//! 1, critical is 2 — the Nagios convention, so monitoring systems can run it as a check
//! (3, unreachable, is decided by the caller).

use std::fmt::Write as _;

use super::model::StatusReport;
use crate::anomaly::Severity;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    Warning,
    Critical,
}

impl Health {
    pub const fn exit_code(self) -> i32 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        }
    }

    fn style(self) -> &'static str {
        match self {
            Self::Ok => GREEN,
            Self::Warning => YELLOW,
            Self::Critical => RED,
        }
    }
}

/// The worst open anomaly decides.
pub fn health(report: &StatusReport) -> Health {
    report
        .anomalies
        .iter()
        .filter(|a| a.cleared_unix_s.is_none())
        .map(|a| match a.severity {
            Severity::Info => Health::Ok,
            Severity::Warning => Health::Warning,
            Severity::Critical => Health::Critical,
        })
        .max()
        .unwrap_or(Health::Ok)
}

fn paint(color: bool, style: &str, text: &str) -> String {
    if color {
        format!("{style}{text}{RESET}")
    } else {
        text.to_string()
    }
}

fn severity_style(s: Severity) -> &'static str {
    match s {
        Severity::Info => "",
        Severity::Warning => YELLOW,
        Severity::Critical => RED,
    }
}

/// HEALTH line, then ANOMALIES (open first, then recently cleared) and EXPORT.
pub fn sections(report: &StatusReport, color: bool) -> String {
    let mut out = String::new();
    let h = health(report);
    let open = report
        .anomalies
        .iter()
        .filter(|a| a.cleared_unix_s.is_none())
        .count();
    let _ = writeln!(
        out,
        "\n{} {}  ({open} open anomal{})",
        paint(color, BOLD, "HEALTH"),
        paint(color, h.style(), h.as_str()),
        if open == 1 { "y" } else { "ies" }
    );

    out.push('\n');
    out.push_str(&paint(color, BOLD, "ANOMALIES"));
    out.push('\n');
    if report.anomalies.is_empty() {
        out.push_str("  none\n");
    }
    for a in &report.anomalies {
        let state = match a.cleared_unix_s {
            None => paint(
                color,
                severity_style(a.severity),
                &a.severity.as_str().to_uppercase(),
            ),
            Some(_) => "cleared".to_string(),
        };
        let _ = writeln!(out, "  {state}  {}  {}", a.id, a.subject);
        let _ = writeln!(out, "    {}", a.summary);
        for e in &a.evidence {
            let _ = writeln!(out, "    {}: {}", e.name, e.value);
        }
        let _ = writeln!(out, "    fix: {}", a.remediation);
        let mut seen = format!(
            "    first seen {}  last seen {}",
            a.first_seen_unix_s, a.last_seen_unix_s
        );
        if let Some(c) = a.cleared_unix_s {
            let _ = write!(seen, "  cleared {c}");
        }
        let _ = writeln!(out, "{seen} (Unix s)");
    }

    if let Some(e) = &report.export {
        out.push('\n');
        out.push_str(&paint(color, BOLD, "EXPORT"));
        out.push('\n');
        if let Some(endpoint) = &e.otlp_endpoint {
            let _ = writeln!(
                out,
                "  OTLP {} {}  every {} ms  exported {}  dropped {}",
                e.otlp_protocol.as_deref().unwrap_or("?"),
                endpoint,
                e.interval_ms,
                e.exported,
                paint(color && e.dropped > 0, YELLOW, &e.dropped.to_string()),
            );
            if let Some(err) = &e.last_error {
                let _ = writeln!(out, "  last error: {}", paint(color, RED, err));
            }
        }
        if let Some(listen) = &e.prometheus_listen {
            let _ = writeln!(out, "  Prometheus http://{listen}/metrics");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::anomaly::{Anomaly, Evidence};
    use crate::status::render::tests::sample_report;

    pub(crate) fn anomaly(severity: Severity, cleared: Option<u64>) -> Anomaly {
        Anomaly {
            id: "sip_alg".into(),
            severity,
            subject: "wan0".into(),
            summary: "a SIP ALG rewrites SIP".into(),
            evidence: vec![Evidence {
                name: "rewritten".into(),
                value: "3".into(),
            }],
            remediation: "Turn the SIP ALG off.".into(),
            first_seen_unix_s: 100,
            last_seen_unix_s: 110,
            cleared_unix_s: cleared,
        }
    }

    #[test]
    fn worst_open_anomaly_decides() {
        let mut r = sample_report();
        assert_eq!(health(&r), Health::Ok);
        r.anomalies = vec![anomaly(Severity::Info, None)];
        assert_eq!(health(&r).exit_code(), 0);
        r.anomalies.push(anomaly(Severity::Critical, Some(5)));
        assert_eq!(health(&r), Health::Ok, "cleared ones do not count");
        r.anomalies.push(anomaly(Severity::Warning, None));
        assert_eq!(health(&r).exit_code(), 1);
        r.anomalies.push(anomaly(Severity::Critical, None));
        assert_eq!(health(&r).exit_code(), 2);
    }

    #[test]
    fn anomalies_section_lists_everything_and_colours_only_when_asked() {
        let mut r = sample_report();
        r.anomalies = vec![
            anomaly(Severity::Critical, None),
            anomaly(Severity::Warning, Some(120)),
        ];
        let text = sections(&r, false);
        assert_eq!(
            text,
            "\nHEALTH CRITICAL  (1 open anomaly)\n\nANOMALIES\n\
             \x20 CRITICAL  sip_alg  wan0\n    a SIP ALG rewrites SIP\n    rewritten: 3\n\
             \x20   fix: Turn the SIP ALG off.\n    first seen 100  last seen 110 (Unix s)\n\
             \x20 cleared  sip_alg  wan0\n    a SIP ALG rewrites SIP\n    rewritten: 3\n\
             \x20   fix: Turn the SIP ALG off.\n    first seen 100  last seen 110  cleared 120 (Unix s)\n"
        );
        assert!(!text.contains('\x1b'));
        assert!(sections(&r, true).contains("\x1b[31mCRITICAL\x1b[0m"));
    }
}
