//! The kernel programs as a pipeline of tail calls. The verifier checks each program on
//! its own, so the paths of one stage (the parser's header combinations) do not multiply
//! with the next stage's (classification, learning samples, DSCP): as one program the
//! TC side needed more than the 1,000,000 instructions that kernel 6.1 allows.
//!
//! `monitor_xdp` / `monitor_tc` parse and count, then tail-call [`FLOW`] (accounting,
//! learning samples, ICMP errors, DSCP), which tail-calls [`QUALITY`] for media and
//! signalling flows. Each packet type has its own table: XDP programs can only tail-call
//! XDP programs, TC programs only TC programs.

/// The TC programs' tail-call table.
pub use crate::maps::stages_tc::NAME as TABLE_TC;
/// The XDP programs' tail-call table.
pub use crate::maps::stages_xdp::NAME as TABLE_XDP;

/// Index of the flow stage in both tables.
pub const FLOW: u32 = 0;
/// Index of the quality stage in both tables.
pub const QUALITY: u32 = 1;
/// Entries of each table.
pub const ENTRIES: u32 = 2;

/// A parsed packet on its way to the flow stage (`maps::jobs`).
#[repr(C)]
pub struct Job {
    pub parsed: crate::parsed::Parsed,
    pub ifindex: u32,
    /// GSO segments (0 or 1: an ordinary packet).
    pub segments: u32,
    /// `Direction` as u8.
    pub direction: u32,
    /// The interface's `LINK_KINDS` entry (link kind and role, `crate::link`).
    pub link: u32,
    /// Where the entry program looked the flow up and missed (the kernel's
    /// `account::Looked`: 0 nowhere, 1 both tables, 2 the media table only): the flow
    /// stage does not look there again (an insert that loses a race still finds the other
    /// CPU's entry).
    pub missed: u32,
}

/// One stage: its index and its XDP and TC programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub index: u32,
    pub xdp: &'static str,
    pub tc: &'static str,
}

/// Every stage behind the entry programs, in pipeline order.
pub const ALL: [Stage; ENTRIES as usize] = [
    Stage {
        index: FLOW,
        xdp: "monitor_flow_xdp",
        tc: "monitor_flow_tc",
    },
    Stage {
        index: QUALITY,
        xdp: "monitor_quality_xdp",
        tc: "monitor_quality_tc",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_is_used_once_and_in_range() {
        let mut seen = [false; ENTRIES as usize];
        for s in ALL {
            assert!(s.index < ENTRIES);
            assert!(!seen[s.index as usize], "{s:?}");
            seen[s.index as usize] = true;
        }
        assert_eq!(ALL[FLOW as usize].index, FLOW);
        assert_eq!(ALL[QUALITY as usize].index, QUALITY);
    }
}
