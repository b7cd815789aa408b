//! The commands that turn three empty namespaces into the LAN / NAT gateway / WAN
//! topology described in [`super::addrs`].

use super::addrs::*;
use crate::Netns;
use anyhow::{Context as _, Result, bail};
use std::time::{Duration, Instant};

/// Masquerade everything leaving the WAN side, IPv4 and IPv6 alike: a real NAT with
/// conntrack, as on a site's edge router.
const NAT_RULESET: &str = r#"table inet nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade
    }
}"#;

/// How long links may take to come up before the testbed gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-namespace defaults that must be in place before any link is created.
pub fn prepare(ns: &Netns) -> Result<()> {
    // New links copy `default`; without DAD even link-local addresses are usable at once,
    // so the first packets of a test are not lost to a tentative address.
    ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
    ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
    ns.ip(&["link", "set", "lo", "up"])?;
    Ok(())
}

/// Creates the veth pair `a_if` (in `a`) <-> `b_if` (in `b`). Created from inside `a`
/// and with the peer placed straight into `b`, so nothing ever appears in the root
/// namespace and names cannot clash with the host's or another testbed's.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    ns_ip(
        a,
        &[
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ],
    )
}

pub fn lan_host(ns: &Netns) -> Result<()> {
    addr(ns, LAN_HOST_IF, &format!("{LAN_HOST_V4}/24"))?;
    addr(ns, LAN_HOST_IF, &format!("{LAN_HOST_V6}/64"))?;
    ns_ip(ns, &["link", "set", LAN_HOST_IF, "up"])?;
    ns_ip(
        ns,
        &["route", "add", "default", "via", &GW_LAN_V4.to_string()],
    )?;
    ns_ip(
        ns,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &GW_LAN_V6.to_string(),
        ],
    )?;
    Ok(())
}

pub fn gateway(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    addr(ns, GW_LAN_IF, &format!("{GW_LAN_V4}/24"))?;
    addr(ns, GW_LAN_IF, &format!("{GW_LAN_V6}/64"))?;
    addr(ns, GW_WAN_IF, &format!("{GW_WAN_V4}/24"))?;
    addr(ns, GW_WAN_IF, &format!("{GW_WAN_V6}/64"))?;
    ns_ip(ns, &["link", "set", GW_LAN_IF, "up"])?;
    ns_ip(ns, &["link", "set", GW_WAN_IF, "up"])?;
    let via4 = WAN_HOST_V4.to_string();
    let via6 = WAN_HOST_V6.to_string();
    ns_ip(ns, &["route", "add", WEBEX_PREFIX_V4, "via", &via4])?;
    ns_ip(ns, &["-6", "route", "add", WEBEX_PREFIX_V6, "via", &via6])?;
    ns.exec(&["nft", NAT_RULESET])
        .context("installing the NAT (masquerade) ruleset on the gateway")?;
    Ok(())
}

/// The gateway's LAN side alone, for a `lan0` created again.
pub fn gateway_lan(ns: &Netns) -> Result<()> {
    addr(ns, GW_LAN_IF, &format!("{GW_LAN_V4}/24"))?;
    addr(ns, GW_LAN_IF, &format!("{GW_LAN_V6}/64"))?;
    ns_ip(ns, &["link", "set", GW_LAN_IF, "up"])
}

/// The gateway's WAN side alone, for a `wan0` created again: addresses, link up, and
/// the routes to the Webex prefixes through the WAN host.
pub fn gateway_wan(ns: &Netns) -> Result<()> {
    addr(ns, GW_WAN_IF, &format!("{GW_WAN_V4}/24"))?;
    addr(ns, GW_WAN_IF, &format!("{GW_WAN_V6}/64"))?;
    ns_ip(ns, &["link", "set", GW_WAN_IF, "up"])?;
    let via4 = WAN_HOST_V4.to_string();
    let via6 = WAN_HOST_V6.to_string();
    ns_ip(ns, &["route", "replace", WEBEX_PREFIX_V4, "via", &via4])?;
    ns_ip(
        ns,
        &["-6", "route", "replace", WEBEX_PREFIX_V6, "via", &via6],
    )
}

/// The WAN host answers for the media node on its loopback and has no route back to the
/// LAN: replies can only find their way through the gateway's NAT.
pub fn wan_host(ns: &Netns) -> Result<()> {
    addr(ns, "lo", &format!("{WEBEX_NODE_V4}/32"))?;
    addr(ns, "lo", &format!("{WEBEX_NODE_V6}/128"))?;
    wan_host_link(ns)
}

/// The WAN host's side of the WAN link alone, for an `eth0` created again.
pub fn wan_host_link(ns: &Netns) -> Result<()> {
    addr(ns, WAN_HOST_IF, &format!("{WAN_HOST_V4}/24"))?;
    addr(ns, WAN_HOST_IF, &format!("{WAN_HOST_V6}/64"))?;
    ns_ip(ns, &["link", "set", WAN_HOST_IF, "up"])
}

/// Waits until every listed link is operationally up and no IPv6 address is tentative.
pub fn wait_ready(links: &[(&Netns, &str)]) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for (ns, ifname) in links {
        while !link_up(ns, ifname)? {
            if Instant::now() >= deadline {
                bail!(
                    "link {ifname} in netns {} not up after {READY_TIMEOUT:?}",
                    ns.name()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for (ns, _) in links {
        while has_tentative(ns)? {
            if Instant::now() >= deadline {
                bail!(
                    "IPv6 addresses in netns {} still tentative after {READY_TIMEOUT:?}",
                    ns.name()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn link_up(ns: &Netns, ifname: &str) -> Result<bool> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname])?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing `ip -j link show dev {ifname}` in {}", ns.name()))?;
    let state = links[0]["operstate"].as_str().unwrap_or_default();
    let flags_up = links[0]["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == "UP"));
    // veth reports UP once both ends are; loopback stays UNKNOWN for good.
    Ok(flags_up && (state == "UP" || (ifname == "lo" && state == "UNKNOWN")))
}

fn has_tentative(ns: &Netns) -> Result<bool> {
    let out = ns.ip(&["-6", "addr", "show", "tentative"])?;
    Ok(!out.stdout.iter().all(u8::is_ascii_whitespace))
}

fn addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns_ip(ns, &["-6", "addr", "add", cidr, "dev", ifname, "nodad"])
    } else {
        ns_ip(ns, &["addr", "add", cidr, "dev", ifname])
    }
}

fn ns_ip(ns: &Netns, args: &[&str]) -> Result<()> {
    ns.ip(args).map(drop)
}
