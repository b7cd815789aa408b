//! Anomalies grouped by finding: one heading per finding (its worst severity and how
//! many subjects), its subjects, and its fix printed once.

use super::ago::ago;
use super::calls::{RED, YELLOW};
use super::fit::{cut, paint, wrap};
use crate::anomaly::{Anomaly, Severity};
use std::fmt::Write as _;

/// One finding: the anomalies that share an ID.
pub struct Finding<'a> {
    pub id: &'a str,
    pub members: Vec<&'a Anomaly>,
}

impl Finding<'_> {
    /// The worst severity among its open members (`None` when all are cleared).
    pub fn open_severity(&self) -> Option<Severity> {
        self.members
            .iter()
            .filter(|a| a.cleared_unix_s.is_none())
            .map(|a| a.severity)
            .max()
    }

    /// The distinct fixes, in the members' order (one for a finding of one kind).
    pub fn fixes(&self) -> Vec<&str> {
        let mut fixes: Vec<&str> = Vec::new();
        for a in &self.members {
            if !fixes.contains(&a.remediation.as_str()) {
                fixes.push(&a.remediation);
            }
        }
        fixes
    }
}

/// Findings, open ones first (most severe first), then cleared ones; the members of each
/// in the report's order.
pub fn group(anomalies: &[Anomaly]) -> Vec<Finding<'_>> {
    let mut findings: Vec<Finding> = Vec::new();
    for a in anomalies {
        match findings.iter_mut().find(|f| f.id == a.id) {
            Some(f) => f.members.push(a),
            None => findings.push(Finding {
                id: &a.id,
                members: vec![a],
            }),
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.open_severity().map(|s| s as u8 + 1)));
    findings
}

pub fn severity_style(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Critical) => RED,
        Some(Severity::Warning) => YELLOW,
        _ => "",
    }
}

fn label(s: Option<Severity>) -> String {
    s.map_or_else(|| "cleared".to_string(), |s| s.as_str().to_uppercase())
}

/// A finding in a few lines (compact view): heading with the first summary, subjects
/// with the times, and the fix (at most `fix_lines` lines).
pub fn brief(f: &Finding, now: u64, width: usize, fix_lines: usize, color: bool) -> Vec<String> {
    let severity = f.open_severity();
    let count = if f.members.len() > 1 {
        format!(" x{}", f.members.len())
    } else {
        String::new()
    };
    let plain = format!(
        "  {} {}{count}  {}",
        label(severity),
        f.id,
        f.members[0].summary
    );
    let plain = cut(&plain, width);
    let sev = label(severity);
    let mut lines = vec![plain.replacen(&sev, &paint(color, severity_style(severity), &sev), 1)];
    let first = f
        .members
        .iter()
        .map(|a| a.first_seen_unix_s)
        .min()
        .unwrap_or(0);
    let last = f
        .members
        .iter()
        .map(|a| a.last_seen_unix_s)
        .max()
        .unwrap_or(0);
    let subjects: Vec<&str> = f.members.iter().map(|a| a.subject.as_str()).collect();
    lines.push(cut(
        &format!(
            "    on {}  since {}, last {}",
            subjects.join(", "),
            ago(now, first),
            ago(now, last)
        ),
        width,
    ));
    for fix in f.fixes() {
        lines.extend(wrap(&format!("fix: {fix}"), "    ", width, fix_lines));
    }
    lines
}

/// A finding in full (`monitor status anomalies`): every member with its summary,
/// evidence and times, then the fix once.
pub fn full(out: &mut String, f: &Finding, now: u64, width: usize, color: bool) {
    let severity = f.open_severity();
    let sev = label(severity);
    let _ = writeln!(
        out,
        "{}",
        cut(&format!("  {} {} ({})", sev, f.id, f.members.len()), width).replacen(
            &sev,
            &paint(color, severity_style(severity), &sev),
            1
        )
    );
    for a in &f.members {
        let state = match a.cleared_unix_s {
            None => format!(
                "{}, since {}",
                a.severity.as_str(),
                ago(now, a.first_seen_unix_s)
            ),
            Some(c) => format!("cleared {}", ago(now, c)),
        };
        let evidence: Vec<String> = a
            .evidence
            .iter()
            .map(|e| format!("{} {}", e.name, e.value))
            .collect();
        let text = format!(
            "{}: {} ({state}, last {})",
            a.subject,
            a.summary,
            ago(now, a.last_seen_unix_s)
        );
        out.extend(wrap(&text, "    ", width, 4).into_iter().map(|l| l + "\n"));
        if !evidence.is_empty() {
            out.extend(
                wrap(&evidence.join(", "), "      ", width, 4)
                    .into_iter()
                    .map(|l| l + "\n"),
            );
        }
    }
    for fix in f.fixes() {
        out.extend(
            wrap(&format!("fix: {fix}"), "    ", width, 12)
                .into_iter()
                .map(|l| l + "\n"),
        );
    }
}
