//! Check this gateway's readiness for Webex Calling, without traffic.
//!
//! The on-box complement to Cisco's CScan: reads the gateway's own settings in the network
//! namespace it runs in and judges each pass / warn / fail, with the fix.

use std::{io::Write, path::PathBuf};

use serde::Serialize;

use crate::{
    config::{self, detect::DetectConfig},
    detect::system::{self, TCP_TIMEOUT_ESTABLISHED, UDP_TIMEOUT, UDP_TIMEOUT_STREAM},
    exit,
};

/// Check this gateway's readiness for Webex Calling (SIP helper, conntrack timeouts and
/// table, interface MTUs, XDP and BTF support), without traffic.
///
/// Each check is pass, warn or fail, with the value read and the fix. Run it as root in
/// the gateway's network namespace. Exit status: 0 all pass, 1 a warning, 2 a failure,
/// 64 an unreadable or invalid --config.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Print the checks as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Config file naming the interfaces, `[mtu] path_mtu` and `[detect]` thresholds.
    /// Without it (or when the default file is missing) interfaces are not checked.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

const DEFAULT_CONFIG: &str = "/etc/monitor/monitor.toml";
/// Oldest kernel the programs are verified on: every kernel test runs on it under qemu
/// (`cargo xtask kernel-matrix`).
const VERIFIED_KERNEL: (u32, u32) = (6, 1);
/// Below this the programs cannot load: the flow stage calls `bpf_xdp_load_bytes` (5.18).
const MIN_KERNEL: (u32, u32) = (5, 18);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Stable name, e.g. "sip_helper", "conntrack_udp_timeout_stream", "mtu_wan0".
    pub name: String,
    pub status: Verdict,
    /// The value read, as found.
    pub value: String,
    /// What it means.
    pub detail: String,
    /// What to do; empty on pass.
    pub fix: String,
}

#[derive(Serialize)]
struct Report<'a> {
    status: Verdict,
    checks: &'a [Check],
}

pub fn execute(args: CheckArgs) -> i32 {
    let (cfg_path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let cfg = if explicit || cfg_path.exists() {
        match config::load(&cfg_path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("monitor check: {e}");
                return exit::USAGE;
            }
        }
    } else {
        None
    };
    let checks = run(cfg.as_ref());
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Verdict::Pass);
    let mut out = std::io::stdout().lock();
    if args.json {
        let r = Report {
            status: worst,
            checks: &checks,
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&r).expect("serializable")
        );
    } else {
        let _ = out.write_all(render(&checks).as_bytes());
    }
    match worst {
        Verdict::Pass => exit::OK,
        Verdict::Warn => 1,
        Verdict::Fail => 2,
    }
}

/// Every check, in a fixed order.
pub fn run(cfg: Option<&config::ValidatedConfig>) -> Vec<Check> {
    let detect: DetectConfig = cfg.map(|c| c.config.detect.clone()).unwrap_or_default();
    let mut checks = vec![sip_helper()];
    checks.extend(timeouts(&detect));
    checks.push(conntrack_table(&detect));
    if let Some(cfg) = cfg {
        for (i, ifindex) in cfg.config.interfaces.iter().zip(&cfg.ifindexes) {
            checks.push(interface_mtu(&i.name, cfg.config.mtu.path_mtu));
            checks.push(attachment(cfg, i, *ifindex));
        }
    }
    checks.push(kernel_version());
    checks.push(btf(cfg));
    checks.push(bpffs());
    checks
}

pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let tag = match c.status {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        s.push_str(&format!("{tag}  {:<34} {}\n", c.name, c.value));
        s.push_str(&format!("      {}\n", c.detail));
        if !c.fix.is_empty() {
            s.push_str(&format!("      fix: {}\n", c.fix));
        }
    }
    s
}

fn check(name: &str, status: Verdict, value: String, detail: String, fix: &str) -> Check {
    Check {
        name: name.into(),
        status,
        value,
        detail,
        fix: if status == Verdict::Pass {
            String::new()
        } else {
            fix.into()
        },
    }
}

