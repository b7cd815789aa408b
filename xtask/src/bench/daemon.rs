//! The daemon at scale: CPU and memory with 1k to 1M flows in the map, the time one
//! poll's map read and analysis take, status latency; the same with 100,000 conntrack
//! entries; kernel memory per flow from the map's own accounting.

use anyhow::{Context as _, Result};
use monitor_common::{
    FlowKey, FlowStats, MediaFlowStats,
    rtp::{RtpStreamKey, RtpStreamState},
};
use std::mem::size_of;
use std::{fmt::Write as _, process::Command, time::Duration};
use xtask::{Daemon, PinDir, TempDir, Testbed, cmd, monitor_bin};

use super::{Plan, release_dir};

/// What one daemon run measured.
struct Measured {
    flows: u64,
    cpu: f64,
    rss_mib: f64,
    /// Medians of the status samples: map read and analysis, ms.
    read_ms: f64,
    analysis_ms: f64,
    /// Largest and median snapshot age seen, ms.
    age_max_ms: f64,
    age_median_ms: f64,
    /// 99th percentile of the time one status request takes, ms.
    status_p99_ms: f64,
    /// Kernel bytes per entry of the flow map.
    per_flow_bytes: String,
    /// Kernel bytes per entry of the media flow map and of the stream map.
    media_flow_bytes: String,
    stream_bytes: String,
    /// The last status sample's `scale` section.
    scale: serde_json::Value,
    notes: Vec<String>,
}

impl Measured {
    /// Map read plus analysis per flow, in microseconds.
    fn us_per_flow(&self) -> f64 {
        (self.read_ms + self.analysis_ms) * 1000.0 / self.flows.max(1) as f64
    }
}

