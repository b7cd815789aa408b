//! Flow classification: which kind of Webex traffic a flow carries.
//!
//! A flow is Webex when one of its addresses is a Webex peer (prefix list, later also
//! learned addresses). Its class then follows the port on the Webex side, looked up in
//! the port table built from the config (see [`crate::ports`]). The same function runs
//! in the kernel and in the host tests.

/// Classes of traffic. Stored as u32 in [`crate::FlowStats::class`] and as u8 in the
/// port table.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    NotWebex = 0,
    Audio = 1,
    Video = 2,
    /// Media on a Webex media port whose kind (audio/video) is not known.
    Media = 3,
    /// SIP over TLS/TCP (5061, 5062, 8934 by default).
    SipSignalling = 4,
    /// HTTPS control (443).
    HttpsControl = 5,
    StunIce = 6,
    Dns = 7,
    Ntp = 8,
    /// A Webex peer on a port without a rule.
    OtherWebex = 9,
}

/// Number of classes.
pub const CLASSES: usize = 10;

impl Class {
    pub const ALL: [Class; CLASSES] = [
        Self::NotWebex,
        Self::Audio,
        Self::Video,
        Self::Media,
        Self::SipSignalling,
        Self::HttpsControl,
        Self::StunIce,
        Self::Dns,
        Self::Ntp,
        Self::OtherWebex,
    ];

    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::NotWebex),
            1 => Some(Self::Audio),
            2 => Some(Self::Video),
            3 => Some(Self::Media),
            4 => Some(Self::SipSignalling),
            5 => Some(Self::HttpsControl),
            6 => Some(Self::StunIce),
            7 => Some(Self::Dns),
            8 => Some(Self::Ntp),
            9 => Some(Self::OtherWebex),
            _ => None,
        }
    }

    /// Stable name used in config, status JSON and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotWebex => "not_webex",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Media => "media",
            Self::SipSignalling => "sip_signalling",
            Self::HttpsControl => "https_control",
            Self::StunIce => "stun_ice",
            Self::Dns => "dns",
            Self::Ntp => "ntp",
            Self::OtherWebex => "other_webex",
        }
    }

    pub const fn is_media(self) -> bool {
        matches!(self, Self::Audio | Self::Video | Self::Media)
    }
}

/// Which address of a flow key is the Webex peer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebexSide {
    /// The destination is the Webex peer (traffic towards Webex).
    Dst = 0,
    /// The source is the Webex peer (traffic from Webex).
    Src = 1,
}

impl WebexSide {
    /// Picks the Webex side from the two prefix look-ups; `None` when neither address is
    /// Webex. When both are (Webex to Webex), the destination wins.
    pub const fn pick(src_is_webex: bool, dst_is_webex: bool) -> Option<Self> {
        if dst_is_webex {
            Some(Self::Dst)
        } else if src_is_webex {
            Some(Self::Src)
        } else {
            None
        }
    }

    pub const fn from_u32(v: u32) -> Self {
        if v == 1 { Self::Src } else { Self::Dst }
    }
}

/// The Webex App's dedicated audio source ports (when enabled for the organisation).
pub const DEDICATED_AUDIO_PORTS: (u16, u16) = (52000, 52049);
/// The Webex App's dedicated video source ports.
pub const DEDICATED_VIDEO_PORTS: (u16, u16) = (52100, 52199);

/// Classifies a Webex flow.
///
/// `peer_port_class` is the port table's entry for the port on the Webex side (0 when
/// no rule matches); `inner_port` is the port on the other side. With
/// `dedicated_ranges`, media from the Webex App's dedicated source ports is split into
/// audio and video.
#[inline(always)]
pub fn classify(peer_port_class: u8, inner_port: u16, dedicated_ranges: bool) -> Class {
    let class = match Class::from_u32(peer_port_class as u32) {
        Some(Class::NotWebex) | None => Class::OtherWebex,
        Some(c) => c,
    };
    if dedicated_ranges && matches!(class, Class::Media) {
        if inner_port >= DEDICATED_AUDIO_PORTS.0 && inner_port <= DEDICATED_AUDIO_PORTS.1 {
            return Class::Audio;
        }
        if inner_port >= DEDICATED_VIDEO_PORTS.0 && inner_port <= DEDICATED_VIDEO_PORTS.1 {
            return Class::Video;
        }
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            assert_eq!(Class::from_u32(i as u32), Some(*c));
        }
        assert_eq!(Class::from_u32(CLASSES as u32), None);
    }

    #[test]
    fn webex_side() {
        assert_eq!(WebexSide::pick(false, true), Some(WebexSide::Dst));
        assert_eq!(WebexSide::pick(true, false), Some(WebexSide::Src));
        assert_eq!(WebexSide::pick(true, true), Some(WebexSide::Dst));
        assert_eq!(WebexSide::pick(false, false), None);
    }

    #[test]
    fn port_rule_gives_class_and_unknown_port_is_other_webex() {
        assert_eq!(
            classify(Class::SipSignalling as u8, 40000, false),
            Class::SipSignalling
        );
        assert_eq!(classify(0, 40000, false), Class::OtherWebex);
        assert_eq!(classify(200, 40000, false), Class::OtherWebex);
    }

    #[test]
    fn dedicated_ranges_split_media() {
        let m = Class::Media as u8;
        assert_eq!(classify(m, 52000, true), Class::Audio);
        assert_eq!(classify(m, 52049, true), Class::Audio);
        assert_eq!(classify(m, 52050, true), Class::Media);
        assert_eq!(classify(m, 52100, true), Class::Video);
        assert_eq!(classify(m, 52199, true), Class::Video);
        assert_eq!(classify(m, 52200, true), Class::Media);
        // Off: the port says nothing.
        assert_eq!(classify(m, 52000, false), Class::Media);
        // Only media is split.
        assert_eq!(
            classify(Class::HttpsControl as u8, 52000, true),
            Class::HttpsControl
        );
    }
}
