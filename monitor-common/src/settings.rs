//! Run-time settings the daemon writes into the `SETTINGS` array (index 0).

/// Track flows that are not Webex in the flow map too (otherwise they are only counted).
pub const SETTING_TRACK_ALL_FLOWS: u32 = 1 << 0;
/// Split media into audio and video by the Webex App's dedicated source port ranges.
pub const SETTING_DEDICATED_PORT_RANGES: u32 = 1 << 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// `SETTING_*` bits.
    pub flags: u32,
    /// Path MTU in bytes: Webex packets with a longer IP datagram count as
    /// `FlowStats::oversize`. 0 turns the count off.
    pub path_mtu: u32,
    pub _reserved: [u32; 14],
}

impl Settings {
    pub const fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout() {
        assert_eq!(core::mem::size_of::<super::Settings>(), 64);
    }
}
