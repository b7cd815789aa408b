//! The systemd unit as installed by `cargo xtask install`: `systemd-analyze verify`
//! accepts it with no warning at all, and `systemd-analyze security` scores it as the
//! README says. (systemd-analyze comes with the `systemd` package, which `cargo xtask
//! setup` installs.)

use std::path::Path;
use std::process::{Command, Output};
use xtask::install::{BIN, UNIT, install_files};
use xtask::{TempDir, workspace_dir};

fn systemd_analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): run `cargo xtask setup` (package systemd)")
        })
}

/// Installs the real binary under a temporary root and returns the unit rewritten to
/// run it from there (verify checks that ExecStart's binary exists and is executable;
/// `--root` would also need all of systemd's own units in that root).
fn installed_unit(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.join("root");
    install_files(&root, Path::new(env!("CARGO_BIN_EXE_monitor"))).expect("install");
    let unit = std::fs::read_to_string(root.join(UNIT)).unwrap();
    let bin = format!("/{BIN}");
    assert!(unit.contains(&format!("ExecStart={bin} ")), "{unit}");
    let rewritten = unit.replace(&bin, &root.join(BIN).to_string_lossy());
    let path = dir.join("monitor.service");
    std::fs::write(&path, rewritten).unwrap();
    path
}

#[test]
fn systemd_analyze_verify_passes_without_warnings() {
    let dir = TempDir::new().unwrap();
    let unit = installed_unit(&dir);
    let out = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{stderr}",
        out.status
    );
    // Unknown keys, bad values and missing binaries are only warnings to verify.
    assert_eq!(stderr.trim(), "", "systemd-analyze verify warned");

    // The check is real: a unit whose binary is missing fails it.
    let broken = dir.join("broken.service");
    let installed_bin = dir.join("root").join(BIN);
    std::fs::write(
        &broken,
        std::fs::read_to_string(&unit)
            .unwrap()
            .replace(&*installed_bin.to_string_lossy(), "/nonexistent/monitor"),
    )
    .unwrap();
    assert!(
        !systemd_analyze(&["verify", broken.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn security_exposure_is_what_the_readme_says() {
    let dir = TempDir::new().unwrap();
    let unit = installed_unit(&dir);
    let out = systemd_analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let score = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for monitor.service: ")
                .nth(1)
        })
        .map(|rest| {
            rest.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let readme = std::fs::read_to_string(workspace_dir().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("**{score}**")),
        "README must state the unit's `systemd-analyze security` exposure, now {score}"
    );
    // Every item it reports as exposed is in README's table of what stays and why.
    let section = readme
        .split("### The systemd unit")
        .nth(1)
        .expect("README section \"The systemd unit\"");
    let section = section.split("\n## ").next().unwrap();
    let exposed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✗ "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(exposed.len() >= 10, "{text}");
    let missing: Vec<&&str> = exposed
        .iter()
        .filter(|name| !section.contains(&format!("`{}`", name.replace('|', "\\|"))))
        .collect();
    assert!(
        missing.is_empty(),
        "README's systemd section does not list {missing:?} that systemd-analyze security reports:\n{text}"
    );
}
