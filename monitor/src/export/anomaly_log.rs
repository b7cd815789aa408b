//! Anomalies as OTel log records: one when an anomaly opens and one when it clears,
//! found by comparing each export's anomaly list with what was already sent.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, Severity as OtelSeverity};

use crate::anomaly::{Anomaly, Severity};

/// An anomaly that opened or cleared since the last export.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Opened(Anomaly),
    Cleared(Anomaly),
}

impl Transition {
    fn anomaly(&self) -> &Anomaly {
        match self {
            Self::Opened(a) | Self::Cleared(a) => a,
        }
    }

    /// The log record's event name.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Opened(_) => "monitor.anomaly.opened",
            Self::Cleared(_) => "monitor.anomaly.cleared",
        }
    }

    /// When it happened.
    pub fn at(&self) -> SystemTime {
        let s = match self {
            Self::Opened(a) => a.first_seen_unix_s,
            Self::Cleared(a) => a.cleared_unix_s.unwrap_or(a.last_seen_unix_s),
        };
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// Opening: the anomaly's severity (critical is ERROR); clearing: INFO.
    pub fn severity(&self) -> (OtelSeverity, &'static str) {
        match self {
            Self::Opened(a) => match a.severity {
                Severity::Info => (OtelSeverity::Info, "INFO"),
                Severity::Warning => (OtelSeverity::Warn, "WARN"),
                Severity::Critical => (OtelSeverity::Error, "ERROR"),
            },
            Self::Cleared(_) => (OtelSeverity::Info, "INFO"),
        }
    }

    /// The body: the summary, prefixed with "cleared: " when it ended.
    pub fn body(&self) -> String {
        match self {
            Self::Opened(a) => a.summary.clone(),
            Self::Cleared(a) => format!("cleared: {}", a.summary),
        }
    }

    /// Attributes in a fixed order; evidence as `monitor.anomaly.evidence.<name>`.
    pub fn attributes(&self) -> Vec<(String, AnyValue)> {
        let a = self.anomaly();
        let mut v: Vec<(String, AnyValue)> = vec![
            ("monitor.anomaly.id".into(), a.id.clone().into()),
            (
                "monitor.anomaly.severity".into(),
                a.severity.as_str().into(),
            ),
            ("monitor.anomaly.subject".into(), a.subject.clone().into()),
            (
                "monitor.anomaly.remediation".into(),
                a.remediation.clone().into(),
            ),
            (
                "monitor.anomaly.first_seen_unix_s".into(),
                (a.first_seen_unix_s as i64).into(),
            ),
            (
                "monitor.anomaly.last_seen_unix_s".into(),
                (a.last_seen_unix_s as i64).into(),
            ),
        ];
        if let Some(c) = a.cleared_unix_s {
            v.push(("monitor.anomaly.cleared_unix_s".into(), (c as i64).into()));
        }
        for e in &a.evidence {
            v.push((
                format!("monitor.anomaly.evidence.{}", e.name),
                e.value.clone().into(),
            ));
        }
        v
    }
}

/// What was already sent, keyed by (id, subject, first seen): only anomalies still in the
/// report's list are remembered, so memory follows the list.
#[derive(Debug, Default)]
pub struct Tracker {
    opened: BTreeSet<(String, String, u64)>,
    cleared: BTreeSet<(String, String, u64)>,
}

impl Tracker {
    /// The transitions in `anomalies` not yet sent.
    pub fn update(&mut self, anomalies: &[Anomaly]) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut present = BTreeSet::new();
        for a in anomalies {
            let key = (a.id.clone(), a.subject.clone(), a.first_seen_unix_s);
            present.insert(key.clone());
            if self.opened.insert(key.clone()) {
                out.push(Transition::Opened(Anomaly {
                    cleared_unix_s: None,
                    ..a.clone()
                }));
            }
            if a.cleared_unix_s.is_some() && self.cleared.insert(key) {
                out.push(Transition::Cleared(a.clone()));
            }
        }
        self.opened.retain(|k| present.contains(k));
        self.cleared.retain(|k| present.contains(k));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The health tests' anomaly (the same fixture), under another id.
    pub fn anomaly(id: &str, cleared: Option<u64>) -> Anomaly {
        Anomaly {
            id: id.into(),
            ..crate::status::health::tests::anomaly(Severity::Critical, cleared)
        }
    }

    #[test]
    fn open_then_clear_once_each() {
        let mut t = Tracker::default();
        let open = t.update(&[anomaly("sip_alg", None)]);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].event_name(), "monitor.anomaly.opened");
        assert_eq!(open[0].severity().1, "ERROR");
        assert!(t.update(&[anomaly("sip_alg", None)]).is_empty());
        let cleared = t.update(&[anomaly("sip_alg", Some(120))]);
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].event_name(), "monitor.anomaly.cleared");
        assert_eq!(cleared[0].body(), "cleared: a SIP ALG rewrites SIP");
        assert_eq!(cleared[0].at(), UNIX_EPOCH + Duration::from_secs(120));
        assert!(t.update(&[anomaly("sip_alg", Some(120))]).is_empty());
        // Forgotten once it leaves the list.
        assert!(t.update(&[]).is_empty());
        assert!(t.opened.is_empty() && t.cleared.is_empty());
    }

    #[test]
    fn an_anomaly_that_came_and_went_between_exports_sends_both() {
        let mut t = Tracker::default();
        let v = t.update(&[anomaly("sip_alg", Some(105))]);
        assert_eq!(
            v.iter().map(Transition::event_name).collect::<Vec<_>>(),
            ["monitor.anomaly.opened", "monitor.anomaly.cleared"]
        );
        let attrs = v[1].attributes();
        assert_eq!(attrs[0], ("monitor.anomaly.id".into(), "sip_alg".into()));
        assert_eq!(
            attrs.last().unwrap(),
            &("monitor.anomaly.evidence.rewritten".to_string(), "3".into())
        );
    }
}
