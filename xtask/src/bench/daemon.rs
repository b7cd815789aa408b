//! The daemon at scale: CPU and memory with 1k to 1M flows in the map, and the time one
//! poll takes; kernel memory per flow from the map's own accounting.

use anyhow::{Context as _, Result};
use monitor_common::{
    FlowKey, FlowStats,
    rtp::{RtpStreamKey, RtpStreamState},
};
use std::mem::size_of;
use std::{fmt::Write as _, process::Command, time::Duration};
use xtask::{Daemon, PinDir, TempDir, Testbed, cmd, monitor_bin};

use super::{Plan, release_dir};

pub fn run(plan: &Plan) -> Result<String> {
    let tb = Testbed::new()?;
    let bin = release_dir().join("monitor");
    let bin = if bin.exists() { bin } else { monitor_bin() };
    let ticks = clock_ticks();
    let mut md = String::from("## 3. Daemon at scale\n\n");
    writeln!(
        md,
        "The daemon (release build) polls every 1 s on the testbed gateway while the flow \
         map holds N synthetic flows (written into the pinned map by `bench_fill`). CPU is \
         user+system time over {} s from /proc; RSS is VmRSS at the end; poll is the \
         daemon's own measurement of one map read (`daemon.last_poll_ms`, median of the \
         window's status samples).\n",
        plan.cpu_window_secs
    )?;
    md.push_str("| flows | CPU % of one core | RSS MiB | poll ms | kernel bytes per flow |\n|---|---|---|---|---|\n");
    let mut notes = Vec::new();
    let mut stream_bytes = String::from("n/a");
    for &n in &plan.daemon_sizes {
        let dir = TempDir::new()?;
        let pin = PinDir::new();
        let config = dir.join("monitor.toml");
        let socket = dir.join("monitor.sock");
        let table = (n + n / 4).max(1024);
        let text = xtask::config::gateway_config(pin.path(), &socket).replace(
            "[daemon]\n",
            &format!("[daemon]\nflow_table_size = {table}\n"),
        );
        std::fs::write(&config, text)?;
        let daemon = Daemon::start(&bin, &tb.gw, &config, &socket)?;
        cmd::run(
            Command::new(release_dir().join("examples").join("bench_fill"))
                .arg(pin.path())
                .arg(n.to_string()),
        )
        .context("filling the flow map")?;
        // Let a few polls see the full map before measuring.
        std::thread::sleep(Duration::from_secs(3));
        let before = cpu_ticks(daemon.pid())?;
        let mut polls = Vec::new();
        let window = plan.cpu_window_secs;
        for _ in 0..window {
            std::thread::sleep(Duration::from_secs(1));
        }
        let after = cpu_ticks(daemon.pid())?;
        // Status after the CPU window, so serving it is not counted.
        for _ in 0..3 {
            // A daemon too busy to answer within the client's timeout is a result too.
            match daemon.status_json() {
                Ok(s) => polls.push(s["daemon"]["last_poll_ms"].as_f64().unwrap_or(f64::NAN)),
                Err(e) => {
                    notes.push(format!(
                        "At {n} flows `monitor status` did not answer in time: {e:#}."
                    ));
                    polls.push(f64::NAN);
                }
            }
            std::thread::sleep(Duration::from_millis(1100));
        }
        let cpu = (after - before) as f64 / ticks / window as f64 * 100.0;
        let rss = rss_kib(daemon.pid())? as f64 / 1024.0;
        let (poll, _, _) = super::stats(polls);
        let per_entry = |map: &str| {
            map_bytes(&pin.path().join(map))
                .map(|(bytes, max)| format!("{:.0}", bytes as f64 / max as f64))
                .unwrap_or_else(|e| format!("n/a ({e})"))
        };
        let per_flow = per_entry("FLOWS");
        if n == plan.daemon_sizes[0] {
            stream_bytes = per_entry("RTP_STREAMS");
        }
        writeln!(md, "| {n} | {cpu:.2} | {rss:.1} | {poll:.2} | {per_flow} |")?;
        if n == 10_000 {
            notes.push(if cpu < 5.0 {
                format!("At 10k flows the daemon uses {cpu:.2} % of one core (target < 5 %: met).")
            } else {
                format!("At 10k flows the daemon uses {cpu:.2} % of one core (target < 5 %: missed by {:.2} points).", cpu - 5.0)
            });
        }
        daemon.stop();
    }
    md.push('\n');
    notes.dedup();
    for n in notes {
        writeln!(md, "{n}\n")?;
    }
    writeln!(
        md,
        "Where the time goes: reading the map is batched and linear (the poll column); \
         each poll then builds the per-flow report — text addresses, classes and DSCP \
         fields for every flow — sorts it (on the raw keys, before any text is made) and \
         runs the detectors over it, on a thread beside the daemon's loop, which keeps \
         answering signals and status meanwhile; a poll due while the last one is still \
         being analysed is skipped (and logged). Status requests and exports copy the \
         last finished poll's report (the socket only its busiest 1000 flows) instead of \
         building their own. A profile at 100k flows (perf, after those \
         changes): building the report about 45 % of the daemon's time (formatting \
         addresses the largest part), the kernel's batched map read about 20 %, the \
         detectors' index of the flows about 17 %. At 1M flows the analysis takes longer \
         than the interval: one core is busy with it and the status shows a report a few \
         seconds old. What would close the gap: detectors and \
         aggregates on the raw snapshot with numeric keys, and text only for the flows \
         served; until then, size `daemon.flow_table_size` at or below 100k per monitor.\n"
    )?;
    writeln!(
        md,
        "## 4. Kernel memory per tracked flow\n\nFrom the definitions: a flow key is {} \
         bytes and its value {} bytes (monitor-common/src/flow.rs); the LRU hash adds its \
         element header and per-CPU free lists. The \"kernel bytes per flow\" column above \
         is the map's own memlock accounting (bpftool, `memlock`) divided by its capacity. \
         Per RTP stream (map RTP_STREAMS, key {} bytes, value {} bytes, monitor-common/src/rtp.rs), \
         measured the same way: {stream_bytes} bytes.\n",
        size_of::<FlowKey>(),
        size_of::<FlowStats>(),
        size_of::<RtpStreamKey>(),
        size_of::<RtpStreamState>(),
    )?;
    Ok(md)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// (memlock bytes, max entries) of a pinned map, from bpftool.
fn map_bytes(path: &std::path::Path) -> Result<(u64, u64)> {
    let out = cmd::run(
        Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(path),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bytes = v["bytes_memlock"].as_u64().context("bytes_memlock")?;
    let max = v["max_entries"].as_u64().context("max_entries")?;
    Ok((bytes, max))
}
