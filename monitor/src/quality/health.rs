//! A call's health from its recent window, with hysteresis: a level is raised as soon as
//! a window with enough packets breaches a threshold, and lowered only once the window
//! is back inside the thresholds with a margin ([`CLEAR_MARGIN`]), so a call hovering at
//! a threshold does not flap.

use crate::config::quality::QualityConfig;

/// A raised level clears only when loss, jitter and latency are below this share of
/// their thresholds and the MOS is this many points above its own.
pub const CLEAR_MARGIN: f64 = 0.8;
pub const CLEAR_MOS_MARGIN: f64 = 0.1;

/// What a window shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub one_way_ms: Option<f64>,
    pub jitter_ms: f64,
    pub loss_pct: f64,
    pub mos: Option<f64>,
}

pub fn name(level: u8) -> &'static str {
    match level {
        0 => "ok",
        1 => "warning",
        _ => "critical",
    }
}

/// The level the figures breach (0 ok, 1 warning, 2 critical) and the breaches in words,
/// with every threshold scaled by `scale` (1 to judge, [`CLEAR_MARGIN`] to clear).
fn judge(q: &QualityConfig, f: &Figures, scale: f64, mos_margin: f64) -> (u8, Vec<String>) {
    let mut level = 0;
    let mut breaches = Vec::new();
    let mut breach = |lvl: u8, text: String| {
        level = level.max(lvl);
        breaches.push(text);
    };
    if let Some(d) = f.one_way_ms {
        if d > q.latency_critical_ms * scale {
            breach(
                2,
                format!(
                    "one-way latency (estimate) {d:.1} ms > {} ms",
                    q.latency_critical_ms
                ),
            );
        } else if d > q.latency_ms * scale {
            breach(
                1,
                format!("one-way latency (estimate) {d:.1} ms > {} ms", q.latency_ms),
            );
        }
    }
    if f.jitter_ms > q.jitter_ms * scale {
        breach(
            1,
            format!("jitter {:.1} ms > {} ms", f.jitter_ms, q.jitter_ms),
        );
    }
    if f.loss_pct > q.loss_pct * scale {
        breach(1, format!("loss {:.2} % > {} %", f.loss_pct, q.loss_pct));
    }
    if let Some(mos) = f.mos {
        if mos < q.mos_critical + mos_margin {
            breach(2, format!("MOS {mos:.2} < {}", q.mos_critical));
        } else if mos < q.mos + mos_margin {
            breach(1, format!("MOS {mos:.2} < {}", q.mos));
        }
    }
    (level, breaches)
}

/// Health and the breached thresholds of figures on their own (no history).
pub fn health(q: &QualityConfig, f: &Figures) -> (&'static str, Vec<String>) {
    let (level, breaches) = judge(q, f, 1.0, 0.0);
    (name(level), breaches)
}

/// The next level from the current one and the window's figures (`None` when the
/// window has too few packets: the level stays), with the breaches to show.
pub fn next(q: &QualityConfig, current: u8, f: Option<&Figures>) -> (u8, Vec<String>) {
    let Some(f) = f else {
        return (current, Vec::new());
    };
    let (level, breaches) = judge(q, f, 1.0, 0.0);
    if level >= current {
        return (level, breaches);
    }
    // Lower only as far as the margin allows.
    let (held, _) = judge(q, f, CLEAR_MARGIN, CLEAR_MOS_MARGIN);
    let next = level.max(held.min(current));
    let mut breaches = breaches;
    if next > level {
        breaches.push(format!(
            "clearing: held until loss, jitter and latency are under {:.0} % of their \
             thresholds and MOS is {CLEAR_MOS_MARGIN} above its own",
            CLEAR_MARGIN * 100.0
        ));
    }
    (next, breaches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(loss_pct: f64, jitter_ms: f64, mos: Option<f64>) -> Figures {
        Figures {
            one_way_ms: None,
            jitter_ms,
            loss_pct,
            mos,
        }
    }

    #[test]
    fn levels() {
        let q = QualityConfig::default();
        let h = |one_way, jitter, loss, mos| {
            health(
                &q,
                &Figures {
                    one_way_ms: one_way,
                    jitter_ms: jitter,
                    loss_pct: loss,
                    mos,
                },
            )
            .0
        };
        assert_eq!(h(Some(100.0), 5.0, 0.0, Some(4.3)), "ok");
        assert_eq!(h(Some(160.0), 5.0, 0.0, Some(4.3)), "warning");
        assert_eq!(h(Some(310.0), 5.0, 0.0, Some(4.3)), "critical");
        assert_eq!(h(None, 5.0, 0.0, Some(3.4)), "critical");
        assert_eq!(h(None, 5.0, 1.5, Some(4.3)), "warning");
        // Exactly 1 % is not above 1 %.
        assert_eq!(h(None, 5.0, 1.0, None), "ok");
    }

    #[test]
    fn raised_at_once_lowered_only_with_margin_and_kept_without_a_sample() {
        let q = QualityConfig::default();
        let (l, b) = next(&q, 0, Some(&f(10.0, 2.0, Some(4.3))));
        assert_eq!((l, b), (1, vec!["loss 10.00 % > 1 %".to_string()]));
        // 0.9 % is under 1 % but not under 0.8 %: still warning.
        assert_eq!(next(&q, 1, Some(&f(0.9, 2.0, Some(4.3)))).0, 1);
        assert_eq!(next(&q, 1, Some(&f(0.7, 2.0, Some(4.3)))).0, 0);
        // MOS 4.05 is above 4.0 but inside the margin.
        assert_eq!(next(&q, 1, Some(&f(0.0, 2.0, Some(4.05)))).0, 1);
        // Too few packets: no verdict either way.
        assert_eq!(next(&q, 1, None).0, 1);
        assert_eq!(next(&q, 0, None).0, 0);
        // Critical down to warning when only the warning condition remains.
        assert_eq!(next(&q, 2, Some(&f(5.0, 2.0, Some(3.9)))).0, 1);
    }
}
