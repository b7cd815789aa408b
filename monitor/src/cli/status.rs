//! Show what the running daemon sees. The default view fits one screen: the health
//! line with its reason, the active calls worst first, the anomalies grouped by finding.
//! Sub-views (`calls`, `records`, `anomalies`, `flows`, `peers`, `interfaces`, `full`)
//! and `call ID` show one part in depth; `--host`, `--peer`, `--severity` and `--since`
//! filter them.
//!
//! Asks the daemon over its status socket (root-only: run with sudo). Exits 0 when all
//! is well, 1 on a warning, 2 on a critical — the site's health, or with a filter (or
//! `call ID`) the worst health among what is shown (0 when nothing matches) — 3 when the
//! daemon cannot be reached, 64 on a usage error (bad --config, unknown call ID).

use crate::anomaly::Severity;
use crate::config::{self, DEFAULT_STATUS_SOCKET};
use crate::exit;
use crate::status::client;
use crate::status::health::{Health, health};
use crate::status::model::StatusReport;
use crate::status::render::call::{self as call_view, Found};
use crate::status::render::filter::{self, Filter, call_health};
use crate::status::render::fit::wrap;
use crate::status::render::views::{self, View};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait for the daemon at each step.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// --watch on a terminal: cursor home (the frame overwrites the last in place).
const HOME: &str = "\x1b[H";
/// Erase the rest of the line / of the screen after a shorter frame.
const ERASE_LINE: &str = "\x1b[K";
const ERASE_BELOW: &str = "\x1b[J";
/// Width when neither the terminal nor $COLUMNS says.
const DEFAULT_WIDTH: usize = 80;

/// Show what the running daemon sees: health, calls and anomalies at a glance.
///
/// `monitor status` fits one screen; `monitor status VIEW` shows one part in full;
/// `monitor status call ID` one call in depth (the ID is in every call row). Asks the
/// daemon over its status socket, which is root-only: run with sudo.
/// Exit status: 0 ok, 1 warning, 2 critical (the site's health; with a filter or a
/// call ID, the worst among what is shown, 0 when nothing matches), 3 daemon not
/// reachable, 64 usage error (unreadable --config, unknown call ID).
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// What to show [default: the one-screen summary].
    #[arg(value_enum)]
    pub view: Option<View>,

    /// The call ID for `monitor status call ID`.
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Only calls, records and flows of this inner host, and anomalies naming it.
    #[arg(long, value_name = "ADDR")]
    pub host: Option<String>,

    /// Only calls, records, flows and learned peers with this Webex peer, and anomalies
    /// naming it.
    #[arg(long, value_name = "ADDR")]
    pub peer: Option<String>,

    /// Only calls, records and anomalies at this level or worse (info, warning,
    /// critical).
    #[arg(long, value_name = "LEVEL", value_parser = filter::parse_severity)]
    pub severity: Option<Severity>,

    /// Only anomalies seen and records ended this recently, e.g. 90s, 15m, 2h, 1d
    /// (active calls are always shown).
    #[arg(long, value_name = "SPAN", value_parser = filter::parse_since)]
    pub since: Option<u64>,

    /// Print the report as pretty JSON (the documented status schema) instead of text;
    /// filtered when a filter is given; `call ID` prints that call.
    #[arg(long)]
    pub json: bool,

    /// The daemon's status socket [default: /run/monitor/monitor.sock].
    #[arg(long, value_name = "PATH", env = "MONITOR_SOCKET")]
    pub socket: Option<PathBuf>,

    /// Take the socket from this config file's daemon.status_socket (overrides --socket
    /// and MONITOR_SOCKET). Only that key is read; the rest is not validated.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Redraw every --interval seconds until interrupted (Ctrl-C), in place; with
    /// --json, one report per line (NDJSON).
    #[arg(long)]
    pub watch: bool,

    /// Seconds between redraws with --watch (1 to 3600).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        requires = "watch",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub interval: u64,

    /// Fit the text to this many columns [default: the terminal's width, else $COLUMNS,
    /// else 80].
    #[arg(long, value_name = "COLS", value_parser = clap::value_parser!(u16).range(40..))]
    pub width: Option<u16>,

    /// Never colour the output. Colour is only used on a terminal, and never when the
    /// NO_COLOR environment variable is set.
    #[arg(long)]
    pub no_color: bool,
}

impl StatusArgs {
    fn filter(&self) -> Filter {
        Filter {
            host: self.host.clone(),
            peer: self.peer.clone(),
            severity: self.severity,
            since_s: self.since,
        }
    }
}

/// One rendering of a report: what to print and the exit status it stands for.
struct Shown {
    text: String,
    code: i32,
}

