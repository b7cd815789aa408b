//! `cargo xtask <task>`: the project's developer and CI tasks.

mod demo;
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
    /// Setup, remove leftovers of crashed runs, then fmt --check, clippy -D warnings and
    /// the whole workspace's tests (privileged ones included; run as root).
    Test {
        /// Passed on to `cargo test --workspace`, e.g. `-- -p monitor -- --nocapture`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Build the daemon, start it on a namespace testbed gateway, place a short Webex-like
    /// call through the NAT, show `monitor status`, and tear everything down.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Test { cargo_test_args } => test::run(&cargo_test_args),
        Task::Demo => demo::run(),
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
