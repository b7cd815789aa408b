//! Port rules: port ranges as written in the config, and the kernel's port table built
//! from them (one [`Class`] byte per transport and port, see [`monitor_common::ports`]).

use super::PortsConfig;
use monitor_common::Class;
use monitor_common::ports::{IPPROTO_TCP, IPPROTO_UDP, TABLE_ENTRIES, table_index};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::str::FromStr;

/// An inclusive range of ports, `first..=last`, both 1..=65535. Written in the config
/// as a number (`5004`) or a string `"first-last"` (`"19560-65535"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Why a port or port range was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    #[error("port 0 is not a valid port; use 1 to 65535")]
    Zero,
    #[error("port {0} is out of range; use 1 to 65535")]
    OutOfRange(i128),
    #[error("range \"{text}\" starts after it ends; did you mean \"{last}-{first}\"?")]
    Reversed { text: String, first: u16, last: u16 },
    #[error(
        "\"{0}\" is not a port or a port range; write a number like 5004 or a range like \
         \"19560-65535\""
    )]
    Garbage(String),
}

impl PortRange {
    /// A single port.
    pub const fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    fn checked_port(value: i128) -> Result<u16, PortRangeError> {
        match value {
            0 => Err(PortRangeError::Zero),
            1..=65535 => Ok(value as u16),
            _ => Err(PortRangeError::OutOfRange(value)),
        }
    }
}

impl TryFrom<i128> for PortRange {
    type Error = PortRangeError;

    fn try_from(value: i128) -> Result<Self, Self::Error> {
        Ok(Self::single(Self::checked_port(value)?))
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let garbage = || PortRangeError::Garbage(text.to_string());
        let number = |s: &str| -> Result<u16, PortRangeError> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(garbage());
            }
            // Digits only: a parse failure can only be an overflow.
            Self::checked_port(s.parse::<i128>().unwrap_or(i128::MAX))
        };
        match text.split_once('-') {
            None => Ok(Self::single(number(text)?)),
            Some((a, b)) => {
                let (first, last) = (number(a)?, number(b)?);
                if first > last {
                    return Err(PortRangeError::Reversed {
                        text: text.to_string(),
                        first,
                        last,
                    });
                }
                Ok(PortRange { first, last })
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor;
        impl Visitor<'_> for RangeVisitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number like 5004 or a range like \"19560-65535\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                PortRange::try_from(i128::from(v)).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                PortRange::try_from(i128::from(v)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(RangeVisitor)
    }
}

/// Two port lists claim the same port of the same transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Conflict {
    /// The later entry, e.g. `ports.ntp_udp[0]`.
    pub field: String,
    pub problem: String,
}

/// One port list of `[ports]`, the transports it applies to and the class it gives.
struct Rule<'a> {
    field: &'static str,
    class: Class,
    protocols: &'static [u8],
    ranges: &'a [PortRange],
}

fn rules(ports: &PortsConfig) -> [Rule<'_>; 6] {
    [
        Rule {
            field: "ports.media_udp",
            class: Class::Media,
            protocols: &[IPPROTO_UDP],
            ranges: &ports.media_udp,
        },
        Rule {
            field: "ports.sip_tcp",
            class: Class::SipSignalling,
            protocols: &[IPPROTO_TCP],
            ranges: &ports.sip_tcp,
        },
        Rule {
            field: "ports.https_tcp",
            class: Class::HttpsControl,
            protocols: &[IPPROTO_TCP],
            ranges: &ports.https_tcp,
        },
        Rule {
            field: "ports.dns",
            class: Class::Dns,
            protocols: &[IPPROTO_UDP, IPPROTO_TCP],
            ranges: &ports.dns,
        },
        Rule {
            field: "ports.ntp_udp",
            class: Class::Ntp,
            protocols: &[IPPROTO_UDP],
            ranges: &ports.ntp_udp,
        },
        Rule {
            field: "ports.sip_udp",
            class: Class::SipSignalling,
            protocols: &[IPPROTO_UDP],
            ranges: &ports.sip_udp,
        },
    ]
}

