//! The port table: one byte per (transport, port) giving the [`crate::Class`] of a Webex
//! peer's port. It is a BPF array so the kernel look-up is a single inlined index.

/// Entries per transport.
pub const PORTS: u32 = 65536;
/// UDP occupies the first 65536 entries, TCP the next.
pub const TABLE_ENTRIES: u32 = 2 * PORTS;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Index of `(protocol, port)` in the table, or `None` for protocols without port rules.
#[inline(always)]
pub fn table_index(protocol: u8, port: u16) -> Option<u32> {
    match protocol {
        IPPROTO_UDP => Some(port as u32),
        IPPROTO_TCP => Some(PORTS + port as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes() {
        assert_eq!(table_index(IPPROTO_UDP, 0), Some(0));
        assert_eq!(table_index(IPPROTO_UDP, 65535), Some(65535));
        assert_eq!(table_index(IPPROTO_TCP, 0), Some(65536));
        assert_eq!(table_index(IPPROTO_TCP, 65535), Some(TABLE_ENTRIES - 1));
        assert_eq!(table_index(1, 5), None);
    }
}
