//! Show what the running daemon sees: interfaces, maps, counters and flows.
//!
//! Asks the daemon over its status socket (root-only: run with sudo). Exits 0 when a
//! report was shown and all is well, 1 on a warning, 2 on a critical anomaly, 3 when the
//! daemon cannot be reached, 64 on a bad --config.

use crate::config::{self, DEFAULT_STATUS_SOCKET};
use crate::exit;
use crate::status::client;
use crate::status::model::StatusReport;
use crate::status::render;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait for the daemon at each step.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Moves the cursor home and clears the terminal.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Show what the running daemon sees: interfaces, maps, counters and flows.
///
/// Asks the daemon over its status socket, which is root-only: run with sudo.
/// Exit status (health, for scripts and monitoring): 0 ok, 1 warning, 2 critical (the
/// worst open anomaly), 3 daemon not reachable, 64 unreadable --config.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the report as pretty JSON (the documented status schema) instead of text.
    #[arg(long)]
    pub json: bool,

    /// The daemon's status socket [default: /run/monitor/monitor.sock].
    #[arg(long, value_name = "PATH", env = "MONITOR_SOCKET")]
    pub socket: Option<PathBuf>,

    /// Take the socket from this config file's daemon.status_socket (overrides --socket
    /// and MONITOR_SOCKET). Only that key is read; the rest is not validated.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Redraw every --interval seconds until interrupted (Ctrl-C).
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

    /// Never colour the output. Colour is only used on a terminal, and never when the
    /// NO_COLOR environment variable is set.
    #[arg(long)]
    pub no_color: bool,
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
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let color = use_color(args.no_color, terminal, std::env::var_os("NO_COLOR"));
    if !args.watch {
        return match client::fetch(&socket, FETCH_TIMEOUT) {
            Ok(report) => {
                let _ = stdout
                    .lock()
                    .write_all(format(&report, args.json, color).as_bytes());
                crate::status::health::health(&report).exit_code()
            }
            Err(e) => {
                eprintln!("monitor status: {e}");
                exit::STATUS_UNAVAILABLE
            }
        };
    }
    let interval = Duration::from_secs(args.interval);
    loop {
        // Keep watching through daemon restarts: an error is one frame, not the end.
        let body = match client::fetch(&socket, FETCH_TIMEOUT) {
            Ok(report) => format(&report, args.json, color),
            Err(e) => format!("monitor status: {e}\n"),
        };
        let frame = watch_frame(&body, args.interval, terminal);
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

/// The socket to ask: from --config, else --socket / MONITOR_SOCKET, else the default.
fn socket_path(args: &StatusArgs) -> Result<PathBuf, config::ConfigError> {
    match (&args.config, &args.socket) {
        (Some(config), _) => config::read_status_socket(config),
        (None, Some(socket)) => Ok(socket.clone()),
        (None, None) => Ok(PathBuf::from(DEFAULT_STATUS_SOCKET)),
    }
}

/// Colour only on a terminal, unless --no-color or a non-empty NO_COLOR says otherwise.
fn use_color(no_color: bool, terminal: bool, no_color_env: Option<std::ffi::OsString>) -> bool {
    !no_color && terminal && no_color_env.is_none_or(|v| v.is_empty())
}

fn format(report: &StatusReport, json: bool, color: bool) -> String {
    if json {
        let mut text = serde_json::to_string_pretty(report)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"));
        text.push('\n');
        text
    } else {
        render::render(report, color)
    }
}

/// One --watch frame: the screen cleared first on a terminal, a blank line between
/// frames otherwise.
fn watch_frame(body: &str, interval_s: u64, terminal: bool) -> String {
    let lead = if terminal { CLEAR_SCREEN } else { "\n" };
    format!("{lead}every {interval_s} s (Ctrl-C to stop)\n{body}")
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
        let json = format(&report, true, false);
        assert!(json.starts_with("{\n  \"schema_version\": 1,\n"));
        assert_eq!(serde_json::from_str::<StatusReport>(&json).unwrap(), report);
        assert_eq!(
            format(&report, false, false),
            render::render(&report, false)
        );
    }

    #[test]
    fn watch_frames() {
        assert_eq!(
            watch_frame("body\n", 2, true),
            "\x1b[H\x1b[2Jevery 2 s (Ctrl-C to stop)\nbody\n"
        );
        assert_eq!(
            watch_frame("body\n", 5, false),
            "\nevery 5 s (Ctrl-C to stop)\nbody\n"
        );
    }
}
