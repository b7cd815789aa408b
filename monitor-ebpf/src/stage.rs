//! The hand-over between the pipeline's programs (`monitor_common::stages`): the tail-call
//! tables and the per-CPU slot where the entry program leaves the parsed packet for the
//! flow stage.
//!
//! A tail call keeps the CPU, and XDP and TC programs do not preempt one another on a
//! CPU while they run (softirq; TC egress runs with bottom halves off), but each program
//! type still has a slot of its own.

use aya_ebpf::{EbpfContext, maps::ProgramArray};
pub use monitor_common::{
    maps::jobs::{SLOT_TC, SLOT_XDP},
    stages::Job,
};

use crate::maps::JOBS;

/// This CPU's job slot for `slot`.
#[inline(always)]
pub fn job(slot: u32) -> Option<&'static mut Job> {
    // SAFETY: per-CPU slot, used by one program (and the one it tail-calls) at a time.
    JOBS.get_ptr_mut(slot).map(|j| unsafe { &mut *j })
}

/// Tail-calls stage `index` of `table`. Returns only when the call failed (no program
/// installed at that index): the caller counts that and passes the packet.
#[inline(always)]
pub fn tail<C: EbpfContext>(ctx: &C, table: &ProgramArray, index: u32) {
    // SAFETY: the daemon installs programs of the caller's type at every index.
    unsafe { table.tail_call(ctx, index) };
}
