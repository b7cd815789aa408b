//! `cargo xtask test`: everything CI checks, in order, stopping at the first failure.

use anyhow::{Result, bail};
use std::ffi::OsString;
use std::process::Command;
use xtask::{PinDir, testbed, workspace_dir};

pub fn run(cargo_test_args: &[String]) -> Result<()> {
    crate::setup::run()?;
    remove_leftovers();
    cargo_step(&["fmt", "--all", "--", "--check"])?;
    cargo_step(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let mut test = vec!["test", "--workspace"];
    test.extend(cargo_test_args.iter().map(String::as_str));
    cargo_step(&test)?;
    println!("==> all checks passed");
    Ok(())
}

/// Namespaces and pin directories of test runs that crashed or were killed, which would
/// otherwise pile up (their names carry a dead pid; live runs' are kept).
fn remove_leftovers() {
    println!("==> removing leftovers of earlier test runs");
    for name in testbed::cleanup_stale() {
        println!("removed netns {name}");
    }
    for path in PinDir::cleanup_stale() {
        println!("removed {}", path.display());
    }
}

fn cargo_step(args: &[&str]) -> Result<()> {
    // The cargo that runs us (`cargo xtask`), so the same toolchain does every step.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_dir());
    let line = format!("cargo {}", args.join(" "));
    println!("==> {line}");
    let status = command.status()?;
    if !status.success() {
        bail!("step `{line}` failed ({status})");
    }
    Ok(())
}
