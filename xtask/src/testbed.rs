//! The three-namespace testbed: a LAN host, a gateway doing real NAT (nftables masquerade
//! with conntrack), and a WAN host standing in for a Webex media node.

mod addrs;
mod wiring;

pub use addrs::*;

use crate::{Netns, cmd};
use anyhow::{Context as _, Result};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Guard over the three namespaces `<prefix>-lan`, `<prefix>-gw`, `<prefix>-wan`; dropping
/// it kills whatever still runs in them and deletes them.
#[derive(Debug)]
pub struct Testbed {
    pub lan: Netns,
    pub gw: Netns,
    pub wan: Netns,
    prefix: String,
}

impl Testbed {
    /// Builds the topology and returns once every link is up. The prefix is
    /// `mtb<pid>x<n>`, unique per testbed of this process, so tests may run in parallel
    /// and a crashed run's leftovers can be recognised ([`cleanup_stale`]).
    pub fn new() -> Result<Testbed> {
        let prefix = format!(
            "{NETNS_PREFIX}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The guard exists before the first namespace does, so a failure half-way
        // through still removes what was made.
        let testbed = Testbed {
            lan: Netns::new(format!("{prefix}-lan")),
            gw: Netns::new(format!("{prefix}-gw")),
            wan: Netns::new(format!("{prefix}-wan")),
            prefix,
        };
        testbed
            .build()
            .with_context(|| format!("building testbed {}", testbed.prefix))?;
        Ok(testbed)
    }

    fn build(&self) -> Result<()> {
        for ns in self.namespaces() {
            cmd::run(Command::new("ip").args(["netns", "add", ns.name()]))?;
            wiring::prepare(ns)?;
        }
        wiring::veth(&self.lan, LAN_HOST_IF, &self.gw, GW_LAN_IF)?;
        wiring::veth(&self.wan, WAN_HOST_IF, &self.gw, GW_WAN_IF)?;
        wiring::lan_host(&self.lan)?;
        wiring::gateway(&self.gw)?;
        wiring::wan_host(&self.wan)?;
        wiring::wait_ready(&[
            (&self.lan, LAN_HOST_IF),
            (&self.gw, GW_LAN_IF),
            (&self.gw, GW_WAN_IF),
            (&self.wan, WAN_HOST_IF),
            (&self.lan, "lo"),
            (&self.gw, "lo"),
            (&self.wan, "lo"),
        ])
    }

    /// Deletes the LAN link (the gateway's `lan0` and the LAN host's `eth0` go together)
    /// and creates it again with the same names and addresses, as when a cable or a VM
    /// interface is replugged: the gateway's `lan0` comes back with a new ifindex.
    pub fn replug_lan(&self) -> Result<()> {
        self.unplug_lan()?;
        self.plug_lan()
    }

    /// Deletes the LAN link (the first half of [`replug_lan`](Self::replug_lan)).
    pub fn unplug_lan(&self) -> Result<()> {
        self.gw.ip(&["link", "del", GW_LAN_IF]).map(drop)
    }

    /// Creates the LAN link again after [`unplug_lan`](Self::unplug_lan).
    pub fn plug_lan(&self) -> Result<()> {
        wiring::veth(&self.lan, LAN_HOST_IF, &self.gw, GW_LAN_IF)?;
        wiring::lan_host(&self.lan)?;
        wiring::gateway_lan(&self.gw)?;
        wiring::wait_ready(&[(&self.lan, LAN_HOST_IF), (&self.gw, GW_LAN_IF)])
    }

    /// Puts `relay` (a namespace the caller made and removes) on the LAN link: the LAN
    /// host's `eth0` <-> `relay`'s `lan` and `relay`'s `gw` <-> the gateway's `lan0`,
    /// same addresses as before. Frames cross only if something joins `lan` and `gw`
    /// ([`crate::relay::DelayRelay`]), which resends them as they are: checksum offload
    /// is turned off on `eth0` and `lan0`, so no frame reaches the relay with its
    /// checksum left for the hardware to fill in.
    pub fn plug_lan_via(&self, relay: &Netns) -> Result<()> {
        self.unplug_lan()?;
        wiring::veth(&self.lan, LAN_HOST_IF, relay, "lan")?;
        wiring::veth(relay, "gw", &self.gw, GW_LAN_IF)?;
        wiring::lan_host(&self.lan)?;
        wiring::gateway_lan(&self.gw)?;
        for ifname in ["lo", "lan", "gw"] {
            relay.ip(&["link", "set", ifname, "up"])?;
        }
        for (ns, ifname) in [(&self.lan, LAN_HOST_IF), (&self.gw, GW_LAN_IF)] {
            ns.exec(&["ethtool", "-K", ifname, "tx", "off", "rx", "off"])?;
        }
        wiring::wait_ready(&[
            (&self.lan, LAN_HOST_IF),
            (relay, "lan"),
            (relay, "gw"),
            (&self.gw, GW_LAN_IF),
        ])
    }

    /// Deletes the WAN link (the gateway's `wan0` and the WAN host's `eth0` go together),
    /// as when a PPP or VPN uplink is not there yet.
    pub fn unplug_wan(&self) -> Result<()> {
        self.gw.ip(&["link", "del", GW_WAN_IF]).map(drop)
    }

    /// Creates the WAN link again after [`unplug_wan`](Self::unplug_wan), with the same
    /// names, addresses and the gateway's routes to the Webex prefixes.
    pub fn plug_wan(&self) -> Result<()> {
        wiring::veth(&self.wan, WAN_HOST_IF, &self.gw, GW_WAN_IF)?;
        wiring::wan_host_link(&self.wan)?;
        wiring::gateway_wan(&self.gw)?;
        wiring::wait_ready(&[(&self.wan, WAN_HOST_IF), (&self.gw, GW_WAN_IF)])
    }

    /// `mtb<pid>x<n>`: the common prefix of the three namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// LAN host, gateway, WAN host.
    pub fn namespaces(&self) -> [&Netns; 3] {
        [&self.lan, &self.gw, &self.wan]
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            if ns.path().exists() {
                remove_netns(ns.name());
            }
        }
    }
}

/// Removes testbed namespaces left by processes that no longer run (a crashed or killed
/// test run), killing anything still inside them. Namespaces of live processes are left
/// alone. Returns the names removed.
pub fn cleanup_stale() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(crate::netns::NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::stale::is_stale(&name, NETNS_PREFIX, 'x') {
            remove_netns(&name);
            removed.push(name);
        }
    }
    removed
}

/// Best effort, for Drop: kills the processes left in the namespace (only ever ones a
/// test started there: the name is unique to its creator) so it really goes away, then
/// deletes it. Failures are reported on stderr.
fn remove_netns(name: &str) {
    if let Ok(out) = cmd::run(Command::new("ip").args(["netns", "pids", name])) {
        let own = std::process::id();
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|&p| p != own)
        {
            eprintln!("warning: killing pid {pid} left in netns {name}");
            // SAFETY: plain kill(2) on a pid read from `ip netns pids` just now.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
    if let Err(e) = cmd::run(Command::new("ip").args(["netns", "del", name])) {
        eprintln!("warning: {e:#}");
    }
}
