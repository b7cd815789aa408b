//! `monitor top`: a live full-screen view of the health, the active calls (worst recent
//! MOS first, with loss and jitter sparklines), the open anomalies and the interfaces,
//! over the same status socket as `monitor status`.
//!
//! Drawn with ratatui on the alternate screen: only the cells that changed are written
//! (no flicker), and the terminal is restored on exit, on Ctrl-C, on SIGINT/SIGTERM/
//! SIGHUP and on a panic. When the daemon goes away the screen says so and keeps
//! retrying.

mod app;
mod terminal;
mod ui;

use crate::exit;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

/// A live full-screen view: health, calls worst first with sparklines, anomalies,
/// interfaces.
///
/// Keys: ↑/↓ (or k/j) select a call, Enter opens it (Esc back), s changes the sort
/// (worst MOS, loss, jitter, host), / filters the calls by text (Enter keeps, Esc
/// clears), r refreshes now, q or Ctrl-C quits. Root-only like `monitor status`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The daemon's status socket [default: /run/monitor/monitor.sock].
    #[arg(long, value_name = "PATH", env = "MONITOR_SOCKET")]
    pub socket: Option<PathBuf>,

    /// Take the socket from this config file's daemon.status_socket.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Seconds between refreshes (1 to 3600).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub interval: u64,
}

/// Runs `monitor top`; returns the process exit status (0 on a normal quit).
pub fn execute(args: TopArgs) -> i32 {
    let socket = match super::status::resolve_socket(args.config.as_deref(), args.socket.as_deref())
    {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("monitor top: {e}");
            return exit::USAGE;
        }
    };
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "monitor top: stdout is not a terminal; use `monitor status --watch` (or --json) \
             in scripts"
        );
        return exit::USAGE;
    }
    match app::run(&socket, Duration::from_secs(args.interval)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("monitor top: {e}");
            exit::FAILURE
        }
    }
}
