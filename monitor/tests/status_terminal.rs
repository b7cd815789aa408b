//! `monitor top` and `monitor status --watch` in a real terminal (tmux, installed by
//! `cargo xtask setup`): the screens are captured and asserted (health line, calls worst
//! first), the raw output is recorded (no full-screen clear between frames), and the
//! terminal is checked after quitting, Ctrl-C and SIGINT (alternate screen left, the
//! shell's text back, stty modes as before). `--watch --json` is read line by line with
//! `jq`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monitor::status::model::StatusReport;

mod status_fake;
use status_fake::{FakeDaemon, ten_calls};
use xtask::TempDir;

/// A tmux server of this test alone (its own socket), killed on drop.
struct Tmux {
    server: String,
    dir: TempDir,
}

const SESSION: &str = "t";

impl Tmux {
    /// Runs `command` (through sh) in a detached 100x36 window.
    fn start(tag: &str, command: &str) -> Tmux {
        Self::start_sized(tag, command, 36)
    }

    /// Runs `command` (through sh) in a detached window 100 wide and `rows` tall.
    fn start_sized(tag: &str, command: &str, rows: u16) -> Tmux {
        let server = format!("monitor-test-{}-{tag}", std::process::id());
        let dir = TempDir::new().unwrap();
        let t = Tmux { server, dir };
        let script = t.dir.join("run.sh");
        std::fs::write(&script, command).unwrap();
        // UTF-8 whatever the locale of the run (the sparklines and borders are not ASCII).
        let ok = Command::new("tmux")
            .env("LANG", "C.UTF-8")
            .args([
                "-u",
                "-L",
                &t.server,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                SESSION,
            ])
            .args(["-x", "100", "-y", &rows.to_string()])
            .arg(format!("TERM=xterm-256color sh {}", script.display()))
            .status()
            .expect("tmux (installed by `cargo xtask setup`)");
        assert!(ok.success());
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .env("LANG", "C.UTF-8")
            .args(["-u", "-L", &self.server])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", SESSION])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend(keys);
        self.tmux(&args);
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", SESSION, "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Waits (bounded) until the screen satisfies `what`; returns that screen.
    fn wait(&self, why: &str, what: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if what(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {why}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Records the pane's raw output from now on into a file.
    fn record(&self) -> PathBuf {
        let path = self.dir.join("raw");
        self.tmux(&[
            "pipe-pane",
            "-o",
            "-t",
            SESSION,
            &format!("cat >> {}", path.display()),
        ]);
        path
    }

    /// The pid of the program the pane's shell runs.
    fn child_pid(&self) -> i32 {
        let shell: i32 = self
            .tmux(&["display-message", "-p", "-t", SESSION, "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .expect("a child")
            .parse()
            .unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.server, "kill-server"])
            .status();
    }
}

/// The shell around the program: a marker before, the exit status and the terminal
/// modes before and after, then a pause so the screen can be read. The shell survives
/// the Ctrl-C meant for the program (its trap is reset in the program).
fn wrapped(dir_note: &Path, program: &str) -> String {
    format!(
        "trap : INT; stty -g > {d}/before; echo SHELL-TEXT-BEFORE; {program}; echo EXIT=$?; \
         stty -g > {d}/after; sleep 120\n",
        d = dir_note.display()
    )
}

fn monitor() -> &'static str {
    env!("CARGO_BIN_EXE_monitor")
}

/// Ten calls whose worst call gets worse with every report (a new frame each time).
fn changing_reports() -> Vec<StatusReport> {
    (0..40u64)
        .map(|i| {
            let mut r = ten_calls();
            let worst = r.calls.iter_mut().find(|c| c.id == "c0a13333").unwrap();
            worst.window.loss_pct = 12.0 + i as f64;
            r.daemon.uptime_s += i;
            r
        })
        .collect()
}

fn call_ids(screen: &str) -> Vec<String> {
    screen
        .lines()
        .map(|l| l.trim_start_matches(['│', ' ']))
        .filter(|l| l.starts_with("c0a1"))
        .map(|l| l[..8].to_string())
        .collect()
}

const WORST_FIRST: [&str; 10] = [
    "c0a13333", "c0a11111", "c0a15555", "c0a17777", "c0a12222", "c0a18888", "c0a19999", "c0a10000",
    "c0a14444", "c0a16666",
];

fn assert_restored(t: &Tmux, notes: &Path, exit: &str) {
    let screen = t.wait("the shell after exit", |s| s.contains("EXIT="));
    assert!(screen.contains(&format!("EXIT={exit}")), "{screen}");
    assert!(
        screen.contains("SHELL-TEXT-BEFORE"),
        "main screen not back:\n{screen}"
    );
    assert!(
        !screen.contains("CALLS ("),
        "the view stayed on screen:\n{screen}"
    );
    assert!(!t.alternate_screen(), "still on the alternate screen");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !notes.join("after").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(notes.join("before")).unwrap(),
        std::fs::read_to_string(notes.join("after")).unwrap(),
        "terminal modes (stty) not restored"
    );
}

#[test]
fn top_shows_health_and_calls_worst_first_and_takes_keys() {
    let daemon = FakeDaemon::serve_sequence(&changing_reports());
    let notes = TempDir::new().unwrap();
    let program = format!(
        "{} top --interval 1 --socket {}",
        monitor(),
        daemon.path.display()
    );
    let t = Tmux::start("keys", &wrapped(notes.path(), &program));
    let screen = t.wait("the calls", |s| call_ids(s).len() == 10);
    assert!(t.alternate_screen());
    assert!(
        screen
            .lines()
            .next()
            .unwrap()
            .starts_with("HEALTH CRITICAL  3 of 10 calls not ok")
    );
    assert_eq!(call_ids(&screen), WORST_FIRST);
    assert!(
        screen.contains("INTERFACES lan0 (lan) attached  wan0 (wan) attached"),
        "{screen}"
    );
    assert!(screen.contains("CRITICAL call_loss x2"), "{screen}");

    // No full-screen clear between frames: record a few refreshes.
    let raw = t.record();
    let first = t.screen();
    t.wait("two more refreshes", |s| {
        s != first && ["14.0", "15.0", "16.0"].iter().any(|v| s.contains(v))
    });
    std::thread::sleep(Duration::from_millis(2100));
    let bytes = std::fs::read(&raw).unwrap();
    assert!(!bytes.is_empty(), "nothing recorded");
    assert!(
        !bytes.windows(4).any(|w| w == b"\x1b[2J"),
        "a full-screen clear between frames"
    );

    // Sparklines: the worst call's loss (12 % and more, scaled to 10 %) is a full bar.
    let screen = t.screen();
    let worst_row = screen.lines().find(|l| l.contains("c0a13333")).unwrap();
    assert!(worst_row.contains("███"), "{worst_row}");
    let clean_row = screen.lines().find(|l| l.contains("c0a10000")).unwrap();
    assert!(
        clean_row.contains("▁▁") && !clean_row.contains('█'),
        "{clean_row}"
    );

    // s: sort by loss; / filter; Enter opens the selected call.
    t.keys(&["s"]);
    t.wait("sort by loss", |s| s.contains("by loss"));
    t.keys(&["/", "192.0.2.11", "Enter"]);
    let screen = t.wait("the filter", |s| call_ids(s).len() == 2);
    assert_eq!(call_ids(&screen), ["c0a11111", "c0a14444"]);
    t.keys(&["Enter"]);
    // The whole frame: tmux can be read while the view is still being drawn.
    let screen = t.wait("the drill-down", |s| {
        s.starts_with("CALL c0a11111")
            && s.contains("WHERE THE LOSS HAPPENS")
            && s.contains("WINDOW HISTORY")
    });
    assert!(screen.starts_with("CALL c0a11111"), "{screen}");
    assert!(screen.contains("WINDOW HISTORY"), "{screen}");
    t.keys(&["Escape"]);
    t.wait("the list again", |s| call_ids(s).len() == 2);
    t.keys(&["q"]);
    assert_restored(&t, notes.path(), "0");
}

#[test]
fn top_restores_the_terminal_after_ctrl_c_and_sigint() {
    let daemon = FakeDaemon::serve(&ten_calls());
    for how in ["ctrl-c", "sigint"] {
        let notes = TempDir::new().unwrap();
        let program = format!(
            "{} top --interval 1 --socket {}",
            monitor(),
            daemon.path.display()
        );
        let t = Tmux::start(how, &wrapped(notes.path(), &program));
        t.wait("the calls", |s| call_ids(s).len() == 10);
        assert!(t.alternate_screen());
        match how {
            "ctrl-c" => t.keys(&["C-c"]),
            _ => {
                let pid = t.child_pid();
                // SAFETY: a plain kill(2) of the monitor process this test started.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
            }
        }
        assert_restored(&t, notes.path(), "0");
    }
}

#[test]
fn top_says_when_the_daemon_goes_away_and_keeps_retrying() {
    let daemon = FakeDaemon::serve(&ten_calls());
    let notes = TempDir::new().unwrap();
    let program = format!(
        "{} top --interval 1 --socket {}",
        monitor(),
        daemon.path.display()
    );
    let t = Tmux::start("gone", &wrapped(notes.path(), &program));
    t.wait("the calls", |s| call_ids(s).len() == 10);
    drop(daemon);
    let screen = t.wait("the daemon-gone message", |s| {
        s.contains("daemon not reachable, retrying every 1 s")
    });
    assert!(
        screen.contains("stale"),
        "the last calls marked stale:\n{screen}"
    );
    t.keys(&["q"]);
    assert_restored(&t, notes.path(), "0");
}

#[test]
fn status_watch_redraws_in_place() {
    let daemon = FakeDaemon::serve_sequence(&changing_reports());
    let notes = TempDir::new().unwrap();
    let program = format!(
        "{} status --watch --interval 1 --socket {}",
        monitor(),
        daemon.path.display()
    );
    let t = Tmux::start("watch", &wrapped(notes.path(), &program));
    let raw = t.record();
    let screen = t.wait("a frame", |s| call_ids(s).len() == 10);
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines[0], "every 1 s (Ctrl-C to stop)");
    assert!(lines[2].starts_with("HEALTH CRITICAL"), "{screen}");
    assert_eq!(call_ids(&screen), WORST_FIRST);
    // Three more frames, each drawn over the last.
    t.wait("later frames", |s| s.contains(" 15.0 "));
    let bytes = std::fs::read(&raw).unwrap();
    let homes = bytes.windows(3).filter(|w| w == b"\x1b[H").count();
    assert!(homes >= 3, "{homes} frames");
    assert!(
        !bytes.windows(4).any(|w| w == b"\x1b[2J"),
        "a full-screen clear"
    );
    let screen = t.screen();
    assert_eq!(
        screen.matches("HEALTH CRITICAL").count(),
        1,
        "frames piled up:\n{screen}"
    );
    t.keys(&["C-c"]);
    let screen = t.wait("the shell", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=130"), "{screen}");
}

#[test]
fn status_watch_says_when_the_daemon_goes_away_and_recovers_the_frame() {
    let daemon = FakeDaemon::serve(&ten_calls());
    let notes = TempDir::new().unwrap();
    let program = format!(
        "{} status --watch --interval 1 --socket {}",
        monitor(),
        daemon.path.display()
    );
    let t = Tmux::start("watch-gone", &wrapped(notes.path(), &program));
    t.wait("a frame", |s| call_ids(s).len() == 10);
    drop(daemon);
    // The next frame replaces the whole report with the reason, nothing left over.
    let screen = t.wait("the reason", |s| {
        s.contains("the monitor daemon is not running")
    });
    let lines: Vec<&str> = screen.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "every 1 s (Ctrl-C to stop)");
    assert!(lines[1].starts_with("monitor status: the monitor daemon is not running"));
    assert!(
        !screen.contains("HEALTH") && call_ids(&screen).is_empty(),
        "{screen}"
    );
    // Word-wrapped to the terminal, not cut by it: each line ends at a word.
    assert!(lines.iter().all(|l| l.chars().count() < 100), "{screen}");
    assert!(lines.len() <= 4, "{screen}");
    t.keys(&["C-c"]);
    t.wait("the shell", |s| s.contains("EXIT=130"));
}

