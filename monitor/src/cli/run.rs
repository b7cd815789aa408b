//! `monitor run`: the daemon.

use std::path::PathBuf;

use log::error;

use crate::{config, daemon, exit, kernel::pins};

#[path = "run/capabilities.rs"]
mod capabilities;

/// Run the daemon: validate the config, attach XDP (ingress) and TC (egress) to the
/// configured interfaces, poll the maps and serve `monitor status`. Stops on SIGINT or
/// SIGTERM without detaching: the links and maps are pinned, so counting and DSCP rewrite
/// continue while it is down and the next start takes over (`monitor detach` removes
/// them). Interfaces that do not exist yet are attached when they appear.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        default_value = "/etc/monitor/monitor.toml",
        env = "MONITOR_CONFIG"
    )]
    pub config: PathBuf,
    /// Only validate the configuration and exit (0 when valid, 64 when not, also when
    /// `daemon.pin_path` is not on a bpf filesystem).
    #[arg(long)]
    pub check_config: bool,
    /// Detach and remove the pinned links and maps on exit (the next start begins from
    /// zero).
    #[arg(long)]
    pub unpin_on_exit: bool,
}

pub fn execute(args: RunArgs) -> i32 {
    init_logging();
    // The whole config is checked before any kernel work.
    let cfg = match config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            // One line, on stderr, which the journal keeps under systemd.
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    // The pin directory is part of the config: a path off bpffs is a config error, caught
    // by `--check-config` (ExecStartPre) and never retried.
    if let Some(problem) = pins::bpffs_problem(&cfg.config.daemon.pin_path) {
        eprintln!(
            "error: config {}: daemon.pin_path: {problem}",
            args.config.display()
        );
        return exit::USAGE;
    }
    if args.check_config {
        println!("config {} is valid", args.config.display());
        return exit::OK;
    }
    // Before anything is created (socket, pins, links): a missing capability is named,
    // on one line, with an exit status the unit does not restart on.
    if let Err(missing) = capabilities::check(&capabilities::effective()) {
        eprintln!("error: {missing}");
        return exit::NO_PERMISSION;
    }
    match daemon::run(
        cfg,
        daemon::RunOptions {
            config_path: args.config,
            unpin_on_exit: args.unpin_on_exit,
        },
    ) {
        Ok(()) => exit::OK,
        Err(e) => {
            error!("{e:#}");
            exit::FAILURE
        }
    }
}

fn init_logging() {
    crate::logging::init();
}
