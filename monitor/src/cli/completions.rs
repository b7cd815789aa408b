//! `monitor completions`: shell completion scripts, generated from the CLI definition.

use std::io::Write as _;

/// Print a shell completion script (the Debian package installs them; by hand:
/// `monitor completions bash > /etc/bash_completion.d/monitor`).
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the script for `args.shell` completing `command` to stdout.
pub fn execute(args: CompletionsArgs, mut command: clap::Command) -> i32 {
    let mut out = Vec::new();
    let name = command.get_name().to_string();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, name, &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, name, &mut out)
        }
    }
    match std::io::stdout().write_all(&out) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            crate::exit::FAILURE
        }
    }
}
