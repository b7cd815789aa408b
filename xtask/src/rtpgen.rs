//! An RTP traffic generator with exact, known impairments, for the call-quality oracle
//! tests: random and burst loss, reordering, duplicates, sequence wrap at 65535, SSRC
//! change, timestamp jumps and send-time jitter, all deterministic from a seed. A
//! [`Plan`] is the packets with their send times and the ground truth; [`send`] sends it
//! on an absolute schedule.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{interrupt, rtp::RtpStream, traffic::ensure_documentation};

/// Packet interval of the generated G.711 stream (20 ms, 160 samples).
pub const INTERVAL_NS: u64 = 20_000_000;
/// UDP payload of each packet: RTP header and 160 bytes of G.711.
pub const PACKET_LEN: usize = 172;
/// At most this many packets per plan (a bound on every test's duration).
pub const MAX_PACKETS: u32 = 3000;

/// What to do to a stream. Impairments never touch the first and last
/// [`Profile::GUARD`] packets, so every observer agrees where a stream starts and ends.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub name: &'static str,
    /// Packets generated (before loss and duplication).
    pub packets: u32,
    /// Each packet is dropped with this probability (percent).
    pub random_loss_pct: f64,
    /// Bursts of consecutive losses: (first packet index, length).
    pub bursts: Vec<(u32, u32)>,
    /// Every n-th packet is sent after its successor.
    pub reorder_every: Option<u32>,
    /// Every n-th packet is sent twice, the copy right after it.
    pub duplicate_every: Option<u32>,
    /// Every n-th packet is sent again three packets later (a late duplicate).
    pub late_duplicate_every: Option<u32>,
    /// First sequence number (e.g. 65440 to wrap at 65535 early on).
    pub first_seq: Option<u16>,
    /// From this packet on, a new SSRC (a new source: new sequence and timestamp base).
    pub ssrc_change_at: Option<u32>,
    /// At this packet the timestamp jumps forward by this many units.
    pub timestamp_jump: Option<(u32, u32)>,
    /// Each packet is sent up to this many milliseconds late (uniform).
    pub send_jitter_ms: f64,
}

impl Profile {
    pub const GUARD: u32 = 3;
}

/// The seven impairment profiles of the oracle test, `n` packets each (4 s at 200):
/// clean, random loss, burst loss, reordering with send jitter, duplicates and late
/// duplicates, wrap + SSRC change + timestamp jump, heavy send jitter.
pub fn standard_profiles(n: u32) -> Vec<Profile> {
    vec![
        Profile {
            name: "clean",
            packets: n,
            ..Default::default()
        },
        Profile {
            name: "random loss 4 %",
            packets: n,
            random_loss_pct: 4.0,
            ..Default::default()
        },
        Profile {
            name: "burst loss",
            packets: n,
            bursts: vec![(n / 5, 6), (3 * n / 5, 3)],
            ..Default::default()
        },
        Profile {
            name: "reordering with send jitter",
            packets: n,
            reorder_every: Some(17),
            send_jitter_ms: 4.0,
            ..Default::default()
        },
        Profile {
            name: "duplicates and late duplicates",
            packets: n,
            duplicate_every: Some(23),
            late_duplicate_every: Some(41),
            random_loss_pct: 1.5,
            ..Default::default()
        },
        Profile {
            name: "wrap, SSRC change, timestamp jump",
            packets: n,
            first_seq: Some(65450),
            ssrc_change_at: Some(3 * n / 4),
            timestamp_jump: Some((n / 3, 8000)),
            ..Default::default()
        },
        Profile {
            name: "heavy send jitter",
            packets: n,
            send_jitter_ms: 25.0,
            ..Default::default()
        },
    ]
}

/// The truth of one SSRC of a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    pub ssrc: u32,
    /// Packets on the wire, duplicates included.
    pub sent: u64,
    /// Sequence numbers never sent.
    pub lost: u64,
    /// Extra copies sent.
    pub duplicates: u64,
    /// Packets sent after a higher sequence number (not duplicates).
    pub reordered: u64,
    /// First to last sequence number, extended (what RFC 3550 and tshark expect).
    pub expected: u64,
}

impl Truth {
    /// RFC 3550 cumulative lost: expected − received (duplicates included).
    pub fn lost_rfc(&self) -> i64 {
        self.expected as i64 - self.sent as i64
    }
}

