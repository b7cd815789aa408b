//! Test infrastructure for the Webex Calling edge monitor, shared by `cargo xtask` and by
//! the `monitor` crate's integration tests:
//!
//! - [`Testbed`]: three network namespaces (LAN host, NAT gateway, WAN "Webex media
//!   node") wired with veth pairs, using documentation address ranges only;
//! - [`traffic`]: bounded UDP/TCP/RTP generators and responders that refuse any
//!   destination outside the documentation ranges;
//! - [`Daemon`]: a guard around a `monitor run` process inside a namespace;
//! - [`TempDir`], [`PinDir`]: guards for scratch directories and bpffs pin paths.
//!
//! Everything that creates state in the kernel or on disk is an RAII guard, so a failing
//! test (panic) or an interrupted demo (see [`interrupt`]) still cleans up.

pub mod bed;
pub mod capture;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod frames;
pub mod install;
pub mod interrupt;
pub mod netns;
pub mod package;
pub mod paths;
pub mod prometheus;
pub mod relay;
pub mod rtp;
pub mod rtpgen;
pub mod scratch;
mod stale;
pub mod testbed;
pub mod traffic;

pub use daemon::{Daemon, status_json};
pub use netns::Netns;
pub use paths::{monitor_bin, workspace_dir};
pub use scratch::{PinDir, TempDir};
pub use testbed::*;
