//! One module per subcommand; their doc comments are the `--help` text.

pub mod check;
pub mod completions;
pub mod detach;
pub mod man;
pub mod run;
pub mod status;
pub mod top;
