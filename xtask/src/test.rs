//! `cargo xtask test`: everything CI checks, in order, stopping at the first failure.

use anyhow::{Result, bail};
use std::ffi::OsString;
use std::process::Command;
use xtask::{PinDir, testbed, workspace_dir};

/// The oldest kernel the programs are verified on (README: supported kernels).
pub const OLDEST_KERNEL: &str = "6.1";

pub fn run(kernel_matrix: bool, cargo_test_args: &[String]) -> Result<()> {
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
    bpf_clippy()?;
    crate::audit::run()?;
    let mut test = vec!["test", "--workspace"];
    test.extend(cargo_test_args.iter().map(String::as_str));
    cargo_step(&test)?;
    if kernel_matrix {
        println!(
            "==> kernel tests on Linux {OLDEST_KERNEL} under qemu (cargo xtask kernel-matrix)"
        );
        crate::kernel_matrix::run(&crate::kernel_matrix::Options {
            kernels: vec![OLDEST_KERNEL.to_owned()],
            accel: crate::kernel_matrix::Accel::Auto,
            timeout: std::time::Duration::from_secs(1800),
            source: None,
            only: Vec::new(),
        })?;
    } else {
        println!("==> kernel tests on Linux {OLDEST_KERNEL}: SKIPPED (--no-kernel-matrix)");
    }
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

/// Lints the kernel programs as they are really built: for the BPF target, with the
/// nightly toolchain aya-build uses (on the host the crate is only a stub).
fn bpf_clippy() -> Result<()> {
    let target_dir = workspace_dir().join("target").join("bpf-clippy");
    let args = [
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--package",
        "monitor-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
    ];
    let mut command = Command::new("rustup");
    command
        .args(args)
        .arg(&target_dir)
        .args(["--", "-D", "warnings"])
        .current_dir(workspace_dir())
        // The outer cargo's toolchain variables would pin the inner cargo to stable.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC");
    println!("==> cargo +nightly clippy --package monitor-ebpf --target bpfel-unknown-none");
    let status = command.status()?;
    if !status.success() {
        bail!("step `clippy of monitor-ebpf for the BPF target` failed ({status})");
    }
    Ok(())
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
