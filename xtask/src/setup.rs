//! `cargo xtask setup`: makes this machine able to build the eBPF programs and run every
//! test. Idempotent: each step first checks and only installs what is missing.

use anyhow::{Context as _, Result, bail};
use std::process::Command;
use xtask::cmd;

/// Debian packages the tests and the demo drive: NAT (nftables, conntrack), SIP and RTP
/// (sip-tester), the independent RTP oracle (tshark), captures (tcpreplay, tcpdump),
/// metrics scraping (prometheus), namespaces (iproute2, util-linux's nsenter), bpftool,
/// `systemd-analyze verify` of the unit (systemd).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "nftables",
    "conntrack",
    "sip-tester",
    "tshark",
    "tcpreplay",
    "prometheus",
    "iproute2",
    "bpftool",
    "tcpdump",
    "util-linux",
    "systemd",
    // A real resolver answering Webex names in the peer-learning tests.
    "dnsmasq",
    // The test CA and certificates of the OTLP-over-TLS tests.
    "openssl",
    // `cargo xtask package`: objdump (the glibc version the binary needs) and strip.
    "binutils",
    // A real terminal for `monitor top` and `monitor status --watch` (status_terminal).
    "tmux",
    // Reads `monitor status --watch --json` line by line (status_terminal).
    "jq",
    // SIP helpers set through iptables (legacy and nft back ends) for `monitor check`.
    "iptables",
    // A real VPN (OpenVPN over tun) carrying media in the media_in_tunnel test.
    "openvpn",
    // `cargo xtask bench`: the profile of the programs during the forwarding benchmark.
    "linux-perf",
    // The virtual environment mitmproxy is installed into (ssl_inspection test).
    "python3-venv",
    // Checksum offload off on the links of the delay relay (vpn_hairpin's RTT test).
    "ethtool",
];
/// A real TLS-intercepting proxy (the ssl_inspection test), from PyPI into its own
/// virtual environment: exactly this version.
const MITMPROXY_VERSION: &str = "10.4.2";
/// Where it goes; the test runs `MITMPROXY_VENV/bin/mitmdump`.
pub const MITMPROXY_VENV: &str = "/opt/mitmproxy";
/// aya-build links the eBPF object with this exact bpf-linker.
const BPF_LINKER_VERSION: &str = "0.10.0";
/// The dependency audit's cargo-deny (deny.toml's format is this version's).
const CARGO_DENY_VERSION: &str = "0.20.2";
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask setup must run as root: it installs Debian packages, mounts bpffs, \
             and the tests create network namespaces and load eBPF programs"
        );
    }
    debian_packages()?;
    nightly_components()?;
    cargo_tool("bpf-linker", BPF_LINKER_VERSION)?;
    cargo_tool("cargo-deny", CARGO_DENY_VERSION)?;
    mitmproxy()?;
    bpffs()?;
    Ok(())
}

fn step(what: &str, state: &str) {
    println!("setup: {what}: {state}");
}

fn debian_packages() -> Result<()> {
    packages(DEBIAN_PACKAGES)
}

/// Installs those of `wanted` that are missing (apt-get; root only then).
pub fn packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    for package in wanted.iter().filter(|p| !missing.contains(p)) {
        step(&format!("package {package}"), "present");
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: installing {} (apt-get)", missing.join(" "));
    apt_get(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt_get(&install)?;
    for package in &missing {
        if !dpkg_installed(package) {
            bail!("package {package} still not installed after apt-get install");
        }
        step(&format!("package {package}"), "installed");
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"))
}

fn apt_get(args: &[&str]) -> Result<()> {
    // Non-interactive: CI has no stdin, and tshark's debconf question must not block.
    cmd::run(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .map(drop)
}

/// aya-build compiles monitor-ebpf with nightly's -Z build-std, which needs rust-src;
/// `cargo xtask test` lints the eBPF crate for the BPF target with nightly's clippy.
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "clippy"];

fn nightly_components() -> Result<()> {
    let listed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !listed.status.success() {
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
        for c in NIGHTLY_COMPONENTS {
            install.args(["--component", c]);
        }
        cmd::run(&mut install).context("installing the nightly toolchain")?;
        step("nightly toolchain", "installed (with rust-src and clippy)");
        return Ok(());
    }
    let installed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for component in NIGHTLY_COMPONENTS {
        let what = format!("{component} (nightly)");
        if installed.lines().any(|l| l.starts_with(component)) {
            step(&what, "present");
        } else {
            cmd::run(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "nightly",
            ]))?;
            step(&what, "installed");
        }
    }
    Ok(())
}

/// Installs `tool` `version` from crates.io unless exactly that version is on the PATH.
fn cargo_tool(tool: &str, version: &str) -> Result<()> {
    let what = format!("{tool} {version}");
    let current = cmd::output(Command::new(tool).arg("--version"))
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if current.as_deref() == Some(&*what) {
        step(&what, "present");
        return Ok(());
    }
    println!("setup: installing {what} (cargo install; takes a few minutes)");
    cmd::run(Command::new("cargo").args(["install", &format!("{tool}@{version}"), "--locked"]))?;
    step(&what, "installed");
    Ok(())
}

/// Installs mitmproxy `MITMPROXY_VERSION` into `MITMPROXY_VENV` unless exactly that
/// version is there (Debian's python3 with python3-venv).
fn mitmproxy() -> Result<()> {
    let what = format!("mitmproxy {MITMPROXY_VERSION}");
    let mitmdump = format!("{MITMPROXY_VENV}/bin/mitmdump");
    let present = cmd::output(Command::new(&mitmdump).arg("--version")).is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == format!("Mitmproxy: {MITMPROXY_VERSION}"))
    });
    if present {
        step(&what, "present");
        return Ok(());
    }
    println!("setup: installing {what} into {MITMPROXY_VENV} (pip)");
    cmd::run(Command::new("/usr/bin/python3").args(["-m", "venv", MITMPROXY_VENV]))
        .context("creating the mitmproxy virtual environment (needs python3-venv)")?;
    cmd::run(Command::new(format!("{MITMPROXY_VENV}/bin/pip")).args([
        "install",
        "--quiet",
        &format!("mitmproxy=={MITMPROXY_VERSION}"),
    ]))
    .context("installing mitmproxy from PyPI")?;
    step(&what, "installed");
    Ok(())
}

/// Pinned maps (kept across daemon restarts) need bpffs at /sys/fs/bpf; some machines do
/// not mount it at boot.
fn bpffs() -> Result<()> {
    let what = format!("bpffs at {BPFFS}");
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS) && fields.get(2) == Some(&"bpf")
    });
    if mounted {
        step(&what, "present");
    } else {
        cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
        step(&what, "mounted");
    }
    Ok(())
}
