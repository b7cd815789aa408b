//! `[mtu]`: the effective MTU of the path to Webex. Packets longer than it are counted per
//! flow (`oversize`) and reported by the `mtu_fragmentation` detector: behind a VPN or a
//! tunnel they are fragmented or dropped on the way.

use serde::Deserialize;

/// Smallest MTU IPv4 must support everywhere (RFC 791: 576); IPv6 needs 1280.
pub const MIN_PATH_MTU: u32 = 576;
/// Largest jumbo frame MTU accepted.
pub const MAX_PATH_MTU: u32 = 65_535;

/// `[mtu]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtuConfig {
    /// Effective MTU of the path to Webex, in bytes of IP datagram. Default 1500 (plain
    /// Ethernet); 1350-1400 behind a VPN. 576 to 65535.
    pub path_mtu: u32,
}

impl Default for MtuConfig {
    fn default() -> Self {
        MtuConfig { path_mtu: 1500 }
    }
}

/// A field that is out of range.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub field: &'static str,
    pub problem: String,
}

pub fn validate(m: &MtuConfig) -> Result<(), Problem> {
    if !(MIN_PATH_MTU..=MAX_PATH_MTU).contains(&m.path_mtu) {
        return Err(Problem {
            field: "mtu.path_mtu",
            problem: format!(
                "{} is out of range; use {MIN_PATH_MTU} to {MAX_PATH_MTU} (bytes)",
                m.path_mtu
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert_eq!(validate(&MtuConfig::default()), Ok(()));
        assert_eq!(
            validate(&MtuConfig { path_mtu: 100 }),
            Err(Problem {
                field: "mtu.path_mtu",
                problem: "100 is out of range; use 576 to 65535 (bytes)".into()
            })
        );
    }
}
