//! Host tests of the RTP accounting against hand-computed sequences.

use super::*;

const MS: u64 = 1_000_000;

fn pkt(seq: u16, timestamp: u32) -> RtpFields {
    RtpFields {
        marker: false,
        payload_type: 0,
        seq,
        timestamp,
        ssrc: 1,
    }
}

/// Feeds sequence numbers (timestamps 160 apart per sequence step, arrivals 20 ms apart).
fn run(seqs: &[u16]) -> RtpStreamState {
    let mut s: Option<RtpStreamState> = None;
    for (i, &seq) in seqs.iter().enumerate() {
        let f = pkt(seq, (seq as u32).wrapping_mul(160));
        let now = 1_000 * MS + i as u64 * 20 * MS;
        match s.as_mut() {
            None => s = Some(RtpStreamState::first(&f, now)),
            Some(s) => s.update(&f, now),
        }
    }
    s.unwrap()
}

#[test]
fn layouts_have_no_padding() {
    use core::mem::size_of;
    assert_eq!(size_of::<RtpStreamKey>(), 48);
    assert_eq!(size_of::<RtpStreamState>(), 13 * 8 + 16 * 4);
    assert_eq!(size_of::<StunTxKey>(), 16);
    assert_eq!(size_of::<StunPending>(), 56);
    assert_eq!(size_of::<RttStats>(), 48);
    assert_eq!(size_of::<MediaCounters>(), 16 * 8);
}

/// A.1's source initialisation as the RFC writes it (a zeroed state on probation, then
/// the packet through `update`): what the straight-line `start` must equal.
fn start_by_update(f: &RtpFields, now: u64) -> RtpStreamState {
    let mut s = RtpStreamState {
        max_seq: (f.seq as u32).wrapping_sub(1) & 0xffff,
        probation: MIN_SEQUENTIAL,
        bad_seq: RTP_SEQ_MOD + 1,
        first_seen_ns: now,
        ..Default::default()
    };
    let rate = static_clock_rate(f.payload_type);
    if rate != 0 {
        s.clock_rate = rate;
        s.clock_source = ClockSource::Static as u32;
    }
    s.update(f, now);
    s
}

#[test]
fn start_is_a_zeroed_state_given_its_first_packet() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Every payload type (static and dynamic), the sequence wrap, marker bits, and a
    // scratch slot full of an earlier stream's bytes.
    for pt in 0..128u8 {
        for seq in [0u16, 1, 65535, next() as u16, next() as u16] {
            let f = RtpFields {
                marker: next() & 1 == 1,
                payload_type: pt,
                seq,
                timestamp: next() as u32,
                ssrc: next() as u32,
            };
            let now = next() >> 1;
            let mut dirty = run(&[7, 8, 9, 700, 10]);
            dirty.start(&f, now);
            assert_eq!(dirty, start_by_update(&f, now), "{f:?}");
            assert_eq!(RtpStreamState::first(&f, now), dirty);
        }
    }
}

#[test]
fn in_order_stream_after_probation() {
    let s = run(&[100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    assert_eq!(s.packets, 10);
    // Both probation packets count: the run is based at the first, as tshark's.
    assert_eq!(s.base_seq, 100);
    assert_eq!(s.received, 10);
    assert_eq!(s.expected(), 10);
    assert_eq!(s.lost_rfc(), 0);
    assert_eq!((s.duplicates, s.reordered, s.restarts), (0, 0, 0));
}

#[test]
fn wrap_at_65535_counts_a_cycle() {
    let s = run(&[65533, 65534, 65535, 0, 1, 2]);
    assert_eq!(s.cycles, RTP_SEQ_MOD);
    assert_eq!(s.max_seq, 2);
    // Extended max 65538, base 65533.
    assert_eq!(s.expected(), 6);
    assert_eq!(s.received, 6);
    assert_eq!(s.lost(), 0);
}

#[test]
fn loss_across_wrap() {
    let s = run(&[65533, 65534, 0, 3, 4]);
    // Expected 65533..=65540 (8), received 5: 65535, 1, 2 lost, in two bursts.
    assert_eq!(s.expected(), 8);
    assert_eq!(s.received, 5);
    assert_eq!(s.lost(), 3);
    assert_eq!(s.lost_rfc(), 3);
    assert_eq!(s.loss_bursts, 2);
}

#[test]
fn reordered_packet_is_not_lost() {
    let s = run(&[1, 2, 3, 5, 4, 6]);
    assert_eq!(s.expected(), 6);
    assert_eq!(s.received, 6);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.reordered, 1);
    assert_eq!(s.duplicates, 0);
}

#[test]
fn reordering_across_the_wrap() {
    let s = run(&[65534, 65535, 1, 0, 2]);
    assert_eq!(s.cycles, RTP_SEQ_MOD);
    assert_eq!(s.expected(), 5);
    assert_eq!(s.received, 5);
    assert_eq!(s.reordered, 1);
    assert_eq!(s.lost(), 0);
}

#[test]
fn duplicates_make_rfc_loss_negative_and_are_counted() {
    let s = run(&[1, 2, 3, 3, 2, 4]);
    assert_eq!(s.expected(), 4);
    // A.1 counts duplicates as received (RFC 3550 A.3: loss may be negative).
    assert_eq!(s.received, 6);
    assert_eq!(s.lost_rfc(), -2);
    assert_eq!(s.duplicates, 2);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.reordered, 0);
}

