//! `[dscp]` (the expected mark of each class) and the per-interface DSCP modes
//! (`dscp_ingress`, `dscp_egress` in `[[interfaces]]`), their validation, and the kernel
//! policy built from them.

use monitor_common::{
    Class,
    dscp::{self, Mode, NO_MARK, Policy},
};
use serde::Deserialize;

use super::Config;

/// Highest DSCP value (six bits).
pub const MAX_DSCP: u8 = 63;

/// What the monitor does with the DS field of Webex packets on one interface in one
/// direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DscpMode {
    /// No DSCP counting.
    Off,
    /// Count packets carrying / not carrying their class's expected mark (the default:
    /// it costs one map look-up per Webex packet and changes nothing).
    #[default]
    Verify,
    /// Verify, and set the expected mark on Webex packets that lack it. Egress only.
    Rewrite,
}

impl DscpMode {
    pub const fn as_str(self) -> &'static str {
        self.kernel().as_str()
    }

    pub const fn kernel(self) -> Mode {
        match self {
            DscpMode::Off => Mode::Off,
            DscpMode::Verify => Mode::Verify,
            DscpMode::Rewrite => Mode::Rewrite,
        }
    }
}

/// `[dscp]`: the mark (0-63) each class of Webex traffic should carry. The defaults are
/// the seed's table (Cisco's recommendation, RFC 4594): audio EF 46, video AF41 34,
/// SIP signalling and call control (HTTPS) CS3 24.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DscpConfig {
    /// Audio media. Default 46 (EF).
    pub audio: u8,
    /// Video media. Default 34 (AF41).
    pub video: u8,
    /// Media whose kind (audio or video) is unknown when the packet passes: without the
    /// dedicated port ranges the kernel cannot tell them apart. Verify accepts this mark
    /// or the video mark; rewrite sets this mark on packets carrying neither.
    /// Default 46 (EF).
    pub media: u8,
    /// SIP over TLS (5061, 5062, 8934). Default 24 (CS3).
    pub sip_signalling: u8,
    /// HTTPS call control (443). Default 24 (CS3).
    pub https_control: u8,
    /// STUN/ICE, DNS, NTP and other Webex traffic have no mark in the seed's table:
    /// unset (the default), they are neither verified nor rewritten.
    pub stun_ice: Option<u8>,
    pub dns: Option<u8>,
    pub ntp: Option<u8>,
    pub other_webex: Option<u8>,
}

impl Default for DscpConfig {
    fn default() -> Self {
        DscpConfig {
            audio: dscp::EF,
            video: dscp::AF41,
            media: dscp::EF,
            sip_signalling: dscp::CS3,
            https_control: dscp::CS3,
            stun_ice: None,
            dns: None,
            ntp: None,
            other_webex: None,
        }
    }
}

impl DscpConfig {
    /// Every class with an expected mark, with its `[dscp]` key.
    pub fn marks(&self) -> Vec<(Class, &'static str, u8)> {
        let mut v = vec![
            (Class::Audio, "audio", self.audio),
            (Class::Video, "video", self.video),
            (Class::Media, "media", self.media),
            (Class::SipSignalling, "sip_signalling", self.sip_signalling),
            (Class::HttpsControl, "https_control", self.https_control),
        ];
        for (class, key, mark) in [
            (Class::StunIce, "stun_ice", self.stun_ice),
            (Class::Dns, "dns", self.dns),
            (Class::Ntp, "ntp", self.ntp),
            (Class::OtherWebex, "other_webex", self.other_webex),
        ] {
            if let Some(m) = mark {
                v.push((class, key, m));
            }
        }
        v
    }

    /// The expected mark of `class`, if any.
    pub fn expected(&self, class: Class) -> Option<u8> {
        self.marks()
            .into_iter()
            .find(|(c, _, _)| *c == class)
            .map(|(_, _, m)| m)
    }
}

/// A field and what is wrong with it.
pub struct Problem {
    pub field: String,
    pub problem: String,
}

