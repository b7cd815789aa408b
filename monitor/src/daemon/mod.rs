//! The daemon: attach, poll the maps, serve status, and detach on SIGINT/SIGTERM.

pub mod report;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use log::{error, info, warn};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    config::ValidatedConfig,
    kernel::{
        attach, loader, pins,
        snapshot::{self, Snapshot},
    },
    status::{self, model::StatusReport},
};

pub struct RunOptions {
    pub config_path: PathBuf,
    /// Remove the pinned maps on exit (counters are then lost).
    pub unpin_on_exit: bool,
}

/// Runs until SIGINT or SIGTERM. The config is already validated.
pub fn run(cfg: ValidatedConfig, opts: RunOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(cfg, opts))
}

async fn run_async(cfg: ValidatedConfig, opts: RunOptions) -> anyhow::Result<()> {
    let daemon_cfg = cfg.config.daemon.clone();
    // Signals first, so a SIGTERM during start-up still detaches cleanly.
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;

    // Bind the socket before touching the kernel: a second daemon stops here.
    let listener = status::server::bind(&daemon_cfg.status_socket).with_context(|| {
        format!(
            "cannot serve status on {}",
            daemon_cfg.status_socket.display()
        )
    })?;

    let started_mono_ns = snapshot::monotonic_ns();
    let loaded = loader::load(&cfg).context("loading the kernel programs")?;
    let mut ebpf = loaded.ebpf;
    let interfaces = match attach::attach_all(&mut ebpf, &cfg) {
        Ok(i) => i,
        Err(e) => {
            drop(ebpf);
            let _ = std::fs::remove_file(&daemon_cfg.status_socket);
            return Err(e)
                .context("attaching to the configured interfaces (nothing is left attached)");
        }
    };

    let mut logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        // SAFETY: the logger owns its ring buffer fd and the AsyncFd owns the logger, so the
        // fd stays open as long as it is registered.
        Ok(l) => Some(
            unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("registering the kernel log reader: {e}"))?,
        ),
        Err(e) => {
            warn!("kernel log lines unavailable: {e}");
            None
        }
    };

    let info = report::StaticInfo {
        pid: std::process::id(),
        started_at_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        started_mono_ns,
        config_path: opts.config_path.display().to_string(),
        pin_path: daemon_cfg.pin_path.display().to_string(),
        poll_interval_ms: daemon_cfg.poll_interval_ms,
        adopted_pinned_maps: loaded.pins.adopted,
        interfaces,
    };

    let latest: Arc<Mutex<Arc<Snapshot>>> = Arc::new(Mutex::new(Arc::new(
        snapshot::take(&ebpf).context("reading the maps")?,
    )));
    let report_fn: Arc<dyn Fn() -> StatusReport + Send + Sync> = {
        let latest = latest.clone();
        Arc::new(move || {
            let snap = latest.lock().map(|s| s.clone()).unwrap_or_default();
            report::build(&info, &snap, snapshot::monotonic_ns())
        })
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(status::server::serve(listener, report_fn, shutdown_rx));
    info!(
        "monitoring; status on {} (poll every {} ms)",
        daemon_cfg.status_socket.display(),
        daemon_cfg.poll_interval_ms
    );

    let mut ticker = tokio::time::interval(Duration::from_millis(daemon_cfg.poll_interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => match snapshot::take(&ebpf) {
                Ok(s) => {
                    if let Ok(mut l) = latest.lock() {
                        *l = Arc::new(s);
                    }
                }
                Err(e) => error!("reading the maps failed: {e}; status shows the previous snapshot"),
            },
            _ = sigterm.recv() => { info!("SIGTERM: detaching"); break; }
            _ = sigint.recv() => { info!("SIGINT: detaching"); break; }
            _ = sighup.recv() => {
                warn!("SIGHUP: configuration reload is not supported yet; restart the daemon to apply a changed config");
            }
            guard = async {
                match logger.as_mut() {
                    Some(l) => l.readable_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            }
        }
    }

    let _ = shutdown_tx.send(true);
    let _ = server.await;
    // Dropping the object closes the links: XDP and TC are detached.
    drop(logger);
    drop(ebpf);
    let _ = std::fs::remove_file(&daemon_cfg.status_socket);
    if opts.unpin_on_exit {
        pins::remove(&daemon_cfg.pin_path).with_context(|| {
            format!("removing pinned maps in {}", daemon_cfg.pin_path.display())
        })?;
        info!("detached; pinned maps removed");
    } else {
        info!(
            "detached; pinned maps kept in {} for the next start",
            daemon_cfg.pin_path.display()
        );
    }
    Ok(())
}
