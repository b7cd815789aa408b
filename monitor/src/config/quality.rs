//! `[quality]`: the call-quality thresholds a call's health is judged by. The defaults
//! are the Webex Calling network requirements: one-way latency < 150 ms, jitter < 30 ms,
//! loss < 1 %, MOS >= 4.0; 300 ms one-way and MOS 3.5 are "unacceptable" (critical).

use serde::Deserialize;

/// `[quality]`
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// One-way latency (estimated as RTT / 2) above which a call is in warning, in ms.
    /// Default 150.
    pub latency_ms: f64,
    /// One-way latency above which a call is critical, in ms. Default 300.
    pub latency_critical_ms: f64,
    /// Interarrival jitter above which a call is in warning, in ms. Default 30.
    pub jitter_ms: f64,
    /// Packet loss above which a call is in warning, in percent. Default 1.0.
    pub loss_pct: f64,
    /// MOS below which a call is in warning. Default 4.0.
    pub mos: f64,
    /// MOS below which a call is critical. Default 3.5.
    pub mos_critical: f64,
    /// A call whose streams have been silent this long (seconds) ends and becomes a call
    /// record; media on the same 5-tuple after that is a new call. Default 60.
    pub call_idle_s: u64,
    /// The recent window health, MOS and the quality finding are judged on, seconds.
    /// Default 10.
    pub window_s: u64,
    /// Packets a window must expect (worse direction) before a verdict is made, so the
    /// first packets of a call never raise one. Default 100 (2 s of 20 ms audio).
    pub min_window_packets: u64,
    /// Ended calls kept as records, at most. Default 100.
    pub max_call_records: usize,
    /// Records older than this (seconds since the call ended) are dropped. Default 3600.
    pub call_record_max_age_s: u64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            latency_ms: 150.0,
            latency_critical_ms: 300.0,
            jitter_ms: 30.0,
            loss_pct: 1.0,
            mos: 4.0,
            mos_critical: 3.5,
            call_idle_s: 60,
            window_s: 10,
            min_window_packets: 100,
            max_call_records: 100,
            call_record_max_age_s: 3600,
        }
    }
}

/// A field that is out of range.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub field: &'static str,
    pub problem: String,
}