/// One packet to send.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Send time after the start.
    pub at_ns: u64,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub packets: Vec<Planned>,
    pub truth: Vec<Truth>,
}

/// xorshift64*: deterministic and good enough for impairment patterns.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Builds the plan of `profile` for SSRC `ssrc` (the changed source uses `ssrc + 1`).
pub fn plan(profile: &Profile, ssrc: u32, seed: u64) -> Plan {
    let n = profile.packets.min(MAX_PACKETS);
    let mut rng = Rng::new(seed ^ ssrc as u64);
    let guarded = |i: u32| i < Profile::GUARD || i + Profile::GUARD >= n;
    let in_segment_guard = |i: u32| match profile.ssrc_change_at {
        Some(c) => (c..c + Profile::GUARD).contains(&i) || (i < c && i + Profile::GUARD >= c),
        None => false,
    };

    // Which generated packets are lost.
    let mut lost = BTreeSet::new();
    for i in 0..n {
        if !guarded(i) && !in_segment_guard(i) && rng.unit() * 100.0 < profile.random_loss_pct {
            lost.insert(i);
        }
    }
    for &(start, len) in &profile.bursts {
        for i in start..start + len {
            if !guarded(i) && !in_segment_guard(i) {
                lost.insert(i);
            }
        }
    }

    // The packets and their nominal send slots.
    let mut streams = [RtpStream::pcmu(ssrc), RtpStream::pcmu(ssrc.wrapping_add(1))];
    if let Some(seq) = profile.first_seq {
        streams[0].seq = seq;
    }
    // (send time, generated index, source, bytes)
    let mut out: Vec<(u64, u32, usize, Vec<u8>)> = Vec::new();
    for i in 0..n {
        let src = match profile.ssrc_change_at {
            Some(c) if i >= c => 1,
            _ => 0,
        };
        if profile.timestamp_jump.map(|(at, _)| at) == Some(i) {
            let jump = profile.timestamp_jump.unwrap().1;
            streams[src].timestamp = streams[src].timestamp.wrapping_add(jump);
        }
        let bytes = streams[src].next_packet(PACKET_LEN);
        if lost.contains(&i) {
            continue;
        }
        let impairable = !guarded(i) && !in_segment_guard(i);
        let jitter = if impairable {
            (rng.unit() * profile.send_jitter_ms * 1e6) as u64
        } else {
            0
        };
        let mut at = i as u64 * INTERVAL_NS + jitter;
        let every = |e: Option<u32>| impairable && e.is_some_and(|e| e > 0 && i % e == 0);
        if every(profile.reorder_every) && !lost.contains(&(i + 1)) && !guarded(i + 1) {
            // After its successor (which goes at its own slot).
            at = (i as u64 + 1) * INTERVAL_NS + INTERVAL_NS / 4;
        }
        if every(profile.duplicate_every) {
            out.push((at + 1_000_000, i, src, bytes.clone()));
        }
        if every(profile.late_duplicate_every) {
            out.push((
                at + 3 * INTERVAL_NS + INTERVAL_NS / 2,
                i,
                src,
                bytes.clone(),
            ));
        }
        out.push((at, i, src, bytes));
    }
    out.sort_by_key(|(at, i, _, _)| (*at, *i));

    // Ground truth from what is actually sent, in order.
    let mut truth = Vec::new();
    for src in 0..2usize {
        let sent: Vec<u32> = out.iter().filter(|p| p.2 == src).map(|p| p.1).collect();
        if sent.is_empty() {
            continue;
        }
        let first = *sent.iter().min().unwrap();
        let last = *sent.iter().max().unwrap();
        let mut seen = BTreeSet::new();
        let (mut dups, mut reordered, mut max) = (0, 0, None::<u32>);
        for &i in &sent {
            if !seen.insert(i) {
                dups += 1;
            } else if max.is_some_and(|m| i < m) {
                reordered += 1;
            }
            max = Some(max.map_or(i, |m| m.max(i)));
        }
        let expected = (last - first + 1) as u64;
        truth.push(Truth {
            ssrc: ssrc.wrapping_add(src as u32),
            sent: sent.len() as u64,
            lost: expected - seen.len() as u64,
            duplicates: dups,
            reordered,
            expected,
        });
    }
    Plan {
        packets: out
            .into_iter()
            .map(|(at_ns, _, _, bytes)| Planned { at_ns, bytes })
            .collect(),
        truth,
    }
}

