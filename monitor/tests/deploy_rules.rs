//! The Prometheus alert rules in deploy/prometheus/: `promtool check rules` accepts them,
//! `promtool test rules` passes its fixtures, and every alert has a fixture where it
//! fires and one where it stays silent. (promtool comes with the `prometheus` package,
//! which `cargo xtask setup` installs.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn deploy() -> PathBuf {
    xtask::workspace_dir().join("deploy/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy())
        .output()
        .expect("promtool (package prometheus, installed by `cargo xtask setup`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The alert names of the rules file.
fn alerts() -> BTreeSet<String> {
    std::fs::read_to_string(deploy().join("monitor-alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn rules_pass_promtool_check() {
    let text = promtool(&["check", "rules", "monitor-alerts.yml"]);
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{text}"
    );
}

#[test]
fn rule_fixtures_pass_promtool_test() {
    let text = promtool(&["test", "rules", "monitor-alerts.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_fixture() {
    let fixtures = std::fs::read_to_string(deploy().join("monitor-alerts.test.yml")).unwrap();
    let lines: Vec<&str> = fixtures.lines().map(str::trim).collect();
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname: ") else {
            continue;
        };
        match lines.get(i + 1) {
            Some(&"exp_alerts: []") => silent.insert(name.to_string()),
            Some(&"exp_alerts:") => fires.insert(name.to_string()),
            other => panic!("alertname {name} is not followed by exp_alerts: {other:?}"),
        };
    }
    let all = alerts();
    assert!(all.len() >= 16, "{all:?}");
    assert_eq!(fires, all, "alerts with a fixture where they fire");
    assert_eq!(silent, all, "alerts with a fixture where they stay silent");
    // The fleet: every rule's expression keeps the site (or the scrape target).
    let rules = std::fs::read_to_string(deploy().join("monitor-alerts.yml")).unwrap();
    for block in rules.split("- alert: ").skip(1) {
        let name = block.lines().next().unwrap();
        assert!(
            block.contains("site_name") || block.contains("$labels.instance"),
            "{name} does not say which site"
        );
    }
}
