//! The testbed's fixed addressing plan. Documentation ranges only (RFC 5737, RFC 3849),
//! so nothing the tests send could reach a real host even if it escaped a namespace.
//!
//! ```text
//!  LAN host                 gateway (NAT)                   WAN host ("Webex media node")
//!  eth0 ──────────── lan0           wan0 ──────────────── eth0        lo
//!  192.0.2.10/24     192.0.2.1/24   198.51.100.1/24       198.51.100.2/24  203.0.113.10/32
//!  2001:db8:1::10/64 2001:db8:1::1  2001:db8:2::1/64      2001:db8:2::2/64 2001:db8:ff::10/128
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

/// Every testbed namespace name starts with this, followed by `<pid>x<n>-<role>`.
pub const NETNS_PREFIX: &str = "mtb";

/// The LAN host's only interface (a phone or softphone on the site LAN).
pub const LAN_HOST_IF: &str = "eth0";
pub const LAN_HOST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const LAN_HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
pub const LAN_PREFIX_V4: &str = "192.0.2.0/24";
pub const LAN_PREFIX_V6: &str = "2001:db8:1::/64";

/// The gateway's LAN-side interface, the LAN hosts' default router.
pub const GW_LAN_IF: &str = "lan0";
pub const GW_LAN_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const GW_LAN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

/// The gateway's WAN-side interface; LAN traffic leaves it masqueraded to these addresses.
pub const GW_WAN_IF: &str = "wan0";
pub const GW_WAN_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const GW_WAN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub const WAN_PREFIX_V4: &str = "198.51.100.0/24";
pub const WAN_PREFIX_V6: &str = "2001:db8:2::/64";

/// The WAN host's link to the gateway (the "internet" next hop).
pub const WAN_HOST_IF: &str = "eth0";
pub const WAN_HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const WAN_HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);

/// The "Webex media node" addresses, on the WAN host's loopback, inside the prefixes the
/// tests configure as Webex's.
pub const WEBEX_NODE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const WEBEX_NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 0x10);
pub const WEBEX_PREFIX_V4: &str = "203.0.113.0/24";
pub const WEBEX_PREFIX_V6: &str = "2001:db8:ff::/48";
