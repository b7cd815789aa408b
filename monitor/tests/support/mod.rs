//! Shared helpers of the kernel tests: load the real object with its maps pinned in a
//! throwaway directory, run the programs through BPF_PROG_TEST_RUN, and read the maps.
#![allow(dead_code)]

use std::path::Path;

use aya::{
    Ebpf,
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use monitor::{
    config::{self, ValidatedConfig},
    kernel::{
        loader,
        snapshot::{self, Snapshot},
    },
};
use monitor_common::{FlowKey, FlowStats, GlobalCounters, program_names};
use xtask::PinDir;

pub const XDP_PASS: u32 = 2;
pub const TC_ACT_OK: u32 = 0;

/// A test config: the documentation ranges are the "Webex" prefixes.
pub fn config(pin: &Path, extra_daemon: &str, extra_webex: &str) -> ValidatedConfig {
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
    pub ebpf: Ebpf,
    // Dropped after `ebpf` (fields drop in order): the pins go last.
    pub pin: PinDir,
}

impl Kernel {
    pub fn load() -> Kernel {
        Self::load_with("", "")
    }

    pub fn load_with(extra_daemon: &str, extra_webex: &str) -> Kernel {
        Self::load_in(PinDir::new(), extra_daemon, extra_webex)
    }

    /// Loads with the maps pinned in `pin` (existing pins there are re-adopted).
    pub fn load_in(pin: PinDir, extra_daemon: &str, extra_webex: &str) -> Kernel {
        let cfg = config(pin.path(), extra_daemon, extra_webex);
        let mut ebpf = loader::load(&cfg)
            .unwrap_or_else(|e| panic!("loading the object: {e}"))
            .ebpf;
        let xdp: &mut Xdp = ebpf
            .program_mut(program_names::XDP)
            .expect("xdp program")
            .try_into()
            .expect("xdp type");
        xdp.load()
            .unwrap_or_else(|e| panic!("xdp load (verifier): {e:?}"));
        let tc: &mut SchedClassifier = ebpf
            .program_mut(program_names::TC)
            .expect("tc program")
            .try_into()
            .expect("tc type");
        tc.load()
            .unwrap_or_else(|e| panic!("tc load (verifier): {e:?}"));
        Kernel { ebpf, pin }
    }

    /// Runs the XDP program once on `frame`, returning the verdict.
    pub fn xdp(&mut self, frame: &[u8]) -> u32 {
        let xdp: &mut Xdp = self
            .ebpf
            .program_mut(program_names::XDP)
            .unwrap()
            .try_into()
            .unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let r = xdp
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("xdp test run: {e:?}"));
        assert_eq!(
            &out[..r.data_size_out as usize],
            frame,
            "XDP changed the packet"
        );
        r.return_value
    }

    /// Runs the TC program once on `frame` with an optional GSO segment count.
    pub fn tc(&mut self, frame: &[u8], gso_segs: u32) -> u32 {
        let tc: &mut SchedClassifier = self
            .ebpf
            .program_mut(program_names::TC)
            .unwrap()
            .try_into()
            .unwrap();
        let mut ctx = vec![0u8; SK_BUFF_SIZE];
        ctx[GSO_SEGS_OFFSET..GSO_SEGS_OFFSET + 4].copy_from_slice(&gso_segs.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let r = tc
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("tc test run: {e:?}"));
        assert_eq!(
            &out[..r.data_size_out as usize],
            frame,
            "TC changed the packet"
        );
        r.return_value
    }

    pub fn snapshot(&self) -> Snapshot {
        snapshot::take(&self.ebpf).unwrap_or_else(|e| panic!("snapshot: {e}"))
    }

    pub fn counters(&self) -> GlobalCounters {
        self.snapshot().counters
    }

    pub fn flow(&self, key: &FlowKey) -> Option<FlowStats> {
        self.snapshot()
            .flows
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// `struct __sk_buff` (uapi/linux/bpf.h): its size and the offset of `gso_segs`, which
/// BPF_PROG_TEST_RUN lets a test set.
const SK_BUFF_SIZE: usize = 192;
const GSO_SEGS_OFFSET: usize = 164;

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