/// Sends `plan` from `from` to `to` on its schedule (documentation addresses only).
pub fn send(plan: &Plan, from: SocketAddr, to: SocketAddr) -> Result<()> {
    ensure_documentation(to, "RTP generator destination")?;
    if plan.packets.len() > 2 * MAX_PACKETS as usize {
        bail!("plan of {} packets is above the limit", plan.packets.len());
    }
    let socket = UdpSocket::bind(from).with_context(|| format!("cannot bind UDP {from}"))?;
    let start = Instant::now();
    for p in &plan.packets {
        interrupt::check()?;
        let due = start + Duration::from_nanos(p.at_ns);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        socket
            .send_to(&p.bytes, to)
            .with_context(|| format!("sending RTP to {to}"))?;
    }
    Ok(())
}

/// `cargo xtask rtpgen`: sends one standard profile from `from` to `to` (run it inside
/// the namespace that owns `from`, e.g. `ip netns exec <lan> cargo xtask rtpgen …`) and
/// prints the ground truth, one line per SSRC.
pub fn run_cli(
    profile: &str,
    from: SocketAddr,
    to: SocketAddr,
    packets: u32,
    ssrc: u32,
    seed: u64,
) -> Result<()> {
    let all = standard_profiles(packets.min(MAX_PACKETS));
    let Some(p) = all.iter().find(|p| p.name.contains(profile)) else {
        let names: Vec<&str> = all.iter().map(|p| p.name).collect();
        bail!(
            "no profile matches {profile:?}; profiles: {}",
            names.join(", ")
        );
    };
    let plan = plan(p, ssrc, seed);
    println!(
        "profile \"{}\": {} packets from {from} to {to}, seed {seed}",
        p.name,
        plan.packets.len()
    );
    send(&plan, from, to)?;
    for t in &plan.truth {
        println!(
            "ssrc {:#010x}: sent {} expected {} lost {} lost_rfc {} duplicates {} reordered {}",
            t.ssrc,
            t.sent,
            t.expected,
            t.lost,
            t.lost_rfc(),
            t.duplicates,
            t.reordered
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::parse_header;

    fn seqs(plan: &Plan) -> Vec<u16> {
        plan.packets
            .iter()
            .map(|p| parse_header(&p.bytes).unwrap().seq)
            .collect()
    }

    #[test]
    fn clean_plan_is_in_order_every_20_ms() {
        let p = plan(
            &Profile {
                name: "clean",
                packets: 50,
                ..Default::default()
            },
            7,
            1,
        );
        assert_eq!(p.packets.len(), 50);
        assert_eq!(p.packets[10].at_ns, 10 * INTERVAL_NS);
        let t = &p.truth[0];
        assert_eq!(
            (t.sent, t.lost, t.duplicates, t.reordered, t.expected),
            (50, 0, 0, 0, 50)
        );
    }

    #[test]
    fn impairments_are_exact_and_deterministic() {
        let profile = Profile {
            name: "mixed",
            packets: 100,
            bursts: vec![(20, 4)],
            reorder_every: Some(30),
            duplicate_every: Some(25),
            ..Default::default()
        };
        let a = plan(&profile, 9, 42);
        let b = plan(&profile, 9, 42);
        assert_eq!(seqs(&a), seqs(&b));
        let t = &a.truth[0];
        // Lost 20..=23; duplicates of 25, 50, 75; reordered 30, 60, 90.
        assert_eq!(t.lost, 4);
        assert_eq!(t.duplicates, 3);
        assert_eq!(t.reordered, 3);
        assert_eq!(t.sent, 100 - 4 + 3);
        assert_eq!(t.lost_rfc(), 1);
    }

    #[test]
    fn wrap_and_ssrc_change() {
        let p = plan(
            &Profile {
                name: "wrap",
                packets: 120,
                first_seq: Some(65500),
                ssrc_change_at: Some(80),
                ..Default::default()
            },
            100,
            3,
        );
        assert_eq!(p.truth.len(), 2);
        assert_eq!(p.truth[0].sent, 80);
        assert_eq!(p.truth[1].sent, 40);
        assert!(seqs(&p).contains(&65535));
        assert!(seqs(&p).contains(&0));
    }
}
