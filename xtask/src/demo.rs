//! `cargo xtask demo`: the monitor watching two Webex-like calls through a real NAT, end
//! to end, on a throw-away namespace testbed: one clean, one whose media from Webex the
//! "ISP" (the WAN host) loses and delays. Both are paced in real time (20 ms), so the
//! clean call's jitter is the testbed's, not an artefact of sending too fast. Ends with
//! the compact `monitor status` and how to watch it live with `monitor top`.

use anyhow::{Context as _, Result, bail};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xtask::rtp::RtpStream;
use xtask::rtpgen::{self, Profile};
use xtask::scratch::{BPFFS, DEMO_PIN_DIR_PREFIX};
use xtask::testbed::{LAN_HOST_V4, WEBEX_NODE_V4};
use xtask::traffic::{tcp_echo_server, tcp_exchange, udp_responder};
use xtask::{Daemon, PinDir, TempDir, Testbed, config, interrupt, workspace_dir};

/// 25 s of G.711 at 20 ms per call: two and a half quality windows (10 s by default).
const PACKETS: u32 = 1250;
/// The phones' audio source ports (Webex App's dedicated audio range starts here).
const CLEAN_PORT: u16 = 52000;
const IMPAIRED_PORT: u16 = 52002;
/// The media node's media ports (one per call) and its SIP over TLS port.
const MEDIA_PORT: u16 = 5004;
const IMPAIRED_MEDIA_PORT: u16 = 9000;
/// The impaired call: the "ISP" loses one answer in this many...
const ISP_LOSS_EVERY: u32 = 12;
/// ...and holds each answer back up to this long (pseudo-random, repeatable).
const ISP_MAX_DELAY_MS: u64 = 30;
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

    heading(&format!(
        "placing two calls in real time ({} s): 192.0.2.10:{CLEAN_PORT} <-> \
         203.0.113.10:{MEDIA_PORT} clean, 192.0.2.10:{IMPAIRED_PORT} <-> \
         203.0.113.10:{IMPAIRED_MEDIA_PORT} with loss and jitter from the WAN side",
        PACKETS / 50
    ));
    println!(
        "meanwhile, watch them live in another terminal:\n  sudo {} top --socket {}",
        bin.display(),
        socket.display()
    );
    calls(&testbed)?;

    heading("waiting for the next poll");
    interrupt::sleep(POLL_WAIT)?;

    heading("monitor status");
    show_status(&bin, &socket)?;
    println!(
        "\nOne call, in depth: monitor status call ID (the ID is in the CALL column).\n\
         Live, full screen: sudo monitor top  (s sort, / filter, Enter open a call, q quit)"
    );

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

/// Two calls at once, each both ways through the NAT: the phone sends a real-time G.711
/// stream (xtask::rtpgen, 20 ms apart), the media node answers each packet with its own
/// stream, to the address and port it saw (the NAT binding). The second node socket
/// plays a bad ISP path: it loses every [`ISP_LOSS_EVERY`]-th answer (a sequence gap
/// the gateway sees at WAN ingress) and delays answers by up to [`ISP_MAX_DELAY_MS`].
/// Then a short TCP exchange on the SIP-over-TLS port.
fn calls(testbed: &Testbed) -> Result<()> {
    let clean_media = SocketAddr::from((WEBEX_NODE_V4, MEDIA_PORT));
    let impaired_media = SocketAddr::from((WEBEX_NODE_V4, IMPAIRED_MEDIA_PORT));
    let sip = SocketAddr::from((WEBEX_NODE_V4, SIP_TLS_PORT));
    let lifetime = Duration::from_secs(u64::from(PACKETS) / 50 + 30);
    let mut clean_answers = RtpStream::pcmu(0x5EB3_0002);
    let clean = testbed.wan.run(move || {
        udp_responder(clean_media, PACKETS, lifetime, move |request| {
            clean_answers.next_packet(request.len())
        })
    })?;
    let mut impaired_answers = RtpStream::pcmu(0x5EB3_0004);
    let mut n: u32 = 0;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let impaired = testbed.wan.run(move || {
        udp_responder(impaired_media, PACKETS, lifetime, move |request| {
            n += 1;
            if n.is_multiple_of(ISP_LOSS_EVERY) {
                impaired_answers.skip(1);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % (ISP_MAX_DELAY_MS + 1)));
            impaired_answers.next_packet(request.len())
        })
    })?;
    let echo = testbed.wan.run(|| tcp_echo_server(sip))?;

    let profile = Profile {
        name: "demo",
        packets: PACKETS,
        ..Profile::default()
    };
    let phone = |port: u16| SocketAddr::from((LAN_HOST_V4, port));
    let clean_plan = rtpgen::plan(&profile, 0x5EB3_0001, 1);
    let impaired_plan = rtpgen::plan(&profile, 0x5EB3_0003, 2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            testbed
                .lan
                .run(|| rtpgen::send(&clean_plan, phone(CLEAN_PORT), clean_media))
        });
        let b = scope.spawn(|| {
            testbed
                .lan
                .run(|| rtpgen::send(&impaired_plan, phone(IMPAIRED_PORT), impaired_media))
        });
        (a.join(), b.join())
    });
    for sent in [a, b] {
        sent.map_err(|_| anyhow::anyhow!("a phone thread panicked"))??;
    }
    println!(
        "RTP: {PACKETS} packets per phone; the clean node answered {} (seen from {}), the \
         impaired one {} (seen from {})",
        clean.replied(),
        describe(&clean.sources()),
        impaired.replied(),
        describe(&impaired.sources())
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
