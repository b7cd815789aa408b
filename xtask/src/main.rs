//! `cargo xtask <task>`: the project's developer and CI tasks.

mod audit;
mod bench;
mod demo;
mod fuzz;
mod kernel_matrix;
mod setup;
mod test;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "Developer and CI tasks for the Webex Calling edge monitor"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Install what building and testing need (root): nightly rust-src, bpf-linker, the
    /// Debian tools the tests drive, and a mounted bpffs. Fast when all is present.
    Setup,
    /// Setup, remove leftovers of crashed runs, then fmt --check, clippy -D warnings, the
    /// dependency audit, the whole workspace's tests (privileged ones included; run as
    /// root) and the kernel tests on the oldest supported kernel under qemu.
    Test {
        /// Skip the kernel tests on older kernels (`kernel-matrix`, about two minutes).
        #[arg(long)]
        no_kernel_matrix: bool,
        /// Passed on to `cargo test --workspace`, e.g. `-- -p monitor -- --nocapture`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Build the daemon, start it on a namespace testbed gateway, place a short Webex-like
    /// call through the NAT, show `monitor status`, and tear everything down.
    Demo,
    /// Fuzz the kernel programs through BPF_PROG_TEST_RUN for longer than the test suite
    /// does (random and mutated frames; every verdict must be pass, counters consistent).
    Fuzz {
        /// Frames to run.
        #[arg(long, default_value_t = 20_000_000)]
        frames: u64,
        /// Seed (default: from the clock; printed so a failure can be reproduced).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Measure kernel cost per packet, live throughput and the daemon at scale, and write
    /// BENCHMARKS.md (not a test: it reports numbers and never fails on them).
    Bench {
        /// Small sizes, for a quick look (not for the record).
        #[arg(long)]
        quick: bool,
        /// Only the daemon-at-scale part, printed instead of written to BENCHMARKS.md.
        #[arg(long)]
        daemon_only: bool,
        /// Only the live-throughput part (forwarding rate with nothing, pass-only programs
        /// and the monitor attached, both attach modes, and the profile), printed instead
        /// of written to BENCHMARKS.md.
        #[arg(long, conflicts_with = "daemon_only")]
        throughput_only: bool,
        /// With --daemon-only: these flow counts instead of 1k, 10k, 100k and 1M
        /// (comma-separated; `none` for none), e.g. `--daemon-sizes 1000000`.
        #[arg(long, requires = "daemon_only")]
        daemon_sizes: Option<String>,
        /// With --daemon-only: skip the conntrack case.
        #[arg(long, requires = "daemon_only")]
        no_conntrack: bool,
    },
    /// Send one RTP impairment profile with known ground truth (clean, random loss, burst
    /// loss, reordering, duplicates, wrap, send jitter): run it in the namespace that
    /// owns --from (documentation addresses only); prints the truth per SSRC.
    Rtpgen {
        /// A word of the profile's name, e.g. "clean", "burst", "reorder", "wrap".
        #[arg(long, default_value = "clean")]
        profile: String,
        #[arg(long, default_value = "192.0.2.10:41000")]
        from: std::net::SocketAddr,
        #[arg(long, default_value = "203.0.113.10:5004")]
        to: std::net::SocketAddr,
        /// Packets generated (20 ms apart), at most 3000.
        #[arg(long, default_value_t = 200)]
        packets: u32,
        #[arg(long, default_value_t = 0x1000_0000)]
        ssrc: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Boot older kernels (Debian's packaged images) under qemu and run every
    /// `monitor/tests/kernel_*` test in each; fails if any test fails on any of them.
    KernelMatrix {
        /// Kernel series ("6.1": the newest Debian ABI of it) or exact ABI ("6.1.0-56");
        /// repeat for several.
        #[arg(long = "kernel", value_name = "VERSION", default_values_t = ["6.1".to_owned()])]
        kernels: Vec<String>,
        /// CPU acceleration: auto uses KVM only when the CPU shows vmx/svm.
        #[arg(long, value_enum, default_value = "auto")]
        accel: kernel_matrix::Accel,
        /// Limit per kernel boot, in seconds (the guest is killed after it).
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        timeout: u64,
        /// Build the kernel tests of this workspace instead of this one (e.g. a checkout
        /// of a release).
        #[arg(long, value_name = "DIR")]
        source: Option<std::path::PathBuf>,
        /// Run only this test file of monitor/tests (e.g. `kernel_budget`, which loads
        /// every program and reports the verifier's work); repeat for several.
        #[arg(long = "test", value_name = "NAME")]
        tests: Vec<String>,
    },
    /// Build the release binary and install it, the systemd unit, the README and (only if
    /// none exists) /etc/monitor/monitor.toml under --root; then print the next steps.
    Install {
        /// Install under this directory instead of / (for a package or an image).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
        /// Install this already-built binary instead of building one.
        #[arg(long, value_name = "PATH")]
        binary: Option<std::path::PathBuf>,
    },
    /// Build the Debian package (dpkg-deb): the release binary, the systemd unit, the
    /// default config as a conffile, completions, the man page, the README, the Grafana
    /// dashboard and the Prometheus alert rules.
    Package {
        /// Package this already-built binary instead of building one.
        #[arg(long, value_name = "PATH")]
        binary: Option<std::path::PathBuf>,
        /// Package version (default: the crate's).
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Where the .deb goes (default: debian/ in the target directory).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Test {
            no_kernel_matrix,
            cargo_test_args,
        } => test::run(!no_kernel_matrix, &cargo_test_args),
        Task::Demo => demo::run(),
        Task::Bench {
            quick,
            daemon_only,
            daemon_sizes,
            no_conntrack,
            throughput_only,
        } => bench::run(
            quick,
            daemon_only,
            throughput_only,
            daemon_sizes.as_deref(),
            no_conntrack,
        ),
        Task::Install { root, binary } => xtask::install::run(&root, binary.as_deref()),
        Task::Package {
            binary,
            version,
            out,
        } => xtask::package::run(
            binary.as_deref(),
            version.as_deref(),
            &out.unwrap_or_else(|| xtask::paths::target_dir().join("debian")),
        ),
        Task::Fuzz { frames, seed } => fuzz::run(frames, seed),
        Task::KernelMatrix {
            kernels,
            accel,
            timeout,
            source,
            tests,
        } => kernel_matrix::run(&kernel_matrix::Options {
            kernels,
            accel,
            timeout: std::time::Duration::from_secs(timeout),
            source,
            only: tests,
        }),
        Task::Rtpgen {
            profile,
            from,
            to,
            packets,
            ssrc,
            seed,
        } => xtask::rtpgen::run_cli(&profile, from, to, packets, ssrc, seed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if xtask::interrupt::interrupted() {
                // As a shell reports a command ended by Ctrl-C.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
