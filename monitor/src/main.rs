//! `monitor`: Webex Calling edge monitor (eBPF/XDP) — daemon and CLI.

use clap::{CommandFactory as _, Parser, Subcommand};
use monitor::{cli, exit};

/// Webex Calling edge monitor: classifies Webex flows in the kernel (XDP/TC) on the
/// site's edge router and reports their health.
#[derive(Parser, Debug)]
#[command(name = "monitor", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(cli::run::RunArgs),
    Check(cli::check::CheckArgs),
    Detach(cli::detach::DetachArgs),
    Status(cli::status::StatusArgs),
    Top(cli::top::TopArgs),
    Completions(cli::completions::CompletionsArgs),
    Man(cli::man::ManArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; everything else is a usage error (64),
            // kept apart from the health statuses `monitor status` exits with.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Run(args) => cli::run::execute(args),
        Command::Check(args) => cli::check::execute(args),
        Command::Detach(args) => cli::detach::execute(args),
        Command::Status(args) => cli::status::execute(args),
        Command::Top(args) => cli::top::execute(args),
        Command::Completions(args) => cli::completions::execute(args, Cli::command()),
        Command::Man(args) => cli::man::execute(args, Cli::command()),
    };
    std::process::exit(code);
}
