//! Process exit statuses, so scripts and systemd can tell failures apart.

/// Success; for `monitor status`, healthy.
pub const OK: i32 = 0;
/// A runtime failure (kernel refused, socket error, ...).
pub const FAILURE: i32 = 1;
/// `monitor status`: the daemon could not be reached (Nagios "UNKNOWN").
pub const STATUS_UNAVAILABLE: i32 = 3;
/// Bad command line or bad configuration (sysexits EX_USAGE).
pub const USAGE: i32 = 64;
/// The daemon lacks a capability it needs (sysexits EX_NOPERM). The unit does not restart
/// on it (`RestartPreventExitStatus`): retrying cannot help.
pub const NO_PERMISSION: i32 = 77;
