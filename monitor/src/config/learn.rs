//! `[learn]`: learning Webex peers by name, from DNS answers and TLS server names (SNI)
//! crossing the gateway. Webex signalling is reached by name and the addresses behind
//! the names change; the prefix list alone cannot follow them.

use serde::Deserialize;

use super::Prefix;

/// The default domains: Webex Calling's signalling and control names.
pub const DEFAULT_DOMAINS: [&str; 4] = [
    "*.webex.com",
    "*.cisco.com",
    "*.ciscospark.com",
    "*.wbx2.com",
];

/// `[learn]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearnConfig {
    /// Learn peers at all. Default true. When false, samples are read and dropped and
    /// learned peers expire.
    pub enabled: bool,
    /// Names whose addresses are Webex peers. `*.example.com` matches every name below
    /// example.com (not example.com itself); a name without `*.` matches only itself.
    /// Case-insensitive. Default `["*.webex.com", "*.cisco.com", "*.ciscospark.com",
    /// "*.wbx2.com"]`.
    pub domains: Vec<String>,
    /// A DNS TTL below this is raised to it, in seconds: clients keep using an address a
    /// little after its TTL, and very short CDN TTLs would make peers flap. Default 60.
    pub ttl_floor_s: u32,
    /// A DNS TTL above this is lowered to it, in seconds, so a stale address does not
    /// stay Webex for a day. Default 3600.
    pub ttl_cap_s: u32,
    /// How long a peer learned from a ClientHello's server name stays, in seconds; each
    /// new ClientHello to it starts the time again. Default 3600.
    pub sni_ttl_s: u32,
    /// Most peers learned at once; further addresses are refused (and counted) until
    /// some expire. Default 4096 (the prefix tries hold 16384 entries each).
    pub max_peers: u32,
    /// A learned peer stays, past its TTL, while a Webex flow to it carried a packet
    /// within this many seconds: a call outlives the DNS TTL of its media node. Default
    /// 300; 1 to 86400.
    pub idle_s: u32,
    /// Private addresses (RFC 1918, 100.64.0.0/10, fc00::/7) are never learned unless a
    /// prefix here covers them (a Webex node reached through a private link). Default
    /// none.
    pub private_prefixes: Vec<Prefix>,
    /// LAN-side prefixes never learned, besides those of the LAN interfaces' own
    /// addresses (found at start and on every poll). Default none.
    pub lan_prefixes: Vec<Prefix>,
    /// Samples (DNS queries and answers, hellos, SYN-ACKs) one client may send the daemon
    /// per second, on average, with bursts of twice that; the kernel passes the rest
    /// uncopied and counts them. Behind NAT the gateway's WAN address is one client for
    /// the whole site's WAN side (its LAN side still counts per host). Default 50;
    /// 1 to 100000.
    pub client_rate_per_s: u32,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig {
            enabled: true,
            domains: DEFAULT_DOMAINS.iter().map(|d| d.to_string()).collect(),
            ttl_floor_s: 60,
            ttl_cap_s: 3600,
            sni_ttl_s: 3600,
            max_peers: 4096,
            idle_s: 300,
            private_prefixes: Vec::new(),
            lan_prefixes: Vec::new(),
            client_rate_per_s: monitor_common::learn::DEFAULT_RATE_PER_S as u32,
        }
    }
}

/// A field that is invalid.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub field: String,
    pub problem: String,
}

/// Checks the domains' syntax and the TTL bounds.
pub fn validate(l: &LearnConfig) -> Result<(), Problem> {
    for (i, d) in l.domains.iter().enumerate() {
        if let Err(why) = check_domain(d) {
            return Err(Problem {
                field: format!("learn.domains[{i}]"),
                problem: format!("\"{d}\" {why}; write a name like \"*.webex.com\""),
            });
        }
    }
    if l.ttl_cap_s == 0 || l.ttl_floor_s > l.ttl_cap_s {
        return Err(Problem {
            field: "learn.ttl_cap_s".into(),
            problem: format!(
                "{} must be at least 1 and not below learn.ttl_floor_s ({})",
                l.ttl_cap_s, l.ttl_floor_s
            ),
        });
    }
    if l.sni_ttl_s == 0 {
        return Err(Problem {
            field: "learn.sni_ttl_s".into(),
            problem: "0 would forget a peer as soon as it is learned; use at least 1".into(),
        });
    }
    if !(1..=86_400).contains(&l.idle_s) {
        return Err(Problem {
            field: "learn.idle_s".into(),
            problem: format!("{} is outside 1 to 86400", l.idle_s),
        });
    }
    if !(1..=100_000).contains(&l.client_rate_per_s) {
        return Err(Problem {
            field: "learn.client_rate_per_s".into(),
            problem: format!("{} is outside 1 to 100000", l.client_rate_per_s),
        });
    }
    if !(1..=16384).contains(&l.max_peers) {
        return Err(Problem {
            field: "learn.max_peers".into(),
            problem: format!("{} is outside 1 to 16384", l.max_peers),
        });
    }
    Ok(())
}

