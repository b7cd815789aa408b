//! Health at a glance: the overall verdict `monitor status` exits with (the views under
//! `status/render/` print it).
//!
//! Health is the worst open anomaly's severity: none or info is ok (exit 0), warning is
//! 1, critical is 2 — the Nagios convention, so monitoring systems can run it as a check
//! (3, unreachable, is decided by the caller).

use super::model::StatusReport;
use crate::anomaly::Severity;

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
}