#[test]
fn duplicate_plus_loss() {
    let s = run(&[10, 11, 12, 12, 14, 15]);
    // Expected 10..=15 (6); received 6 with one duplicate: 13 lost, RFC loss 0.
    assert_eq!(s.lost_rfc(), 0);
    assert_eq!(s.lost(), 1);
    assert_eq!(s.duplicates, 1);
}

#[test]
fn large_jump_is_a_restart_after_two_packets() {
    let s = run(&[1, 2, 3, 20000, 20001, 20002]);
    // 20000 is held back as a possible stray; 20001 confirms the restart.
    assert_eq!(s.restarts, 1);
    assert_eq!(s.base_seq, 20001);
    assert_eq!(s.prior_expected, 3);
    assert_eq!(s.prior_received, 3);
    assert_eq!(s.received, 2);
    assert_eq!(s.expected(), 5);
    assert_eq!(s.lost(), 0);
    assert_eq!(s.packets, 6);
}

#[test]
fn single_stray_jump_is_ignored() {
    let s = run(&[1, 2, 3, 40000, 4, 5]);
    assert_eq!(s.restarts, 0);
    assert_eq!(s.received, 5);
    assert_eq!(s.expected(), 5);
    assert_eq!(s.packets, 6);
}

#[test]
fn probation_restarts_on_a_gap() {
    let s = run(&[10, 50, 51, 52]);
    assert_eq!(s.base_seq, 50);
    assert_eq!(s.received, 3);
    assert_eq!(s.expected(), 3);
    assert_eq!(s.probation, 0);
}

#[test]
fn gap_within_dropout_is_loss_and_clears_the_window() {
    let s = run(&[1, 2, 102, 103]);
    assert_eq!(s.expected(), 103);
    assert_eq!(s.received, 4);
    assert_eq!(s.lost(), 99);
    assert_eq!(s.window, 0b11);
    assert_eq!(s.loss_bursts, 1);
}

#[test]
fn three_lost_of_300_is_one_percent_as_tshark_counts() {
    let seqs: Vec<u16> = (1000..1300u16)
        .filter(|q| ![1100, 1150, 1200].contains(q))
        .collect();
    let s = run(&seqs);
    assert_eq!(s.expected(), 300);
    assert_eq!(s.lost(), 3);
    assert_eq!(s.loss_bursts, 3);
    assert_eq!(s.lost() as f64 * 100.0 / s.expected() as f64, 1.0);
}

#[test]
fn frames_count_new_timestamps_in_order() {
    // Video: three frames of three packets each (one timestamp per frame), 90 kHz.
    let mut s: Option<RtpStreamState> = None;
    for i in 0..9u16 {
        let f = RtpFields {
            marker: i % 3 == 2,
            payload_type: 26,
            seq: 500 + i,
            timestamp: 3000 * (i as u32 / 3),
            ssrc: 9,
        };
        let now = 1_000 * MS + i as u64 * 11 * MS;
        match s.as_mut() {
            None => s = Some(RtpStreamState::first(&f, now)),
            Some(s) => s.update(&f, now),
        }
    }
    let s = s.unwrap();
    assert_eq!(s.clock_rate, 90000);
    // The first packet is the reference; the 2nd and 3rd frames start a new timestamp.
    assert_eq!(s.frames, 2);
}