/// The kernel's SIP ALG: helper objects or rules in nftables, automatic helper
/// assignment, or connections with the SIP helper attached right now.
fn sip_helper() -> Check {
    let fix = crate::detect::sip_alg::REMEDIATION;
    let auto = system::sysctl("nf_conntrack_helper");
    let on_entries = system::conntrack_entries()
        .map(|e| {
            e.iter()
                .filter(|e| e.helper.as_deref().is_some_and(|h| h.starts_with("sip")))
                .count()
        })
        .unwrap_or(0);
    let module = std::path::Path::new("/sys/module/nf_conntrack_sip").exists();
    let Some(r) = system::ruleset() else {
        return check(
            "sip_helper",
            Verdict::Warn,
            format!("nf_conntrack_sip present: {module}"),
            "cannot read the nftables ruleset (`nft list ruleset` failed): SIP helper \
             rules not checked"
                .into(),
            "run as root with nft installed",
        );
    };
    let mut found = Vec::new();
    if !r.sip_helpers.is_empty() {
        found.push(format!(
            "nft ct helper type \"sip\": {}",
            r.sip_helpers.join(", ")
        ));
    }
    if !r.helper_rules.is_empty() {
        found.push(format!("nft rules: {}", r.helper_rules.join("; ")));
    }
    let iptables = iptables_sip_rules();
    if !iptables.is_empty() {
        found.push(format!("iptables rules: {}", iptables.join("; ")));
    }
    if auto == Some(1) {
        found.push("net.netfilter.nf_conntrack_helper = 1".into());
    }
    if on_entries > 0 {
        found.push(format!("{on_entries} conntrack entries with helper=sip"));
    }
    if found.is_empty() {
        check(
            "sip_helper",
            Verdict::Pass,
            format!("none assigned (nf_conntrack_sip present: {module})"),
            "no SIP helper is assigned to connections: SIP passes unmodified".into(),
            fix,
        )
    } else {
        check(
            "sip_helper",
            Verdict::Fail,
            found.join("; "),
            "the gateway's SIP ALG is on: it rewrites SIP and breaks Webex signalling".into(),
            fix,
        )
    }
}

/// The `*-save` tools of both iptables back ends, IPv4 and IPv6: iptables-nft rules are
/// in the nftables ruleset too, but their `CT --helper` target shows there only as
/// `xt target CT`, without the helper; iptables-legacy rules are not there at all.
const IPTABLES_SAVE: [&str; 4] = [
    "iptables-legacy-save",
    "iptables-nft-save",
    "ip6tables-legacy-save",
    "ip6tables-nft-save",
];

/// Rules assigning the SIP helper through iptables (`-j CT --helper sip`), each as
/// "<tool>: <rule>"; tools that are not installed or fail are skipped.
fn iptables_sip_rules() -> Vec<String> {
    let mut out = Vec::new();
    for tool in IPTABLES_SAVE {
        let Ok(o) = std::process::Command::new(tool)
            .args(["-t", "raw"])
            .stderr(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        if !o.status.success() {
            continue;
        }
        let tool = tool.trim_end_matches("-save");
        out.extend(
            sip_ct_rules(&String::from_utf8_lossy(&o.stdout))
                .into_iter()
                .map(|r| format!("{tool}: {r}")),
        );
    }
    out
}

/// The rules of an `iptables-save` listing that assign a SIP helper: `-j CT --helper`
/// with a helper name starting with "sip" (the kernel's are `sip`, and `sip-<port>` as
/// nftables names them).
fn sip_ct_rules(save: &str) -> Vec<&str> {
    save.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("-A ") && l.contains("-j CT"))
        .filter(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "--helper")
                .nth(1)
                .is_some_and(|h| h.trim_matches('"').starts_with("sip"))
        })
        .collect()
}

fn timeouts(d: &DetectConfig) -> Vec<Check> {
    let min = d.nat_timeout_min_s;
    let fix = crate::detect::nat_timeout::REMEDIATION;
    let mut out = Vec::new();
    for (leaf, name, judged) in [
        (UDP_TIMEOUT_STREAM, "conntrack_udp_timeout_stream", true),
        (
            TCP_TIMEOUT_ESTABLISHED,
            "conntrack_tcp_timeout_established",
            true,
        ),
        (UDP_TIMEOUT, "conntrack_udp_timeout", false),
    ] {
        let setting = system::sysctl_name(leaf);
        out.push(match system::sysctl(leaf) {
            None => check(
                name,
                Verdict::Warn,
                "unreadable".into(),
                format!("{setting} cannot be read (no conntrack in this namespace?)"),
                fix,
            ),
            Some(v) if judged && v < min => check(
                name,
                Verdict::Fail,
                format!("{setting} = {v}"),
                format!("NAT bindings expire after {v} s idle; signalling needs {min} s"),
                fix,
            ),
            // The unreplied timeout only covers a binding until its first reply.
            Some(v) if !judged && v < 30 => check(
                name,
                Verdict::Warn,
                format!("{setting} = {v}"),
                format!("a new UDP binding expires {v} s before its first reply"),
                "keep net.netfilter.nf_conntrack_udp_timeout at 30 s or more",
            ),
            Some(v) => check(
                name,
                Verdict::Pass,
                format!("{setting} = {v}"),
                if judged {
                    format!("at least the {min} s signalling needs")
                } else {
                    "until the first reply; replied bindings use the stream timeout".into()
                },
                fix,
            ),
        });
    }
    out
}

