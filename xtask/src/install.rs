//! `cargo xtask install`: puts the daemon, its systemd unit, its configuration and its
//! README where the unit expects them, under a root directory (`/` on the router itself,
//! a staging directory for a package or an image).
//!
//! The configuration is only written when there is none: a user's edited
//! `/etc/monitor/monitor.toml` is never overwritten (the shipped default is what
//! `systemd/monitor.toml` in the source tree shows).

use crate::workspace_dir;
use anyhow::{Context as _, Result};
use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Where the binary goes (the unit's ExecStart).
pub const BIN: &str = "usr/local/bin/monitor";
/// Where the unit goes.
pub const UNIT: &str = "etc/systemd/system/monitor.service";
/// Where the configuration goes (the unit's `--config`).
pub const CONFIG: &str = "etc/monitor/monitor.toml";
/// Where the README goes (the unit's Documentation=).
pub const DOC: &str = "usr/local/share/doc/monitor/README.md";

/// Binary: executable by all, written by root only.
pub const BIN_MODE: u32 = 0o755;
/// Unit and README: readable by all.
pub const PUBLIC_MODE: u32 = 0o644;
/// Configuration: root only, since `export.otlp_headers` may hold an API key (the daemon
/// and `monitor status --config` run as root).
pub const CONFIG_MODE: u32 = 0o600;
/// Directories created on the way.
const DIR_MODE: u32 = 0o755;

/// What one install did, one line per file, for the user.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    /// False when an existing configuration was kept.
    pub config_written: bool,
}

/// Installs `binary` and the unit, configuration and README of this source tree under
/// `root`. Files are written next to their destination and renamed into place, so a
/// running daemon's binary is replaced, not rewritten under it.
pub fn install_files(root: &Path, binary: &Path) -> Result<Report> {
    let src = workspace_dir();
    let mut report = Report::default();
    for (from, to, mode) in [
        (binary.to_path_buf(), BIN, BIN_MODE),
        (src.join("systemd/monitor.service"), UNIT, PUBLIC_MODE),
        (src.join("README.md"), DOC, PUBLIC_MODE),
    ] {
        let dest = root.join(to);
        put(&from, &dest, mode)?;
        report
            .lines
            .push(format!("installed {} (mode {mode:o})", dest.display()));
    }
    let config = root.join(CONFIG);
    // symlink_metadata: a dangling symlink is also the user's, not ours to replace.
    if fs::symlink_metadata(&config).is_ok() {
        report.lines.push(format!(
            "kept {} (it exists; never overwritten: compare with {} for new keys)",
            config.display(),
            src.join("systemd/monitor.toml").display()
        ));
    } else {
        put(&src.join("systemd/monitor.toml"), &config, CONFIG_MODE)?;
        report.config_written = true;
        report.lines.push(format!(
            "installed {} (mode {CONFIG_MODE:o}; the default configuration)",
            config.display()
        ));
    }
    Ok(report)
}

/// Copies `from` to `dest` with `mode`, through a temporary file in the same directory.
fn put(from: &Path, dest: &Path, mode: u32) -> Result<()> {
    let dir = dest.parent().context("destination has no parent")?;
    make_dirs(dir)?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.xtask-install",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    fs::set_permissions(&tmp, Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", tmp.display()))?;
    fs::rename(&tmp, dest).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("cannot move {} into place", dest.display())
    })
}

/// `mkdir -p -m 0755` for the missing part of `dir` only (existing directories keep
/// their modes).
fn make_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent)?;
    }
    fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("cannot chmod {}", dir.display()))
}

/// What to do after installing under `root`.
pub fn next_steps(root: &Path, report: &Report) -> String {
    let config = Path::new("/").join(CONFIG);
    let mut out = String::from("next steps:\n");
    if root != Path::new("/") {
        out.push_str(&format!(
            "  (staged under {}: the paths below are where these files land on the router)\n",
            root.display()
        ));
    }
    if report.config_written {
        out.push_str(&format!(
            "  1. set your WAN and LAN interface names (`ip link` lists them):\n     \
             $EDITOR {}\n",
            config.display()
        ));
    } else {
        out.push_str(&format!(
            "  1. check your existing {} (it was kept)\n",
            config.display()
        ));
    }
    out.push_str(&format!(
        "  2. validate it: monitor run --check-config --config {}\n  \
         3. systemctl daemon-reload && systemctl enable --now monitor\n  \
         4. monitor status\n",
        config.display()
    ));
    out
}

/// `cargo xtask install [--root DIR] [--binary PATH]`: builds the release binary (unless
/// `binary` names one already built), installs, and prints the next steps.
pub fn run(root: &Path, binary: Option<&Path>) -> Result<()> {
    let binary = match binary {
        Some(b) => b.to_path_buf(),
        None => build_release()?,
    };
    let report = install_files(root, &binary)?;
    for line in &report.lines {
        println!("install: {line}");
    }
    print!("{}", next_steps(root, &report));
    Ok(())
}

/// `cargo build --release -p monitor`; returns the binary's path.
pub fn build_release() -> Result<PathBuf> {
    // The cargo that runs us (`cargo xtask`), so the same toolchain builds.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args(["build", "--release", "--package", "monitor"])
        .current_dir(workspace_dir());
    println!("==> cargo build --release --package monitor");
    let status = command.status().context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "the release build failed ({status})");
    Ok(crate::paths::target_dir().join("release").join("monitor"))
}