#[test]
fn a_run_starting_at_the_wrap_is_based_one_cycle_up() {
    // 65535 and 0 end probation: the base is 65535, before the wrap.
    let s = run(&[65535, 0, 1, 2]);
    assert_eq!(s.base_seq, 65535);
    assert_eq!(s.cycles, RTP_SEQ_MOD);
    assert_eq!(s.expected(), 4);
    assert_eq!(s.received, 4);
    assert_eq!(s.lost(), 0);
}

#[test]
fn jitter_hand_computed() {
    // 8 kHz, 20 ms packets (160 units). Arrivals 0, 20, 45, 60 ms.
    let arrivals = [0, 20, 45, 60];
    let mut s = RtpStreamState::first(&pkt(1, 1000), arrivals[0] * MS);
    for (i, a) in arrivals.iter().enumerate().skip(1) {
        s.update(&pkt(1 + i as u16, 1000 + 160 * i as u32), a * MS);
    }
    // D: 0, |200-160| = 40, |120-160| = 40. J16: 0, 40, 40 + 40 - ((40+8)>>4) = 77.
    assert_eq!(s.jitter, 77);
    assert_eq!(s.max_jitter, 77);
    assert_eq!(s.jitter_sum, 117);
    assert_eq!(s.jitter_samples, 3);
    assert!((s.jitter_ms() - 77.0 / 16.0 / 8.0).abs() < 1e-12);
    assert_eq!(s.clock_source, ClockSource::Static as u32);
}

#[test]
fn late_packet_counts_in_jitter_but_not_in_max_or_mean() {
    // Packets 1,2 on time, 4 at 60 ms (on time), 3 late at 61 ms, 5 at 80 ms.
    let mut s = RtpStreamState::first(&pkt(1, 0), 0);
    s.update(&pkt(2, 160), 20 * MS);
    s.update(&pkt(4, 480), 60 * MS);
    assert_eq!(s.jitter, 0);
    // Late: D against packet 4: |8 - (-160)| = 168 units.
    s.update(&pkt(3, 320), 61 * MS);
    assert_eq!(s.jitter, 168);
    // Not regular (timestamp behind): not in max or mean.
    assert_eq!(s.max_jitter, 0);
    assert_eq!(s.jitter_samples, 2);
    // Packet 5 against packet 3 (the previous arrival): D = |152 - 320| = 168.
    // J = 168 + 168 - ((168 + 8) >> 4) = 325.
    s.update(&pkt(5, 640), 80 * MS);
    assert_eq!(s.jitter, 325);
    assert_eq!(s.max_jitter, 325);
    assert_eq!(s.reordered, 1);
}

#[test]
fn timestamp_jump_shows_in_jitter() {
    let mut s = RtpStreamState::first(&pkt(1, 0), 0);
    s.update(&pkt(2, 160), 20 * MS);
    s.update(&pkt(3, 160 + 8000), 40 * MS);
    // Against packet 2: arrival +160 units, timestamp +8000: D = 7840 units.
    assert_eq!(s.jitter, 7840);
}

#[test]
fn clock_rate_inferred_for_dynamic_payload_type() {
    let f = |seq: u16| RtpFields {
        marker: false,
        payload_type: 111,
        seq,
        timestamp: 5000 + 960 * seq as u32,
        ssrc: 9,
    };
    let mut s = RtpStreamState::first(&f(0), 0);
    assert_eq!(s.clock_rate, 0);
    for i in 1..10u16 {
        s.update(&f(i), i as u64 * 20 * MS);
        assert_eq!(s.clock_rate, 0, "too early at packet {i}");
    }
    s.update(&f(10), 200 * MS);
    assert_eq!(s.clock_rate, 48000);
    assert_eq!(s.clock_source, ClockSource::Inferred as u32);
    assert_eq!(s.jitter, 0);
    s.update(&f(11), 225 * MS);
    // 5 ms late at 48 kHz = 240 units.
    assert_eq!(s.jitter, 240);
}

#[test]
fn inference_restarts_on_unknown_rate() {
    let f = |seq: u16| RtpFields {
        marker: false,
        payload_type: 100,
        seq,
        timestamp: 1000 * seq as u32,
        ssrc: 9,
    };
    // 1000 units per 20 ms = 50 kHz: within 10 % of 48 kHz.
    let mut s = RtpStreamState::first(&f(0), 0);
    for i in 1..=10u16 {
        s.update(&f(i), i as u64 * 20 * MS);
    }
    assert_eq!(s.clock_rate, 48000);
    // 1400 units per 20 ms = 70 kHz: no rate; the window restarts.
    let g = |seq: u16| RtpFields {
        timestamp: 1400 * seq as u32,
        ..f(seq)
    };
    let mut s = RtpStreamState::first(&g(0), 0);
    for i in 1..=10u16 {
        s.update(&g(i), i as u64 * 20 * MS);
    }
    assert_eq!(s.clock_rate, 0);
    assert_eq!(s.infer_packets, 0);
}

