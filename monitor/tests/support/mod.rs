//! Shared helpers of the kernel tests: load the real object with its maps pinned in a
//! throwaway directory, run the programs through BPF_PROG_TEST_RUN, and read the maps.
#![allow(dead_code)]

pub mod gateway;

use std::path::Path;

use monitor::{
    config::{self, ValidatedConfig},
    kernel::{
        harness::{Harness, Run},
        snapshot::{self, Snapshot},
    },
};
use monitor_common::{FlowKey, FlowStats, GlobalCounters, program_names};
use xtask::PinDir;

pub const XDP_PASS: u32 = 2;
pub const TC_ACT_OK: u32 = 0;

/// A test config: the documentation ranges are the "Webex" prefixes.
pub fn config(pin: &Path, extra_daemon: &str, extra_webex: &str) -> ValidatedConfig {
    config_full(pin, extra_daemon, "", extra_webex)
}

/// [`config`] with `extra_interface` lines in the `lo` interface's section.
pub fn config_full(
    pin: &Path,
    extra_daemon: &str,
    extra_interface: &str,
    extra_webex: &str,
) -> ValidatedConfig {
    let text = format!(
        r#"
[daemon]
pin_path = "{}"
status_socket = "/nonexistent/monitor-test.sock"
{table}
{extra_daemon}

[[interfaces]]
name = "lo"
role = "lan"
{extra_interface}

[webex]
use_default_prefixes = false
prefixes = ["203.0.113.0/24", "2001:db8:ff::/48"]
{extra_webex}
"#,
        pin.display(),
        table = if extra_daemon.contains("flow_table_size") {
            ""
        } else {
            "flow_table_size = 1024"
        },
    );
    config::parse_and_validate(&text, Path::new("test.toml"), &|_| Some(1))
        .unwrap_or_else(|e| panic!("test config invalid: {e}"))
}

/// The real object, loaded (not attached) with maps pinned under a guard directory.
pub struct Kernel {
    pub harness: Harness,
    // Dropped after `harness` (fields drop in order): the pins go last.
    pub pin: PinDir,
}

impl Kernel {
    pub fn load() -> Kernel {
        Self::load_with("", "")
    }

    pub fn load_with(extra_daemon: &str, extra_webex: &str) -> Kernel {
        Self::load_in(PinDir::new(), extra_daemon, extra_webex)
    }

    /// Loads with `extra_interface` lines in the `lo` interface's section (e.g. its DSCP
    /// modes) and `extra_webex` after `[webex]`.
    pub fn load_with_interface(extra_interface: &str, extra_webex: &str) -> Kernel {
        let pin = PinDir::new();
        let cfg = config_full(pin.path(), "", extra_interface, extra_webex);
        let harness = Harness::load(&cfg).unwrap_or_else(|e| panic!("loading the object: {e:?}"));
        Kernel { harness, pin }
    }

    /// Loads with the maps pinned in `pin` (existing pins there are re-adopted).
    pub fn load_in(pin: PinDir, extra_daemon: &str, extra_webex: &str) -> Kernel {
        let cfg = config(pin.path(), extra_daemon, extra_webex);
        let harness = Harness::load(&cfg).unwrap_or_else(|e| panic!("loading the object: {e:?}"));
        Kernel { harness, pin }
    }

    /// Runs the XDP program once on `frame`, checks it left the bytes alone, and returns
    /// the verdict.
    pub fn xdp(&mut self, frame: &[u8]) -> u32 {
        let r = self
            .harness
            .xdp(program_names::XDP, frame, 1)
            .unwrap_or_else(|e| panic!("xdp test run: {e:?}"));
        assert_eq!(r.packet, frame, "XDP changed the packet");
        r.verdict
    }

    /// Runs the TC program once on `frame` with an optional GSO segment count, checks it
    /// left the bytes alone, and returns the verdict.
    pub fn tc(&mut self, frame: &[u8], gso_segs: u32) -> u32 {
        let r = self.tc_run(frame, gso_segs);
        assert_eq!(r.packet, frame, "TC changed the packet");
        r.verdict
    }

    /// Runs the TC program once and returns everything, for tests of rewritten bytes.
    pub fn tc_run(&mut self, frame: &[u8], gso_segs: u32) -> Run {
        self.harness
            .tc(program_names::TC, frame, gso_segs, 1)
            .unwrap_or_else(|e| panic!("tc test run: {e:?}"))
    }

    pub fn snapshot(&self) -> Snapshot {
        snapshot::take(&self.harness.ebpf).unwrap_or_else(|e| panic!("snapshot: {e}"))
    }

    pub fn counters(&self) -> GlobalCounters {
        self.snapshot().counters
    }

    pub fn flow(&self, key: &FlowKey) -> Option<FlowStats> {
        self.snapshot()
            .flows
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// The flow key the programs build, for expectations. Ifindex 1: test runs use `lo`.
pub fn key_v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto: u8, dir: u8) -> FlowKey {
    FlowKey {
        src_addr: FlowKey::v4_mapped(src),
        dst_addr: FlowKey::v4_mapped(dst),
        ifindex: 1,
        src_port: sport,
        dst_port: dport,
        protocol: proto,
        family: 4,
        direction: dir,
        _pad: 0,
    }
}

pub fn key_v6(src: &str, sport: u16, dst: &str, dport: u16, proto: u8, dir: u8) -> FlowKey {
    FlowKey {
        src_addr: src.parse::<std::net::Ipv6Addr>().unwrap().octets(),
        dst_addr: dst.parse::<std::net::Ipv6Addr>().unwrap().octets(),
        ifindex: 1,
        src_port: sport,
        dst_port: dport,
        protocol: proto,
        family: 6,
        direction: dir,
        _pad: 0,
    }
}
