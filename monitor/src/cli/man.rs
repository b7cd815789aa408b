//! Print the manual page (roff), generated from the command-line definitions.
//!
//! `cargo xtask install` installs it as man1/monitor.1; by hand:
//! `monitor man | man -l -`.

use std::io::Write as _;

/// Print the manual page (roff) to stdout: `monitor man | man -l -`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {}

/// The page of `command`, with a section per subcommand (their options and help).
pub fn page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut command = command;
    command.build();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        // Each subcommand's options as its own section of the one page.
        let name = sub.get_name().to_uppercase();
        writeln!(out, ".SH \"MONITOR {name}\"")?;
        let man = clap_mangen::Man::new(sub.clone());
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
    }
    Ok(out)
}

/// Runs `monitor man` for the CLI `command`; returns the exit status.
pub fn execute(_args: ManArgs, command: clap::Command) -> i32 {
    match page(command).and_then(|text| std::io::stdout().lock().write_all(&text)) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("monitor man: cannot write the page: {e}");
            crate::exit::FAILURE
        }
    }
}