#[test]
fn static_rates() {
    assert_eq!(static_clock_rate(0), 8000);
    assert_eq!(static_clock_rate(8), 8000);
    assert_eq!(static_clock_rate(9), 8000);
    assert_eq!(static_clock_rate(18), 8000);
    assert_eq!(static_clock_rate(34), 90000);
    assert_eq!(static_clock_rate(96), 0);
    assert_eq!(snap_rate(15_000), 16000);
    assert_eq!(snap_rate(12_000), 0);
    assert_eq!(snap_rate(88_000), 90000);
}

#[test]
fn demux_by_first_byte() {
    assert_eq!(demux(0, 1), MediaKind::Stun);
    assert_eq!(demux(1, 1), MediaKind::Stun);
    assert_eq!(demux(3, 0), MediaKind::Stun);
    assert_eq!(demux(4, 0), MediaKind::Other);
    assert_eq!(demux(20, 0), MediaKind::Dtls);
    assert_eq!(demux(63, 0), MediaKind::Dtls);
    assert_eq!(demux(0x80, 0), MediaKind::Rtp);
    assert_eq!(demux(0x80, 0x80 | 111), MediaKind::Rtp);
    // RTCP SR (200), RR (201): RTP payload types 72/73 with the marker bit.
    assert_eq!(demux(0x80, 200), MediaKind::Rtcp);
    assert_eq!(demux(0x81, 201), MediaKind::Rtcp);
    assert_eq!(demux(0xbf, 223), MediaKind::Rtcp);
    assert_eq!(demux(0x80, 224), MediaKind::Rtp);
    assert_eq!(demux(192, 0), MediaKind::Other);
}

#[test]
fn rtt_stats() {
    let mut r = RttStats::default();
    r.add(40 * MS, 1);
    r.add(30 * MS, 2);
    r.add(50 * MS, 3);
    assert_eq!((r.min_ns, r.max_ns, r.last_ns), (30 * MS, 50 * MS, 50 * MS));
    assert_eq!((r.sum_ns, r.samples, r.last_at_ns), (120 * MS, 3, 3));
}

#[test]
fn ns_to_units_is_the_exact_quotient_or_one_above_it_only_at_a_unit_boundary() {
    let rates = [8000u32, 16000, 48000, 90000, 44100, 22050, 11025];
    for rate in rates {
        assert_ne!(units_per_ns(rate), 0, "{rate} Hz has a constant");
        let exact = |ns: u64| ns * rate as u64 / 1_000_000_000;
        // Packet intervals and their multiples (whole numbers of units), and long gaps
        // (which divide): exact.
        for ms in [
            10u64, 20, 30, 40, 60, 100, 1_000, 4_000, 4_295, 60_000, 3_600_000,
        ] {
            let ns = ms * MS;
            assert_eq!(ns_to_units(ns, rate), exact(ns), "{rate} Hz, {ms} ms");
        }
        // Arrival gaps with any nanoseconds: exact, or one above within 1 / 2^32 of a
        // unit per ns of the next unit. Up to 4.3 s, and (for the share of off-by-ones)
        // packet gaps up to 100 ms.
        let mut off = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = if i % 2 == 0 {
                x % (1 << 32)
            } else {
                x % (100 * MS)
            };
            let (got, want) = (ns_to_units(ns, rate), exact(ns));
            if got != want {
                assert_eq!(got, want + 1, "{rate} Hz, {ns} ns");
                // How far below the next unit the exact quotient is, in 10^-9 units.
                let short = 1_000_000_000 - ns as u128 * rate as u128 % 1_000_000_000;
                assert!(
                    short << 32 <= ns as u128 * 1_000_000_000,
                    "{rate} Hz, {ns} ns: one above, {short} e-9 units from the next unit"
                );
                off += (i % 2) as u64;
            }
        }
        assert!(
            off < 4_000,
            "{rate} Hz: {off} of 200,000 gaps under 100 ms off by one"
        );
    }
    // An unknown rate divides.
    assert_eq!(units_per_ns(12345), 0);
    assert_eq!(ns_to_units(2_000_000_000, 12345), 24690);
}
