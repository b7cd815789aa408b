//! The gateway's own NAT state, read from the network namespace the daemon runs in:
//! conntrack settings (`/proc/sys/net/netfilter`), the conntrack table
//! (`conntrack -L -o extended`, or `/proc/net/nf_conntrack` which prints the same lines
//! without the helper),
//! and the nftables ruleset (SIP helpers, masquerade/SNAT port ranges).

use std::{net::IpAddr, path::Path, process::Command};

const NETFILTER: &str = "/proc/sys/net/netfilter";
const CONNTRACK_TABLE: &str = "/proc/net/nf_conntrack";
/// Lines read from the conntrack table at most, so a huge table cannot stall a poll.
pub const MAX_CONNTRACK_LINES: usize = 262_144;

/// One conntrack sysctl: its name (as `sysctl` spells it) and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: Option<u64>,
}

/// Reads `net.netfilter.<leaf>`.
pub fn sysctl(leaf: &'static str) -> Option<u64> {
    std::fs::read_to_string(Path::new(NETFILTER).join(leaf))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Full sysctl name of a netfilter leaf, for evidence and fixes.
pub fn sysctl_name(leaf: &str) -> String {
    format!("net.netfilter.{leaf}")
}

/// The conntrack timeouts a NAT binding of SIP signalling lives by.
pub const UDP_TIMEOUT: &str = "nf_conntrack_udp_timeout";
pub const UDP_TIMEOUT_STREAM: &str = "nf_conntrack_udp_timeout_stream";
pub const TCP_TIMEOUT_ESTABLISHED: &str = "nf_conntrack_tcp_timeout_established";

/// One tuple of a conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// One conntrack entry (UDP or TCP; others are skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// "udp" or "tcp".
    pub protocol: &'static str,
    /// Seconds until it expires.
    pub timeout_s: u64,
    /// As the first packet had it (on the LAN side of a NAT: the inner host).
    pub orig: Tuple,
    /// As replies have it (on the WAN side: `dst`/`dport` are the public binding).
    pub reply: Tuple,
    /// The connection-tracking helper attached, e.g. "sip".
    pub helper: Option<String>,
    pub assured: bool,
}

impl Entry {
    /// True when the source was translated (masquerade/SNAT): replies go to another
    /// address or port than the one the connection came from.
    pub fn is_snat(&self) -> bool {
        self.orig.src != self.reply.dst || self.orig.sport != self.reply.dport
    }
}

/// Parses one line of `/proc/net/nf_conntrack` / `conntrack -L -o extended`.
pub fn parse_entry(line: &str) -> Option<Entry> {
    let mut words = line.split_whitespace();
    let _family = words.next()?;
    let _family_no = words.next()?;
    let protocol = match words.next()? {
        "udp" => "udp",
        "tcp" => "tcp",
        _ => return None,
    };
    let _proto_no = words.next()?;
    let timeout_s = words.next()?.parse().ok()?;
    let mut tuples: Vec<Tuple> = Vec::with_capacity(2);
    let (mut src, mut dst, mut sport) = (None, None, None);
    let mut helper = None;
    let mut assured = false;
    for w in words {
        if w == "[ASSURED]" {
            assured = true;
            continue;
        }
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        match k {
            "src" => src = v.parse().ok(),
            "dst" => dst = v.parse().ok(),
            "sport" => sport = v.parse().ok(),
            "dport" => {
                if let (Some(s), Some(d), Some(sp), Ok(dp)) = (src, dst, sport, v.parse()) {
                    tuples.push(Tuple {
                        src: s,
                        dst: d,
                        sport: sp,
                        dport: dp,
                    });
                }
                (src, dst, sport) = (None, None, None);
            }
            "helper" => helper = Some(v.to_string()),
            _ => {}
        }
    }
    if tuples.len() < 2 {
        return None;
    }
    Some(Entry {
        protocol,
        timeout_s,
        orig: tuples[0],
        reply: tuples[1],
        helper,
        assured,
    })
}