fn conntrack_table(d: &DetectConfig) -> Check {
    let fix = crate::detect::nat_exhaustion::REMEDIATION;
    match (
        system::sysctl("nf_conntrack_count"),
        system::sysctl("nf_conntrack_max"),
    ) {
        (Some(count), Some(max)) if max > 0 => {
            let value = format!("{count} of {max} entries");
            let status = if count >= max {
                Verdict::Fail
            } else if count * 100 >= d.nat_use_pct as u64 * max {
                Verdict::Warn
            } else {
                Verdict::Pass
            };
            check(
                "conntrack_table",
                status,
                value,
                format!(
                    "new connections are dropped when it is full (warn at {} %)",
                    d.nat_use_pct
                ),
                fix,
            )
        }
        _ => check(
            "conntrack_table",
            Verdict::Warn,
            "unreadable".into(),
            "net.netfilter.nf_conntrack_count/max cannot be read".into(),
            fix,
        ),
    }
}

/// The interface's MTU by `SIOCGIFMTU` in this network namespace (sysfs may show another
/// namespace's view).
pub fn interface_mtu_of(name: &str) -> Option<u32> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: ifreq is plain data; the name is copied with a terminating NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        unsafe { libc::close(fd) };
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: fd is a socket we own; req is a valid ifreq the kernel fills.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) };
    unsafe { libc::close(fd) };
    if rc < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

fn interface_mtu(name: &str, path_mtu: u32) -> Check {
    let check_name = format!("mtu_{name}");
    let fix = crate::detect::mtu::REMEDIATION;
    match interface_mtu_of(name) {
        None => check(
            &check_name,
            Verdict::Warn,
            "missing".into(),
            format!(
                "interface {name} does not exist in this network namespace: the daemon waits \
                 for it and attaches when it appears"
            ),
            "if it is not created later (PPP, WireGuard, a VLAN), fix the name in \
             [[interfaces]] (`ip link` lists them)",
        ),
        Some(mtu) if mtu < path_mtu => check(
            &check_name,
            Verdict::Warn,
            format!("{mtu}"),
            format!(
                "{name} carries at most {mtu}-byte packets, less than the {path_mtu}-byte \
                 path MTU: longer Webex packets are fragmented or dropped here"
            ),
            fix,
        ),
        Some(mtu) => check(
            &check_name,
            Verdict::Pass,
            format!("{mtu}"),
            format!("at least the {path_mtu}-byte path MTU"),
            fix,
        ),
    }
}