/// Checks ranges and the warning/critical order.
pub fn validate(q: &QualityConfig) -> Result<(), Problem> {
    let positive = [
        ("quality.latency_ms", q.latency_ms),
        ("quality.latency_critical_ms", q.latency_critical_ms),
        ("quality.jitter_ms", q.jitter_ms),
        ("quality.loss_pct", q.loss_pct),
    ];
    for (field, v) in positive {
        if !(v.is_finite() && v > 0.0) {
            return Err(Problem {
                field,
                problem: format!("{v} is not a positive number"),
            });
        }
    }
    if q.loss_pct > 100.0 {
        return Err(Problem {
            field: "quality.loss_pct",
            problem: format!("{} is above 100 percent", q.loss_pct),
        });
    }
    for (field, v) in [
        ("quality.mos", q.mos),
        ("quality.mos_critical", q.mos_critical),
    ] {
        if !(1.0..=4.5).contains(&v) {
            return Err(Problem {
                field,
                problem: format!("{v} is outside the MOS scale 1.0 to 4.5"),
            });
        }
    }
    if q.latency_critical_ms < q.latency_ms {
        return Err(Problem {
            field: "quality.latency_critical_ms",
            problem: format!(
                "{} is below quality.latency_ms ({}); critical must be the worse value",
                q.latency_critical_ms, q.latency_ms
            ),
        });
    }
    if q.mos_critical > q.mos {
        return Err(Problem {
            field: "quality.mos_critical",
            problem: format!(
                "{} is above quality.mos ({}); critical must be the worse value",
                q.mos_critical, q.mos
            ),
        });
    }
    if q.call_idle_s == 0 {
        return Err(Problem {
            field: "quality.call_idle_s",
            problem: "0 would hide every call; use at least 1".into(),
        });
    }
    if q.window_s == 0 || q.window_s > 3600 {
        return Err(Problem {
            field: "quality.window_s",
            problem: format!("{} is outside 1 to 3600 seconds", q.window_s),
        });
    }
    if q.min_window_packets == 0 {
        return Err(Problem {
            field: "quality.min_window_packets",
            problem: "0 would judge a call on no packets at all; use at least 1".into(),
        });
    }
    if q.max_call_records > 100_000 {
        return Err(Problem {
            field: "quality.max_call_records",
            problem: format!(
                "{} records would take too much memory; at most 100000",
                q.max_call_records
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_webex_thresholds_and_valid() {
        let q = QualityConfig::default();
        assert_eq!(
            (q.latency_ms, q.jitter_ms, q.loss_pct, q.mos),
            (150.0, 30.0, 1.0, 4.0)
        );
        assert_eq!((q.latency_critical_ms, q.mos_critical), (300.0, 3.5));
        assert_eq!(
            (q.call_idle_s, q.window_s, q.min_window_packets),
            (60, 10, 100)
        );
        assert_eq!((q.max_call_records, q.call_record_max_age_s), (100, 3600));
        assert_eq!(validate(&q), Ok(()));
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = |f: fn(&mut QualityConfig)| {
            let mut q = QualityConfig::default();
            f(&mut q);
            validate(&q).unwrap_err().field
        };
        assert_eq!(bad(|q| q.jitter_ms = 0.0), "quality.jitter_ms");
        assert_eq!(bad(|q| q.loss_pct = 101.0), "quality.loss_pct");
        assert_eq!(bad(|q| q.mos = 5.0), "quality.mos");
        assert_eq!(bad(|q| q.mos_critical = 4.2), "quality.mos_critical");
        assert_eq!(
            bad(|q| q.latency_critical_ms = 100.0),
            "quality.latency_critical_ms"
        );
        assert_eq!(bad(|q| q.call_idle_s = 0), "quality.call_idle_s");
        assert_eq!(bad(|q| q.window_s = 0), "quality.window_s");
        assert_eq!(
            bad(|q| q.min_window_packets = 0),
            "quality.min_window_packets"
        );
        assert_eq!(
            bad(|q| q.max_call_records = 1_000_000),
            "quality.max_call_records"
        );
    }

    fn parse(quality: &str) -> Result<crate::config::ValidatedConfig, String> {
        let text =
            format!("[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\n\n[quality]\n{quality}\n");
        crate::config::parse_and_validate(&text, std::path::Path::new("m.toml"), &|_| Some(2))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_file_names_file_and_field() {
        let calls = parse(
            "call_idle_s = 5\nwindow_s = 4\nmin_window_packets = 40\nmax_call_records = 7\n\
             call_record_max_age_s = 60",
        )
        .expect("valid");
        let q = &calls.config.quality;
        assert_eq!(
            (q.call_idle_s, q.window_s, q.min_window_packets),
            (5, 4, 40)
        );
        assert_eq!((q.max_call_records, q.call_record_max_age_s), (7, 60));
        assert_eq!(
            parse("window_s = 0").unwrap_err(),
            "config m.toml: quality.window_s: 0 is outside 1 to 3600 seconds"
        );
        let ok = parse("jitter_ms = 20\nmos = 3.8").expect("valid");
        assert_eq!(ok.config.quality.jitter_ms, 20.0);
        assert_eq!(ok.config.quality.mos, 3.8);
        assert_eq!(ok.config.quality.latency_ms, 150.0);
        assert_eq!(
            parse("jitter_ms = -1").unwrap_err(),
            "config m.toml: quality.jitter_ms: -1 is not a positive number"
        );
        let typo = parse("jiter_ms = 1").unwrap_err();
        assert!(
            typo.starts_with("config m.toml: [quality]: unknown field `jiter_ms`")
                && typo.contains("did you mean `jitter_ms`?"),
            "{typo}"
        );
    }
}
