//! The book of anomalies: opens, refreshes and clears them from each poll's findings.

use std::collections::BTreeMap;

use super::{Anomaly, Evidence, Finding};

/// How long a cleared anomaly stays listed, so on-call sees what just happened.
pub const KEEP_CLEARED_S: u64 = 15 * 60;

#[derive(Debug, Default)]
pub struct Book {
    entries: BTreeMap<(String, String), Anomaly>,
}

impl Book {
    /// Applies one poll's complete set of findings at `now` (Unix seconds). Anomalies not
    /// found again are cleared; cleared ones older than [`KEEP_CLEARED_S`] are dropped.
    /// Returns the anomalies that opened in this poll (for log records).
    pub fn update(&mut self, findings: Vec<Finding>, now: u64) -> Vec<Anomaly> {
        let mut opened = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for f in findings {
            let key = (f.id.to_string(), f.subject.clone());
            seen.insert(key.clone());
            let evidence = f
                .evidence
                .into_iter()
                .map(|(name, value)| Evidence { name, value })
                .collect();
            match self.entries.get_mut(&key) {
                Some(a) if a.cleared_unix_s.is_none() => {
                    a.severity = f.severity;
                    a.summary = f.summary;
                    a.evidence = evidence;
                    a.last_seen_unix_s = now;
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
                    opened.push(a.clone());
                    self.entries.insert(key, a);
                }
            }
        }
        for (key, a) in self.entries.iter_mut() {
            if a.cleared_unix_s.is_none() && !seen.contains(key) {
                a.cleared_unix_s = Some(now);
            }
        }
        self.entries.retain(|_, a| {
            a.cleared_unix_s
                .is_none_or(|c| now.saturating_sub(c) <= KEEP_CLEARED_S)
        });
        opened
    }

    /// Open anomalies first (most severe first), then the recently cleared.
    pub fn list(&self) -> Vec<Anomaly> {
        let mut v: Vec<Anomaly> = self.entries.values().cloned().collect();
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
    use crate::anomaly::Severity;

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

    #[test]
    fn opens_refreshes_clears_and_forgets() {
        let mut b = Book::default();
        let opened = b.update(vec![finding("a", "x", Severity::Warning)], 100);
        assert_eq!(opened.len(), 1);
        assert_eq!(b.list()[0].first_seen_unix_s, 100);

        // Seen again: refreshed, not reopened.
        assert!(
            b.update(vec![finding("a", "x", Severity::Critical)], 110)
                .is_empty()
        );
        let a = &b.list()[0];
        assert_eq!((a.first_seen_unix_s, a.last_seen_unix_s), (100, 110));
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.cleared_unix_s, None);

        // Gone: cleared, still listed.
        b.update(vec![], 120);
        assert_eq!(b.list()[0].cleared_unix_s, Some(120));
        // Back: a new anomaly with a new first_seen.
        let opened = b.update(vec![finding("a", "x", Severity::Warning)], 130);
        assert_eq!(opened.len(), 1);
        assert_eq!(b.list()[0].first_seen_unix_s, 130);

        b.update(vec![], 140);
        b.update(vec![], 140 + KEEP_CLEARED_S + 1);
        assert!(b.list().is_empty());
    }

    #[test]
    fn open_and_most_severe_first() {
        let mut b = Book::default();
        b.update(vec![finding("old", "s", Severity::Critical)], 1);
        b.update(
            vec![
                finding("w", "s", Severity::Warning),
                finding("c", "s", Severity::Critical),
            ],
            2,
        );
        let ids: Vec<_> = b.list().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["c", "w", "old"]);
    }
}
