//! `cargo xtask demo`: the monitor watching a short Webex-like call through a real NAT,
//! end to end, on a throw-away namespace testbed.

use anyhow::{Context as _, Result, bail};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::rtp::RtpStream;
use xtask::scratch::{BPFFS, DEMO_PIN_DIR_PREFIX};
use xtask::testbed::{LAN_HOST_V4, WEBEX_NODE_V4};
use xtask::traffic::{tcp_echo_server, tcp_exchange, udp_call, udp_responder};
use xtask::{Daemon, PinDir, TempDir, Testbed, config, interrupt, workspace_dir};

/// G.711 at 20 ms: 12-byte RTP header + 160 bytes of audio.
const RTP_PAYLOAD: usize = 172;
const PACKETS: u32 = 250;
/// Faster than real time (20 ms), so the demo is short; the monitor sees the same flows.
const INTERVAL: Duration = Duration::from_millis(2);
/// The phone's audio source port (Webex App's dedicated audio range starts here).
const LAN_AUDIO_PORT: u16 = 52000;
/// The media node's media port and its SIP over TLS port.
const MEDIA_PORT: u16 = 5004;
const SIP_TLS_PORT: u16 = 5061;
const TCP_BYTES: usize = 600;
/// A little more than the daemon's default poll interval, so status includes the call.
const POLL_WAIT: Duration = Duration::from_millis(1500);
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// `monitor status`: the daemon could not be reached.
const STATUS_UNAVAILABLE: i32 = 3;

pub fn run() -> Result<()> {
    // First, so a Ctrl-C at any later point unwinds through the guards below.
    interrupt::install()?;
    crate::setup::run()?;

    let bin = match std::env::var_os("MONITOR_BIN") {
        // A prebuilt daemon (e.g. a release build) instead of the debug build.
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => {
            heading("building monitor");
            build_monitor()?
        }
    };
    interrupt::check()?;

    heading("creating the testbed (LAN host -> NAT gateway -> Webex media node)");
    // Declaration order matters: guards drop in reverse, so the daemon stops before its
    // pins, config and namespaces go away.
    let testbed = Testbed::new()?;
    let tmp = TempDir::new()?;
    let pins =
        PinDir::at(Path::new(BPFFS).join(format!("{DEMO_PIN_DIR_PREFIX}{}", std::process::id())));
    let config = tmp.join("monitor.toml");
    let socket = tmp.join("monitor.sock");
    config::write_gateway_config(&config, pins.path(), &socket)?;
    println!(
        "namespaces {}-{{lan,gw,wan}}, config {}",
        testbed.prefix(),
        config.display()
    );

    heading("starting the monitor on the gateway (lan0, wan0)");
    let daemon = Daemon::start(&bin, &testbed.gw, &config, &socket)?;
    println!(
        "daemon pid {}, log {}",
        daemon.pid(),
        daemon.log_path().display()
    );

    heading("placing a call: RTP 192.0.2.10:52000 <-> 203.0.113.10:5004, TLS to :5061");
    call(&testbed)?;

    heading("waiting for the next poll");
    interrupt::sleep(POLL_WAIT)?;

    heading("monitor status");
    show_status(&bin, &socket)?;

    heading("tearing down");
    let status = daemon.stop();
    println!("daemon exited: {status}");
    drop((pins, tmp, testbed));
    println!("done");
    Ok(())
}

fn heading(text: &str) {
    println!("\n==> {text}");
}

/// `cargo build -p monitor`, returning the executable cargo reports (wherever the target
/// directory is configured to be).
fn build_monitor() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(cargo)
        .args([
            "build",
            "-p",
            "monitor",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_dir())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo build")?;
    if !output.status.success() {
        bail!("`cargo build -p monitor` failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "monitor")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo build did not report a `monitor` executable")
}

/// Both directions of an RTP stream through the NAT (the media node answers each packet
/// with its own RTP stream, to the address and port it saw: the NAT binding), plus a
/// short TCP exchange on the SIP-over-TLS port.
fn call(testbed: &Testbed) -> Result<()> {
    let media = SocketAddr::from((WEBEX_NODE_V4, MEDIA_PORT));
    let sip = SocketAddr::from((WEBEX_NODE_V4, SIP_TLS_PORT));
    let mut node_stream = RtpStream::pcmu(0x5EB3_0002);
    let responder = testbed.wan.run(move || {
        udp_responder(media, PACKETS, Duration::from_secs(30), move |request| {
            node_stream.next_packet(request.len())
        })
    })?;
    let echo = testbed.wan.run(|| tcp_echo_server(sip))?;

    let mut phone_stream = RtpStream::pcmu(0x5EB3_0001);
    let phone = SocketAddr::from((LAN_HOST_V4, LAN_AUDIO_PORT));
    let stats = testbed.lan.run(|| {
        udp_call(phone, media, PACKETS, INTERVAL, |_| {
            phone_stream.next_packet(RTP_PAYLOAD)
        })
    })?;
    println!(
        "RTP: {} packets sent, {} answered; the media node saw the phone as {}",
        stats.sent,
        stats.received,
        describe(&responder.sources())
    );
    testbed.lan.run(|| tcp_exchange(None, sip, TCP_BYTES))?;
    println!(
        "TCP {SIP_TLS_PORT}: {TCP_BYTES} bytes sent and echoed; the media node saw {}",
        describe(&echo.peers())
    );
    Ok(())
}

fn describe(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    if list.is_empty() {
        "nobody".into()
    } else {
        list.join(", ")
    }
}

/// `monitor status` with the user's terminal as its output. A health status (non-zero
/// exit below "unavailable") is what the demo is about, not a failure of it.
fn show_status(bin: &Path, socket: &Path) -> Result<()> {
    let mut child = Command::new(bin)
        .arg("status")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {} status", bin.display()))?;
    let deadline = Instant::now() + STATUS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline || interrupt::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`monitor status` did not finish within {STATUS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    match status.code() {
        Some(0) => Ok(()),
        Some(STATUS_UNAVAILABLE) | None => bail!("`monitor status` failed ({status})"),
        Some(code) => {
            println!("(monitor status exited with {code}: the health it reports)");
            Ok(())
        }
    }
}
