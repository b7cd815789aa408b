//! The text views of `monitor status` for a fixed report (tests/fixtures/
//! status_ten_calls.json: ten active calls, three of them not ok; two records; two open
//! findings, one of two members sharing one fix; one cleared finding), at 80 and 120
//! columns: golden text, no line wider than the width, one fix per finding, relative
//! times. Then the real binary against a fake daemon: filters and sub-views show exactly
//! the matching rows, and every view exits with the documented status.
//!
//! `UPDATE_GOLDEN=1 cargo test -p monitor --test status_views` rewrites the golden files
//! (review the diff).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use monitor::status::model::StatusReport;
use monitor::status::render::call::{self, find};
use monitor::status::render::views::{self, View};

mod status_fake;
use status_fake::{FakeDaemon, ten_calls};

const VIEWS: &[(&str, Option<View>)] = &[
    ("compact", None),
    ("calls", Some(View::Calls)),
    ("records", Some(View::Records)),
    ("anomalies", Some(View::Anomalies)),
    ("flows", Some(View::Flows)),
    ("peers", Some(View::Peers)),
    ("interfaces", Some(View::Interfaces)),
    ("full", Some(View::Full)),
];

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(format!("{name}.txt"))
}

fn check_golden(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(text, golden, "{name} differs from {}", path.display());
}

fn assert_fits(name: &str, text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{name}: a line wider than {width}:\n{line}"
        );
    }
    assert!(!text.contains('\x1b'), "{name}: colour without asking");
    assert!(!text.contains("Unix s"), "{name}: a raw timestamp");
    assert!(!text.contains("1700000"), "{name}: a raw timestamp");
}

#[test]
fn every_view_is_golden_and_fits_80_and_120_columns() {
    let report = ten_calls();
    for width in [80, 120] {
        for (name, view) in VIEWS {
            let text = views::render(*view, &report, width, false);
            assert_fits(name, &text, width);
            check_golden(&format!("{name}_{width}"), &text);
        }
        for id in ["c0a13333", "0badf00d"] {
            let found = find(&report, id).unwrap();
            let text = call::render(&report, &found, width, false);
            assert_fits(id, &text, width);
            check_golden(&format!("call_{id}_{width}"), &text);
        }
    }
}

#[test]
fn compact_fits_one_screen_with_health_first_and_calls_worst_first() {
    let report = ten_calls();
    for width in [80, 120] {
        let text = views::render(None, &report, width, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() <= 38,
            "{} lines at {width}:\n{text}",
            lines.len()
        );
        assert!(lines[1].starts_with("HEALTH CRITICAL  3 of 10 calls not ok; call_loss"));
        // All ten calls, worst first: critical, then the warnings by MOS, then by MOS.
        let ids: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with("  c0a1"))
            .map(|l| &l[2..10])
            .collect();
        assert_eq!(
            ids,
            [
                "c0a13333", "c0a11111", "c0a15555", "c0a17777", "c0a12222", "c0a18888", "c0a19999",
                "c0a10000", "c0a14444", "c0a16666"
            ]
        );
        // The bad segment / direction of each unhealthy call.
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  c0a13333") && l.ends_with("gw>lan"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  c0a11111") && l.ends_with("isp>gw"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("  c0a15555") && l.ends_with("jitter"))
        );
        // Each distinct fix once: the DSCP finding has two members and one fix.
        assert_eq!(text.matches("fix: Configure the phones'").count(), 1);
        assert_eq!(text.matches("fix: ").count(), 3, "{text}");
        assert!(text.contains("since 7 min ago, last just now"), "{text}");
    }
}

/// `text` without ANSI escape sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn colour_changes_no_width_and_marks_the_verdicts() {
    let report = ten_calls();
    for (name, view) in VIEWS {
        let plain = views::render(*view, &report, 80, false);
        let coloured = views::render(*view, &report, 80, true);
        assert_eq!(strip_ansi(&coloured), plain, "{name}");
    }
    let compact = views::render(None, &report, 80, true);
    assert!(compact.contains("\x1b[31mCRITICAL\x1b[0m"), "{compact}");
}

