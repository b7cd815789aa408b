//! DSCP policy: the expected mark of each class, the per-interface modes, and the pure
//! header arithmetic of a rewrite (IPv4 incremental checksum, IPv6 traffic class). The
//! kernel runs exactly these functions; the host tests check them against full
//! recomputation.

use crate::Class;

/// What the programs do with the DS field on one interface in one direction.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Nothing: no DSCP counters for this direction.
    Off = 0,
    /// Count packets whose mark matches / does not match the class's expected mark.
    #[default]
    Verify = 1,
    /// Verify, and set the expected mark on packets that lack it (TC egress only).
    Rewrite = 2,
}

impl Mode {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Verify,
            2 => Self::Rewrite,
            _ => Self::Off,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Verify => "verify",
            Self::Rewrite => "rewrite",
        }
    }
}

/// `expected` value of a class that has no expected mark: its packets are neither
/// counted nor rewritten.
pub const NO_MARK: u8 = 0xff;
/// Slots of [`Policy::expected`] (more than [`crate::class::CLASSES`], so new classes do
/// not change the map layout).
pub const CLASS_SLOTS: usize = 16;

/// The seed's marks (RFC 4594 names).
pub const EF: u8 = 46;
pub const AF41: u8 = 34;
pub const CS3: u8 = 24;

/// Value of the `DSCP_POLICY` map, keyed by ifindex. The expected marks are global but
/// stored with each interface's modes so the data path needs a single look-up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// [`Mode`] on ingress (XDP). Rewrite is never applied on ingress.
    pub ingress: u8,
    /// [`Mode`] on egress (TC).
    pub egress: u8,
    /// A second mark accepted for [`Class::Media`] (media whose kind is unknown at packet
    /// time: audio or video). [`NO_MARK`] for none.
    pub media_alt: u8,
    pub _pad: u8,
    /// Expected DSCP per class (`Class as usize`), or [`NO_MARK`].
    pub expected: [u8; CLASS_SLOTS],
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ingress: Mode::Off as u8,
            egress: Mode::Off as u8,
            media_alt: NO_MARK,
            _pad: 0,
            expected: [NO_MARK; CLASS_SLOTS],
        }
    }
}

/// What the policy says about one packet of a class carrying `dscp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The class has no expected mark (or the mode is off): nothing to count.
    Ignore,
    /// The mark is the expected one.
    Match,
    /// The mark is wrong; the contained mark is the one to set when rewriting.
    Mismatch(u8),
}

impl Policy {
    /// Judges a packet of `class` carrying `dscp`.
    #[inline(always)]
    pub fn judge(&self, class: u32, dscp: u8) -> Verdict {
        let Some(&want) = self.expected.get((class as usize) & (CLASS_SLOTS - 1)) else {
            return Verdict::Ignore;
        };
        if want == NO_MARK {
            return Verdict::Ignore;
        }
        if dscp == want || (class == Class::Media as u32 && dscp == self.media_alt) {
            Verdict::Match
        } else {
            Verdict::Mismatch(want)
        }
    }
}

