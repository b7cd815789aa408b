//! The hand-over between the pipeline's programs (`monitor_common::stages`): the tail-call
//! tables and the per-CPU slot where the entry program leaves the parsed packet for the
//! flow stage.
//!
//! A tail call keeps the CPU, and XDP and TC programs do not preempt one another on a
//! CPU while they run (softirq; TC egress runs with bottom halves off), but each program
//! type still has a slot of its own.

use aya_ebpf::{
    EbpfContext,
    macros::map,
    maps::{PerCpuArray, ProgramArray},
};
use monitor_common::stages;

use crate::parse::Parsed;

/// Tail-call targets of the XDP programs, by `stages::*` index. Not pinned: they hold
/// program fds of the running daemon, which installs them at load.
#[map]
pub static STAGES_XDP: ProgramArray = ProgramArray::with_max_entries(stages::ENTRIES, 0);
/// Tail-call targets of the TC programs.
#[map]
pub static STAGES_TC: ProgramArray = ProgramArray::with_max_entries(stages::ENTRIES, 0);

/// Slot of the XDP programs in [`JOBS`].
pub const SLOT_XDP: u32 = 0;
/// Slot of the TC programs in [`JOBS`].
pub const SLOT_TC: u32 = 1;

/// A parsed packet on its way to the flow stage.
#[repr(C)]
pub struct Job {
    pub parsed: Parsed,
    pub ifindex: u32,
    /// GSO segments (0 or 1: an ordinary packet).
    pub segments: u32,
    /// `Direction` as u8.
    pub direction: u32,
    /// The interface's `LINK_KINDS` entry (link kind and role, `monitor_common::link`).
    pub link: u32,
    /// 1 when the entry program looked the flow up and missed: the flow stage then does
    /// not look again (an insert that loses a race still finds the other CPU's entry).
    pub missed: u32,
}

/// The per-CPU hand-over slots. Not pinned: a job lives for one packet.
#[map]
static JOBS: PerCpuArray<Job> = PerCpuArray::with_max_entries(2, 0);

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
