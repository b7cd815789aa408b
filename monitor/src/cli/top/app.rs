//! The state of `monitor top` and its event loop: reports arrive from a fetching thread,
//! keys from the terminal; the screen is redrawn when either changes something.

use super::terminal::{Screen, stop_requested};
use super::ui;
use crate::report::calls::CallStatus;
use crate::status::client;
use crate::status::model::StatusReport;
use crate::status::render::calls::sort_worst_first;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Window values kept per call for its sparklines.
pub const HISTORY: usize = 30;
/// How long to wait for the daemon at each step.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the loop looks at keys and signals.
const TICK: Duration = Duration::from_millis(100);

/// How the calls are ordered (`s` cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Health, then the lowest recent MOS (the default).
    Worst,
    Loss,
    Jitter,
    Host,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Worst => Sort::Loss,
            Sort::Loss => Sort::Jitter,
            Sort::Jitter => Sort::Host,
            Sort::Host => Sort::Worst,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Worst => "worst MOS",
            Sort::Loss => "loss",
            Sort::Jitter => "jitter",
            Sort::Host => "host",
        }
    }
}

/// What the user sees and has chosen.
pub struct App {
    pub interval: Duration,
    pub report: Option<StatusReport>,
    /// The last fetch error and when the last report arrived.
    pub error: Option<String>,
    pub last_report: Option<Instant>,
    /// Per call ID: the recent window's loss (%) and jitter (ms), oldest first.
    pub history: HashMap<String, VecDeque<(f64, f64)>>,
    pub sort: Sort,
    pub filter: String,
    pub editing_filter: bool,
    pub selected: usize,
    /// The call opened with Enter.
    pub open: Option<String>,
    quit: bool,
}

impl App {
    pub fn new(interval: Duration) -> App {
        App {
            interval,
            report: None,
            error: None,
            last_report: None,
            history: HashMap::new(),
            sort: Sort::Worst,
            filter: String::new(),
            editing_filter: false,
            selected: 0,
            open: None,
            quit: false,
        }
    }

    /// Takes a fetch result: a report replaces the last one and extends the histories;
    /// an error is shown while the last report stays (marked stale).
    pub fn take(&mut self, fetched: Result<StatusReport, String>) {
        match fetched {
            Ok(report) => {
                for c in &report.calls {
                    let h = self.history.entry(c.id.clone()).or_default();
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    h.push_back((c.window.loss_pct, c.window.jitter_ms));
                }
                let active: Vec<&str> = report.calls.iter().map(|c| c.id.as_str()).collect();
                self.history.retain(|id, _| active.contains(&id.as_str()));
                self.report = Some(report);
                self.error = None;
                self.last_report = Some(Instant::now());
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// The calls shown: filtered by the text filter, in the chosen order.
    pub fn calls(&self) -> Vec<&CallStatus> {
        let Some(report) = &self.report else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut calls: Vec<&CallStatus> = report
            .calls
            .iter()
            .filter(|c| {
                needle.is_empty()
                    || [&c.id, &c.inner_addr, &c.peer_addr, &c.kind, &c.health]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&needle))
            })
            .collect();
        sort_worst_first(&mut calls);
        match self.sort {
            Sort::Worst => {}
            Sort::Loss => calls.sort_by(|a, b| b.window.loss_pct.total_cmp(&a.window.loss_pct)),
            Sort::Jitter => calls.sort_by(|a, b| b.window.jitter_ms.total_cmp(&a.window.jitter_ms)),
            Sort::Host => calls
                .sort_by(|a, b| (&a.inner_addr, a.inner_port).cmp(&(&b.inner_addr, b.inner_port))),
        }
        calls
    }

    /// Applies one key; returns true when something changed on screen.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        if key.kind == KeyEventKind::Release {
            return false;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return true;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if self.filter.len() < 64 => self.filter.push(c),
                _ => return false,
            }
            self.selected = 0;
            return true;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc if self.open.is_some() => self.open = None,
            KeyCode::Esc => self.quit = true,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.selected = 0;
            }
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Down | KeyCode::Char('j') => {
                let n = self.calls().len();
                if n > 0 {
                    self.selected = (self.selected + 1).min(n - 1);
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Enter => {
                self.open = self.calls().get(self.selected).map(|c| c.id.clone());
            }
            _ => return false,
        }
        true
    }
}