/// RFC 1624 (eqn. 3) incremental update of a ones' complement checksum when one 16-bit
/// word of the covered data changes from `old` to `new`: HC' = ~(~HC + ~m + m'). All
/// values in host order of the big-endian words.
#[inline(always)]
pub fn csum_update(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = (!check as u32) + (!old as u32) + (new as u32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The IPv4 DS byte with the DSCP set to `dscp` and the ECN bits kept.
#[inline(always)]
pub fn ipv4_tos_with_dscp(tos: u8, dscp: u8) -> u8 {
    ((dscp & 0x3f) << 2) | (tos & 0x03)
}

/// The first two bytes of an IPv6 header (version, traffic class, flow label start)
/// with the DSCP of the traffic class set to `dscp`; the version, ECN bits and flow
/// label are kept.
#[inline(always)]
pub fn ipv6_with_dscp(first: [u8; 2], dscp: u8) -> [u8; 2] {
    let dscp = dscp & 0x3f;
    [
        (first[0] & 0xf0) | (dscp >> 2),
        ((dscp & 0x03) << 6) | (first[1] & 0x3f),
    ]
}

/// The DSCP of an IPv6 header's first two bytes.
#[inline(always)]
pub fn ipv6_dscp(first: [u8; 2]) -> u8 {
    ((first[0] & 0x0f) << 2) | (first[1] >> 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full RFC 791 checksum of a header whose checksum field is zero.
    fn full_checksum(h: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in h.chunks(2) {
            sum += u16::from_be_bytes([pair[0], pair[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn layout() {
        assert_eq!(core::mem::size_of::<Policy>(), 20);
    }

    #[test]
    fn incremental_checksum_equals_recomputation_for_every_tos() {
        let base: [u8; 20] = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 10, 203, 0, 113, 10,
        ];
        for old_tos in 0..=255u8 {
            for dscp in [0, CS3, AF41, EF, 63] {
                let mut h = base;
                h[1] = old_tos;
                let check = full_checksum(&h);
                let new_tos = ipv4_tos_with_dscp(old_tos, dscp);
                let mut after = h;
                after[1] = new_tos;
                let want = full_checksum(&after);
                let got = csum_update(
                    check,
                    u16::from_be_bytes([h[0], h[1]]),
                    u16::from_be_bytes([after[0], after[1]]),
                );
                assert_eq!(got, want, "tos {old_tos:#x} -> dscp {dscp}");
                assert_eq!(new_tos & 3, old_tos & 3, "ECN kept");
                assert_eq!(new_tos >> 2, dscp);
            }
        }
    }

    #[test]
    fn incremental_checksum_handles_the_ones_complement_corners() {
        // Sums that wrap twice, and a checksum of 0xffff/0x0000.
        for (check, old, new) in [(0x0000, 0xffff, 0x0000), (0xffff, 0x0000, 0xffff)] {
            let r = csum_update(check, old, new);
            // Applying the inverse change restores an equivalent checksum.
            let back = csum_update(r, new, old);
            assert!(back == check || (back ^ check) == 0xffff, "{check:#x}");
        }
    }

    #[test]
    fn ipv6_only_dscp_bits_change() {
        for b0 in [0x60u8, 0x6f, 0x65] {
            for b1 in 0..=255u8 {
                for dscp in [0, CS3, AF41, EF, 63] {
                    let [n0, n1] = ipv6_with_dscp([b0, b1], dscp);
                    assert_eq!(ipv6_dscp([n0, n1]), dscp);
                    assert_eq!(n0 >> 4, 6, "version kept");
                    assert_eq!(n1 & 0x30, b1 & 0x30, "ECN kept");
                    assert_eq!(n1 & 0x0f, b1 & 0x0f, "flow label kept");
                }
            }
        }
        // Traffic class 0xb8 (EF, ECN 0): 0x6b 0x80.
        assert_eq!(ipv6_with_dscp([0x60, 0x00], EF), [0x6b, 0x80]);
    }

    #[test]
    fn judge() {
        let mut p = Policy::default();
        p.expected[Class::Audio as usize] = EF;
        p.expected[Class::Media as usize] = EF;
        p.media_alt = AF41;
        assert_eq!(p.judge(Class::Audio as u32, EF), Verdict::Match);
        assert_eq!(p.judge(Class::Audio as u32, 0), Verdict::Mismatch(EF));
        assert_eq!(p.judge(Class::Audio as u32, AF41), Verdict::Mismatch(EF));
        assert_eq!(p.judge(Class::Media as u32, AF41), Verdict::Match);
        assert_eq!(p.judge(Class::Media as u32, CS3), Verdict::Mismatch(EF));
        assert_eq!(p.judge(Class::Video as u32, 0), Verdict::Ignore);
        assert_eq!(p.judge(Class::NotWebex as u32, 0), Verdict::Ignore);
        assert_eq!(p.judge(200, 0), Verdict::Ignore);
    }
}
