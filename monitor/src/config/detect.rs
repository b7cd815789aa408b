//! `[detect]`: thresholds of the failure detectors (SIP ALG, blocked and one-way media,
//! NAT timeouts and port exhaustion, MTU). See README "Failure detectors".

use serde::Deserialize;

use super::prefix::Prefix;

/// `[detect]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Seconds outbound media to a Webex peer may flow with no inbound media before
    /// `one_way_media` / `udp_media_blocked` open. Default 5; 1 to 3600.
    pub media_silence_s: u64,
    /// The NAT binding timeout signalling needs, in seconds: conntrack timeouts below it
    /// open `nat_timeout_short`. Default 1800 (30 min, the Webex recommendation).
    pub nat_timeout_min_s: u64,
    /// Percent of the conntrack table, or of a public address's masquerade port range, in
    /// use at which `nat_port_exhaustion` opens. Default 80; 1 to 100.
    pub nat_use_pct: u8,
    /// How long (seconds) an idle-gap or rebinding event keeps `nat_timeout_short` open
    /// after it was last seen. Default 600.
    pub nat_event_hold_s: u64,
    /// The corporate VPN's client address pools, e.g. `["10.8.0.0/24"]`, when its
    /// concentrator sits behind a monitored LAN interface: Webex media from these hosts
    /// is hairpinned through the VPN (`vpn_hairpin`). Default none (detector off).
    pub vpn_client_pools: Vec<Prefix>,
    /// Certificate issuers Webex's TLS servers use (`ssl_inspection`): a Webex
    /// connection whose leaf certificate's issuer O or CN contains none of these
    /// (case-insensitive) was answered by someone else. Default
    /// [`DEFAULT_TLS_EXPECTED_ISSUERS`]; empty turns the certificate check off.
    pub tls_expected_issuers: Vec<String>,
}

/// The CAs that sign Webex's server certificates: IdenTrust (and its HydrantID
/// issuing CAs), DigiCert (and QuoVadis, now DigiCert's), and Cisco's own CAs.
pub const DEFAULT_TLS_EXPECTED_ISSUERS: [&str; 5] =
    ["IdenTrust", "HydrantID", "DigiCert", "QuoVadis", "Cisco"];

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            media_silence_s: 5,
            nat_timeout_min_s: 1800,
            nat_use_pct: 80,
            nat_event_hold_s: 600,
            vpn_client_pools: Vec::new(),
            tls_expected_issuers: DEFAULT_TLS_EXPECTED_ISSUERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// A field that is out of range.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub field: &'static str,
    pub problem: String,
}

pub fn validate(d: &DetectConfig) -> Result<(), Problem> {
    let checks: [(&'static str, u64, u64, u64); 4] = [
        ("detect.media_silence_s", d.media_silence_s, 1, 3600),
        ("detect.nat_timeout_min_s", d.nat_timeout_min_s, 1, 86_400),
        ("detect.nat_use_pct", d.nat_use_pct as u64, 1, 100),
        ("detect.nat_event_hold_s", d.nat_event_hold_s, 1, 86_400),
    ];
    for (field, v, lo, hi) in checks {
        if !(lo..=hi).contains(&v) {
            return Err(Problem {
                field,
                problem: format!("{v} is out of range; use {lo} to {hi}"),
            });
        }
    }
    if let Some(bad) = d
        .tls_expected_issuers
        .iter()
        .find(|i| i.trim().is_empty() || i.len() > 64)
    {
        return Err(Problem {
            field: "detect.tls_expected_issuers",
            problem: format!(
                "\"{bad}\" is not an issuer name; give 1 to 64 characters of the CA's \
                 O or CN, e.g. \"IdenTrust\""
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpn_client_pools_parse_and_match() {
        let d: DetectConfig =
            toml::from_str("vpn_client_pools = [\"10.8.0.0/24\", \"2001:db8:8::/64\"]").unwrap();
        assert_eq!(d.vpn_client_pools.len(), 2);
        assert!(d.vpn_client_pools[0].contains("10.8.0.6".parse().unwrap()));
        assert!(!d.vpn_client_pools[0].contains("10.8.1.6".parse().unwrap()));
        assert!(!d.vpn_client_pools[0].contains("2001:db8:8::6".parse().unwrap()));
        assert!(d.vpn_client_pools[1].contains("2001:db8:8::6".parse().unwrap()));
        let e = toml::from_str::<DetectConfig>("vpn_client_pools = [\"10.8.0.1/24\"]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("host bits set; did you mean 10.8.0.0/24?"),
            "{e}"
        );
        assert_eq!(DetectConfig::default().vpn_client_pools, []);
    }

    #[test]
    fn tls_expected_issuers_default_and_parse() {
        assert_eq!(
            DetectConfig::default().tls_expected_issuers,
            ["IdenTrust", "HydrantID", "DigiCert", "QuoVadis", "Cisco"]
        );
        let d: DetectConfig = toml::from_str("tls_expected_issuers = [\"Example CA\"]").unwrap();
        assert_eq!(d.tls_expected_issuers, ["Example CA"]);
        assert_eq!(validate(&d), Ok(()));
        let d: DetectConfig = toml::from_str("tls_expected_issuers = [\" \"]").unwrap();
        assert_eq!(
            validate(&d).unwrap_err().field,
            "detect.tls_expected_issuers"
        );
    }

    #[test]
    fn range() {
        assert_eq!(validate(&DetectConfig::default()), Ok(()));
        let d = DetectConfig {
            nat_use_pct: 0,
            ..Default::default()
        };
        assert_eq!(
            validate(&d),
            Err(Problem {
                field: "detect.nat_use_pct",
                problem: "0 is out of range; use 1 to 100".into()
            })
        );
    }
}