/// Fetches a report every `interval` (and at once when asked through `now`), sending
/// each result; ends when the receiver is gone.
fn fetcher(
    socket: PathBuf,
    interval: Duration,
    tx: mpsc::Sender<Result<StatusReport, String>>,
    now: mpsc::Receiver<()>,
) {
    loop {
        let fetched = client::fetch(&socket, FETCH_TIMEOUT).map_err(|e| e.to_string());
        if tx.send(fetched).is_err() {
            return;
        }
        match now.recv_timeout(interval) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The event loop, on the alternate screen until the user quits or a signal arrives.
pub fn run(socket: &Path, interval: Duration) -> std::io::Result<()> {
    let mut stdout = std::io::stdout();
    let screen = Screen::enter(&mut stdout)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout))?;
    let (tx, rx) = mpsc::channel();
    let (refresh, refresh_rx) = mpsc::channel();
    {
        let socket = socket.to_path_buf();
        std::thread::spawn(move || fetcher(socket, interval, tx, refresh_rx));
    }
    let mut app = App::new(interval);
    let mut dirty = true;
    let mut last_second = Instant::now();
    while !app.quit && !stop_requested() {
        while let Ok(fetched) = rx.try_recv() {
            app.take(fetched);
            dirty = true;
        }
        // The "updated N s ago" text moves once a second.
        if last_second.elapsed() >= Duration::from_secs(1) {
            last_second = Instant::now();
            dirty = true;
        }
        if dirty {
            terminal.draw(|frame| ui::draw(frame, &app))?;
            dirty = false;
        }
        if event::poll(TICK)? {
            match event::read()? {
                Event::Key(key) => {
                    if key.code == KeyCode::Char('r') && !app.editing_filter {
                        let _ = refresh.send(());
                    }
                    dirty |= app.key(key);
                }
                Event::Resize(_, _) => dirty = true,
                _ => {}
            }
        }
    }
    drop(terminal);
    drop(screen);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/status_ten_calls.json"
        ))
        .unwrap()
    }

    fn ids(app: &App) -> Vec<String> {
        app.calls().iter().map(|c| c.id.clone()).collect()
    }

    fn press(app: &mut App, code: KeyCode) -> bool {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn sorts_filters_opens_and_quits_by_key() {
        let mut app = App::new(Duration::from_secs(1));
        app.take(Ok(report()));
        assert_eq!(&ids(&app)[..3], ["c0a13333", "c0a11111", "c0a15555"]);
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(app.sort, Sort::Loss);
        assert_eq!(&ids(&app)[..2], ["c0a13333", "c0a11111"]);
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(ids(&app)[0], "c0a15555", "jitter 41.2 ms first");
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(ids(&app)[0], "c0a10000", "by host: 192.0.2.10 first");
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(app.sort, Sort::Worst);

        press(&mut app, KeyCode::Char('/'));
        for c in "video".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(ids(&app), ["c0a16666"]);
        press(&mut app, KeyCode::Char('/'));
        press(&mut app, KeyCode::Esc);
        assert_eq!(ids(&app).len(), 10, "Esc clears the filter");

        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.open.as_deref(), Some("c0a11111"));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.open, None);
        assert!(!app.quit);
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.quit);
    }

    #[test]
    fn history_keeps_the_last_windows_of_active_calls_and_errors_keep_the_report() {
        let mut app = App::new(Duration::from_secs(1));
        for i in 0..(HISTORY + 5) {
            let mut r = report();
            r.calls[3].window.loss_pct = i as f64;
            app.take(Ok(r));
        }
        let h = &app.history["c0a13333"];
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.front().unwrap().0, 5.0);
        assert_eq!(h.back().unwrap().0, (HISTORY + 4) as f64);
        app.take(Err("gone".into()));
        assert_eq!(app.error.as_deref(), Some("gone"));
        assert!(app.report.is_some(), "the last report stays (shown stale)");
        let mut r = report();
        r.calls.truncate(1);
        app.take(Ok(r));
        assert_eq!(app.history.len(), 1, "ended calls' histories are dropped");
        assert_eq!(app.error, None);
    }
}