fn transport_name(protocol: u8) -> &'static str {
    if protocol == IPPROTO_TCP {
        "TCP"
    } else {
        "UDP"
    }
}

/// Builds the port table: entry [`table_index`]`(protocol, port)` holds the class
/// (`Class as u8`) of a Webex peer's port, 0 (`NotWebex`) where no rule applies.
pub(super) fn build_table(ports: &PortsConfig) -> Result<Vec<u8>, Conflict> {
    let rules = rules(ports);
    let mut table = vec![Class::NotWebex as u8; TABLE_ENTRIES as usize];
    for (rule_no, rule) in rules.iter().enumerate() {
        for (entry, range) in rule.ranges.iter().enumerate() {
            for &protocol in rule.protocols {
                for port in range.first..=range.last {
                    let index = table_index(protocol, port).expect("UDP and TCP have ports");
                    let slot = &mut table[index as usize];
                    if *slot != Class::NotWebex as u8 && *slot != rule.class as u8 {
                        let (other, other_entry) = rules[..rule_no]
                            .iter()
                            .find_map(|r| {
                                let e = r.ranges.iter().position(|g| g.contains(port))?;
                                r.protocols.contains(&protocol).then_some((r.field, e))
                            })
                            .expect("a set entry has an earlier rule");
                        return Err(Conflict {
                            field: format!("{}[{entry}]", rule.field),
                            problem: format!(
                                "{} port {port} is also in {other}[{other_entry}]; a port can \
                                 have only one class, remove it from one of the lists",
                                transport_name(protocol)
                            ),
                        });
                    }
                    *slot = rule.class as u8;
                }
            }
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PortRange, String> {
        text.parse::<PortRange>().map_err(|e| e.to_string())
    }

    #[test]
    fn parses_numbers_and_ranges() {
        assert_eq!(parse("5004"), Ok(PortRange::single(5004)));
        assert_eq!(
            parse("19560-65535"),
            Ok(PortRange {
                first: 19560,
                last: 65535
            })
        );
        assert_eq!(parse(" 1 - 2 "), Ok(PortRange { first: 1, last: 2 }));
        assert_eq!(parse("7-7"), Ok(PortRange::single(7)));
        assert_eq!(PortRange::single(5004).to_string(), "5004");
        assert_eq!(PortRange { first: 1, last: 9 }.to_string(), "1-9");
        assert_eq!(PortRange::try_from(65535), Ok(PortRange::single(65535)));
    }

    #[test]
    fn rejects_bad_ports_with_a_reason() {
        assert_eq!(
            parse("9000-5004").unwrap_err(),
            "range \"9000-5004\" starts after it ends; did you mean \"5004-9000\"?"
        );
        assert_eq!(
            parse("0").unwrap_err(),
            "port 0 is not a valid port; use 1 to 65535"
        );
        assert_eq!(
            parse("0-10").unwrap_err(),
            "port 0 is not a valid port; use 1 to 65535"
        );
        assert_eq!(
            parse("65536").unwrap_err(),
            "port 65536 is out of range; use 1 to 65535"
        );
        assert_eq!(
            parse("1-99999999999999999999999999999999999999999").unwrap_err(),
            format!("port {} is out of range; use 1 to 65535", i128::MAX)
        );
        for garbage in ["", "abc", "5004-", "-5004", "1-2-3", "+5", "5004/udp"] {
            assert_eq!(
                parse(garbage).unwrap_err(),
                format!(
                    "\"{garbage}\" is not a port or a port range; write a number like 5004 or \
                     a range like \"19560-65535\""
                ),
                "{garbage:?}"
            );
        }
        assert_eq!(
            PortRange::try_from(-1).unwrap_err().to_string(),
            "port -1 is out of range; use 1 to 65535"
        );
        assert_eq!(
            PortRange::try_from(70000).unwrap_err().to_string(),
            "port 70000 is out of range; use 1 to 65535"
        );
    }
}