fn check_domain(d: &str) -> Result<(), &'static str> {
    let rest = d.strip_prefix("*.").unwrap_or(d);
    if rest.is_empty() || rest.len() > 253 {
        return Err("is empty or longer than 253 characters");
    }
    for label in rest.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty or over-long label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("may only hold letters, digits, '-', '_' and a leading \"*.\"");
        }
    }
    Ok(())
}

/// The configured domains, ready to match names (lowercase, no trailing dot).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Domains {
    /// `*.x`: names ending in `.x`, stored as ".x".
    suffixes: Vec<String>,
    /// Exact names.
    exact: Vec<String>,
}

impl Domains {
    pub fn new(domains: &[String]) -> Domains {
        let mut m = Domains::default();
        for d in domains {
            let d = d.to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(rest) => m.suffixes.push(format!(".{rest}")),
                None => m.exact.push(d),
            }
        }
        m
    }

    /// Whether `name` (lowercase, as the parsers return it) is under the domains.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.exact.iter().any(|e| e == name)
            || self
                .suffixes
                .iter()
                .any(|s| name.len() > s.len() && name.ends_with(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_match() {
        let l = LearnConfig::default();
        assert_eq!(validate(&l), Ok(()));
        let m = Domains::new(&l.domains);
        assert!(m.matches("media.webex.com"));
        assert!(m.matches("a.b.wbx2.com"));
        assert!(!m.matches("webex.com"));
        assert!(!m.matches("notwebex.com"));
        assert!(!m.matches("webex.com.evil.org"));
        // An escaped dot inside a label (see dns::read_name) never matches.
        assert!(!m.matches("evil\\046webex.com"));
        let exact = Domains::new(&["Sip.Example.Org".to_string()]);
        assert!(exact.matches("sip.example.org"));
        assert!(!exact.matches("a.sip.example.org"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut l = LearnConfig {
            domains: vec!["*.webex.com".into(), "*.".into()],
            ..Default::default()
        };
        assert_eq!(validate(&l).unwrap_err().field, "learn.domains[1]");
        l.domains = vec!["a..b".into()];
        assert_eq!(validate(&l).unwrap_err().field, "learn.domains[0]");
        l.domains = vec!["x/y.com".into()];
        assert_eq!(validate(&l).unwrap_err().field, "learn.domains[0]");
        l.domains = vec![];
        l.ttl_floor_s = 100;
        l.ttl_cap_s = 50;
        assert_eq!(validate(&l).unwrap_err().field, "learn.ttl_cap_s");
        l.ttl_cap_s = 100;
        l.sni_ttl_s = 0;
        assert_eq!(validate(&l).unwrap_err().field, "learn.sni_ttl_s");
        l.sni_ttl_s = 1;
        l.max_peers = 0;
        assert_eq!(validate(&l).unwrap_err().field, "learn.max_peers");
        l.max_peers = 1;
        l.idle_s = 0;
        assert_eq!(validate(&l).unwrap_err().field, "learn.idle_s");
        l.idle_s = 1;
        l.client_rate_per_s = 0;
        assert_eq!(validate(&l).unwrap_err().field, "learn.client_rate_per_s");
    }

    #[test]
    fn trust_keys_parse() {
        let l: LearnConfig = toml::from_str(
            "idle_s = 60\nprivate_prefixes = [\"10.20.0.0/16\"]\nlan_prefixes = [\"172.16.0.0/12\"]",
        )
        .unwrap();
        assert_eq!(l.idle_s, 60);
        assert_eq!(l.private_prefixes[0].to_string(), "10.20.0.0/16");
        assert_eq!(l.lan_prefixes[0].to_string(), "172.16.0.0/12");
        assert_eq!(validate(&l), Ok(()));
        assert_eq!(LearnConfig::default().idle_s, 300);
        assert_eq!(LearnConfig::default().client_rate_per_s, 50);
    }
}
