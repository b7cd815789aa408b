//! Times for people: "3 min ago" in the text views (the JSON keeps Unix seconds).

use crate::status::model::StatusReport;

/// The report's "now": when the daemon built it (start + uptime), so a report read later
/// (or a fixed one in a test) still says how long ago things were as of the report.
pub fn report_now(report: &StatusReport) -> u64 {
    report.daemon.started_at_unix_s + report.daemon.uptime_s
}

/// `then` relative to `now`: "just now", "42 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn ago(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then);
    match s {
        0..5 => "just now".to_string(),
        5..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// A span of seconds in the same words: "42 s", "3 min", "2 h", "4 d".
pub fn span(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_each_range() {
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(
            ago(100, 200),
            "just now",
            "a clock step back is not the future"
        );
        assert_eq!(ago(100, 58), "42 s ago");
        assert_eq!(ago(1000, 1000 - 185), "3 min ago");
        assert_eq!(ago(100_000, 100_000 - 7300), "2 h ago");
        assert_eq!(ago(1_000_000, 1_000_000 - 4 * 86400), "4 d ago");
        assert_eq!(span(600), "10 min");
    }
}
