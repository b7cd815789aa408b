//! The daemon: [`Daemon::build`] does everything fallible (bind the status socket, load,
//! attach through pinned links, start learning and export); [`Daemon::run`] is a loop of
//! events, each handled by one method; dropping the `Daemon` removes the socket.
//!
//! Stopping never detaches: the links are pinned (`kernel::attach`), so XDP and TC keep
//! counting and rewriting DSCP while the daemon is stopped, restarted, upgraded or dead,
//! and the next start swaps its programs in atomically. `monitor detach` (or
//! `run --unpin-on-exit`) removes them.

pub mod analysis;
pub mod detectors;
pub mod reload;
pub mod report;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use aya::Ebpf;
use log::{error, info, warn};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{Signal, SignalKind, signal},
    sync::watch,
};

use crate::{
    config::{DscpMode, ValidatedConfig},
    kernel::{attach, loader, pins, snapshot},
    status::{
        self,
        model::{InterfaceStatus, StatusReport},
    },
};

pub struct RunOptions {
    pub config_path: PathBuf,
    /// Detach and remove the pinned maps on exit (counters are then lost).
    pub unpin_on_exit: bool,
}

/// Runs until SIGINT or SIGTERM. The config is already validated.
pub fn run(cfg: ValidatedConfig, opts: RunOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let daemon = Daemon::build(cfg, opts).await?;
        daemon.run().await
    });
    // A report still being built is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

/// A poll's report and when its snapshot was taken: what the report hub holds.
struct Published {
    report: Arc<StatusReport>,
    taken_mono_ns: u64,
}

