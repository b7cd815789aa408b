//! Kernel programs: `monitor_xdp` on ingress and `monitor_tc` on egress of every
//! monitored interface. Both parse, classify and account, and always pass the packet:
//! the monitor never drops or changes traffic (DSCP rewrite comes later, on egress only).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Atomic adds on shared flow counters (see account.rs); the BPF crate builds on nightly.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
// Map keys and values are passed by reference on purpose: a by-value `Borrow` argument
// would copy 44- and 56-byte structs on the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(target_arch = "bpf")]
mod account;
#[cfg(target_arch = "bpf")]
mod dscp;
#[cfg(target_arch = "bpf")]
mod failure;
#[cfg(target_arch = "bpf")]
mod floor;
#[cfg(target_arch = "bpf")]
mod fragment;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod quality;
#[cfg(target_arch = "bpf")]
mod sample;
#[cfg(target_arch = "bpf")]
mod stage;

// On the host this crate is only a stub, so `cargo build --workspace` works.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The licence the kernel reads (it must be GPL-compatible for GPL-only helpers); the
/// same as the crate's `license` in Cargo.toml.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