/// Runs `monitor status`; returns the process exit status.
pub fn execute(args: StatusArgs) -> i32 {
    let socket = match socket_path(&args) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("monitor status: {e}");
            return exit::USAGE;
        }
    };
    match (args.view, &args.id) {
        (Some(View::Call), None) => {
            eprintln!("monitor status: `call` needs a call ID (see `monitor status calls`)");
            return exit::USAGE;
        }
        (view, Some(id)) if view != Some(View::Call) => {
            eprintln!(
                "monitor status: unexpected argument {id:?} (only `monitor status call ID` \
                 takes an ID)"
            );
            return exit::USAGE;
        }
        _ => {}
    }
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let color = use_color(args.no_color, terminal, std::env::var_os("NO_COLOR"));
    if !args.watch {
        return match client::fetch(&socket, FETCH_TIMEOUT) {
            Ok(report) => {
                let width = width(args.width, terminal);
                match show(&args, &report, width, color, true) {
                    Ok(shown) => {
                        let _ = stdout.lock().write_all(shown.text.as_bytes());
                        shown.code
                    }
                    Err(message) => {
                        eprintln!("monitor status: {message}");
                        exit::USAGE
                    }
                }
            }
            Err(e) => {
                eprintln!("monitor status: {e}");
                exit::STATUS_UNAVAILABLE
            }
        };
    }
    let interval = Duration::from_secs(args.interval);
    loop {
        let width = width(args.width, terminal);
        // Keep watching through daemon restarts: an error is one frame, not the end.
        let body = match client::fetch(&socket, FETCH_TIMEOUT) {
            Ok(report) => show(&args, &report, width, color, false).map(|s| s.text),
            Err(e) => Err(e.to_string()),
        };
        let frame = match (body, args.json) {
            (Ok(text), true) => text,
            (Err(message), true) => {
                // NDJSON: nothing but reports on stdout.
                eprintln!("monitor status: {message}");
                String::new()
            }
            (body, false) => {
                // The reason word-wrapped to the width: long paths are in it.
                let body = body.unwrap_or_else(|m| {
                    let mut text = wrap(&format!("monitor status: {m}"), "", width, 8).join("\n");
                    text.push('\n');
                    text
                });
                let rows = crossterm::terminal::size()
                    .ok()
                    .map(|(_, rows)| usize::from(rows));
                watch_frame(&body, args.interval, terminal.then_some(rows).flatten())
            }
        };
        let mut out = stdout.lock();
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (e.g. `| head`): nothing more to do.
            return exit::OK;
        }
        drop(out);
        std::thread::sleep(interval);
    }
}

/// The text (or JSON; one line when not `pretty`) of the view asked for, and its exit
/// status; an unknown call ID is an error.
fn show(
    args: &StatusArgs,
    report: &StatusReport,
    width: usize,
    color: bool,
    pretty: bool,
) -> Result<Shown, String> {
    let encode = |value: &dyn erased::Json| value.encode(pretty);
    if let (Some(View::Call), Some(id)) = (args.view, &args.id) {
        let found = call_view::find(report, id).ok_or_else(|| {
            format!(
                "no call with ID {id:?}: {} active, {} recorded (see `monitor status calls` \
                 and `monitor status records`)",
                report.calls.len(),
                report.call_records.len()
            )
        })?;
        let code = call_health(found.health()).exit_code();
        let text = match (&found, args.json) {
            (Found::Active(c), true) => encode(*c),
            (Found::Ended(r), true) => encode(*r),
            (_, false) => call_view::render(report, &found, width, color),
        };
        return Ok(Shown { text, code });
    }
    let filter = args.filter();
    let filtered;
    let (shown, code) = if filter.is_active() {
        filtered = filter.apply(report);
        let code = shown_health(args.view, &filtered).exit_code();
        (&filtered, code)
    } else {
        (report, health(report).exit_code())
    };
    let text = if args.json {
        encode(shown)
    } else {
        views::render(args.view, shown, width, color)
    };
    Ok(Shown { text, code })
}

/// Serialising the different things `--json` prints, pretty or as one NDJSON line.
mod erased {
    pub trait Json {
        fn encode(&self, pretty: bool) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn encode(&self, pretty: bool) -> String {
            let text = if pretty {
                serde_json::to_string_pretty(self)
            } else {
                serde_json::to_string(self)
            };
            let mut text = text
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"));
            text.push('\n');
            text
        }
    }
}

