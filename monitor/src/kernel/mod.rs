//! Everything that talks to the kernel: the embedded object, loading with pinned maps,
//! attaching, and reading the maps.

pub mod attach;
pub mod batch;
#[cfg(test)]
mod btf_names;
pub mod dscp;
pub mod harness;
pub mod learn;
pub mod loader;
pub mod map_check;
pub mod migrate;
pub mod netdev;
pub mod object;
pub mod pins;
pub mod snapshot;
pub mod stages;

/// Errors of the kernel side, each saying what to try.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "this binary was built without its eBPF object (AYA_BUILD_SKIP was set); rebuild without it"
    )]
    NoObject,
    #[error("daemon.pin_path: {problem}")]
    NotBpffs { problem: String },
    #[error("cannot create the pin directory {path}: {source}")]
    PinDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "pinned map {path} does not match this version ({what}); it was created by another \
         monitor version. Stop the daemon and remove {dir} (counters restart from zero)"
    )]
    IncompatiblePin {
        path: String,
        dir: String,
        what: String,
    },
    #[error(
        "loading the eBPF programs failed: {0} (the daemon needs root or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)"
    )]
    Load(#[source] aya::EbpfError),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("program {program}: {source}")]
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("attaching {what} to interface {interface} failed: {detail}")]
    Attach {
        what: &'static str,
        interface: String,
        detail: String,
    },
    #[error("the eBPF object lacks {0}; the build is broken")]
    Missing(&'static str),
    #[error(
        "the eBPF object has a map {0} that monitor_common::maps does not define; the \
         build is broken (define it there, in a module of its own listed in maps::ALL)"
    )]
    UnknownMap(String),
    #[error(
        "the eBPF object's map {map} is not as monitor_common::maps defines it: {what}; the \
         build is broken (declare it in monitor-ebpf/src/maps.rs from its definition)"
    )]
    MapDefinition { map: String, what: String },
    #[error("the embedded eBPF object cannot be read: {0}; the build is broken")]
    Object(String),
}
