//! The daemon guard and the scratch guards, against a stand-in `monitor` (a shell script
//! with the same command line), so the plumbing is tested independently of the daemon.
//! Privileged: uses a testbed namespace and bpffs.

use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::*;

/// `run --config CFG` logs the links it sees (proving its namespace), marks itself ready
/// next to the config and idles (bounded: 30 s) until SIGTERM; a config containing
/// "fail" makes it exit 64 at once. `status --socket S --json` answers once the ready
/// mark next to S exists.
const FAKE_MONITOR: &str = r#"#!/bin/sh
case "$1" in
run)
    dir=$(dirname "$3")
    if grep -q fail "$3"; then echo "fake: bad config" >&2; exit 64; fi
    ip -o link show >&2
    trap 'echo "fake: SIGTERM" >&2; rm -f "$dir/ready"; exit 0' TERM
    touch "$dir/ready"
    i=0
    while [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
    ;;
status)
    [ -e "$(dirname "$3")/ready" ] || { echo "fake: cannot connect" >&2; exit 3; }
    echo '{"schema_version": 1, "fake": true}'
    ;;
esac
"#;

fn fake_monitor(dir: &TempDir) -> PathBuf {
    let source = dir.join("monitor.sh");
    std::fs::write(&source, FAKE_MONITOR).unwrap();
    // The executable is written by a child process (install), not by us: a write fd in
    // this process could leak into a parallel test's fork and make exec fail ETXTBSY.
    let path = dir.join("monitor");
    let status = Command::new("install")
        .arg("-m755")
        .arg(&source)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn write_config(dir: &TempDir, body: &str) -> PathBuf {
    let config = dir.join("monitor.toml");
    std::fs::write(&config, body).unwrap();
    config
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only probes for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[test]
fn start_waits_for_status_then_stop_terminates_cleanly() {
    let testbed = Testbed::new().unwrap();
    let tmp = TempDir::new().unwrap();
    let bin = fake_monitor(&tmp);
    let config = write_config(&tmp, "ok");
    let socket = tmp.join("monitor.sock");
    let daemon = Daemon::start(&bin, &testbed.gw, &config, &socket).unwrap();

    let report = daemon.status_json().unwrap();
    assert_eq!(report["fake"], true);
    assert_eq!(status_json(&bin, &socket).unwrap(), report);
    // nsenter put it in the gateway's namespace: it sees lan0 and wan0.
    let log = daemon.log();
    assert!(log.contains(": lan0@") && log.contains(": wan0@"), "{log}");
    assert_eq!(daemon.log_path(), tmp.join("monitor.log"));

    let pid = daemon.pid();
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert!(!alive(pid));
    let log = std::fs::read_to_string(tmp.join("monitor.log")).unwrap();
    assert!(log.ends_with("fake: SIGTERM\n"), "{log}");
}

#[test]
fn start_reports_an_early_exit_with_the_log() {
    let testbed = Testbed::new().unwrap();
    let tmp = TempDir::new().unwrap();
    let bin = fake_monitor(&tmp);
    let config = write_config(&tmp, "fail");
    let error = Daemon::start(&bin, &testbed.gw, &config, &tmp.join("monitor.sock")).unwrap_err();
    let error = format!("{error:#}");
    assert!(error.contains("exited early (exit status: 64)"), "{error}");
    assert!(error.contains("fake: bad config"), "{error}");
}

#[test]
fn status_json_of_an_absent_daemon_is_an_error_with_its_stderr() {
    let tmp = TempDir::new().unwrap();
    let bin = fake_monitor(&tmp);
    let error = status_json(&bin, &tmp.join("monitor.sock"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("gave no JSON report (exit status: 3): fake: cannot connect"),
        "{error}"
    );
}

#[test]
fn dropping_the_guard_stops_the_daemon() {
    let testbed = Testbed::new().unwrap();
    let tmp = TempDir::new().unwrap();
    let bin = fake_monitor(&tmp);
    let config = write_config(&tmp, "ok");
    let daemon = Daemon::start(&bin, &testbed.gw, &config, &tmp.join("monitor.sock")).unwrap();
    let pid = daemon.pid();
    assert!(alive(pid));
    drop(daemon);
    assert!(!alive(pid));
}

#[test]
fn kill_is_a_crash() {
    let testbed = Testbed::new().unwrap();
    let tmp = TempDir::new().unwrap();
    let bin = fake_monitor(&tmp);
    let config = write_config(&tmp, "ok");
    let daemon = Daemon::start(&bin, &testbed.gw, &config, &tmp.join("monitor.sock")).unwrap();
    let status = daemon.kill();
    assert!(!status.success());
    // The fake had no chance to remove its ready mark, as a crashed daemon leaves state.
    assert!(tmp.join("ready").exists());
}

#[test]
fn temp_dir_is_unique_and_removed_with_its_contents() {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    assert_ne!(a.path(), b.path());
    std::fs::create_dir(a.join("sub")).unwrap();
    std::fs::write(a.join("sub/file"), "x").unwrap();
    let path = a.path().to_owned();
    drop(a);
    assert!(!path.exists());
}

#[test]
fn pin_dir_is_unique_and_removed_recursively() {
    assert!(
        is_bpffs(Path::new(scratch::BPFFS)),
        "bpffs is not mounted at /sys/fs/bpf: run `cargo xtask setup`"
    );
    let (a, b) = (PinDir::new(), PinDir::new());
    assert_ne!(a.path(), b.path());
    let prefix = format!("/sys/fs/bpf/monitor-test-{}-", std::process::id());
    assert!(
        a.path().to_string_lossy().starts_with(&prefix),
        "{}",
        a.path().display()
    );
    std::fs::create_dir_all(a.path().join("maps")).unwrap();
    let path = a.path().to_owned();
    drop(a);
    assert!(!path.exists());
    // Never created: dropping is fine.
    drop(b);
}

fn is_bpffs(path: &Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&path.to_str().unwrap()) && fields.get(2) == Some(&"bpf")
        })
}