/// The worst health among the rows a filtered view shows (ok when nothing matches).
fn shown_health(view: Option<View>, r: &StatusReport) -> Health {
    let calls = || r.calls.iter().map(|c| call_health(&c.health)).max();
    let records = || {
        r.call_records
            .iter()
            .map(|c| call_health(&c.worst_health))
            .max()
    };
    // The filtered report holds only the anomalies shown: its health is theirs.
    let anomalies = || Some(health(r));
    let worst = match view {
        None | Some(View::Full) => calls().max(anomalies()),
        Some(View::Calls) => calls(),
        Some(View::Records) => records(),
        Some(View::Anomalies) => anomalies(),
        Some(View::Flows | View::Peers | View::Interfaces | View::Call) => None,
    };
    worst.unwrap_or(Health::Ok)
}

/// Columns to fit: --width, else the terminal's, else $COLUMNS, else 80.
pub(crate) fn width(asked: Option<u16>, terminal: bool) -> usize {
    if let Some(w) = asked {
        return usize::from(w);
    }
    if terminal
        && let Ok((cols, _)) = crossterm::terminal::size()
        && cols >= 20
    {
        return usize::from(cols);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(DEFAULT_WIDTH)
}

/// The socket to ask: from --config, else --socket / MONITOR_SOCKET, else the default.
fn socket_path(args: &StatusArgs) -> Result<PathBuf, config::ConfigError> {
    resolve_socket(args.config.as_deref(), args.socket.as_deref())
}

/// The socket from `--config`, else `--socket` / MONITOR_SOCKET, else the default (also
/// for `monitor top`).
pub(crate) fn resolve_socket(
    config: Option<&std::path::Path>,
    socket: Option<&std::path::Path>,
) -> Result<PathBuf, config::ConfigError> {
    match (config, socket) {
        (Some(config), _) => config::read_status_socket(config),
        (None, Some(socket)) => Ok(socket.to_path_buf()),
        (None, None) => Ok(PathBuf::from(DEFAULT_STATUS_SOCKET)),
    }
}

/// Colour only on a terminal, unless --no-color or a non-empty NO_COLOR says otherwise.
fn use_color(no_color: bool, terminal: bool, no_color_env: Option<std::ffi::OsString>) -> bool {
    !no_color && terminal && no_color_env.is_none_or(|v| v.is_empty())
}

/// One --watch frame. On a terminal (`rows` tall) it overwrites the last in place:
/// cursor home, each line erased to its end as it is written, the rest of the screen
/// erased after the frame (never a full-screen clear, so nothing flickers); a frame
/// taller than the terminal is cut (scrolling would break the next redraw). Piped
/// (`None`), frames follow each other after a blank line.
fn watch_frame(body: &str, interval_s: u64, rows: Option<usize>) -> String {
    let title = format!("every {interval_s} s (Ctrl-C to stop)");
    let Some(rows) = rows else {
        return format!("\n{title}\n{body}");
    };
    let mut lines: Vec<&str> = std::iter::once(title.as_str())
        .chain(body.lines())
        .collect();
    let more;
    if lines.len() > rows.max(2) {
        more = format!(
            "... {} more lines: a taller terminal shows them",
            lines.len() - rows + 1
        );
        lines.truncate(rows - 1);
        lines.push(&more);
    }
    let mut frame = String::from(HOME);
    for (i, line) in lines.iter().enumerate() {
        frame.push_str(line);
        frame.push_str(ERASE_LINE);
        // No newline after the last row: it would scroll a full screen.
        if i + 1 < lines.len() {
            frame.push_str("\r\n");
        }
    }
    frame.push_str(ERASE_BELOW);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::client::ClientError;
    use crate::status::render::tests::sample_report;
    use crate::status::server::testing::{TestServer, temp_dir};
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: StatusArgs,
    }

    fn parse(argv: &[&str]) -> Result<StatusArgs, String> {
        let argv = std::iter::once("status").chain(argv.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.args)
            .map_err(|e| e.kind().to_string())
    }

    #[test]
    fn arguments_and_defaults() {
        let a = parse(&[]).unwrap();
        assert!(!a.json && !a.watch && !a.no_color);
        assert_eq!(a.interval, 2);
        assert_eq!(a.config, None);
        if std::env::var_os("MONITOR_SOCKET").is_none() {
            assert_eq!(
                socket_path(&a).unwrap(),
                PathBuf::from("/run/monitor/monitor.sock")
            );
        }
        let a = parse(&[
            "--json",
            "--watch",
            "--interval",
            "10",
            "--socket",
            "/tmp/s",
        ])
        .unwrap();
        assert!(a.json && a.watch);
        assert_eq!(a.interval, 10);
        assert_eq!(socket_path(&a).unwrap(), PathBuf::from("/tmp/s"));
        assert_eq!(
            parse(&["--interval", "5"]).unwrap_err(),
            "one or more required arguments were not provided"
        );
        assert_eq!(
            parse(&["--watch", "--interval", "0"]).unwrap_err(),
            "invalid value for one of the arguments"
        );
    }

    #[test]
    fn config_names_the_socket() {
        let dir = temp_dir("cli-status");
        let path = dir.join("monitor.toml");
        std::fs::write(&path, "[daemon]\nstatus_socket = \"/tmp/elsewhere.sock\"\n").unwrap();
        let a = parse(&["--config", path.to_str().unwrap(), "--socket", "/tmp/s"]).unwrap();
        let socket = socket_path(&a);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(socket.unwrap(), PathBuf::from("/tmp/elsewhere.sock"));
    }

    #[test]
    fn exit_statuses() {
        let server = TestServer::start(sample_report());
        let run = |argv: &[&str]| execute(parse(argv).unwrap());
        let socket = server.path.to_str().unwrap();
        assert_eq!(run(&["--socket", socket]), exit::OK);
        assert_eq!(run(&["--socket", socket, "--json", "--no-color"]), exit::OK);
        let missing = server.dir.join("missing.sock");
        assert_eq!(
            run(&["--socket", missing.to_str().unwrap()]),
            exit::STATUS_UNAVAILABLE
        );
        assert!(matches!(
            client::fetch(&missing, FETCH_TIMEOUT),
            Err(ClientError::NotRunning(_))
        ));
        assert_eq!(run(&["--config", "/nonexistent/monitor.toml"]), exit::USAGE);
    }

    #[test]
    fn exit_status_follows_health() {
        use crate::anomaly::Severity;
        for (severity, code) in [
            (None, 0),
            (Some(Severity::Info), 0),
            (Some(Severity::Warning), 1),
            (Some(Severity::Critical), 2),
        ] {
            let mut report = sample_report();
            if let Some(severity) = severity {
                report.anomalies = vec![crate::anomaly::Anomaly {
                    id: "test".into(),
                    severity,
                    subject: "wan0".into(),
                    summary: "s".into(),
                    evidence: Vec::new(),
                    remediation: "r".into(),
                    first_seen_unix_s: 1,
                    last_seen_unix_s: 2,
                    cleared_unix_s: None,
                }];
            }
            let server = TestServer::start(report);
            let socket = server.path.to_str().unwrap();
            let code_of = |argv: &[&str]| execute(parse(argv).unwrap());
            assert_eq!(code_of(&["--socket", socket]), code, "{severity:?}");
            assert_eq!(code_of(&["--socket", socket, "--json"]), code);
        }
    }

    #[test]
    fn colour_rules() {
        assert!(use_color(false, true, None));
        assert!(!use_color(true, true, None));
        assert!(!use_color(false, false, None));
        assert!(!use_color(false, true, Some("1".into())));
        assert!(use_color(false, true, Some("".into())));
    }

    #[test]
    fn json_is_the_report_and_text_is_the_rendering() {
        let report = sample_report();
        let json = show(&parse(&["--json"]).unwrap(), &report, 80, false, true).unwrap();
        assert!(json.text.starts_with("{\n  \"schema_version\": 1,\n"));
        assert_eq!(
            serde_json::from_str::<StatusReport>(&json.text).unwrap(),
            report
        );
        // --watch --json: one line per report.
        let line = show(&parse(&["--json"]).unwrap(), &report, 80, false, false).unwrap();
        assert_eq!(line.text.matches('\n').count(), 1);
        assert_eq!(
            serde_json::from_str::<StatusReport>(&line.text).unwrap(),
            report
        );
        let text = show(&parse(&[]).unwrap(), &report, 80, false, true).unwrap();
        assert_eq!(text.text, views::render(None, &report, 80, false));
    }

    #[test]
    fn watch_frames() {
        // In place: home, each line erased to its end, the rest erased; never `2J`.
        assert_eq!(
            watch_frame("body\nmore\n", 2, Some(40)),
            "\x1b[Hevery 2 s (Ctrl-C to stop)\x1b[K\r\nbody\x1b[K\r\nmore\x1b[K\x1b[J"
        );
        // Taller than the terminal: cut, with a note, never scrolled.
        assert_eq!(
            watch_frame("1\n2\n3\n4\n", 2, Some(3)),
            "\x1b[Hevery 2 s (Ctrl-C to stop)\x1b[K\r\n1\x1b[K\r\n\
             ... 3 more lines: a taller terminal shows them\x1b[K\x1b[J"
        );
        assert_eq!(
            watch_frame("body\n", 5, None),
            "\nevery 5 s (Ctrl-C to stop)\nbody\n"
        );
    }
}
