//! MOS by the ITU-T G.107 E-model, with the default values of every parameter except the
//! three a network changes: delay (Id), equipment impairment with packet loss (Ie,eff),
//! and nothing else (Is and R0 at their defaults: R0 − Is = 93.2).
//!
//! - Id from the one-way mouth-to-ear delay `d` in ms, G.107's curve in the usual
//!   simplified form (Cole and Rosenbluth, 2001): `Id = 0.024 d + 0.11 (d − 177.3)` for
//!   `d > 177.3`, else `0.024 d`.
//! - `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)` (G.107 section 7.4), with
//!   BurstR from the loss bursts the kernel counted ([`burst_r`]): 1 for random loss,
//!   above 1 when losses come in runs.
//! - `MOS = 1 + 0.035 R + R (R − 60) (100 − R) · 7·10⁻⁶` (G.107 Annex B), 1 below R = 0
//!   and 4.5 above R = 100.
//!
//! Codec values (Ie, Bpl) from ITU-T G.113 Appendix I where it has them: G.711 with
//! packet-loss concealment Ie 0, Bpl 25.1; G.729A with VAD Ie 11, Bpl 19.0. G.113 has no
//! values for G.722 or Opus in the narrowband model; both are rated like G.711 with PLC
//! (Ie 0, Bpl 25.1), which understates Opus's loss robustness (its in-band FEC): an
//! approximation, named as such in the status.

/// Equipment impairment values of a codec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Codec {
    pub name: &'static str,
    pub ie: f64,
    pub bpl: f64,
}

pub const G711: Codec = Codec {
    name: "G.711",
    ie: 0.0,
    bpl: 25.1,
};
pub const G729: Codec = Codec {
    name: "G.729",
    ie: 11.0,
    bpl: 19.0,
};
pub const G722: Codec = Codec {
    name: "G.722 (as G.711)",
    ie: 0.0,
    bpl: 25.1,
};
pub const OPUS: Codec = Codec {
    name: "Opus (as G.711)",
    ie: 0.0,
    bpl: 25.1,
};

/// The codec a stream most likely carries, from its payload type and clock rate: static
/// types by RFC 3551; a dynamic type at 48 kHz is Opus (what Webex uses).
pub fn codec(payload_type: u8, clock_rate: u32) -> Codec {
    match payload_type {
        0 | 8 => G711,
        18 => G729,
        9 => G722,
        _ if clock_rate == 48000 => OPUS,
        _ => G711,
    }
}

/// G.107 delay impairment for a one-way delay in ms.
pub fn id(delay_ms: f64) -> f64 {
    let d = delay_ms.max(0.0);
    let over = (d - 177.3).max(0.0);
    0.024 * d + 0.11 * over
}

/// G.107's BurstR from the observed loss: `expected` packets of which `lost` were lost
/// in `bursts` runs. As a two-state (Gilbert) model: p, the chance a received packet is
/// followed by a loss, is bursts / received; q, the chance a lost one is followed by a
/// received one, is bursts / lost (1 / the mean burst length); BurstR = 1 / (p + q).
/// Random loss gives about 1; no loss or no bursts count gives 1.
pub fn burst_r(expected: u64, lost: u64, bursts: u64) -> f64 {
    let received = expected.saturating_sub(lost);
    if lost == 0 || bursts == 0 || received == 0 {
        return 1.0;
    }
    let bursts = bursts.min(lost) as f64;
    let p = bursts / received as f64;
    let q = bursts / lost as f64;
    (1.0 / (p + q)).max(1.0)
}

/// Effective equipment impairment at `loss_pct` percent loss with burst ratio `burst_r`.
pub fn ie_eff(codec: Codec, loss_pct: f64, burst_r: f64) -> f64 {
    let ppl = loss_pct.clamp(0.0, 100.0);
    let burst_r = burst_r.max(1.0);
    codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_r + codec.bpl)
}

/// The rating factor R.
pub fn r_factor(codec: Codec, delay_ms: f64, loss_pct: f64, burst_r: f64) -> f64 {
    93.2 - id(delay_ms) - ie_eff(codec, loss_pct, burst_r)
}

/// R to MOS (G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

pub fn mos(codec: Codec, delay_ms: f64, loss_pct: f64, burst_r: f64) -> f64 {
    mos_from_r(r_factor(codec, delay_ms, loss_pct, burst_r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 0.005, "{a} vs {b}");
    }

    #[test]
    fn perfect_g711_is_4_41() {
        // R = 93.2: 1 + 3.262 + 93.2 · 33.2 · 6.8 · 7e-6 = 4.4093.
        close(mos(G711, 0.0, 0.0, 1.0), 4.409);
    }

    #[test]
    fn delay_and_loss_by_hand() {
        // d = 200 ms: Id = 4.8 + 0.11 · 22.7 = 7.297.
        close(id(200.0), 7.297);
        // 1 % loss on G.711: 95 · 1 / 26.1 = 3.640.
        close(ie_eff(G711, 1.0, 1.0), 3.640);
        // G.729: 11 + 84 · 2 / 21 = 19.0 at 2 %.
        close(ie_eff(G729, 2.0, 1.0), 19.0);
        // Bursty: BurstR 2 at 2 %: 95 · 2 / (1 + 25.1) = 7.280.
        close(ie_eff(G711, 2.0, 2.0), 7.280);
        // R = 93.2 − 7.297 − 3.640 = 82.263 -> MOS 4.10.
        let r = r_factor(G711, 200.0, 1.0, 1.0);
        close(r, 82.263);
        close(
            mos_from_r(r),
            1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6,
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert!(mos(G711, 400.0, 10.0, 1.0) < 3.0);
    }

    #[test]
    fn burst_r_from_the_burst_structure() {
        // No loss, or no bursts counted: random.
        assert_eq!(burst_r(1000, 0, 0), 1.0);
        // 100 lost of 1000 in 90 runs (random loss at 10 % has mean run 1/0.9): p = 90 /
        // 900 = 0.1, q = 0.9: BurstR 1.
        close(burst_r(1000, 100, 90), 1.0);
        // 100 lost in 10 runs of 10: p = 10 / 900, q = 0.1: BurstR = 1 / 0.1111 = 9.0.
        close(burst_r(1000, 100, 10), 9.0);
        // Bursts lower the MOS for the same loss.
        assert!(mos(G711, 0.0, 10.0, 9.0) < mos(G711, 0.0, 10.0, 1.0));
    }

    #[test]
    fn codec_choice() {
        assert_eq!(codec(0, 8000), G711);
        assert_eq!(codec(8, 8000), G711);
        assert_eq!(codec(18, 8000), G729);
        assert_eq!(codec(111, 48000), OPUS);
        assert_eq!(codec(96, 90000), G711);
    }
}
