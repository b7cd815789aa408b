//! Where the workspace and the built `monitor` binary are.

use std::path::PathBuf;

/// The workspace root: xtask's manifest directory's parent, fixed at compile time because
/// the library runs inside other crates' test binaries, whose working directory differs.
pub fn workspace_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    dir.canonicalize().unwrap_or(dir)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the workspace, as
/// cargo itself resolves it when run from there), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_dir().join(dir),
        _ => workspace_dir().join("target"),
    }
}

/// The `monitor` binary: `MONITOR_BIN` if set, else the debug build in the target
/// directory. (`CARGO_BIN_EXE_monitor` is only visible to the monitor crate's own tests.)
pub fn monitor_bin() -> PathBuf {
    match std::env::var_os("MONITOR_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => target_dir().join("debug").join("monitor"),
    }
}
