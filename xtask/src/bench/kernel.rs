//! Kernel cost per packet: runs the `bench_kernel` example (BPF_PROG_TEST_RUN on the real
//! programs and on floor programs in the same run) and tabulates it.

use anyhow::{Context as _, Result, bail};
use std::{fmt::Write as _, process::Command};
use xtask::cmd;

use super::{Plan, release_dir};

/// Targets of the issue, in ns above the floor.
const ESTABLISHED_TARGET_NS: f64 = 60.0;
const NEW_FLOW_TARGET_NS: f64 = 250.0;

pub fn run(plan: &Plan) -> Result<String> {
    let out = cmd::run(
        Command::new(release_dir().join("examples").join("bench_kernel")).args([
            "--repeat",
            &plan.repeat.to_string(),
            "--runs",
            &plan.runs.to_string(),
            "--new-flows",
            &plan.new_flows.to_string(),
        ]),
    )
    .context("running bench_kernel")?;
    let mut md = String::from("## 1. Kernel cost per packet (BPF_PROG_TEST_RUN)\n\n");
    writeln!(
        md,
        "Each case runs the real program on a crafted packet {} times per measurement \
         (the kernel reports the mean time per run), against a floor program that only \
         passes (XDP) or returns OK (TC), measured the same way in the same run. The flow \
         of an established case is created by a warm-up run first. \"New flow\" runs one \
         packet per test run with a new 5-tuple each time ({} packets per measurement) and \
         takes the median run, the floor likewise.\n",
        plan.repeat, plan.new_flows
    )?;
    md.push_str("| case | program | ns | floor ns | above floor | ratio | target |\n|---|---|---|---|---|---|---|\n");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = 0;
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let case = v["case"].as_str().unwrap_or("?");
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let above = f("ns") - f("floor_ns");
        let target = if case.starts_with("new flow") {
            Some(NEW_FLOW_TARGET_NS)
        } else if case.contains("established") {
            Some(ESTABLISHED_TARGET_NS)
        } else {
            None
        };
        let verdict = match target {
            Some(t) if above <= t => format!("≤ {t} ns above floor: met"),
            Some(t) => format!("≤ {t} ns above floor: missed by {:.0} ns", above - t),
            None => "—".into(),
        };
        writeln!(
            md,
            "| {case} | {} | {:.0} [{:.0}–{:.0}] | {:.0} [{:.0}–{:.0}] | {:.0} | {:.2} | {verdict} |",
            v["program"].as_str().unwrap_or("?"),
            f("ns"),
            f("ns_min"),
            f("ns_max"),
            f("floor_ns"),
            f("floor_min"),
            f("floor_max"),
            above,
            f("ns") / f("floor_ns"),
        )?;
        rows += 1;
    }
    if rows == 0 {
        bail!("bench_kernel printed no results:\n{text}");
    }
    md.push('\n');
    Ok(md)
}
