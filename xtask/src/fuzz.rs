//! `cargo xtask fuzz`: a longer campaign of the kernel fuzz test (random and mutated
//! frames through BPF_PROG_TEST_RUN), with its own frame count and seed.

use anyhow::{Result, bail};
use std::process::Command;
use xtask::workspace_dir;

pub fn run(frames: u64, seed: Option<u64>) -> Result<()> {
    crate::setup::run()?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    println!(
        "==> fuzzing the kernel programs: {frames} frames, seed {seed} (MONITOR_FUZZ_SEED={seed} reproduces)"
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "test",
            "--release",
            "--package",
            "monitor",
            "--test",
            "kernel_fuzz",
            "--",
            "--nocapture",
        ])
        .env("MONITOR_FUZZ_FRAMES", frames.to_string())
        .env("MONITOR_FUZZ_SEED", seed.to_string())
        .current_dir(workspace_dir())
        .status()?;
    if !status.success() {
        bail!("the fuzz campaign failed (seed {seed}): see the output above");
    }
    Ok(())
}