#[test]
fn status_watch_in_a_short_terminal_keeps_health_and_the_worst_calls_on_screen() {
    let daemon = FakeDaemon::serve(&ten_calls());
    let notes = TempDir::new().unwrap();
    let program = format!(
        "{} status --watch --interval 1 --socket {}",
        monitor(),
        daemon.path.display()
    );
    let t = Tmux::start_sized("short", &wrapped(notes.path(), &program), 12);
    // Two frames drawn: the first line is still the title (nothing scrolled away).
    let raw = t.record();
    let screen = t.wait("a cut frame", |s| {
        s.contains("more lines: a taller terminal")
    });
    t.wait("a second frame", |_| {
        std::fs::read(&raw).is_ok_and(|b| b.windows(3).filter(|w| w == b"\x1b[H").count() >= 2)
    });
    let screen2 = t.screen();
    for screen in [&screen, &screen2] {
        let lines: Vec<&str> = screen.lines().collect();
        assert_eq!(lines[0], "every 1 s (Ctrl-C to stop)", "{screen}");
        assert!(lines[2].starts_with("HEALTH CRITICAL"), "{screen}");
        assert_eq!(call_ids(screen), WORST_FIRST[..5], "{screen}");
    }
    t.keys(&["C-c"]);
    t.wait("the shell", |s| s.contains("EXIT=130"));
}

#[test]
fn watch_json_is_ndjson_that_jq_reads_line_by_line() {
    let daemon = FakeDaemon::serve_sequence(&changing_reports());
    let mut child = Command::new(monitor())
        .args(["status", "--watch", "--json", "--interval", "1", "--socket"])
        .arg(&daemon.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        lines.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut jq = Command::new("jq")
        .args([
            "-c",
            "[(.calls | length), (.calls[] | select(.id == \"c0a13333\") | .window.loss_pct)]",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("jq (installed by `cargo xtask setup`)");
    jq.stdin
        .take()
        .unwrap()
        .write_all(lines.concat().as_bytes())
        .unwrap();
    let out = jq.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[10,12]\n[10,13]\n[10,14]\n",
        "one report per line, in order, nothing else"
    );
}

#[test]
fn top_without_a_terminal_is_a_usage_error_that_points_at_watch() {
    let out = Command::new(monitor())
        .args(["top", "--socket", "/nonexistent/monitor.sock"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "no escape codes into a pipe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a terminal; use `monitor status --watch`"),
        "{stderr}"
    );
}
