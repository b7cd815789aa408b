//! The dependency audit (cargo-deny, deny.toml): licences, bans (duplicates and
//! wildcards) and sources must pass; known vulnerabilities (RustSec advisories) are
//! checked whenever the advisory database can be fetched. That database lives on GitHub
//! only: where GitHub is out of reach (as on some build machines, which reach crates.io
//! alone) the step says loudly that advisories were NOT checked, rather than failing on
//! the network or passing in silence.

use anyhow::{Result, bail};
use std::process::Command;
use std::time::Duration;
use xtask::{cmd, workspace_dir};

/// Where cargo-deny fetches the RustSec advisory database from.
const ADVISORY_DB: &str = "https://github.com/rustsec/advisory-db";
const REACH_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run() -> Result<()> {
    deny(&["licenses", "bans", "sources"])?;
    if advisory_db_reachable() {
        deny(&["advisories"])
    } else {
        println!(
            "==> cargo deny check advisories: NOT CHECKED — the RustSec advisory database \
             ({ADVISORY_DB}) cannot be reached from this machine. Run `cargo deny check \
             advisories` where GitHub is reachable."
        );
        Ok(())
    }
}

fn deny(checks: &[&str]) -> Result<()> {
    let line = format!("cargo deny check {}", checks.join(" "));
    println!("==> {line}");
    let status = Command::new("cargo-deny")
        .arg("check")
        .args(checks)
        .current_dir(workspace_dir())
        .status()?;
    if !status.success() {
        bail!("step `{line}` failed ({status}): see above, and deny.toml for the policy");
    }
    Ok(())
}

fn advisory_db_reachable() -> bool {
    cmd::output_timeout(
        Command::new("git")
            .args(["ls-remote", "--heads", ADVISORY_DB])
            .env("GIT_TERMINAL_PROMPT", "0"),
        REACH_TIMEOUT,
    )
    .is_ok_and(|o| o.status.success())
}
