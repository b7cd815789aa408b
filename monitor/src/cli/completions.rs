//! Print a shell completion script, generated from the command-line definitions.
//!
//! `cargo xtask install` installs them (bash, zsh and fish); by hand:
//! `monitor completions bash > /usr/share/bash-completion/completions/monitor`.

use std::io::Write as _;

/// The shells completions are generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Print a shell completion script for bash, zsh or fish to stdout.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The completion script of `command` for `shell`.
pub fn script(shell: Shell, command: &mut clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    let name = command.get_name().to_string();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, command, name, &mut out);
    out
}

/// Runs `monitor completions SHELL` for the CLI `command`; returns the exit status.
pub fn execute(args: CompletionsArgs, mut command: clap::Command) -> i32 {
    let text = script(args.shell, &mut command);
    match std::io::stdout().lock().write_all(&text) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("monitor completions: cannot write: {e}");
            crate::exit::FAILURE
        }
    }
}
