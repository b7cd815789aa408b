//! Anomaly transitions as OTel log records `monitor.anomaly.<event>`: opened, escalated,
//! de-escalated, cleared. Found by comparing each export's anomaly list with what was
//! already sent, so an export sees every anomaly's latest state once (a change and its
//! reversal between two exports send nothing; the book already damps flapping).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, Severity as OtelSeverity};

use crate::anomaly::{Anomaly, Event, Severity};

/// An anomaly that changed since the last export.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub event: Event,
    /// The anomaly as it is after the change.
    pub anomaly: Anomaly,
}

impl Transition {
    fn anomaly(&self) -> &Anomaly {
        &self.anomaly
    }

    /// The log record's event name.
    pub fn event_name(&self) -> &'static str {
        match self.event {
            Event::Opened => "monitor.anomaly.opened",
            Event::Escalated => "monitor.anomaly.escalated",
            Event::DeEscalated => "monitor.anomaly.de-escalated",
            Event::Cleared => "monitor.anomaly.cleared",
        }
    }

    /// When it happened (a severity change: the last poll that saw it).
    pub fn at(&self) -> SystemTime {
        let a = &self.anomaly;
        let s = match self.event {
            Event::Opened => a.first_seen_unix_s,
            Event::Cleared => a.cleared_unix_s.unwrap_or(a.last_seen_unix_s),
            Event::Escalated | Event::DeEscalated => a.last_seen_unix_s,
        };
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// The anomaly's (new) severity: critical is ERROR; clearing: INFO.
    pub fn severity(&self) -> (OtelSeverity, &'static str) {
        if self.event == Event::Cleared {
            return (OtelSeverity::Info, "INFO");
        }
        match self.anomaly.severity {
            Severity::Info => (OtelSeverity::Info, "INFO"),
            Severity::Warning => (OtelSeverity::Warn, "WARN"),
            Severity::Critical => (OtelSeverity::Error, "ERROR"),
        }
    }

    /// The body: the summary, prefixed with the event unless it opened.
    pub fn body(&self) -> String {
        let a = &self.anomaly;
        match self.event {
            Event::Opened => a.summary.clone(),
            Event::Cleared => format!("cleared: {}", a.summary),
            e => format!("{} to {}: {}", e.as_str(), a.severity.as_str(), a.summary),
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

/// What was already sent per anomaly (id, subject, first seen): the severity, and
/// whether its clearing went. Only anomalies still in the report's list are remembered,
/// so memory follows the list.
#[derive(Debug, Default)]
pub struct Tracker {
    sent: BTreeMap<(String, String, u64), (Severity, bool)>,
}

impl Tracker {
    /// The transitions in `anomalies` not yet sent.
    pub fn update(&mut self, anomalies: &[Anomaly]) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut present = BTreeSet::new();
        for a in anomalies {
            let key = (a.id.clone(), a.subject.clone(), a.first_seen_unix_s);
            present.insert(key.clone());
            let cleared = a.cleared_unix_s.is_some();
            match self.sent.get(&key).copied() {
                None => {
                    out.push(Transition {
                        event: Event::Opened,
                        anomaly: Anomaly {
                            cleared_unix_s: None,
                            ..a.clone()
                        },
                    });
                }
                Some((sev, _)) if sev != a.severity => out.push(Transition {
                    event: if a.severity > sev {
                        Event::Escalated
                    } else {
                        Event::DeEscalated
                    },
                    anomaly: Anomaly {
                        cleared_unix_s: None,
                        ..a.clone()
                    },
                }),
                Some(_) => {}
            }
            let was_cleared = self.sent.get(&key).is_some_and(|s| s.1);
            if cleared && !was_cleared {
                out.push(Transition {
                    event: Event::Cleared,
                    anomaly: a.clone(),
                });
            }
            self.sent.insert(key, (a.severity, cleared));
        }
        self.sent.retain(|k, _| present.contains(k));
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
        assert!(t.sent.is_empty());
    }

    #[test]
    fn severity_changes_are_escalated_and_de_escalated() {
        let mut t = Tracker::default();
        let warn = |cleared| Anomaly {
            severity: Severity::Warning,
            ..anomaly("nat_port_exhaustion", cleared)
        };
        assert_eq!(t.update(&[warn(None)])[0].event, Event::Opened);
        let up = t.update(&[anomaly("nat_port_exhaustion", None)]);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].event_name(), "monitor.anomaly.escalated");
        assert_eq!(up[0].severity().1, "ERROR");
        assert!(up[0].body().starts_with("escalated to critical: "));
        let down = t.update(&[warn(None)]);
        assert_eq!(down[0].event_name(), "monitor.anomaly.de-escalated");
        assert_eq!(down[0].severity().1, "WARN");
        let gone = t.update(&[warn(Some(130))]);
        assert_eq!(
            gone.iter().map(Transition::event_name).collect::<Vec<_>>(),
            ["monitor.anomaly.cleared"]
        );
        assert!(t.update(&[warn(Some(130))]).is_empty());
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
        assert_eq!(v[1].event, Event::Cleared);
        assert_eq!(attrs[0], ("monitor.anomaly.id".into(), "sip_alg".into()));
        assert_eq!(
            attrs.last().unwrap(),
            &("monitor.anomaly.evidence.rewritten".to_string(), "3".into())
        );
    }
}
