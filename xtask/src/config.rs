//! The daemon configuration for a testbed gateway: both gateway interfaces monitored, and
//! the testbed's "Webex" prefixes (documentation ranges) instead of Cisco's real ones.
//! One place, so the demo and the tests agree with the daemon's config schema
//! (monitor/src/config.rs).

use crate::testbed::{GW_LAN_IF, GW_WAN_IF, WEBEX_PREFIX_V4, WEBEX_PREFIX_V6};
use anyhow::{Context as _, Result};
use std::path::Path;

/// The TOML for a daemon on the testbed gateway that pins under `pin_path` and serves
/// status on `status_socket`.
pub fn gateway_config(pin_path: &Path, status_socket: &Path) -> String {
    format!(
        r#"# Written by xtask for a testbed gateway (documentation addresses only).
[daemon]
pin_path = {pin}
status_socket = {socket}

[[interfaces]]
name = {lan}
role = "lan"

[[interfaces]]
name = {wan}
role = "wan"

[webex]
use_default_prefixes = false
prefixes = [{p4}, {p6}]
"#,
        pin = toml_string(&pin_path.to_string_lossy()),
        socket = toml_string(&status_socket.to_string_lossy()),
        lan = toml_string(GW_LAN_IF),
        wan = toml_string(GW_WAN_IF),
        p4 = toml_string(WEBEX_PREFIX_V4),
        p6 = toml_string(WEBEX_PREFIX_V6),
    )
}

/// Writes [`gateway_config`] to `path`.
pub fn write_gateway_config(path: &Path, pin_path: &Path, status_socket: &Path) -> Result<()> {
    std::fs::write(path, gateway_config(pin_path, status_socket))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A TOML basic string. JSON's string escapes (\" \\ \n \uXXXX ...) are all valid TOML.
fn toml_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_interfaces_and_the_test_prefixes() {
        let toml = gateway_config(Path::new("/sys/fs/bpf/x"), Path::new("/tmp/a \"b\"/s.sock"));
        assert!(toml.contains("[daemon]\npin_path = \"/sys/fs/bpf/x\"\n"));
        assert!(toml.contains("status_socket = \"/tmp/a \\\"b\\\"/s.sock\"\n"));
        assert!(toml.contains("name = \"lan0\"\nrole = \"lan\""));
        assert!(toml.contains("name = \"wan0\"\nrole = \"wan\""));
        assert!(toml.contains("use_default_prefixes = false\n"));
        assert!(toml.contains("prefixes = [\"203.0.113.0/24\", \"2001:db8:ff::/48\"]"));
    }
}