/// Checks the marks and the per-interface modes.
pub fn validate(config: &Config) -> Result<(), Problem> {
    for (_, key, mark) in config.dscp.marks() {
        if mark > MAX_DSCP {
            return Err(Problem {
                field: format!("dscp.{key}"),
                problem: format!(
                    "{mark} is not a DSCP value; use 0 to {MAX_DSCP} (e.g. 46 EF, 34 AF41, 24 CS3)"
                ),
            });
        }
    }
    for (i, interface) in config.interfaces.iter().enumerate() {
        if interface.dscp_ingress == DscpMode::Rewrite {
            return Err(Problem {
                field: format!("interfaces[{i}].dscp_ingress"),
                problem: "\"rewrite\" is only possible on egress; use \"verify\" or \"off\" on \
                          ingress and \"rewrite\" in dscp_egress"
                    .into(),
            });
        }
    }
    Ok(())
}

/// The kernel policy of each interface, by ifindex (in the order of `ifindexes`;
/// interfaces that do not exist, ifindex 0, have none).
pub fn policies(config: &Config, ifindexes: &[u32]) -> Vec<(u32, Policy)> {
    let mut expected = [NO_MARK; dscp::CLASS_SLOTS];
    for (class, _, mark) in config.dscp.marks() {
        expected[class as usize] = mark;
    }
    config
        .interfaces
        .iter()
        .zip(ifindexes)
        .filter(|(_, ifindex)| **ifindex != 0)
        .map(|(interface, &ifindex)| {
            let policy = Policy {
                ingress: interface.dscp_ingress.kernel() as u8,
                egress: interface.dscp_egress.kernel() as u8,
                media_alt: config.dscp.video,
                expected,
                ..Policy::default()
            };
            (ifindex, policy)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<super::super::ValidatedConfig, String> {
        super::super::parse_and_validate(text, Path::new("m.toml"), &|_| Some(7))
            .map_err(|e| e.to_string())
    }

    const IFACE: &str = "[[interfaces]]\nname = \"wan0\"\nrole = \"wan\"\n";

    #[test]
    fn defaults_are_the_seed_table_and_verify_both_ways() {
        let v = parse(IFACE).unwrap();
        let d = &v.config.dscp;
        assert_eq!(
            (d.audio, d.video, d.media, d.sip_signalling, d.https_control),
            (46, 34, 46, 24, 24)
        );
        assert_eq!(v.config.interfaces[0].dscp_ingress, DscpMode::Verify);
        assert_eq!(v.config.interfaces[0].dscp_egress, DscpMode::Verify);
        let p = policies(&v.config, &v.ifindexes);
        assert_eq!(p.len(), 1);
        let (ifindex, p) = p[0];
        assert_eq!(ifindex, 7);
        assert_eq!((p.ingress, p.egress, p.media_alt), (1, 1, 34));
        assert_eq!(p.expected[Class::Audio as usize], 46);
        assert_eq!(p.expected[Class::Video as usize], 34);
        assert_eq!(p.expected[Class::SipSignalling as usize], 24);
        assert_eq!(p.expected[Class::HttpsControl as usize], 24);
        assert_eq!(p.expected[Class::Dns as usize], NO_MARK);
        assert_eq!(p.expected[Class::NotWebex as usize], NO_MARK);
    }

    #[test]
    fn marks_and_modes_are_configurable() {
        let v = parse(&format!(
            "{IFACE}dscp_ingress = \"off\"\ndscp_egress = \"rewrite\"\n[dscp]\naudio = 40\nntp = 8\n"
        ))
        .unwrap();
        let (_, p) = policies(&v.config, &v.ifindexes)[0];
        assert_eq!((p.ingress, p.egress), (0, 2));
        assert_eq!(p.expected[Class::Audio as usize], 40);
        assert_eq!(p.expected[Class::Ntp as usize], 8);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&format!("{IFACE}[dscp]\nvideo = 64\n")).unwrap_err();
        assert!(
            e.starts_with("config m.toml: dscp.video: 64 is not a DSCP value"),
            "{e}"
        );
        let e = parse(&format!("{IFACE}dscp_ingress = \"rewrite\"\n")).unwrap_err();
        assert!(
            e.starts_with("config m.toml: interfaces[0].dscp_ingress: \"rewrite\" is only"),
            "{e}"
        );
        let e = parse(&format!("{IFACE}dscp_egress = \"fix\"\n")).unwrap_err();
        assert!(e.contains("interfaces[0].dscp_egress"), "{e}");
        assert!(e.contains("unknown variant `fix`"), "{e}");
    }
}
