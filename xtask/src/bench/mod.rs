//! `cargo xtask bench`: measures the monitor and writes BENCHMARKS.md. Not a test: it
//! never fails on a number, it reports it (with the target and by how much it is missed).

mod daemon;
mod kernel;
mod machine;
mod throughput;

use anyhow::{Context as _, Result};
use std::{fmt::Write as _, process::Command};
use xtask::{cmd, workspace_dir};

/// Measurement sizes; `--quick` shrinks them for a smoke run.
pub struct Plan {
    pub repeat: u32,
    pub runs: usize,
    pub new_flows: u32,
    pub throughput_secs: u64,
    pub daemon_sizes: Vec<u32>,
    pub cpu_window_secs: u64,
    /// The conntrack case: entries (half NAT'd) and flows in the map (0 entries: not
    /// run).
    pub conntrack_entries: u32,
    pub conntrack_flows: u32,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                repeat: 10_000,
                runs: 5,
                new_flows: 2_000,
                throughput_secs: 1,
                daemon_sizes: vec![1_000, 10_000],
                cpu_window_secs: 3,
                conntrack_entries: 10_000,
                conntrack_flows: 8_192,
            }
        } else {
            Plan {
                repeat: 1_000_000,
                runs: 5,
                new_flows: 20_000,
                throughput_secs: 3,
                daemon_sizes: vec![1_000, 10_000, 100_000, 1_000_000],
                cpu_window_secs: 10,
                conntrack_entries: 100_000,
                conntrack_flows: 65_536,
            }
        }
    }
}

pub fn run(
    quick: bool,
    daemon_only: bool,
    throughput_only: bool,
    daemon_sizes: Option<&str>,
    no_conntrack: bool,
) -> Result<()> {
    crate::setup::run()?;
    let mut plan = Plan::new(quick);
    if let Some(sizes) = daemon_sizes {
        plan.daemon_sizes = if sizes == "none" {
            Vec::new()
        } else {
            sizes
                .split(',')
                .map(|n| n.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .with_context(|| {
                    format!("--daemon-sizes {sizes:?}: give flow counts like 1000,100000 or none")
                })?
        };
    }
    if no_conntrack {
        plan.conntrack_entries = 0;
    }
    println!("==> building (release)");
    cmd::run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "--release",
                "--package",
                "monitor",
                "--bin",
                "monitor",
                "--example",
                "bench_kernel",
                "--example",
                "bench_fill",
                "--example",
                "bench_floor",
                "--example",
                "bench_analysis",
            ])
            .current_dir(workspace_dir()),
    )
    .context("building the monitor and the benchmark programs")?;

    if throughput_only {
        println!("==> live throughput through the gateway");
        println!("{}", throughput::run(&plan)?);
        return Ok(());
    }
    if daemon_only {
        println!("==> daemon at scale");
        println!("{}", daemon::run(&plan)?);
        return Ok(());
    }
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo xtask bench{}`. Medians of {} runs, min–max in brackets. Numbers are \
         from this machine; compare ratios, not absolute values, across machines.\n",
        if quick { " --quick" } else { "" },
        plan.runs
    )?;
    md.push_str(&machine::describe());

    println!("==> kernel cost per packet");
    md.push_str(&kernel::run(&plan)?);
    println!("==> live throughput through the gateway");
    md.push_str(&throughput::run(&plan)?);
    println!("==> daemon at scale");
    md.push_str(&daemon::run(&plan)?);

    let path = workspace_dir().join("BENCHMARKS.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!("==> wrote {}", path.display());
    Ok(())
}

/// Median, min and max.
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The release build's output directory.
pub fn release_dir() -> std::path::PathBuf {
    xtask::paths::target_dir().join("release")
}
