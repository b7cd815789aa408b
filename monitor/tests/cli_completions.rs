//! `monitor completions bash|zsh|fish` and `monitor man` are generated from the clap
//! definitions: each shell loads its script and completes the subcommands and status
//! views; man(1)'s formatter reads the page; `cargo xtask install` puts them in place.

use std::process::Command;
use xtask::TempDir;
use xtask::install::{GENERATED, install_files};

fn monitor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completes_subcommands_and_views() {
    let script = monitor(&["completions", "bash"]);
    let dir = TempDir::new().unwrap();
    let path = dir.join("monitor.bash");
    std::fs::write(&path, script).unwrap();
    // Load the script in a real bash and ask it, as readline would.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _monitor monitor; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len()
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = complete("monitor ");
    for sub in ["run", "check", "status", "top", "completions", "man"] {
        assert!(
            subcommands.lines().any(|l| l == sub),
            "{sub}: {subcommands}"
        );
    }
    let views = complete("monitor status ");
    for view in [
        "calls",
        "records",
        "anomalies",
        "flows",
        "peers",
        "interfaces",
        "call",
    ] {
        assert!(views.lines().any(|l| l == view), "{view}: {views}");
    }
}

#[test]
fn zsh_and_fish_scripts_name_the_subcommands() {
    let zsh = monitor(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef monitor"), "{zsh}");
    let fish = monitor(&["completions", "fish"]);
    assert!(
        fish.contains("complete -c monitor") && fish.contains("-a \"top\""),
        "{fish}"
    );
}

#[test]
fn the_man_page_is_roff_that_man_formats() {
    let page = monitor(&["man"]);
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..80]);
    assert!(page.contains(".TH monitor 1"), "{page}");
    assert!(page.contains(".SH \"MONITOR STATUS\""), "{page}");
    assert!(page.contains("\\-\\-severity"), "{page}");
    // man(1) formats it without a warning, and the text names every subcommand.
    let dir = TempDir::new().unwrap();
    let path = dir.join("monitor.1");
    std::fs::write(&path, &page).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    // Without the overstrike bold and underline (`X\bX`).
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    for sub in [
        "MONITOR RUN",
        "MONITOR STATUS",
        "MONITOR TOP",
        "MONITOR COMPLETIONS",
    ] {
        assert!(text.contains(sub), "{sub}:\n{text}");
    }
}

#[test]
fn install_puts_completions_and_the_page_in_place() {
    let root = TempDir::new().unwrap();
    install_files(
        root.path(),
        std::path::Path::new(env!("CARGO_BIN_EXE_monitor")),
    )
    .unwrap();
    for (args, to) in GENERATED {
        let installed = std::fs::read_to_string(root.join(to)).unwrap();
        assert_eq!(installed, monitor(args), "{to}");
    }
}
