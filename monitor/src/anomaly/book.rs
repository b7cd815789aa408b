//! The book of anomalies: opens, escalates, de-escalates and clears them from each poll's
//! findings, with flapping damped, and says what changed (README "Anomalies").
//!
//! Damping: an anomaly whose finding is gone stays open for [`CLEAR_HOLD_S`] and clears
//! only if the finding stayed away that long (if it comes back meanwhile, nothing was
//! emitted); a lower severity is taken only after it held for [`CLEAR_HOLD_S`] (a higher
//! one at once). So an anomaly is open at least [`CLEAR_HOLD_S`], and a condition that
//! comes and goes every few seconds is one open anomaly, not a stream of events.

use std::collections::{BTreeMap, BTreeSet};

use super::{Anomaly, Event, Evidence, Finding, Severity};

/// How long a cleared anomaly stays listed, so on-call sees what just happened.
pub const KEEP_CLEARED_S: u64 = 15 * 60;
/// Seconds a finding must stay away before its anomaly clears, and a lower severity must
/// hold before the anomaly de-escalates.
pub const CLEAR_HOLD_S: u64 = 10;

/// The clear hold of a finding: none for the interface findings, which read the
/// interface's state itself (not a noisy counter), so they clear at the first poll that
/// sees the interface back; [`CLEAR_HOLD_S`] for every other.
pub fn clear_hold_s(id: &str) -> u64 {
    if crate::detect::interfaces::IDS.contains(&id) {
        0
    } else {
        CLEAR_HOLD_S
    }
}

/// One change of one anomaly, for the journal and the log records.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub event: Event,
    /// The anomaly after the change.
    pub anomaly: Anomaly,
    /// Its severity before (escalated, de-escalated).
    pub from: Option<Severity>,
}

#[derive(Debug)]
struct Entry {
    anomaly: Anomaly,
    /// When the finding was last absent-since (it is open but not found now).
    absent_since: Option<u64>,
    /// A lower severity found since this time (not yet taken).
    lower_since: Option<u64>,
}

impl Entry {
    fn change_severity(&mut self, severity: Severity, event: Event) -> Transition {
        let from = self.anomaly.severity;
        self.anomaly.severity = severity;
        self.lower_since = None;
        Transition {
            event,
            anomaly: self.anomaly.clone(),
            from: Some(from),
        }
    }
}

#[derive(Debug, Default)]
pub struct Book {
    entries: BTreeMap<(String, String), Entry>,
}

