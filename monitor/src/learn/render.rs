//! The LEARNED PEERS section of `monitor status`.

use std::fmt::Write as _;

use crate::status::model::StatusReport;

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
