//! Shared pieces of the call-quality testbed tests: the bed (testbed + daemon), a tshark
//! capture guard, and the parser of `tshark -z rtp,streams`.
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{Daemon, Netns, PinDir, TempDir, Testbed, monitor_bin};

pub struct Bed {
    // Field order is drop order: daemon first, then namespaces, then pins and files.
    pub daemon: Daemon,
    pub tb: Testbed,
    pub pin: PinDir,
    pub dir: TempDir,
}

impl Bed {
    pub fn new() -> Bed {
        let tb = Testbed::new().expect("testbed");
        let dir = TempDir::new().expect("tempdir");
        let pin = PinDir::new();
        xtask::config::write_gateway_config(
            &dir.join("monitor.toml"),
            pin.path(),
            &dir.join("monitor.sock"),
        )
        .expect("config");
        let daemon = Daemon::start(
            &monitor_bin(),
            &tb.gw,
            &dir.join("monitor.toml"),
            &dir.join("monitor.sock"),
        )
        .expect("daemon start");
        Bed {
            daemon,
            tb,
            pin,
            dir,
        }
    }

    pub fn status(&self) -> Value {
        self.daemon.status_json().expect("status --json")
    }

    /// Polls status until `done` accepts it (at most `timeout`).
    pub fn status_until(&self, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "status never got there; calls:\n{}\ndaemon log:\n{}",
                    serde_json::to_string_pretty(&s["calls"]).unwrap(),
                    self.daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A tshark capture in a namespace, stopped (SIGINT, so dumpcap stops too) on drop.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// Starts capturing on `iface` with capture `filter`, stopping by itself after
    /// `count` packets or `max` (whichever first); returns once tshark captures.
    pub fn start(
        ns: &Netns,
        iface: &str,
        filter: &str,
        count: u32,
        max: Duration,
        dir: &Path,
    ) -> Capture {
        let file = dir.join(format!("capture-{iface}.pcapng"));
        // tshark drops privileges to write; a world-writable file it can open.
        std::fs::write(&file, b"").expect("capture file");
        let count = count.to_string();
        let duration = format!("duration:{}", max.as_secs());
        let file_arg = file.display().to_string();
        let mut child = ns
            .command(&[
                "tshark", "-i", iface, "-f", filter, "-c", &count, "-a", &duration, "-w", &file_arg,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark (Debian package tshark)");
        let stderr = child.stderr.take().expect("tshark stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Capturing on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .expect("tshark did not start capturing within 15 s");
        // dumpcap reports "Capturing" just before the first read; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Capture {
            child: Some(child),
            file,
        }
    }

    /// Waits for tshark to stop by itself (count or duration reached).
    pub fn finish(mut self, timeout: Duration) -> PathBuf {
        let mut child = self.child.take().expect("running capture");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("tshark wait") {
                assert!(status.success(), "tshark exited with {status}");
                return self.file.clone();
            }
            if Instant::now() > deadline {
                stop(&mut child);
                panic!("tshark did not stop within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn stop(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// One row of `tshark -q -z rtp,streams`.
#[derive(Clone, Debug, PartialEq)]
pub struct TsharkStream {
    pub src: String,
    pub src_port: u16,
    pub dst: String,
    pub dst_port: u16,
    pub ssrc: u32,
    pub packets: u64,
    /// expected − packets (tshark counts duplicates as received: can be negative).
    pub lost: i64,
    pub max_delta_ms: f64,
    pub mean_jitter_ms: f64,
    pub max_jitter_ms: f64,
}

/// Runs tshark's RTP stream analysis on `file`, decoding UDP `port` as RTP.
pub fn rtp_streams(file: &Path, port: u16) -> (Vec<TsharkStream>, String) {
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args([
            "-d",
            &format!("udp.port=={port},rtp"),
            "-q",
            "-z",
            "rtp,streams",
        ])
        .output()
        .expect("tshark -r");
    assert!(
        out.status.success(),
        "tshark -r failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rows = text.lines().filter_map(parse_row).collect();
    (rows, text)
}

/// Parses a data row: start end src sport dst dport ssrc payload… pkts lost (pct)
/// min-delta mean-delta max-delta min-jitter mean-jitter max-jitter [problem].
fn parse_row(line: &str) -> Option<TsharkStream> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let ssrc_at = t.iter().position(|x| x.starts_with("0x"))?;
    if ssrc_at < 4 {
        return None;
    }
    let pct_at = t
        .iter()
        .position(|x| x.starts_with('(') && x.ends_with("%)"))?;
    let f = |i: usize| t.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(TsharkStream {
        src: t[ssrc_at - 4].to_string(),
        src_port: t[ssrc_at - 3].parse().ok()?,
        dst: t[ssrc_at - 2].to_string(),
        dst_port: t[ssrc_at - 1].parse().ok()?,
        ssrc: u32::from_str_radix(t[ssrc_at].trim_start_matches("0x"), 16).ok()?,
        packets: t[pct_at - 2].parse().ok()?,
        lost: t[pct_at - 1].parse().ok()?,
        max_delta_ms: f(pct_at + 3)?,
        mean_jitter_ms: f(pct_at + 5)?,
        max_jitter_ms: f(pct_at + 6)?,
    })
}

/// Every stream the daemon reports in its calls.
pub fn monitor_streams(status: &Value) -> Vec<Value> {
    status["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .flat_map(|c| c["legs"].as_array().unwrap().iter())
        .flat_map(|l| l["streams"].as_array().unwrap().iter().cloned())
        .collect()
}
