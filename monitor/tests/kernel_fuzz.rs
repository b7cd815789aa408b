//! Fuzzing the kernel programs through BPF_PROG_TEST_RUN: random frames and mutations of
//! valid Webex, DNS, TCP and IPv6 frames, from a fixed seed. Whatever arrives, the verdict
//! is pass, the bytes are untouched, and the global counters stay consistent
//! (seen = parsed + malformed, and seen = frames run).
//!
//! `MONITOR_FUZZ_FRAMES` and `MONITOR_FUZZ_SEED` change the amount and the seed;
//! `cargo xtask fuzz` runs a longer campaign.

mod support;

use std::net::Ipv4Addr;

use monitor::kernel::KernelError;
use support::{Kernel, TC_ACT_OK, XDP_PASS};
use xtask::{
    frames::{self, ETH_P_8021Q, ETH_P_IP, Ext, Ipv4, Ipv6, L4},
    rtp::RtpStream,
};

/// xorshift64*: small, deterministic, good enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let lan = Ipv4Addr::new(192, 0, 2, 10);
    let webex = Ipv4Addr::new(203, 0, 113, 10);
    let mut rtp = RtpStream::pcmu(0x1122_3344);
    let mut with_opts = Ipv4::new(lan, webex);
    with_opts.options = vec![0x94, 0x04, 0, 0];
    let mut frag = Ipv4::new(lan, webex);
    frag.more_fragments = true;
    let mut v6 = Ipv6::new(
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:ff::10".parse().unwrap(),
    );
    v6.ext = vec![
        Ext::HopByHop,
        Ext::Routing,
        Ext::Fragment {
            offset: 0,
            more: true,
            id: 0xdead_beef,
        },
    ];
    let dns = {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        for label in ["media", "webex", "com"] {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[
            0, 0, 1, 0, 1, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 203, 0, 113, 10,
        ]);
        m
    };
    vec![
        frames::v4(
            &Ipv4::new(lan, webex),
            &L4::Udp {
                src: 52000,
                dst: 5004,
                payload: rtp.next_packet(172),
            },
        ),
        frames::v4(
            &Ipv4::new(Ipv4Addr::new(198, 51, 100, 53), lan),
            &L4::Udp {
                src: 53,
                dst: 40000,
                payload: dns,
            },
        ),
        frames::v4(&Ipv4::new(lan, webex), &L4::tcp(40001, 5061, 100)),
        frames::v4(&with_opts, &L4::udp(40002, 19560, 40)),
        frames::v4(&frag, &L4::udp(40003, 5004, 80)),
        frames::v6(&v6, &L4::udp(40004, 5004, 60)),
        frames::ethernet(
            &[(ETH_P_8021Q, 7)],
            ETH_P_IP,
            &Ipv4::new(lan, webex).packet(17, &L4::udp(40005, 9000, 30).bytes()),
        ),
    ]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut f = seed.to_vec();
    match rng.below(6) {
        // Flip a few random bytes anywhere.
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
        }
        // Flip bytes in the headers only, where the parser looks.
        1 => {
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(f.len().min(80));
                f[i] ^= 1 << rng.below(8);
            }
        }
        // Truncate.
        2 => f.truncate(14 + rng.below(f.len() - 13)),
        // Extend with garbage.
        3 => {
            for _ in 0..rng.below(64) {
                f.push(rng.next() as u8);
            }
        }
        // Overwrite a 16-bit length-like field with an extreme.
        4 => {
            let i = 14 + rng.below(f.len().min(60) - 15);
            let v: u16 = [0, 1, 0xffff, 0x8000, 20, 40][rng.below(6)];
            f[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        // Entirely random frame.
        _ => {
            let len = 14 + rng.below(300);
            f = (0..len).map(|_| rng.next() as u8).collect();
        }
    }
    f
}

#[test]
fn a_million_random_and_mutated_frames_all_pass_and_keep_the_counters_consistent() {
    let frames: u64 = std::env::var("MONITOR_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("MONITOR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_0001);
    let mut rng = Rng(seed);
    // track_all_flows makes every parsable frame reach the flow map too.
    let mut k = Kernel::load_with("track_all_flows = true\nflow_table_size = 4096", "");
    let seeds = seeds();
    let mut rejected_by_kernel = 0u64;
    for i in 0..frames {
        let pick = rng.below(seeds.len());
        let frame = mutate(&mut rng, &seeds[pick]);
        // Alternate the two programs: both parse, account and may do per-class work.
        if i % 2 == 0 {
            assert_eq!(k.xdp(&frame), XDP_PASS, "frame {i}: {frame:02x?}");
        } else {
            match k
                .harness
                .tc(monitor_common::program_names::TC, &frame, 0, 1)
            {
                Ok(r) => {
                    assert_eq!(r.verdict, TC_ACT_OK, "frame {i}: {frame:02x?}");
                    assert_eq!(r.packet, frame, "frame {i}: TC changed it");
                }
                // The kernel refuses some skbs before any program runs (e.g. an IPv6
                // ethertype with no room for the IPv6 header): run those through XDP.
                Err(e) if is_einval(&e) => {
                    rejected_by_kernel += 1;
                    assert_eq!(k.xdp(&frame), XDP_PASS, "frame {i}: {frame:02x?}");
                }
                Err(e) => panic!("frame {i}: {frame:02x?}: {e:?}"),
            }
        }
    }
    let c = k.counters();
    println!(
        "{frames} frames, {rejected_by_kernel} refused by BPF_PROG_TEST_RUN for TC and run through XDP; {c:?}"
    );
    assert_eq!(c.seen, frames, "every frame seen once");
    assert_eq!(
        c.seen,
        c.parsed + c.malformed_total(),
        "seen = parsed + malformed"
    );
    // Every IP frame reached the flow stage (and the quality stage when it was due).
    assert_eq!(c.stage_failed, 0, "{c:?}");
    // The mutations reach both outcomes and several reasons.
    assert!(c.parsed > frames / 10, "{c:?}");
    assert!(c.malformed_total() > frames / 10, "{c:?}");
    let reasons = c.malformed.iter().filter(|n| **n > 0).count();
    assert!(
        reasons >= 8,
        "only {reasons} malformed reasons reached: {c:?}"
    );
    assert_eq!(
        c.ipv4 + c.ipv6 + c.non_ip,
        c.parsed,
        "every parsed frame is IPv4, IPv6 or non-IP"
    );
}

fn is_einval(e: &KernelError) -> bool {
    matches!(
        e,
        KernelError::Program {
            source: aya::programs::ProgramError::SyscallError(s),
            ..
        } if s.io_error.raw_os_error() == Some(22)
    )
}