impl Book {
    /// Applies one poll's complete set of findings at `now` (Unix seconds) and returns
    /// the transitions, in a stable order. Cleared anomalies older than
    /// [`KEEP_CLEARED_S`] are dropped.
    pub fn update(&mut self, findings: Vec<Finding>, now: u64) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for f in findings {
            let key = (f.id.to_string(), f.subject.clone());
            if !seen.insert(key.clone()) {
                // A detector listing one subject twice: the first counts.
                continue;
            }
            let evidence: Vec<Evidence> = f
                .evidence
                .into_iter()
                .map(|(name, value)| Evidence { name, value })
                .collect();
            match self.entries.get_mut(&key) {
                Some(e) if e.anomaly.cleared_unix_s.is_none() => {
                    e.absent_since = None;
                    e.anomaly.summary = f.summary;
                    e.anomaly.evidence = evidence;
                    e.anomaly.last_seen_unix_s = now;
                    let current = e.anomaly.severity;
                    if f.severity > current {
                        out.push(e.change_severity(f.severity, Event::Escalated));
                    } else if f.severity < current {
                        let since = *e.lower_since.get_or_insert(now);
                        if now.saturating_sub(since) >= CLEAR_HOLD_S {
                            out.push(e.change_severity(f.severity, Event::DeEscalated));
                        }
                    } else {
                        e.lower_since = None;
                    }
                }
                _ => {
                    let a = Anomaly {
                        id: f.id.to_string(),
                        severity: f.severity,
                        subject: f.subject,
                        summary: f.summary,
                        evidence,
                        remediation: f.remediation.to_string(),
                        first_seen_unix_s: now,
                        last_seen_unix_s: now,
                        cleared_unix_s: None,
                    };
                    out.push(Transition {
                        event: Event::Opened,
                        anomaly: a.clone(),
                        from: None,
                    });
                    self.entries.insert(
                        key,
                        Entry {
                            anomaly: a,
                            absent_since: None,
                            lower_since: None,
                        },
                    );
                }
            }
        }
        for (key, e) in self.entries.iter_mut() {
            if e.anomaly.cleared_unix_s.is_some() || seen.contains(key) {
                continue;
            }
            let since = *e.absent_since.get_or_insert(now);
            if now.saturating_sub(since) >= clear_hold_s(&key.0) {
                e.anomaly.cleared_unix_s = Some(now);
                out.push(Transition {
                    event: Event::Cleared,
                    anomaly: e.anomaly.clone(),
                    from: None,
                });
            }
        }
        self.entries.retain(|_, e| {
            e.anomaly
                .cleared_unix_s
                .is_none_or(|c| now.saturating_sub(c) <= KEEP_CLEARED_S)
        });
        out
    }

    /// Open anomalies first (most severe first), then the recently cleared.
    pub fn list(&self) -> Vec<Anomaly> {
        let mut v: Vec<Anomaly> = self.entries.values().map(|e| e.anomaly.clone()).collect();
        v.sort_by(|a, b| {
            a.cleared_unix_s
                .is_some()
                .cmp(&b.cleared_unix_s.is_some())
                .then(b.severity.cmp(&a.severity))
                .then(a.id.cmp(&b.id))
                .then(a.subject.cmp(&b.subject))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &'static str, subject: &str, severity: Severity) -> Finding {
        Finding {
            id,
            severity,
            subject: subject.into(),
            summary: format!("{id} on {subject}"),
            evidence: vec![("packets".into(), "10".into())],
            remediation: "fix it",
        }
    }

    fn events(t: &[Transition]) -> Vec<(Event, Severity)> {
        t.iter().map(|t| (t.event, t.anomaly.severity)).collect()
    }

    #[test]
    fn interface_findings_clear_at_the_first_poll_without_them() {
        let mut b = Book::default();
        let down = crate::detect::interfaces::DOWN;
        b.update(vec![finding(down, "lan0", Severity::Critical)], 100);
        let t = b.update(vec![], 101);
        assert_eq!(events(&t), [(Event::Cleared, Severity::Critical)]);
        assert_eq!(b.list()[0].cleared_unix_s, Some(101));
    }

    #[test]
    fn opens_refreshes_holds_clears_and_forgets() {
        let mut b = Book::default();
        let t = b.update(vec![finding("a", "x", Severity::Warning)], 100);
        assert_eq!(events(&t), [(Event::Opened, Severity::Warning)]);
        assert_eq!(b.list()[0].first_seen_unix_s, 100);

        // Seen again: refreshed, nothing emitted.
        assert!(
            b.update(vec![finding("a", "x", Severity::Warning)], 110)
                .is_empty()
        );
        let a = &b.list()[0];
        assert_eq!((a.first_seen_unix_s, a.last_seen_unix_s), (100, 110));

        // Gone: still open during the hold-down, cleared once it held.
        assert!(b.update(vec![], 111).is_empty());
        assert!(b.update(vec![], 111 + CLEAR_HOLD_S - 1).is_empty());
        assert_eq!(b.list()[0].cleared_unix_s, None);
        let t = b.update(vec![], 111 + CLEAR_HOLD_S);
        assert_eq!(events(&t), [(Event::Cleared, Severity::Warning)]);
        assert_eq!(b.list()[0].cleared_unix_s, Some(111 + CLEAR_HOLD_S));
        assert_eq!(b.list()[0].last_seen_unix_s, 110);
        // Back: a new anomaly with a new first_seen.
        let t = b.update(vec![finding("a", "x", Severity::Warning)], 130);
        assert_eq!(events(&t), [(Event::Opened, Severity::Warning)]);
        assert_eq!(b.list()[0].first_seen_unix_s, 130);

        b.update(vec![], 140);
        b.update(vec![], 140 + CLEAR_HOLD_S);
        b.update(vec![], 140 + CLEAR_HOLD_S + KEEP_CLEARED_S + 1);
        assert!(b.list().is_empty());
    }

    #[test]
    fn flapping_within_the_hold_down_is_one_open_anomaly() {
        let mut b = Book::default();
        let mut all = Vec::new();
        // Present every other poll for a minute.
        for t in 0..60u64 {
            let f = if t % 4 < 2 {
                vec![finding("a", "x", Severity::Warning)]
            } else {
                vec![]
            };
            all.extend(b.update(f, 1000 + t));
        }
        assert_eq!(events(&all), [(Event::Opened, Severity::Warning)]);
        all.extend(b.update(vec![], 1060 + CLEAR_HOLD_S));
        assert_eq!(
            events(&all),
            [
                (Event::Opened, Severity::Warning),
                (Event::Cleared, Severity::Warning)
            ]
        );
    }

    #[test]
    fn escalates_at_once_and_de_escalates_after_the_hold() {
        let mut b = Book::default();
        b.update(vec![finding("a", "x", Severity::Warning)], 0);
        let t = b.update(vec![finding("a", "x", Severity::Critical)], 1);
        assert_eq!(events(&t), [(Event::Escalated, Severity::Critical)]);
        assert_eq!(t[0].from, Some(Severity::Warning));
        // Lower for less than the hold: stays critical.
        assert!(
            b.update(vec![finding("a", "x", Severity::Warning)], 2)
                .is_empty()
        );
        assert!(
            b.update(vec![finding("a", "x", Severity::Critical)], 3)
                .is_empty()
        );
        b.update(vec![finding("a", "x", Severity::Warning)], 4);
        assert_eq!(b.list()[0].severity, Severity::Critical);
        let t = b.update(vec![finding("a", "x", Severity::Warning)], 4 + CLEAR_HOLD_S);
        assert_eq!(events(&t), [(Event::DeEscalated, Severity::Warning)]);
        assert_eq!(t[0].from, Some(Severity::Critical));
        assert_eq!(b.list()[0].first_seen_unix_s, 0);
    }

    #[test]
    fn open_and_most_severe_first() {
        let mut b = Book::default();
        b.update(vec![finding("old", "s", Severity::Critical)], 1);
        b.update(vec![], 2);
        b.update(
            vec![
                finding("w", "s", Severity::Warning),
                finding("c", "s", Severity::Critical),
            ],
            2 + CLEAR_HOLD_S,
        );
        let ids: Vec<_> = b.list().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["c", "w", "old"]);
    }
}
