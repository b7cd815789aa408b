//! Bounded traffic generators and responders for the testbed, meant to run inside
//! [`crate::Netns::run`] so their sockets live in a testbed namespace.
//!
//! Every sender and responder refuses peers outside the documentation ranges
//! ([`is_documentation_addr`]), every loop is bounded in packets and in time, and every
//! background thread stops when its handle is dropped.

pub mod raw;
mod tcp;
mod udp_recv;
mod udp_send;

pub use tcp::{TcpEcho, tcp_echo_server, tcp_exchange};
pub use udp_recv::{UdpResponder, UdpSink, udp_echo, udp_responder, udp_sink};
pub use udp_send::{CallStats, send_udp, send_udp_with, udp_call};

use anyhow::{Result, bail};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Longest a background sink, echo or responder thread lives, whatever happens to its
/// handle (a leaked handle must not leave a thread running for the rest of the run).
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// Longest a single send loop may be scheduled to take (count x interval).
pub const MAX_SEND_DURATION: Duration = Duration::from_secs(300);
/// Most datagrams one send loop may send.
pub const MAX_DATAGRAMS: u32 = 1_000_000;

/// True for the documentation ranges the testbed uses: 192.0.2.0/24, 198.51.100.0/24,
/// 203.0.113.0/24 (RFC 5737) and 2001:db8::/32 (RFC 3849). Nothing else is ever a
/// destination, so a misrouted test packet cannot reach a real host.
pub fn is_documentation_addr(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => matches!(
            v4.octets(),
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
        ),
        IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
    }
}

/// An error unless `addr` is in a documentation range; `what` says whose address it is.
pub fn ensure_documentation(addr: SocketAddr, what: &str) -> Result<()> {
    if !is_documentation_addr(addr.ip()) {
        bail!(
            "refusing {what} {addr}: test traffic may only go to documentation ranges \
             (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_documentation_addr;
    use std::net::IpAddr;

    fn doc(s: &str) -> bool {
        is_documentation_addr(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn documentation_ranges_accepted() {
        for a in [
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.1",
            "203.0.113.10",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8:ff::10",
        ] {
            assert!(doc(a), "{a}");
        }
    }

    #[test]
    fn everything_else_refused() {
        for a in [
            "10.0.0.1",
            "8.8.8.8",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "192.0.3.1",
            "198.51.101.1",
            "203.0.112.255",
            "224.0.0.1",
            "::1",
            "::",
            "2001:db9::1",
            "2001:db7:ffff::1",
            "fe80::1",
            "::ffff:192.0.2.1",
            "64:ff9b::c000:20a",
        ] {
            assert!(!doc(a), "{a}");
        }
    }
}