#[test]
fn many_findings_still_fit_one_screen_with_each_fix_once() {
    // The site: sixteen anomalies of one finding with the same fix...
    let mut report = ten_calls();
    let template = report.anomalies[1].clone();
    report.anomalies = (0..16)
        .map(|i| {
            let mut a = template.clone();
            a.subject = format!("class{i}");
            a
        })
        .collect();
    let text = views::render(None, &report, 80, false);
    assert_eq!(text.matches("fix: ").count(), 1, "{text}");
    assert!(text.contains("dscp_phones_not_marking x16"), "{text}");
    assert!(text.lines().count() <= 38);
    // ...and twelve different findings: as many as fit, then a count of the rest.
    report.anomalies = (0..12)
        .map(|i| {
            let mut a = template.clone();
            a.id = format!("finding_{i:02}");
            a
        })
        .collect();
    for width in [80, 120] {
        let text = views::render(None, &report, width, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 38, "{} lines:\n{text}", lines.len());
        let shown = lines
            .iter()
            .filter(|l| l.starts_with("  WARNING finding_"))
            .count();
        assert!(shown >= 2, "{text}");
        assert_eq!(
            lines.last().unwrap(),
            &format!("  ... {} more: monitor status anomalies", 12 - shown),
            "{text}"
        );
    }
}

#[test]
fn anomalies_view_prints_each_fix_once_per_finding() {
    let text = views::render(Some(View::Anomalies), &ten_calls(), 80, false);
    assert_eq!(text.matches("fix: Configure the phones'").count(), 1);
    assert_eq!(text.matches("fix: Turn the SIP ALG off.").count(), 1);
    assert!(text.contains("cleared 10 min ago"), "{text}");
}

// ---------------------------------------------------------------- the binary

fn status(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The call IDs in a view's rows.
fn call_rows(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| l.len() > 8 && l[..8].chars().all(|c| c.is_ascii_hexdigit()))
        .map(|l| l[..8].to_string())
        .collect()
}

