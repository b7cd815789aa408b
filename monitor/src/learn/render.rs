//! The LEARNED PEERS section of `monitor status`.

use std::fmt::Write as _;

use crate::{report::learn::LearnStatus, status::model::StatusReport};

const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// At most this many peers are listed; `--json` has them all.
pub const MAX_SHOWN: usize = 25;

/// The section, or nothing when learning is off or has nothing to show.
pub fn section(report: &StatusReport, color: bool) -> String {
    let mut out = String::new();
    let Some(l) = &report.learn else {
        return out;
    };
    if !l.enabled && report.learned_peers.is_empty() {
        return out;
    }
    let title = format!(
        "LEARNED PEERS ({} now; {} samples, {} dropped, {} DNS malformed, {} SNI without name)",
        l.peers,
        l.samples,
        l.sample_drops,
        l.dns_malformed.values().sum::<u64>(),
        l.sni_malformed.values().sum::<u64>(),
    );
    if color {
        let _ = writeln!(out, "\n{BOLD}{title}{RESET}");
    } else {
        let _ = writeln!(out, "\n{title}");
    }
    // What was not believed, and why: the first place to look when a peer is missing.
    if let Some(line) = refusals(l) {
        let _ = writeln!(out, "{line}");
    }
    if report.learned_peers.is_empty() {
        let _ = writeln!(out, "  none");
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<40} {:<8} {:>8}  NAME",
        "ADDRESS", "SOURCE", "LEFT s"
    );
    for p in report.learned_peers.iter().take(MAX_SHOWN) {
        let _ = writeln!(
            out,
            "  {:<40} {:<8} {:>8}  {}",
            p.addr, p.source, p.expires_in_s, p.name
        );
    }
    if report.learned_peers.len() > MAX_SHOWN {
        let _ = writeln!(
            out,
            "  ... {} more (monitor status --json lists all)",
            report.learned_peers.len() - MAX_SHOWN
        );
    }
    out
}

/// The refusals line (`None` when nothing was refused).
fn refusals(l: &LearnStatus) -> Option<String> {
    if l.rate_limited == 0 && l.refused.is_empty() {
        return None;
    }
    let reasons: Vec<String> = l.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let reasons = if reasons.is_empty() {
        "none".to_string()
    } else {
        reasons.join(", ")
    };
    Some(format!(
        "  refused: {reasons}; rate-limited in the kernel: {}",
        l.rate_limited
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_listed_by_reason() {
        let mut l = LearnStatus::default();
        assert_eq!(refusals(&l), None);
        l.refused.insert("unsolicited".into(), 3);
        l.refused.insert("wrong_side".into(), 2);
        l.rate_limited = 9900;
        assert_eq!(
            refusals(&l).unwrap(),
            "  refused: unsolicited 3, wrong_side 2; rate-limited in the kernel: 9900"
        );
        l.refused.clear();
        assert_eq!(
            refusals(&l).unwrap(),
            "  refused: none; rate-limited in the kernel: 9900"
        );
    }
}