/// Whether the data path is on the interface (pinned links, which stay while the daemon
/// is stopped) and whether DSCP rewrite is active there (configured, TC attached, and
/// the pinned policy says rewrite for its index).
fn attachment(
    cfg: &config::ValidatedConfig,
    iface: &config::InterfaceConfig,
    ifindex: u32,
) -> Check {
    use crate::kernel::{netdev, pins};
    let name = &iface.name;
    let check_name = format!("attached_{name}");
    let pin_dir = &cfg.config.daemon.pin_path;
    let rewrite_wanted = iface.dscp_egress == config::DscpMode::Rewrite;
    if ifindex == 0 {
        return check(
            &check_name,
            Verdict::Warn,
            "waiting".into(),
            format!(
                "{name} does not exist: nothing is monitored{} there until it appears",
                if rewrite_wanted { " or rewritten" } else { "" }
            ),
            "create the interface, or fix the name in [[interfaces]]",
        );
    }
    let link_type = netdev::link_type(name).unwrap_or(u16::MAX);
    let l3_beyond_table = netdev::link_kind(link_type)
        .is_some_and(|k| k == monitor_common::link::LINK_L3)
        && ifindex >= monitor_common::link::LINK_KIND_ENTRIES;
    if !netdev::parser_reads(link_type) || l3_beyond_table {
        return check(
            &check_name,
            Verdict::Fail,
            "refused".into(),
            format!(
                "{name} has link type {} ({link_type}), which the parser cannot read: the \
                 daemon does not attach to it",
                netdev::link_type_name(link_type)
            ),
            "monitor the Ethernet interface under it instead, or remove it from [[interfaces]]",
        );
    }
    let links: Vec<String> = pins::pinned_links(pin_dir)
        .into_iter()
        .filter(|(interface, _, _)| interface == name)
        .map(|(_, kind, _)| kind)
        .collect();
    let tc = links.iter().any(|k| k == "tcx");
    let hooks = if links.iter().any(|k| k == "tcx-ingress") {
        "TC on ingress (xdp_mode = \"off\") and on egress stay"
    } else {
        "XDP and TC stay"
    };
    let rewrite_active = tc && rewrite_wanted && policy_rewrites(pin_dir, ifindex);
    let dscp = if rewrite_active {
        "; DSCP rewrite active (also while the daemon is down)"
    } else if rewrite_wanted {
        "; DSCP rewrite configured but NOT active"
    } else {
        ""
    };
    if links.is_empty() {
        return check(
            &check_name,
            if rewrite_wanted {
                Verdict::Warn
            } else {
                Verdict::Pass
            },
            "not attached".into(),
            format!("no pinned links on {name}: the daemon has not run or was detached{dscp}"),
            "start the daemon (`systemctl start monitor`)",
        );
    }
    check(
        &check_name,
        if rewrite_wanted && !rewrite_active {
            Verdict::Warn
        } else {
            Verdict::Pass
        },
        format!("attached ({})", links.join(", ")),
        format!("{hooks} on {name} across daemon restarts{dscp}"),
        "start the daemon once to attach the TC program (`systemctl start monitor`)",
    )
}

/// The pinned DSCP policy map holds rewrite on egress for `ifindex`.
fn policy_rewrites(pin_dir: &std::path::Path, ifindex: u32) -> bool {
    use aya::maps::{HashMap, Map, MapData};
    use monitor_common::dscp::{Mode, Policy};
    let Ok(data) = MapData::from_pin(pin_dir.join(monitor_common::map_names::DSCP_POLICY)) else {
        return false;
    };
    let Ok(map) = HashMap::<_, u32, Policy>::try_from(Map::HashMap(data)) else {
        return false;
    };
    map.get(&ifindex, 0)
        .is_ok_and(|p| Mode::from_u8(p.egress) == Mode::Rewrite)
}

/// "6.18.44-fc" -> (6, 18)
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn kernel_version() -> Check {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let fix = "run a kernel of 6.1 or later (6.6 or later for tcx egress attach)";
    let (verdict, detail) = kernel_verdict(&release);
    check("xdp_kernel", verdict, release, detail, fix)
}

/// The verdict on a kernel release string, and why.
fn kernel_verdict(release: &str) -> (Verdict, String) {
    match parse_release(release) {
        Some(v) if v >= VERIFIED_KERNEL => (
            Verdict::Pass,
            format!(
                "XDP and TC programs supported{}",
                if v >= (6, 6) {
                    ", tcx egress attach available"
                } else {
                    ", TC attach through a clsact qdisc"
                }
            ),
        ),
        Some(v) if v >= MIN_KERNEL => (
            Verdict::Warn,
            "older than 6.1, the oldest kernel the programs are verified on: they may load, \
             untested"
                .into(),
        ),
        Some(_) => (
            Verdict::Fail,
            "older than 5.18: the monitor's programs do not load (no bpf_xdp_load_bytes)".into(),
        ),
        None => (
            Verdict::Fail,
            "cannot read the kernel release from /proc/sys/kernel/osrelease".into(),
        ),
    }
}