/// What wakes the loop; each is handled by one method.
enum Event {
    Tick,
    /// Boxed: a finished report is large, the other events are small.
    AnalysisDone(Option<Box<analysis::Done>>),
    Hup,
    Shutdown(&'static str),
    LearnReadable,
    LogReadable,
}

/// Removes the status socket file when dropped (also when start-up fails after binding).
struct SocketFile(PathBuf);

/// Removes the pins (maps, links, tail-call tables) of a first start when that start
/// fails, so a failed start leaves nothing behind; disarmed once the daemon is built.
struct FreshPins(Option<PathBuf>);

impl FreshPins {
    fn arm(dir: &std::path::Path) -> FreshPins {
        FreshPins(pins::fresh(dir).then(|| dir.to_path_buf()))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for FreshPins {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = pins::remove(dir);
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

pub struct Daemon {
    opts: RunOptions,
    running: ValidatedConfig,
    signals: Signals,
    ticker: tokio::time::Interval,
    /// The report hub: the last finished poll. The socket server and the exporter read
    /// it; only [`Daemon::on_analysis_done`] publishes.
    hub: watch::Sender<Arc<Published>>,
    info: Arc<report::StaticInfo>,
    /// The interfaces as they are now (they vanish, come back, go down).
    ifaces: Vec<InterfaceStatus>,
    last_reload: Arc<Mutex<Option<reload::ReloadStatus>>>,
    analysis: analysis::Analysis,
    learning: crate::learn::run::Learning,
    learn_ring: crate::learn::run::Ring,
    learn_view: Arc<Mutex<crate::learn::run::View>>,
    logger: Option<AsyncFd<aya_log::EbpfLogger<&'static dyn log::Log>>>,
    /// Tail-call tables of earlier loads, removed once this load's programs run
    /// everywhere (on the first tick).
    stale_stages: Vec<PathBuf>,
    server: Option<std::thread::JoinHandle<()>>,
    server_shutdown: watch::Sender<bool>,
    exporter: Option<crate::export::Exporter>,
    // Last: dropped after everything that uses the maps.
    ebpf: Ebpf,
    _socket: SocketFile,
}

impl Daemon {
    /// Everything fallible: signals, the status socket, loading and attaching, learning,
    /// export. On error nothing is left bound; attached links stay (pinned: the data
    /// path does not depend on this process).
    pub async fn build(cfg: ValidatedConfig, opts: RunOptions) -> anyhow::Result<Daemon> {
        let daemon_cfg = cfg.config.daemon.clone();
        // Signals first, so a SIGTERM during start-up is seen.
        let signals = Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        };
        // Bind the socket before touching the kernel: a second daemon stops here.
        let listener = status::server::bind(&daemon_cfg.status_socket).with_context(|| {
            format!(
                "cannot serve status on {}",
                daemon_cfg.status_socket.display()
            )
        })?;
        let socket = SocketFile(daemon_cfg.status_socket.clone());

        let started_mono_ns = snapshot::monotonic_ns();
        // A start that fails leaves nothing: pins this run created (with their links) go
        // again; an earlier run's pins keep their counters and data path.
        let mut fresh_pins = FreshPins::arm(&daemon_cfg.pin_path);
        let loaded = loader::load(&cfg).context("loading the kernel programs")?;
        let mut ebpf = loaded.ebpf;
        // Maps of another layout: copied before the swap, judged after it.
        let migration =
            crate::kernel::migrate::Migration::copy(&daemon_cfg.pin_path, &loaded.pins.replaced);
        let mut ifaces = attach::attach_all(&mut ebpf, &cfg)
            .context("attaching to the configured interfaces")?;
        let migrated = migration.finish();
        mark_rewrite(&cfg, &mut ifaces);
        let stale_stages = pins::stale_stage_dirs(&daemon_cfg.pin_path, &loaded.generation);

        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            // SAFETY: the logger owns its ring buffer fd and the AsyncFd owns the logger, so
            // the fd stays open as long as it is registered.
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
            started_at_unix_s: unix_now(),
            started_mono_ns,
            config_path: opts.config_path.display().to_string(),
            pin_path: daemon_cfg.pin_path.display().to_string(),
            poll_interval_ms: daemon_cfg.poll_interval_ms,
            adopted_pinned_maps: loaded.pins.adopted,
            pin_migrations: migrated,
            interfaces: ifaces.clone(),
            dscp: crate::dscp::Setup::from_config(&cfg),
            quality: cfg.config.quality.clone(),
        });
        // Learning peers by name (crate::learn): the sample ring is read in the loop.
        let (learning, learn_ring) = crate::learn::run::Learning::start(&mut ebpf, &cfg.config)
            .context("starting peer learning")?;
        let learn_view = learning.view();
        // Detectors run on each poll, off the loop; the status report shows their book.
        let analysis = {
            let dscp = info.dscp.clone();
            let cfg = cfg.clone();
            analysis::Analysis::new(move || {
                let mut d = detectors::Detectors::new(dscp.clone());
                d.set_failure_config(&cfg);
                d
            })
        };
        let export_settings =
            crate::config::export::resolve(&cfg.config.export, &|n| std::env::var(n).ok())
                .map_err(|p| anyhow::anyhow!("{}: {}", p.field, p.problem))?;
        let export_status = crate::export::StatusCell::new(&export_settings);

        // The first report, before anything is served.
        let hub = {
            let snap = snapshot::take(&ebpf).context("reading the maps")?;
            let mut report = analysis::build(&snap, &info, &ifaces, &learn_view);
            report.keep_shown_flows(
                crate::status::model::MAX_FLOWS_SERVED,
                crate::config::export::MAX_CALL_SERIES as usize,
            );
            watch::channel(Arc::new(Published {
                report: Arc::new(report),
                taken_mono_ns: snap.taken_mono_ns,
            }))
            .0
        };
        // Status requests and exports copy the hub's last report instead of building
        // their own from the maps (at a million flows that takes longer than a poll).
        let socket_stats = status::server::Stats::default();
        let current = {
            let hub = hub.subscribe();
            let export_status = export_status.clone();
            let socket_stats = socket_stats.clone();
            let last_reload: Arc<Mutex<Option<reload::ReloadStatus>>> = Arc::default();
            let reload_cell = last_reload.clone();
            let current = move |max_flows: Option<usize>| {
                let published = hub.borrow().clone();
                let mut r = match max_flows {
                    Some(max) => published.report.clone_limited(max),
                    None => (*published.report).clone(),
                };
                // What moves between polls.
                let now = snapshot::monotonic_ns();
                r.daemon.snapshot_age_ms = now.saturating_sub(published.taken_mono_ns) / 1_000_000;
                r.daemon.uptime_s = now.saturating_sub(started_mono_ns) / 1_000_000_000;
                r.daemon.last_reload = reload_cell.lock().ok().and_then(|l| l.clone());
                r.export = export_status.get();
                r.scale.status_socket = socket_stats.get();
                r
            };
            (current, last_reload)
        };
        let (current, last_reload) = current;
        let report_fn: Arc<dyn Fn() -> StatusReport + Send + Sync> = {
            let current = current.clone();
            Arc::new(move || current(None))
        };
        // On its own thread: a slow or dead collector never delays the loop.
        let exporter = crate::export::start(export_settings, report_fn, export_status)
            .context("starting export")?;
        let (server_shutdown, shutdown_rx) = watch::channel(false);
        // The socket serves the busiest flows only; export still sees every flow.
        let served: Arc<dyn Fn() -> StatusReport + Send + Sync> =
            Arc::new(move || current(Some(crate::status::model::MAX_FLOWS_SERVED)));
        // Its own thread: the map read on this loop never delays a status reply.
        let server = status::server::spawn_thread(listener, served, socket_stats, shutdown_rx)
            .context("starting the status socket thread")?;

        let mut ticker = tokio::time::interval(Duration::from_millis(daemon_cfg.poll_interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            "monitoring; status on {} (poll every {} ms)",
            daemon_cfg.status_socket.display(),
            daemon_cfg.poll_interval_ms
        );
        fresh_pins.disarm();
        Ok(Daemon {
            opts,
            running: cfg,
            signals,
            ticker,
            hub,
            info,
            ifaces,
            last_reload,
            analysis,
            learning,
            learn_ring,
            learn_view,
            logger,
            stale_stages,
            server: Some(server),
            server_shutdown,
            exporter,
            ebpf,
            _socket: socket,
        })
    }

    /// The loop: one event at a time, until SIGTERM or SIGINT.
    pub async fn run(mut self) -> anyhow::Result<()> {
        loop {
            match self.next_event().await {
                Event::Tick => self.on_tick(),
                Event::AnalysisDone(done) => self.on_analysis_done(done),
                Event::Hup => self.on_hup(),
                Event::LearnReadable => self.on_learn_readable().await,
                Event::LogReadable => self.on_log_readable().await,
                Event::Shutdown(signal) => {
                    info!(
                        "{signal}: stopping. XDP and TC stay attached and counting (pinned in \
                         {}); `monitor detach` removes them",
                        self.running.config.daemon.pin_path.display()
                    );
                    break;
                }
            }
        }
        self.shutdown().await
    }

    async fn next_event(&mut self) -> Event {
        tokio::select! {
            _ = self.ticker.tick() => Event::Tick,
            done = self.analysis.finished() => Event::AnalysisDone(done.map(Box::new)),
            _ = self.signals.term.recv() => Event::Shutdown("SIGTERM"),
            _ = self.signals.int.recv() => Event::Shutdown("SIGINT"),
            _ = self.signals.hup.recv() => Event::Hup,
            _ = self.learn_ring.readable() => Event::LearnReadable,
            _ = async {
                match self.logger.as_ref() {
                    Some(l) => l.readable().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => Event::LogReadable,
        }
    }

    /// A poll: follow the interfaces, expire learned peers, snapshot and analyse.
    fn on_tick(&mut self) {
        self.follow_interfaces();
        for dir in std::mem::take(&mut self.stale_stages) {
            if let Err(e) = pins::remove_tree(&dir) {
                warn!(
                    "cannot remove the earlier load's tables {}: {e}",
                    dir.display()
                );
            }
        }
        // Expired learned peers leave the tries before the snapshot, their flows after it
        // (see crate::learn::run).
        self.learning.expire(&mut self.ebpf);
        if self.analysis.skip_if_busy() {
            return;
        }
        match snapshot::take_into(&self.ebpf, self.analysis.take_buffer()) {
            Ok(mut s) => {
                self.learning.after_snapshot(&mut self.ebpf, &mut s);
                self.analysis.start(
                    s,
                    self.info.clone(),
                    self.ifaces.clone(),
                    self.learn_view.clone(),
                );
            }
            Err(e) => error!("reading the maps failed: {e}; status shows the previous snapshot"),
        }
    }

    /// Interfaces that appeared, vanished, came back or went down; a new ifindex gets
    /// the interface's DSCP policy.
    fn follow_interfaces(&mut self) {
        let moved = attach::follow(&mut self.ebpf, &self.running, &mut self.ifaces);
        if moved.is_empty() {
            mark_rewrite(&self.running, &mut self.ifaces);
            return;
        }
        self.running.ifindexes = self
            .ifaces
            .iter()
            .map(|i| {
                if i.state == attach::MISSING {
                    0
                } else {
                    i.ifindex
                }
            })
            .collect();
        if let Err(e) = crate::kernel::dscp::write_policy(&mut self.ebpf, &self.running) {
            error!("writing the DSCP policy of a new interface index failed: {e}");
        }
        mark_rewrite(&self.running, &mut self.ifaces);
    }

    fn on_analysis_done(&mut self, done: Option<Box<analysis::Done>>) {
        if let Some(done) = done {
            self.hub.send_replace(Arc::new(Published {
                report: Arc::new(done.report),
                taken_mono_ns: done.taken_mono_ns,
            }));
        }
    }

    fn on_hup(&mut self) {
        let (new, outcome) = reload::reload(
            &self.opts.config_path,
            &self.running,
            &mut self.ebpf,
            unix_now(),
        );
        if outcome.ok {
            info!("SIGHUP: {}", outcome.message);
        } else {
            error!("SIGHUP: {}", outcome.message);
        }
        if let Some(new) = new {
            self.learning.set_config(&new.config);
            self.running = new;
        }
        if let Ok(mut l) = self.last_reload.lock() {
            *l = Some(outcome);
        }
    }

    async fn on_learn_readable(&mut self) {
        // Ready already (the event said so): this does not wait.
        if let Ok(mut guard) = self.learn_ring.readable_mut().await {
            // Left readable when a burst was not read whole, so the loop returns here.
            if self.learning.drain(guard.get_inner_mut(), &mut self.ebpf) {
                guard.clear_ready();
            }
        }
    }

    async fn on_log_readable(&mut self) {
        if let Some(logger) = self.logger.as_mut()
            && let Ok(mut guard) = logger.readable_mut().await
        {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }

    /// Stops serving and exporting; with `--unpin-on-exit` also detaches and removes the
    /// pins. The rest is `Drop`.
    async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.server_shutdown.send(true);
        if let Some(server) = self.server.take() {
            // It stops at once (between requests); join off the loop all the same.
            let _ = tokio::task::spawn_blocking(move || server.join()).await;
        }
        drop(self.exporter.take());
        let pin_path = self.running.config.daemon.pin_path.clone();
        if self.opts.unpin_on_exit {
            for iface in &self.running.config.interfaces {
                attach::detach_netlink(&iface.name);
            }
            drop(self);
            pins::remove(&pin_path)
                .with_context(|| format!("removing the pins in {}", pin_path.display()))?;
            info!("detached; pinned maps and links removed");
        } else {
            drop(self);
            info!(
                "stopped; links and maps kept in {} for the next start",
                pin_path.display()
            );
        }
        Ok(())
    }
}

/// Sets each interface's `dscp_rewrite`: rewrite configured on egress and the TC
/// program attached.
fn mark_rewrite(cfg: &ValidatedConfig, ifaces: &mut [InterfaceStatus]) {
    for (iface, status) in cfg.config.interfaces.iter().zip(ifaces.iter_mut()) {
        status.dscp_rewrite = iface.dscp_egress == DscpMode::Rewrite
            && (status.state == attach::ATTACHED || status.state == attach::DOWN);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