/// Starts the daemon with a flow table of `table`, fills it with `n` flows, runs
/// `prepare` (e.g. conntrack entries), then measures over `window` seconds.
fn measure(
    tb: &Testbed,
    bin: &std::path::Path,
    n: u32,
    table: u32,
    window: u64,
    prepare: &dyn Fn(&Testbed) -> Result<()>,
) -> Result<Measured> {
    let dir = TempDir::new()?;
    let pin = PinDir::new();
    let config = dir.join("monitor.toml");
    let socket = dir.join("monitor.sock");
    let text = xtask::config::gateway_config(pin.path(), &socket).replace(
        "[daemon]\n",
        &format!("[daemon]\nflow_table_size = {table}\n"),
    );
    std::fs::write(&config, text)?;
    let daemon = Daemon::start(bin, &tb.gw, &config, &socket)?;
    cmd::run(
        Command::new(release_dir().join("examples").join("bench_fill"))
            .arg(pin.path())
            .arg(n.to_string()),
    )
    .context("filling the flow map")?;
    prepare(tb)?;
    // Let a few polls see the full map before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let ticks = clock_ticks();
    let before = cpu_ticks(daemon.pid())?;
    std::thread::sleep(Duration::from_secs(window));
    let after = cpu_ticks(daemon.pid())?;
    let cpu = (after - before) as f64 / ticks / window as f64 * 100.0;
    // Status after the CPU window, so serving it is not counted.
    let mut notes = Vec::new();
    let (mut reads, mut analyses, mut ages) = (Vec::new(), Vec::new(), Vec::new());
    let mut scale = serde_json::Value::Null;
    let mut flows = 0;
    for _ in 0..5 {
        // A daemon too busy to answer is a result too.
        match raw_status(&socket) {
            Ok((s, _)) => {
                reads.push(s["daemon"]["last_poll_ms"].as_f64().unwrap_or(f64::NAN));
                analyses.push(s["scale"]["analysis_ms"].as_f64().unwrap_or(f64::NAN));
                ages.push(s["daemon"]["snapshot_age_ms"].as_f64().unwrap_or(f64::NAN));
                flows = s["flows_total"].as_u64().unwrap_or(0);
                scale = s["scale"].clone();
            }
            Err(e) => {
                notes.push(format!("At {n} flows a status request failed: {e:#}."));
                reads.push(f64::NAN);
            }
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    let mut took = Vec::new();
    for _ in 0..100 {
        if let Ok((_, t)) = raw_status(&socket) {
            took.push(t.as_secs_f64() * 1e3);
        }
    }
    took.sort_by(f64::total_cmp);
    let status_p99_ms = took
        .get((took.len() * 99 / 100).min(took.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN);
    let rss_mib = rss_kib(daemon.pid())? as f64 / 1024.0;
    let per_entry = |map: &str| {
        map_bytes(&pin.path().join(map))
            .map(|(bytes, max)| format!("{:.0}", bytes as f64 / max as f64))
            .unwrap_or_else(|e| format!("n/a ({e})"))
    };
    let age_max_ms = ages.iter().copied().fold(f64::NAN, f64::max);
    let m = Measured {
        flows,
        cpu,
        rss_mib,
        read_ms: super::stats(reads).0,
        analysis_ms: super::stats(analyses).0,
        age_max_ms,
        age_median_ms: super::stats(ages).0,
        status_p99_ms,
        per_flow_bytes: per_entry("FLOWS"),
        media_flow_bytes: per_entry("MEDIA_FLOWS"),
        stream_bytes: per_entry("RTP_STREAMS"),
        scale,
        notes,
    };
    daemon.stop();
    Ok(m)
}

/// One status request on the socket, as `monitor status` makes it, and how long it took.
fn raw_status(socket: &std::path::Path) -> Result<(serde_json::Value, Duration)> {
    use std::io::{Read as _, Write as _};
    let started = std::time::Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"status\n")?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let took = started.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&reply).context("status reply")?;
    if let Some(e) = v.get("error") {
        anyhow::bail!("the daemon answered: {e}");
    }
    Ok((v, took))
}

pub fn run(plan: &Plan) -> Result<String> {
    let tb = Testbed::new()?;
    let bin = release_dir().join("monitor");
    let bin = if bin.exists() { bin } else { monitor_bin() };
    let mut md = String::from("## 3. Daemon at scale\n\n");
    writeln!(
        md,
        "The daemon (release build) polls every 1 s on the testbed gateway while the flow \
         map holds N synthetic flows (written into the pinned map by `bench_fill`). CPU is \
         user+system time of the daemon and the children it waited for (`conntrack`, \
         `nft`) over {} s from /proc; RSS is VmRSS at the end. From five status samples \
         after the window (medians): map read is `daemon.last_poll_ms`, analysis (report \
         and detectors) `scale.analysis_ms`, their sum per flow in µs; snapshot age is \
         the largest `daemon.snapshot_age_ms` seen. Status p99 is the 99th percentile of \
         100 back-to-back requests on the socket, from connect to the whole reply.\n",
        plan.cpu_window_secs
    )?;
    md.push_str(
        "| flows | CPU % of one core | RSS MiB | map read ms | analysis ms | µs per flow | \
         snapshot age ms (max) | status p99 ms | kernel bytes per flow |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut notes = Vec::new();
    let mut stream_bytes = String::from("n/a");
    let mut media_flow_bytes = String::from("n/a");
    let mut costs = Vec::new();
    for &n in &plan.daemon_sizes {
        let table = (n + n / 4).max(1024);
        let m = measure(&tb, &bin, n, table, plan.cpu_window_secs, &|_| Ok(()))?;
        if n == plan.daemon_sizes[0] {
            stream_bytes = m.stream_bytes.clone();
            media_flow_bytes = m.media_flow_bytes.clone();
        }
        writeln!(
            md,
            "| {n} | {:.2} | {:.1} | {:.2} | {:.2} | {:.3} | {:.0} | {:.2} | {} |",
            m.cpu,
            m.rss_mib,
            m.read_ms,
            m.analysis_ms,
            m.us_per_flow(),
            m.age_max_ms,
            m.status_p99_ms,
            m.per_flow_bytes
        )?;
        notes.extend(m.notes.iter().cloned());
        if n == 10_000 {
            notes.push(target(
                "At 10k flows the daemon uses",
                m.cpu,
                "% of one core",
                5.0,
            ));
        }
        if n == 1_000_000 {
            notes.push(target(
                "At 1M flows the daemon uses",
                m.cpu,
                "% of one core",
                50.0,
            ));
            notes.push(target("At 1M flows its RSS is", m.rss_mib, "MiB", 400.0));
            notes.push(
                "Where that memory goes, per flow (sizes of the types, x86-64): its status \
                 text (`FlowStatus`) about 376 bytes, its row (the key and counters the text \
                 was made from) 168, the snapshot's key and counter lists kept for the next \
                 read 164, its counts since the last poll 72, and its place, marks, index \
                 slot and list entries about 35: about 815 bytes a flow. Under 400 MiB needs \
                 rows without text for the flows nobody reads (text only for the flows \
                 served and the few each detector reads), which the detectors, reading \
                 flows as text, do not allow yet."
                    .to_string(),
            );
            notes.push(target(
                "At 1M flows the largest snapshot age is",
                m.age_max_ms,
                "ms (every poll done: at most 1.5 polls, 1500 ms)",
                1500.0,
            ));
            notes.push(target(
                "At 1M flows status p99 is",
                m.status_p99_ms,
                "ms",
                100.0,
            ));
        }
        costs.push((n, m.us_per_flow()));
    }
    md.push('\n');
    for pair in costs.windows(2) {
        let ((a, ca), (b, cb)) = (pair[0], pair[1]);
        if a >= 10_000 && b == a * 10 {
            notes.push(target(
                &format!("From {a} to {b} flows the cost per flow grows"),
                cb / ca,
                "x",
                1.5,
            ));
        }
    }
    md.push_str(&plot(&costs));
    notes.dedup();
    for n in notes {
        writeln!(md, "{n}\n")?;
    }
    writeln!(
        md,
        "Where the time goes: reading the map is batched and linear (map read): the \
         kernel walks every bucket of the table and writes keys and counters straight \
         into two lists that are kept and filled again each poll (no copy into pairs, no \
         fresh pages to fault in). The analysis then follows what changed, not \
         the table: each flow's row (its text) is kept across polls and made again only \
         when its counters change (`scale.rows_made`), rows are matched by place first, \
         the detectors read only the flows that are recent (a packet within 300 s), \
         changed this poll or of their interest (signalling, DSCP-checked, fragmented, \
         tunnel, call classes), per-class totals are kept as flows come and go, and the \
         flows served are chosen again only when one came, changed or went. The \
         synthetic flows here are idle, as most of a big table is; `bench_analysis \
         65536 5 2000` shows the cost with 2000 flows changing each poll. It runs on a \
         thread beside the daemon's loop, which keeps answering signals and status \
         meanwhile; a poll due while the last one is still being analysed is skipped \
         (and logged). Status requests and exports copy the last finished poll's report \
         (the socket only its busiest 1000 flows, one encoding shared by all requests \
         within 100 ms) instead of building their own.\n"
    )?;
    md.push_str(&analysis_alone()?);
    if plan.conntrack_entries > 0 {
        md.push_str(&conntrack_case(&tb, &bin, plan)?);
    }
    writeln!(
        md,
        "## 4. Kernel memory per tracked flow\n\nFrom the definitions: a flow key is {} \
         bytes and its value {} bytes (monitor-common/src/flow.rs); the LRU hash adds its \
         element header and per-CPU free lists. The \"kernel bytes per flow\" column above \
         is the map's own memlock accounting (bpftool, `memlock`) divided by its capacity. \
         The media table (`MEDIA_FLOWS`, a quarter of the main one) holds values of {} \
         bytes: a flow's value and the RTP stream of the flow's first SSRC ({} bytes \
         of SSRC and state, then the stream; monitor-common/src/flow.rs \
         `MediaFlowStats`), so that an established RTP packet needs one look-up; \
         measured the same way: {media_flow_bytes} bytes per entry. Per further SSRC of \
         a flow (map RTP_STREAMS, key {} bytes, value {} bytes, \
         monitor-common/src/rtp.rs), measured the same way: {stream_bytes} bytes.\n",
        size_of::<FlowKey>(),
        size_of::<FlowStats>(),
        size_of::<MediaFlowStats>(),
        size_of::<MediaFlowStats>() - size_of::<FlowStats>() - size_of::<RtpStreamState>(),
        size_of::<RtpStreamKey>(),
        size_of::<RtpStreamState>(),
    )?;
    Ok(md)
}

/// "`what` `value` `unit` (target ≤ `max`: met / missed by ...)."
fn target(what: &str, value: f64, unit: &str, max: f64) -> String {
    if value <= max {
        format!("{what} {value:.2} {unit} (target ≤ {max}: met).")
    } else {
        format!(
            "{what} {value:.2} {unit} (target ≤ {max}: missed by {:.2}).",
            value - max
        )
    }
}

/// A text plot of the cost per flow (µs) against the number of flows.
fn plot(costs: &[(u32, f64)]) -> String {
    let max = costs.iter().map(|c| c.1).fold(0.0, f64::max);
    let mut out =
        String::from("Map read plus analysis per flow (µs), by flows in the map:\n\n```\n");
    for (n, c) in costs {
        let width = if max > 0.0 {
            (c / max * 50.0).round() as usize
        } else {
            0
        };
        let _ = writeln!(out, "{n:>9} | {:<50} {c:.3}", "#".repeat(width));
    }
    out.push_str("```\n\n");
    out
}

/// The analysis alone (no kernel, `bench_analysis`): CPU time per poll of a full default
/// table with none, some and all of its flows changing each poll.
fn analysis_alone() -> Result<String> {
    let flows = 65_536u32;
    let mut md = format!(
        "### Analysis alone\n\nCPU time of one poll's analysis (report and detectors) of \
         {flows} synthetic flows in-process (`bench_analysis`, no kernel, median of the \
         last 5 of 8 polls), by how many of them count a packet more each poll: the \
         daemon's cost when its table is busy rather than idle.\n\n\
         | flows changing each poll | CPU ms per poll | µs per flow |\n|---|---|---|\n"
    );
    for changing in [0, 2_000, flows] {
        let out = cmd::run(
            Command::new(release_dir().join("examples").join("bench_analysis")).args([
                flows.to_string(),
                "8".into(),
                changing.to_string(),
            ]),
        )
        .context("running bench_analysis")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let ms: Vec<f64> = text
            .lines()
            .skip(3)
            .filter_map(|l| {
                l.split("(CPU time): ")
                    .nth(1)?
                    .split(" ms")
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        anyhow::ensure!(
            !ms.is_empty(),
            "bench_analysis printed no poll times: {text}"
        );
        let (median, _, _) = super::stats(ms);
        writeln!(
            md,
            "| {changing} | {median:.1} | {:.3} |",
            median * 1e3 / flows as f64
        )?;
    }
    md.push('\n');
    Ok(md)
}

/// 100,000 conntrack entries, half of them NAT'd, beside a full default flow table.
fn conntrack_case(tb: &Testbed, bin: &std::path::Path, plan: &Plan) -> Result<String> {
    let entries = plan.conntrack_entries;
    let flows = plan.conntrack_flows;
    // Unreplied UDP entries live this long: through the whole measurement.
    tb.gw
        .sysctl("net.netfilter.nf_conntrack_udp_timeout", "600")?;
    // Long enough for two conntrack reads at their spacing (100 × a ~0.45 s read).
    let window = plan.cpu_window_secs * 9;
    let m = measure(tb, bin, flows, flows, window, &|tb| {
        conntrack_entries(tb, entries)
    })?;
    let c = &m.scale["conntrack"];
    let mut md = String::new();
    writeln!(
        md,
        "### Conntrack at scale\n\n{entries} conntrack entries in the gateway's table (half \
         NAT'd: UDP from the LAN host through the masquerade; half not: UDP from the WAN \
         host to the gateway itself, sent as frames by `xtask::traffic::raw`) and {flows} \
         flows in a table of {flows}, 1 s poll, CPU over {window} s (the conntrack reads \
         happen on their schedule, at most 1 % of the time).\n"
    )?;
    md.push_str(
        "| entries read | NAT'd | read ms | read every s | join ms | analysis ms | CPU % | \
         snapshot age ms (median / max) |\n|---|---|---|---|---|---|---|---|\n",
    );
    writeln!(
        md,
        "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} |\n",
        c["entries"],
        c["nat_entries"],
        c["last_read_ms"].as_f64().unwrap_or(f64::NAN),
        c["interval_s"].as_f64().unwrap_or(f64::NAN),
        c["last_join_ms"].as_f64().unwrap_or(f64::NAN),
        m.analysis_ms,
        m.cpu,
        m.age_median_ms,
        m.age_max_ms,
    )?;
    writeln!(
        md,
        "{}\n\n{}\n",
        target("With them the daemon uses", m.cpu, "% of one core", 5.0),
        target(
            "The median snapshot age (target: one poll) is",
            m.age_median_ms,
            "ms",
            1000.0
        )
    )?;
    for n in m.notes {
        writeln!(md, "{n}\n")?;
    }
    Ok(md)
}

/// Sends `count` UDP frames from `ifname` in `ns` (to `peer_mac`), each from a new
/// source port (1024 on, at most 64,000 distinct), with `ip`'s addresses.
fn send_udp_frames(
    ns: &xtask::Netns,
    ifname: &str,
    peer_mac: [u8; 6],
    src_mac: [u8; 6],
    ip: xtask::frames::Ipv4,
    count: u32,
) -> Result<()> {
    use xtask::frames::{L4, v4};
    anyhow::ensure!(count <= 64_000, "at most 64,000 source ports per sender");
    ns.try_run(|| -> Result<()> {
        let socket = xtask::traffic::raw::PacketSocket::open(ifname, peer_mac)?;
        for i in 0..count {
            let mut f = v4(&ip, &L4::udp(1024 + i as u16, 9, 18));
            f[0..6].copy_from_slice(&peer_mac);
            f[6..12].copy_from_slice(&src_mac);
            socket.send(&f)?;
        }
        Ok(())
    })?
}

/// Makes `n` conntrack entries on the gateway: half NAT'd (LAN host to the WAN host
/// through the masquerade), half not (WAN host to the gateway), each a new UDP source
/// port, sent as frames; waits until the table holds them.
fn conntrack_entries(tb: &Testbed, n: u32) -> Result<()> {
    use xtask::frames::Ipv4;
    use xtask::testbed::{
        GW_LAN_IF, GW_WAN_IF, GW_WAN_V4, LAN_HOST_IF, LAN_HOST_V4, WAN_HOST_IF, WAN_HOST_V4,
    };
    use xtask::traffic::raw::mac;
    let half = n / 2;
    let gw_lan = mac(&tb.gw, GW_LAN_IF)?;
    let gw_wan = mac(&tb.gw, GW_WAN_IF)?;
    send_udp_frames(
        &tb.lan,
        LAN_HOST_IF,
        gw_lan,
        mac(&tb.lan, LAN_HOST_IF)?,
        Ipv4::new(LAN_HOST_V4, WAN_HOST_V4),
        half,
    )?;
    send_udp_frames(
        &tb.wan,
        WAN_HOST_IF,
        gw_wan,
        mac(&tb.wan, WAN_HOST_IF)?,
        Ipv4::new(WAN_HOST_V4, GW_WAN_V4),
        n - half,
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = tb
            .gw
            .try_run(|| cmd::run(Command::new("conntrack").arg("-C")))??;
        let count: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if count >= n as u64 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the gateway's conntrack table holds {count} entries, not {n}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process and of the children it waited for, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((11..=14).map(field).sum())
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
