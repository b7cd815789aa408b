//! `monitor man`: the manual page (roff), generated from the CLI definition: the
//! program's page with every subcommand's options.

use std::io::Write as _;

/// Print the manual page in roff (the Debian package installs it as monitor(1); by
/// hand: `monitor man | man -l -`).
#[derive(clap::Args, Debug)]
pub struct ManArgs {}

/// Renders `command`'s page, then one section per subcommand.
pub fn render(command: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_man = clap_mangen::Man::new(sub.clone());
        writeln!(out, ".SH \"MONITOR {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", roff_escape(&about.to_string()))?;
        }
        sub_man.render_options_section(&mut out)?;
    }
    man.render_version_section(&mut out)?;
    writeln!(
        out,
        ".SH FILES\n/etc/monitor/monitor.toml \\- the configuration (every key documented in \
         it)\n.br\n/usr/share/doc/monitor/README.md \\- the full documentation"
    )?;
    Ok(out)
}

/// Lines starting with `.` or `'` would be roff requests.
fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\\\");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn execute(_args: ManArgs, command: clap::Command) -> i32 {
    match render(&command).and_then(|page| std::io::stdout().write_all(&page)) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            crate::exit::FAILURE
        }
    }
}
