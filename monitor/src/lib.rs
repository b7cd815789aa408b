//! The `monitor` daemon and CLI: loads and attaches the kernel programs, polls their
//! maps, and serves status.

pub mod anomaly;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod dscp;
pub mod exit;
pub mod export;
pub mod fasthash;
pub mod flows;
pub mod kernel;
pub mod learn;
pub mod logging;
pub mod quality;
pub mod report;
pub mod status;