/// The conntrack table, or `None` when neither the tool nor the procfs file is there.
/// `conntrack -L -o extended` first: unlike `/proc/net/nf_conntrack` it shows the helper
/// attached to each entry; the procfs file (same line format) is the fallback.
pub fn conntrack_entries() -> Option<Vec<Entry>> {
    let from_tool = Command::new("conntrack")
        .args(["-L", "-o", "extended"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = match from_tool {
        Some(t) => t,
        None => std::fs::read_to_string(CONNTRACK_TABLE).ok()?,
    };
    Some(
        text.lines()
            .take(MAX_CONNTRACK_LINES)
            .filter_map(parse_entry)
            .collect(),
    )
}

/// What the nftables ruleset says about SIP helpers and NAT port ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// `ct helper` objects of type "sip", by name.
    pub sip_helpers: Vec<String>,
    /// Rules assigning a helper (`ct helper set ...`), as printed.
    pub helper_rules: Vec<String>,
    /// Port ranges of `masquerade to :a-b` / `snat to addr:a-b` rules.
    pub nat_port_ranges: Vec<(u16, u16)>,
    /// Masquerade or SNAT rules without a port range (the kernel picks from 1024-65535).
    pub nat_without_range: bool,
}

/// The source-port range masquerade uses when a rule names none.
pub const DEFAULT_NAT_PORTS: (u16, u16) = (1024, 65535);

/// Runs `nft list ruleset`; `None` when nft is missing or not permitted.
pub fn ruleset() -> Option<Ruleset> {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_ruleset(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_ruleset(text: &str) -> Ruleset {
    let mut r = Ruleset::default();
    let mut helper_object: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("ct helper ")
            && rest.ends_with('{')
        {
            helper_object = Some(rest.trim_end_matches('{').trim().trim_matches('"').into());
            continue;
        }
        if let Some(name) = &helper_object {
            if line.starts_with("type \"sip\"") {
                r.sip_helpers.push(name.clone());
            }
            if line == "}" {
                helper_object = None;
            }
            continue;
        }
        if line.contains("ct helper set") {
            r.helper_rules.push(line.to_string());
        }
        for verb in ["masquerade", "snat"] {
            let Some(at) = line.find(verb) else { continue };
            match port_range(&line[at..]) {
                Some(range) => r.nat_port_ranges.push(range),
                None => r.nat_without_range = true,
            }
        }
    }
    r
}

/// `a-b` (or a single port) after the last ':' of a `masquerade to :a-b` / `snat to
/// addr:a-b` statement.
fn port_range(stmt: &str) -> Option<(u16, u16)> {
    let to = stmt.find(" to ")?;
    let target = stmt[to + 4..].split_whitespace().next()?;
    let ports = target.rsplit_once(':')?.1;
    match ports.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => {
            let p = ports.parse().ok()?;
            Some((p, p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_line_with_helper() {
        let e = parse_entry(
            "ipv4     2 udp      17 28 src=192.0.2.10 dst=203.0.113.10 sport=5060 dport=5060 \
             src=203.0.113.10 dst=198.51.100.1 sport=5060 dport=40001 [ASSURED] mark=0 \
             helper=sip zone=0 use=2",
        )
        .unwrap();
        assert_eq!(e.protocol, "udp");
        assert_eq!(e.timeout_s, 28);
        assert_eq!(e.orig.src.to_string(), "192.0.2.10");
        assert_eq!(e.reply.dst.to_string(), "198.51.100.1");
        assert_eq!(e.reply.dport, 40001);
        assert_eq!(e.helper.as_deref(), Some("sip"));
        assert!(e.assured && e.is_snat());
    }

    #[test]
    fn tcp_line_and_others_skipped() {
        let e = parse_entry(
            "ipv4 2 tcp 6 431999 ESTABLISHED src=192.0.2.10 dst=203.0.113.10 sport=40000 \
             dport=5061 src=203.0.113.10 dst=192.0.2.10 sport=5061 dport=40000 [ASSURED] use=1",
        )
        .unwrap();
        assert_eq!(e.protocol, "tcp");
        assert!(!e.is_snat());
        assert_eq!(e.helper, None);
        assert_eq!(
            parse_entry("ipv4 2 icmp 1 29 src=1.2.3.4 dst=5.6.7.8 type=8 code=0 id=1"),
            None
        );
    }

    #[test]
    fn ruleset_helpers_and_ranges() {
        let r = parse_ruleset(
            "table ip nat {\n\tct helper sip-5060 {\n\t\ttype \"sip\" protocol udp\n\t\t\
             l3proto ip\n\t}\n\tchain pre {\n\t\tudp dport 5060 ct helper set \"sip-5060\"\n\t}\n\
             \tchain post {\n\t\toifname \"wan0\" masquerade to :40000-40009\n\t\t\
             oifname \"wan1\" snat ip to 198.51.100.7:2000\n\t\toifname \"wan2\" masquerade\n\t}\n}\n",
        );
        assert_eq!(r.sip_helpers, vec!["sip-5060".to_string()]);
        assert_eq!(
            r.helper_rules,
            vec!["udp dport 5060 ct helper set \"sip-5060\"".to_string()]
        );
        assert_eq!(r.nat_port_ranges, vec![(40000, 40009), (2000, 2000)]);
        assert!(r.nat_without_range);
    }
}

/// Packets this gateway dropped because they were too big for the next hop and could not
/// be fragmented (IPv4 DF set: `Ip: FragFails`; IPv6, which routers never fragment:
/// `Ip6InTooBigErrors`). Each is answered with ICMP fragmentation-needed / Packet Too Big.
/// Read from this network namespace's /proc/net/snmp and snmp6.
pub fn too_big_drops() -> Option<u64> {
    let v4 = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let v6 = std::fs::read_to_string("/proc/net/snmp6").unwrap_or_default();
    Some(snmp_value(&v4, "Ip:", "FragFails")? + snmp6_value(&v6, "Ip6InTooBigErrors").unwrap_or(0))
}

/// A value of /proc/net/snmp: a header line `Ip: Forwarding ... FragFails ...` and a
/// value line with the same prefix.
pub fn snmp_value(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let header = lines.next()?;
    let values = lines.next()?;
    let index = header.split_whitespace().position(|h| h == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

/// A value of /proc/net/snmp6: `name value` lines.
pub fn snmp6_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == name).then(|| it.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod snmp_tests {
    use super::*;

    #[test]
    fn reads_fragfails_and_ipv6_too_big() {
        let snmp = "Ip: Forwarding DefaultTTL InReceives FragOKs FragFails FragCreates\n\
                    Ip: 1 64 1000 3 50 6\n\
                    Icmp: InMsgs OutMsgs\n\
                    Icmp: 1 2\n";
        assert_eq!(snmp_value(snmp, "Ip:", "FragFails"), Some(50));
        assert_eq!(snmp_value(snmp, "Ip:", "Nope"), None);
        assert_eq!(snmp_value(snmp, "Tcp:", "FragFails"), None);
        let snmp6 = "Ip6InReceives                   \t10\nIp6InTooBigErrors               \t7\n";
        assert_eq!(snmp6_value(snmp6, "Ip6InTooBigErrors"), Some(7));
        assert_eq!(snmp6_value(snmp6, "Ip6Missing"), None);
    }
}
