//! `monitor detach`: takes the data path off the interfaces.

use std::{os::unix::net::UnixStream, path::PathBuf};

use crate::{
    config, exit,
    kernel::{attach, pins},
};

/// Detach the kernel programs from every interface: remove the pinned XDP and TC links
/// (and, on kernels without TCX, the monitor's clsact filters) the daemon leaves attached
/// when it stops, so that monitoring and DSCP rewrite continue across restarts.
///
/// The daemon must be stopped first (`systemctl stop monitor`): stopping keeps the data
/// path running by design, this removes it. Pinned maps (the counters) are kept unless
/// --unpin is given. Exit status: 0 detached (or nothing was attached), 1 the daemon is
/// running or a pin could not be removed, 64 a bad --config.
#[derive(clap::Args, Debug)]
pub struct DetachArgs {
    /// Config file naming the pin directory, the status socket and the interfaces.
    #[arg(
        long,
        short,
        default_value = "/etc/monitor/monitor.toml",
        env = "MONITOR_CONFIG"
    )]
    pub config: PathBuf,
    /// Also remove the pinned maps: the next start begins every counter from zero.
    #[arg(long)]
    pub unpin: bool,
}

pub fn execute(args: DetachArgs) -> i32 {
    let cfg = match config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let daemon = &cfg.config.daemon;
    if UnixStream::connect(&daemon.status_socket).is_ok() {
        eprintln!(
            "error: the daemon is running (it answers on {}); stop it first \
             (`systemctl stop monitor`), then run `monitor detach`",
            daemon.status_socket.display()
        );
        return exit::FAILURE;
    }
    let removed = match pins::remove_attachments(&daemon.pin_path) {
        Ok(removed) => removed,
        Err(e) => {
            eprintln!(
                "error: cannot remove the pinned links in {}: {e}",
                pins::links_dir(&daemon.pin_path).display()
            );
            return exit::FAILURE;
        }
    };
    let mut lines: Vec<String> = removed
        .iter()
        .map(|(interface, kind)| format!("detached {kind} from {interface}"))
        .collect();
    for iface in &cfg.config.interfaces {
        if attach::detach_netlink(&iface.name) {
            lines.push(format!("detached the tc filter from {}", iface.name));
        }
    }
    if args.unpin {
        if let Err(e) = pins::remove(&daemon.pin_path) {
            eprintln!(
                "error: cannot remove the pinned maps in {}: {e}",
                daemon.pin_path.display()
            );
            return exit::FAILURE;
        }
        lines.push(format!(
            "removed the pinned maps in {} (counters start from zero)",
            daemon.pin_path.display()
        ));
    }
    if lines.is_empty() {
        println!("nothing was attached");
    }
    for line in lines {
        println!("{line}");
    }
    exit::OK
}
