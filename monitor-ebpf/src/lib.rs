//! Kernel programs of the monitor. The programs are in `main.rs` (the BPF binary); this
//! library target exists so the daemon's build script can depend on the crate and be
//! rebuilt when it changes.
#![no_std]
