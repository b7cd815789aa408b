//! VPN tunnels the kernel tracks although they are not Webex: a phone or softphone whose
//! media goes into a full tunnel shows up only as the tunnel's packets (the
//! `media_in_tunnel` detector judges their cadence). Ports are the protocols' defaults.

/// IPsec ESP (IP protocol 50).
pub const IPPROTO_ESP: u8 = 50;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// IPsec NAT traversal (ESP in UDP, RFC 3948).
pub const IPSEC_NAT_T_PORT: u16 = 4500;
pub const WIREGUARD_PORT: u16 = 51820;
pub const OPENVPN_PORT: u16 = 1194;

/// Which tunnel a flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    Esp,
    IpsecNatT,
    WireGuard,
    OpenVpn,
}

impl Tunnel {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Esp => "ipsec_esp",
            Self::IpsecNatT => "ipsec_nat_t",
            Self::WireGuard => "wireguard",
            Self::OpenVpn => "openvpn",
        }
    }
}

/// The tunnel a packet belongs to, by protocol and either port (the client's or the
/// concentrator's side); `None` for everything else. A few compares: it runs for every
/// packet that is not Webex.
#[inline(always)]
pub fn tunnel(protocol: u8, src_port: u16, dst_port: u16) -> Option<Tunnel> {
    let either = |p: u16| src_port == p || dst_port == p;
    match protocol {
        IPPROTO_ESP => Some(Tunnel::Esp),
        IPPROTO_UDP if either(IPSEC_NAT_T_PORT) => Some(Tunnel::IpsecNatT),
        IPPROTO_UDP if either(WIREGUARD_PORT) => Some(Tunnel::WireGuard),
        IPPROTO_UDP | IPPROTO_TCP if either(OPENVPN_PORT) => Some(Tunnel::OpenVpn),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_by_protocol_and_port() {
        assert_eq!(tunnel(50, 0, 0), Some(Tunnel::Esp));
        assert_eq!(tunnel(17, 4500, 4500), Some(Tunnel::IpsecNatT));
        assert_eq!(tunnel(17, 40000, 51820), Some(Tunnel::WireGuard));
        assert_eq!(tunnel(17, 1194, 40000), Some(Tunnel::OpenVpn));
        assert_eq!(tunnel(6, 40000, 1194), Some(Tunnel::OpenVpn));
        assert_eq!(tunnel(6, 40000, 4500), None);
        assert_eq!(tunnel(17, 40000, 5004), None);
        assert_eq!(tunnel(1, 0, 0), None);
        assert_eq!(Tunnel::OpenVpn.as_str(), "openvpn");
    }
}