/// Kernel BTF, and whether the programs attached by the daemon (found through the pinned
/// links) were loaded with the object's BTF: func and line info for `bpftool prog
/// profile`, `perf` and `bpftool prog dump xlated ... linum`.
fn btf(cfg: Option<&config::ValidatedConfig>) -> Check {
    let present = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    let programs = cfg.map(|c| attached_btf(&c.config.daemon.pin_path));
    let (with, total) = programs.unwrap_or((0, 0));
    let mut value = if present {
        "/sys/kernel/btf/vmlinux".to_string()
    } else {
        "missing".to_string()
    };
    if total > 0 {
        value.push_str(&format!(
            "; object BTF loaded: {with} of {total} attached programs"
        ));
    }
    let detail = match (present, total, with == total) {
        (false, _, _) => "no kernel BTF: the monitor runs, but BTF-based tools do not".into(),
        (true, 0, _) => {
            "kernel BTF available (bpftool and CO-RE tools work); no attached programs to \
             check for the object's BTF"
                .into()
        }
        (true, _, true) => "kernel BTF available; the attached programs carry the object's BTF \
         (func and line info for bpftool and perf)"
            .into(),
        (true, _, false) => format!(
            "{} attached programs were loaded without the object's BTF: no func or line info \
             for profiling",
            total - with
        ),
    };
    let ok = present && with == total;
    check(
        "btf",
        if ok { Verdict::Pass } else { Verdict::Warn },
        value,
        detail,
        if present {
            "restart the daemon with this version (it loads the object with its BTF); the \
             daemon log says why the kernel refused it"
        } else {
            "build the kernel with CONFIG_DEBUG_INFO_BTF=y"
        },
    )
}

/// (with BTF, total) over the programs of the pinned links under `pin_dir` (each program
/// once: one TC program serves every interface).
fn attached_btf(pin_dir: &std::path::Path) -> (usize, usize) {
    use aya::programs::links::{FdLink, PinnedLink};
    let ids: Vec<u32> = crate::kernel::pins::pinned_links(pin_dir)
        .into_iter()
        .filter_map(|(_, _, path)| PinnedLink::from_pin(path).ok())
        .filter_map(|l| FdLink::from(l).info().ok())
        .map(|i| i.program_id())
        .collect();
    let mut with = 0;
    let mut total = 0;
    for info in aya::programs::loaded_programs().flatten() {
        if ids.contains(&info.id()) {
            total += 1;
            with += usize::from(info.btf_id().is_some_and(|b| b > 0));
        }
    }
    (with, total)
}

fn bpffs() -> Check {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let path = c"/sys/fs/bpf";
    // SAFETY: statfs fills the zeroed struct for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::statfs(path.as_ptr(), &mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC;
    check(
        "bpffs",
        if ok { Verdict::Pass } else { Verdict::Fail },
        if ok { "/sys/fs/bpf" } else { "not mounted" }.into(),
        if ok {
            "maps can be pinned, so restarts keep counters".into()
        } else {
            "bpffs is not mounted at /sys/fs/bpf: maps cannot be pinned".into()
        },
        "mount -t bpf bpf /sys/fs/bpf (systemd mounts it by default)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_ct_rules_with_a_sip_helper() {
        let save = "# Generated by iptables-save v1.8.9\n*raw\n:PREROUTING ACCEPT [0:0]\n\
             -A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip\n\
             -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\n\
             -A PREROUTING -p udp -m udp --dport 5060 -j CT --notrack\n\
             -A OUTPUT -p udp -j CT --helper \"sip-5060\"\nCOMMIT\n";
        assert_eq!(
            sip_ct_rules(save),
            [
                "-A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip",
                "-A OUTPUT -p udp -j CT --helper \"sip-5060\"",
            ]
        );
        assert!(sip_ct_rules("").is_empty());
    }

    #[test]
    fn release() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0"), Some((5, 4)));
        assert_eq!(parse_release("x"), None);
    }

    #[test]
    fn kernels_pass_from_6_1_warn_from_5_18_and_fail_below() {
        let v = |r| kernel_verdict(r).0;
        assert_eq!(v("6.18.44-fc"), Verdict::Pass);
        assert_eq!(v("6.1.0-56-amd64"), Verdict::Pass);
        assert_eq!(v("6.0.19"), Verdict::Warn);
        assert_eq!(v("5.18.0"), Verdict::Warn);
        assert_eq!(v("5.15.0-91-generic"), Verdict::Fail);
        assert_eq!(v(""), Verdict::Fail);
        assert!(kernel_verdict("6.1.0").1.contains("clsact"));
        assert!(kernel_verdict("6.6.0").1.contains("tcx"));
    }

    #[test]
    fn loopback_mtu_by_ioctl() {
        assert!(interface_mtu_of("lo").is_some_and(|m| m >= 1500));
        assert_eq!(interface_mtu_of("no-such-if0"), None);
    }
}
