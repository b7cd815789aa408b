//! IP prefixes (`203.0.113.0/24`, `2001:db8::/32`) and Cisco's published Webex ranges.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Cisco's published Webex IP subnets, used when `webex.use_default_prefixes = true`.
///
/// Sources (retrieved for this release; Cisco changes them with about 30 days' notice,
/// so check <https://help.webex.com> and add new ranges to `webex.prefixes`):
/// - "Network Requirements for Webex Services" (help.webex.com, article WBX000028782),
///   section "IP subnets for Webex media services", revision of 16 March 2026: the IPv4
///   media subnets (those in Microsoft Azure host Video Integration for Microsoft
///   Teams) and the IPv6 media ranges.
/// - "Port Reference Information for Webex Calling" (help.webex.com, article b2exve),
///   "IP subnets for Webex Calling services": the Webex Calling signalling and media
///   (access SBC) subnets.
pub const DEFAULT_WEBEX_PREFIXES: &[&str] = &[
    // Webex media services (WBX000028782), IPv4.
    "4.144.190.0/24",
    "4.152.180.0/24",
    "4.152.214.0/24",
    "4.158.208.0/24",
    "4.175.120.0/24",
    "20.50.235.0/24",
    "20.53.87.0/24",
    "20.57.87.0/24",
    "20.68.154.0/24",
    "20.76.127.0/24",
    "20.108.99.0/24",
    "20.120.238.0/23",
    "23.89.0.0/16",
    "40.119.234.0/24",
    "44.234.52.192/26",
    "52.232.210.0/24",
    "62.109.192.0/18",
    "64.68.96.0/19",
    "66.163.32.0/19",
    "69.26.160.0/19",
    "114.29.192.0/19",
    "144.196.0.0/16",
    "150.253.128.0/17",
    "163.129.0.0/17",
    "170.72.0.0/16",
    "170.133.128.0/18",
    "173.39.224.0/19",
    "173.243.0.0/20",
    "207.182.160.0/19",
    "209.197.192.0/19",
    "210.4.192.0/20",
    "216.151.128.0/19",
    // Webex Calling services (b2exve) not already listed above.
    "85.119.56.0/23",
    "128.177.14.0/24",
    "128.177.36.0/24",
    "135.84.168.0/21",
    "139.177.64.0/21",
    "139.177.72.0/23",
    "185.115.196.0/22",
    "199.19.196.0/23",
    "199.19.199.0/24",
    "199.59.64.0/21",
    // Webex media services (WBX000028782), IPv6.
    "2402:2500::/34",
    "2607:fcf0::/34",
    "2a00:a640::/34",
];

/// An IP prefix: an address with its host bits clear and a length (0..=32 for IPv4,
/// 0..=128 for IPv6). Written and parsed as `ADDRESS/LENGTH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// Why a prefix was rejected. Each message quotes the text and says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("\"{text}\" has no prefix length; write {text}/{max} for a single address")]
    NoLength { text: String, max: u8 },
    #[error("\"{0}\" is not a prefix; write ADDRESS/LENGTH, e.g. 203.0.113.0/24 or 2001:db8::/32")]
    NotAPrefix(String),
    #[error("\"{text}\": \"{addr}\" is not an IPv4 or IPv6 address")]
    BadAddress { text: String, addr: String },
    #[error("\"{text}\": prefix length \"{len}\" is not a number from 0 to {max}")]
    BadLength { text: String, len: String, max: u8 },
    #[error("\"{text}\": prefix length {len} is longer than {max}, the maximum for IPv{version}")]
    TooLong {
        text: String,
        len: u32,
        max: u8,
        version: u8,
    },
    #[error("\"{text}\" has host bits set; did you mean {suggestion}?")]
    HostBits { text: String, suggestion: Prefix },
}

impl Prefix {
    /// The longest prefix length for this address family (32 or 128).
    pub fn max_len(addr: IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }

    /// Whether `ip` lies in this prefix (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && Self::network(ip, self.len) == self.addr
    }

    /// `addr` with every bit past `len` cleared.
    fn network(addr: IpAddr, len: u8) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let owned = || text.to_string();
        let Some((addr_text, len_text)) = text.split_once('/') else {
            return Err(match text.parse::<IpAddr>() {
                Ok(addr) => PrefixError::NoLength {
                    text: owned(),
                    max: Self::max_len(addr),
                },
                Err(_) => PrefixError::NotAPrefix(owned()),
            });
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| PrefixError::BadAddress {
            text: owned(),
            addr: addr_text.to_string(),
        })?;
        let max = Self::max_len(addr);
        let bad_length = || PrefixError::BadLength {
            text: owned(),
            len: len_text.to_string(),
            max,
        };
        if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_length());
        }
        let len: u32 = len_text.parse().map_err(|_| bad_length())?;
        if len > u32::from(max) {
            return Err(PrefixError::TooLong {
                text: owned(),
                len,
                max,
                version: if addr.is_ipv4() { 4 } else { 6 },
            });
        }
        let len = len as u8; // <= 128, checked above
        let network = Self::network(addr, len);
        if network != addr {
            return Err(PrefixError::HostBits {
                text: owned(),
                suggestion: Prefix { addr: network, len },
            });
        }
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrefixVisitor;
        impl serde::de::Visitor<'_> for PrefixVisitor {
            type Value = Prefix;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prefix like \"203.0.113.0/24\" or \"2001:db8::/32\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Prefix, E> {
                text.parse().map_err(E::custom)
            }
        }
        // Parsing inside the visitor lets the TOML parser point at the entry itself.
        deserializer.deserialize_str(PrefixVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        text.parse::<Prefix>().unwrap_err().to_string()
    }

    #[test]
    fn parses_v4_and_v6() {
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        assert_eq!(p.addr, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0)));
        assert_eq!(p.len, 24);
        assert_eq!(p.to_string(), "203.0.113.0/24");
        let p: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.addr, "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!(p.len, 32);
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap().len, 0);
        assert_eq!("::/0".parse::<Prefix>().unwrap().len, 0);
        assert_eq!("192.0.2.7/32".parse::<Prefix>().unwrap().len, 32);
        assert_eq!("2001:db8::1/128".parse::<Prefix>().unwrap().len, 128);
    }

    #[test]
    fn host_bits_are_rejected_with_the_network_as_hint() {
        assert_eq!(
            err("203.0.113.1/24"),
            "\"203.0.113.1/24\" has host bits set; did you mean 203.0.113.0/24?"
        );
        assert_eq!(
            err("2001:db8:1::/16"),
            "\"2001:db8:1::/16\" has host bits set; did you mean 2001::/16?"
        );
        assert_eq!(
            err("10.1.2.3/0"),
            "\"10.1.2.3/0\" has host bits set; did you mean 0.0.0.0/0?"
        );
    }

    #[test]
    fn bad_prefixes_say_what_is_wrong() {
        assert_eq!(
            err("203.0.113.0/33"),
            "\"203.0.113.0/33\": prefix length 33 is longer than 32, the maximum for IPv4"
        );
        assert_eq!(
            err("2001:db8::/129"),
            "\"2001:db8::/129\": prefix length 129 is longer than 128, the maximum for IPv6"
        );
        assert_eq!(
            err("203.0.113.0/x"),
            "\"203.0.113.0/x\": prefix length \"x\" is not a number from 0 to 32"
        );
        assert_eq!(
            err("203.0.113.0/"),
            "\"203.0.113.0/\": prefix length \"\" is not a number from 0 to 32"
        );
        assert_eq!(
            err("2001:db8::/-1"),
            "\"2001:db8::/-1\": prefix length \"-1\" is not a number from 0 to 128"
        );
        assert_eq!(
            err("203.0.113/24"),
            "\"203.0.113/24\": \"203.0.113\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(
            err("webex.com"),
            "\"webex.com\" is not a prefix; write ADDRESS/LENGTH, e.g. 203.0.113.0/24 or \
             2001:db8::/32"
        );
        assert_eq!(
            err("192.0.2.7"),
            "\"192.0.2.7\" has no prefix length; write 192.0.2.7/32 for a single address"
        );
        assert_eq!(
            err("2001:db8::1"),
            "\"2001:db8::1\" has no prefix length; write 2001:db8::1/128 for a single address"
        );
        // A huge length does not overflow.
        assert_eq!(
            err("10.0.0.0/99999999999"),
            "\"10.0.0.0/99999999999\": prefix length \"99999999999\" is not a number from 0 \
             to 32"
        );
    }

    #[test]
    fn defaults_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for text in DEFAULT_WEBEX_PREFIXES {
            let p: Prefix = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.to_string(), *text);
            assert!(seen.insert(p), "{text} listed twice");
        }
        assert_eq!(seen.len(), 45);
        assert_eq!(seen.iter().filter(|p| p.addr.is_ipv6()).count(), 3);
    }
}
