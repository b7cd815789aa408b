//! The daemon: attach, poll the maps, serve status, and detach on SIGINT/SIGTERM.

mod analysis;
pub mod detectors;
pub mod reload;
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
    kernel::{attach, loader, pins, snapshot},
    status::{self, model::StatusReport},
};

pub struct RunOptions {
    pub config_path: PathBuf,
    /// Remove the pinned maps on exit (counters are then lost).
    pub unpin_on_exit: bool,
}

/// A poll's report and when its snapshot was taken.
struct Published {
    report: Arc<StatusReport>,
    taken_mono_ns: u64,
}

/// Runs until SIGINT or SIGTERM. The config is already validated.
pub fn run(cfg: ValidatedConfig, opts: RunOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run_async(cfg, opts));
    // Everything is detached by now; a report still being built is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
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

    let info = Arc::new(report::StaticInfo {
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
        dscp: crate::dscp::Setup::from_config(&cfg),
        quality: cfg.config.quality.clone(),
    });
    // What changes while running: interfaces that vanish and come back, the last reload.
    let mut ifaces = info.interfaces.clone();
    let live_ifaces: Arc<Mutex<Vec<crate::status::model::InterfaceStatus>>> =
        Arc::new(Mutex::new(ifaces.clone()));
    let last_reload: Arc<Mutex<Option<reload::ReloadStatus>>> = Arc::default();
    // Learning peers by name (crate::learn): the sample ring is read in the loop below.
    let (mut learning, mut learn_ring) =
        crate::learn::run::Learning::start(&mut ebpf, &cfg.config.learn)
            .context("starting peer learning")?;
    let learn_view = learning.view();
    let mut running = cfg;
    // Detectors run on each poll, off the loop; the status report shows the book they
    // keep.
    let mut analysis = {
        let dscp = info.dscp.clone();
        let cfg = running.clone();
        analysis::Analysis::new(move || {
            let mut d = detectors::Detectors::new(dscp.clone());
            d.set_failure_config(&cfg);
            d
        })
    };
    let poll_info = info.clone();

    let export_settings =
        crate::config::export::resolve(&running.config.export, &|n| std::env::var(n).ok())
            .map_err(|p| anyhow::anyhow!("{}: {}", p.field, p.problem))?;
    let export_status = crate::export::StatusCell::new(&export_settings);

    // The last poll's report, with the detectors' anomalies and the learned peers: status
    // requests and exports copy it instead of building their own from the maps (at a
    // million flows building one takes longer than a poll interval).
    let published = {
        let snap = snapshot::take(&ebpf).context("reading the maps")?;
        Arc::new(Mutex::new(Published {
            report: Arc::new(analysis::build(&snap, &info, &ifaces, &learn_view)),
            taken_mono_ns: snap.taken_mono_ns,
        }))
    };
    let socket_stats = status::server::Stats::default();
    let current = {
        let socket_stats = socket_stats.clone();
        let published = published.clone();
        let export_status = export_status.clone();
        let last_reload = last_reload.clone();
        move |max_flows: Option<usize>| {
            let (base, taken) = match published.lock() {
                Ok(p) => (p.report.clone(), p.taken_mono_ns),
                Err(p) => (p.get_ref().report.clone(), p.get_ref().taken_mono_ns),
            };
            let mut r = match max_flows {
                Some(max) => base.clone_limited(max),
                None => (*base).clone(),
            };
            // What moves between polls.
            let now = snapshot::monotonic_ns();
            r.daemon.snapshot_age_ms = now.saturating_sub(taken) / 1_000_000;
            r.daemon.uptime_s = now.saturating_sub(started_mono_ns) / 1_000_000_000;
            r.daemon.last_reload = last_reload.lock().ok().and_then(|l| l.clone());
            r.export = export_status.get();
            r.scale.status_socket = socket_stats.get();
            r
        }
    };
    let report_fn: Arc<dyn Fn() -> StatusReport + Send + Sync> = {
        let current = current.clone();
        Arc::new(move || current(None))
    };
    // On its own thread: a slow or dead collector never delays the poll loop below.
    let exporter = crate::export::start(export_settings, report_fn.clone(), export_status)
        .context("starting export")?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The socket serves the busiest flows only; export still sees every flow.
    let served: Arc<dyn Fn() -> StatusReport + Send + Sync> =
        Arc::new(move || current(Some(crate::status::model::MAX_FLOWS_SERVED)));
    let server = tokio::spawn(status::server::serve(
        listener,
        served,
        socket_stats,
        shutdown_rx,
    ));
    info!(
        "monitoring; status on {} (poll every {} ms)",
        daemon_cfg.status_socket.display(),
        daemon_cfg.poll_interval_ms
    );

    let mut ticker = tokio::time::interval(Duration::from_millis(daemon_cfg.poll_interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // A deleted interface took our programs with it: attach again once it is back.
                if attach::reattach(&mut ebpf, &running, &mut ifaces)
                    && let Ok(mut l) = live_ifaces.lock()
                {
                    *l = ifaces.clone();
                }
                // Expired learned peers leave the tries before the snapshot, their flows
                // after it (see crate::learn::run).
                learning.expire(&mut ebpf);
                if analysis.skip_if_busy() {
                    continue;
                }
                match snapshot::take(&ebpf) {
                    Ok(mut s) => {
                        learning.after_snapshot(&mut ebpf, &mut s);
                        analysis.start(s, poll_info.clone(), ifaces.clone(), learn_view.clone());
                    }
                    Err(e) => error!("reading the maps failed: {e}; status shows the previous snapshot"),
                }
            }
            done = analysis.finished() => {
                if let Some(done) = done
                    && let Ok(mut p) = published.lock()
                {
                    *p = Published {
                        report: Arc::new(done.report),
                        taken_mono_ns: done.taken_mono_ns,
                    };
                }
            }
            _ = sigterm.recv() => { info!("SIGTERM: detaching"); break; }
            _ = sigint.recv() => { info!("SIGINT: detaching"); break; }
            _ = sighup.recv() => {
                let now_unix_s = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let (new, outcome) = reload::reload(&opts.config_path, &running, &mut ebpf, now_unix_s);
                if outcome.ok {
                    info!("SIGHUP: {}", outcome.message);
                } else {
                    error!("SIGHUP: {}", outcome.message);
                }
                if let Some(new) = new {
                    learning.set_config(&new.config.learn);
                    running = new;
                }
                if let Ok(mut l) = last_reload.lock() {
                    *l = Some(outcome);
                }
            }
            guard = learn_ring.readable_mut() => {
                if let Ok(mut guard) = guard {
                    // Left readable when a burst was not read whole, so the loop returns here.
                    if learning.drain(guard.get_inner_mut(), &mut ebpf) {
                        guard.clear_ready();
                    }
                }
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
    drop(exporter);
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