#[test]
fn filters_show_exactly_the_matching_rows_and_exit_by_what_they_show() {
    let daemon = FakeDaemon::serve(&ten_calls());
    let run = |args: &[&str]| status(&daemon.path, args);

    // Unfiltered views exit by the site's health (a critical finding is open).
    for view in [
        "",
        "calls",
        "records",
        "anomalies",
        "flows",
        "peers",
        "interfaces",
        "full",
    ] {
        let args: Vec<&str> = [view].into_iter().filter(|v| !v.is_empty()).collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{view}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("HEALTH CRITICAL"),
            "{view}"
        );
    }

    // --host: the two calls of 192.0.2.11 (two ports), nothing else.
    let out = run(&["calls", "--host", "192.0.2.11"]);
    assert_eq!(call_rows(&out), ["c0a11111", "c0a14444"]);
    assert_eq!(out.status.code(), Some(1), "worst shown: a warning call");
    let out = run(&["calls", "--host", "192.0.2.10"]);
    assert_eq!(call_rows(&out), ["c0a10000"]);
    assert_eq!(out.status.code(), Some(0), "an ok call");
    let out = run(&["calls", "--host", "192.0.2.99"]);
    assert_eq!(call_rows(&out), Vec::<String>::new());
    assert_eq!(out.status.code(), Some(0), "nothing matches");

    // --peer: the video call and one record to 203.0.113.20; the learned peer too.
    let out = run(&["calls", "--peer", "203.0.113.20"]);
    assert_eq!(call_rows(&out), ["c0a16666"]);
    let out = run(&["records", "--peer", "203.0.113.20"]);
    assert_eq!(call_rows(&out), ["0badbeef"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["peers", "--peer", "203.0.113.20"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("media.webex.com") && !text.contains("edge.webex.com"),
        "{text}"
    );

    // --severity: that level and worse.
    let out = run(&["calls", "--severity", "warning"]);
    assert_eq!(call_rows(&out), ["c0a13333", "c0a11111", "c0a15555"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["calls", "--severity", "critical"]);
    assert_eq!(call_rows(&out), ["c0a13333"]);
    let out = run(&["anomalies", "--severity", "warning", "--host", "192.0.2.11"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ANOMALIES (1 findings)") && text.contains("6.2% loss"),
        "{text}"
    );
    assert!(!text.contains("12.4% loss inside"), "{text}");
    assert_eq!(out.status.code(), Some(1), "the one shown is a warning");

    // --since: records ended and anomalies seen in the span.
    let out = run(&["records", "--since", "10m"]);
    assert_eq!(call_rows(&out), ["0badf00d"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["anomalies", "--since", "5s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ANOMALIES (2 findings)") && !text.contains("sip_alg"),
        "{text}"
    );
    let out = run(&["flows", "--host", "192.0.2.12"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("192.0.2.12:40004").count(), 1, "{text}");
    assert_eq!(text.matches(" lan0 ").count(), 1, "{text}");
    assert_eq!(out.status.code(), Some(0), "flows carry no health");

    // JSON with a filter: the filtered report.
    let out = run(&["--json", "--severity", "critical"]);
    let filtered: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = filtered.calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c0a13333"]);
    assert_eq!(
        filtered.anomalies.len(),
        2,
        "the critical call_loss and cleared sip_alg"
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn call_drill_down_and_usage_errors() {
    let daemon = FakeDaemon::serve(&ten_calls());
    let run = |args: &[&str]| status(&daemon.path, args);
    let out = run(&["call", "c0a13333"]);
    assert_eq!(out.status.code(), Some(2), "a critical call");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("gw>lan    wan0 ingress - lan0 egress   62/3000"),
        "{text}"
    );
    // The window history: one row per poll, newest last, exact seconds before the report.
    assert!(
        text.contains("WINDOW HISTORY (one row per poll, newest last)"),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().split(' ').nth(2) == Some("ago"))
        .collect();
    assert_eq!(rows.len(), 12, "{text}");
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["11", "s", "ago", "50", "0", "0.0", "1.0", "4.41", "ok"]
    );
    assert_eq!(
        rows[11].split_whitespace().collect::<Vec<_>>(),
        [
            "0", "s", "ago", "50", "5", "10.0", "9.0", "2.71", "critical"
        ]
    );
    let json = run(&["call", "c0a13333", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let history = value["window_history"].as_array().unwrap();
    assert_eq!(history.len(), 12);
    assert_eq!(history[11]["unix_s"], 1_700_000_600u64);
    assert_eq!(history[11]["lost"], 5);
    assert_eq!(
        run(&["call", "C0A10000"]).status.code(),
        Some(0),
        "ok call, any case"
    );
    assert_eq!(
        run(&["call", "0badf00d"]).status.code(),
        Some(1),
        "record: worst"
    );
    let json = run(&["call", "c0a11111", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["id"], "c0a11111");
    assert_eq!(value["bad_segment"], "isp_from_webex");

    let unknown = run(&["call", "deadbeef"]);
    assert_eq!(unknown.status.code(), Some(64));
    assert!(unknown.stdout.is_empty());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no call with ID \"deadbeef\""));
    assert_eq!(run(&["call"]).status.code(), Some(64));
    assert_eq!(run(&["calls", "c0a13333"]).status.code(), Some(64));
    assert_eq!(run(&["nonsense"]).status.code(), Some(64));
    assert_eq!(run(&["--severity", "loud"]).status.code(), Some(64));
    assert_eq!(run(&["--since", "soon"]).status.code(), Some(64));

    // Unreachable: 3 for every view.
    let dir = xtask::TempDir::new().unwrap();
    let gone = dir.join("missing.sock");
    for view in [
        "calls",
        "records",
        "anomalies",
        "flows",
        "peers",
        "interfaces",
        "full",
    ] {
        assert_eq!(status(&gone, &[view]).status.code(), Some(3), "{view}");
        let filtered = status(&gone, &[view, "--host", "192.0.2.11"]);
        assert_eq!(filtered.status.code(), Some(3), "{view} --host");
    }
    for args in [&[][..], &["call", "c0a13333"], &["--json"]] {
        assert_eq!(status(&gone, args).status.code(), Some(3), "{args:?}");
    }
}
