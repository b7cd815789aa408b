//! Config parsing and validation, against exact values and exact messages.

use super::*;
use monitor_common::Class;
use monitor_common::ports::{IPPROTO_TCP, IPPROTO_UDP, TABLE_ENTRIES, table_index};
use std::net::IpAddr;

const ORIGIN: &str = "/etc/monitor/monitor.toml";
const MINIMAL: &str = "[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\n";

/// eth0 is 2, eth1 is 3, lo is 1; anything else does not exist.
fn resolver(name: &str) -> Option<u32> {
    match name {
        "lo" => Some(1),
        "eth0" => Some(2),
        "eth1" => Some(3),
        _ => None,
    }
}

fn parse(text: &str) -> Result<ValidatedConfig, ConfigError> {
    parse_and_validate(text, Path::new(ORIGIN), &resolver)
}

/// The one-line error for `text`.
fn error(text: &str) -> String {
    let message = parse(text).unwrap_err().to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    message
}

/// MINIMAL plus `extra`.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

fn class_at(table: &[u8], protocol: u8, port: u16) -> u8 {
    table[table_index(protocol, port).unwrap() as usize]
}

#[test]
fn minimal_config_takes_every_default() {
    let v = parse(MINIMAL).unwrap();
    let c = &v.config;
    assert_eq!(c.daemon.pin_path, PathBuf::from("/sys/fs/bpf/monitor"));
    assert_eq!(
        c.daemon.status_socket,
        PathBuf::from("/run/monitor/monitor.sock")
    );
    assert_eq!(c.daemon.poll_interval_ms, 1000);
    assert_eq!(c.daemon.flow_table_size, 65536);
    assert!(!c.daemon.track_all_flows);
    assert_eq!(
        c.interfaces,
        vec![InterfaceConfig {
            name: "eth0".into(),
            role: Role::Wan,
            xdp_mode: XdpMode::Auto,
            dscp_ingress: super::DscpMode::Verify,
            dscp_egress: super::DscpMode::Verify,
        }]
    );
    assert!(c.webex.use_default_prefixes);
    assert!(c.webex.prefixes.is_empty());
    assert!(!c.webex.dedicated_port_ranges);
    let r = |first, last| PortRange { first, last };
    assert_eq!(
        c.ports.media_udp,
        vec![r(5004, 5004), r(9000, 9000), r(19560, 65535)]
    );
    assert_eq!(
        c.ports.sip_tcp,
        vec![r(5061, 5061), r(5062, 5062), r(8934, 8934)]
    );
    assert_eq!(c.ports.https_tcp, vec![r(443, 443)]);
    assert_eq!(c.ports.dns, vec![r(53, 53)]);
    assert_eq!(c.ports.ntp_udp, vec![r(123, 123)]);
    assert_eq!(v.ifindexes, vec![2]);
    assert_eq!(v.prefixes.len(), DEFAULT_WEBEX_PREFIXES.len());
    assert_eq!(v.prefixes[0].to_string(), DEFAULT_WEBEX_PREFIXES[0]);
}

#[test]
fn the_shipped_config_parses_and_states_the_defaults() {
    let text = include_str!("../../../systemd/monitor.toml");
    let v = parse(text).unwrap();
    assert_eq!(v.config.daemon, DaemonConfig::default());
    assert_eq!(v.config.webex, WebexConfig::default());
    assert_eq!(v.config.ports, PortsConfig::default());
    let names: Vec<(&str, Role, XdpMode)> = v
        .config
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.role, i.xdp_mode))
        .collect();
    assert_eq!(
        names,
        vec![
            ("eth0", Role::Wan, XdpMode::Auto),
            ("eth1", Role::Lan, XdpMode::Auto)
        ]
    );
    assert_eq!(v.ifindexes, vec![2, 3]);
    assert_eq!(v.port_table, parse(MINIMAL).unwrap().port_table);
}

#[test]
fn full_config_is_read_field_by_field() {
    let text = r#"
[daemon]
pin_path = "/sys/fs/bpf/test"
status_socket = "/tmp/m.sock"
poll_interval_ms = 50
flow_table_size = 1024
track_all_flows = true

[[interfaces]]
name = "eth1"
role = "lan"
xdp_mode = "generic"

[[interfaces]]
name = "eth0"
role = "wan"
xdp_mode = "native"

[webex]
use_default_prefixes = false
prefixes = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.0/24", "203.0.113.0/24"]
dedicated_port_ranges = true

[ports]
media_udp = ["20000-20010"]
sip_tcp = [5061]
https_tcp = []
dns = []
ntp_udp = ["123"]
"#;
    let v = parse(text).unwrap();
    let d = &v.config.daemon;
    assert_eq!(d.pin_path, PathBuf::from("/sys/fs/bpf/test"));
    assert_eq!(d.status_socket, PathBuf::from("/tmp/m.sock"));
    assert_eq!(
        (d.poll_interval_ms, d.flow_table_size, d.track_all_flows),
        (50, 1024, true)
    );
    assert_eq!(v.ifindexes, vec![3, 2]);
    assert_eq!(v.config.interfaces[0].role.as_str(), "lan");
    assert_eq!(v.config.interfaces[0].xdp_mode.as_str(), "generic");
    assert_eq!(v.config.interfaces[1].role.as_str(), "wan");
    assert_eq!(v.config.interfaces[1].xdp_mode.as_str(), "native");
    assert!(v.config.webex.dedicated_port_ranges);
    // Defaults off, the duplicate dropped, order kept, v6 included.
    let prefixes: Vec<String> = v.prefixes.iter().map(ToString::to_string).collect();
    assert_eq!(
        prefixes,
        ["203.0.113.0/24", "2001:db8::/32", "198.51.100.0/24"]
    );
    assert_eq!(v.prefixes[1].addr, "2001:db8::".parse::<IpAddr>().unwrap());
    assert_eq!(v.prefixes[1].len, 32);
    // Exactly the listed ports are set.
    let set: Vec<(usize, u8)> = v
        .port_table
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .map(|(i, c)| (i, *c))
        .collect();
    let mut expected: Vec<(usize, u8)> = (20000..=20010).map(|p| (p, Class::Media as u8)).collect();
    expected.insert(0, (123, Class::Ntp as u8));
    expected.push((65536 + 5061, Class::SipSignalling as u8));
    assert_eq!(set, expected);
}

#[test]
fn configured_prefixes_that_repeat_a_default_are_dropped() {
    let v = parse(&with(
        "[webex]\nprefixes = [\"23.89.0.0/16\", \"192.0.2.0/24\"]\n",
    ))
    .unwrap();
    assert_eq!(v.prefixes.len(), DEFAULT_WEBEX_PREFIXES.len() + 1);
    assert_eq!(v.prefixes.last().unwrap().to_string(), "192.0.2.0/24");
    let count = v
        .prefixes
        .iter()
        .filter(|p| p.to_string() == "23.89.0.0/16")
        .count();
    assert_eq!(count, 1);
}

#[test]
fn default_port_table_has_each_class_at_its_ports() {
    let t = parse(MINIMAL).unwrap().port_table;
    assert_eq!(t.len(), TABLE_ENTRIES as usize);
    let media = Class::Media as u8;
    assert_eq!(class_at(&t, IPPROTO_UDP, 5004), media);
    assert_eq!(class_at(&t, IPPROTO_UDP, 9000), media);
    assert_eq!(class_at(&t, IPPROTO_UDP, 19559), 0);
    assert_eq!(class_at(&t, IPPROTO_UDP, 19560), media);
    assert_eq!(class_at(&t, IPPROTO_UDP, 65535), media);
    assert_eq!(class_at(&t, IPPROTO_UDP, 5005), 0);
    assert_eq!(class_at(&t, IPPROTO_TCP, 5004), 0);
    assert_eq!(class_at(&t, IPPROTO_TCP, 19560), 0);
    for port in [5061, 5062, 8934] {
        assert_eq!(class_at(&t, IPPROTO_TCP, port), Class::SipSignalling as u8);
        assert_eq!(class_at(&t, IPPROTO_UDP, port), 0);
    }
    assert_eq!(class_at(&t, IPPROTO_TCP, 443), Class::HttpsControl as u8);
    assert_eq!(class_at(&t, IPPROTO_UDP, 443), 0);
    assert_eq!(class_at(&t, IPPROTO_UDP, 53), Class::Dns as u8);
    assert_eq!(class_at(&t, IPPROTO_TCP, 53), Class::Dns as u8);
    assert_eq!(class_at(&t, IPPROTO_UDP, 123), Class::Ntp as u8);
    assert_eq!(class_at(&t, IPPROTO_TCP, 123), 0);
    // Raw indexes: UDP first, then TCP.
    assert_eq!(t[5004], media);
    assert_eq!(t[65536 + 443], Class::HttpsControl as u8);
    let set = t.iter().filter(|c| **c != 0).count();
    assert_eq!(set, 2 + (65535 - 19560 + 1) + 3 + 1 + 2 + 1);
}

#[test]
fn read_errors_name_the_file() {
    let err = load(Path::new("/nonexistent/monitor.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config /nonexistent/monitor.toml: No such file or directory (os error 2)"
    );
}

#[test]
fn load_resolves_real_interfaces() {
    let path = std::env::temp_dir().join(format!("monitor-config-{}.toml", std::process::id()));
    std::fs::write(&path, "[[interfaces]]\nname = \"lo\"\nrole = \"lan\"\n").unwrap();
    let loaded = load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap().ifindexes, vec![1]);
}

#[test]
fn invalid_toml_gives_line_and_column() {
    assert_eq!(
        error("[daemon]\npoll_interval_ms = = 5\n"),
        "config /etc/monitor/monitor.toml: line 2, column 20: invalid string; expected `\"`, `'`"
    );
    assert_eq!(
        error("[daemon\n"),
        "config /etc/monitor/monitor.toml: line 1, column 8: invalid table header; expected `.`, `]`"
    );
}

#[test]
fn unknown_keys_name_their_table_and_suggest_the_right_one() {
    assert_eq!(
        error(&with("[daemon]\nflow_tabel_size = 1\n")),
        "config /etc/monitor/monitor.toml: [daemon]: unknown field `flow_tabel_size`, expected \
         one of `pin_path`, `status_socket`, `poll_interval_ms`, `flow_table_size`, \
         `track_all_flows`; did you mean `flow_table_size`? (line 5, column 1)"
    );
    assert_eq!(
        error(&format!("deamon = 1\n{MINIMAL}")),
        "config /etc/monitor/monitor.toml: top level: unknown field `deamon`, expected one of \
         `daemon`, `interfaces`, `webex`, `ports`, `dscp`, `export`, `quality`, `learn`, `mtu`, \
         `detect`; did you mean `daemon`? (line 1, column 1)"
    );
    assert_eq!(
        error("[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\nmode = \"x\"\n"),
        "config /etc/monitor/monitor.toml: [interfaces[0]]: unknown field `mode`, expected one \
         of `name`, `role`, `xdp_mode`, `dscp_ingress`, `dscp_egress`; did you mean \
         `xdp_mode`? (line 4, column 1)"
    );
    assert_eq!(
        error(&with("[webex]\nprefix = []\n")),
        "config /etc/monitor/monitor.toml: [webex]: unknown field `prefix`, expected one of \
         `use_default_prefixes`, `prefixes`, `dedicated_port_ranges`; did you mean `prefixes`? \
         (line 5, column 1)"
    );
    assert_eq!(
        error(&with("[ports]\nsip_tls = [5061]\n")),
        "config /etc/monitor/monitor.toml: [ports]: unknown field `sip_tls`, expected one of \
         `media_udp`, `sip_tcp`, `https_tcp`, `dns`, `ntp_udp`, `sip_udp`; did you mean \
         `sip_tcp`? \
         (line 5, column 1)"
    );
}

#[test]
fn xdp_mode_off_attaches_tc_on_ingress_per_interface() {
    let v = parse(
        "[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\nxdp_mode = \"off\"\n\n\
         [[interfaces]]\nname = \"eth1\"\nrole = \"lan\"\n",
    )
    .unwrap();
    let modes: Vec<(XdpMode, &str)> = v
        .config
        .interfaces
        .iter()
        .map(|i| (i.xdp_mode, i.xdp_mode.as_str()))
        .collect();
    assert_eq!(modes, [(XdpMode::Off, "off"), (XdpMode::Auto, "auto")]);
    assert_eq!(
        error("[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\nxdp_mode = \"tc\"\n"),
        "config /etc/monitor/monitor.toml: interfaces[0].xdp_mode: unknown variant `tc`, \
         expected one of `auto`, `native`, `generic`, `off` (line 4, column 12)"
    );
}

#[test]
fn wrong_types_and_values_name_the_field() {
    assert_eq!(
        error(&with("[daemon]\npoll_interval_ms = \"fast\"\n")),
        "config /etc/monitor/monitor.toml: daemon.poll_interval_ms: invalid type: string \
         \"fast\", expected u64 (line 5, column 20)"
    );
    assert_eq!(
        error("[[interfaces]]\nname = \"eth0\"\nrole = \"dmz\"\n"),
        "config /etc/monitor/monitor.toml: interfaces[0].role: unknown variant `dmz`, expected \
         `lan` or `wan` (line 3, column 8)"
    );
    assert_eq!(
        error("[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\nxdp_mode = \"skb\"\n"),
        "config /etc/monitor/monitor.toml: interfaces[0].xdp_mode: unknown variant `skb`, \
         expected one of `auto`, `native`, `generic`, `off` (line 4, column 12)"
    );
    assert_eq!(
        error("[[interfaces]]\nname = \"eth0\"\n"),
        "config /etc/monitor/monitor.toml: interfaces[0]: missing field `role` (line 1, column 1)"
    );
}

#[test]
fn interfaces_are_required_unique_and_validly_named() {
    let none = "config /etc/monitor/monitor.toml: interfaces: no interface to monitor; add at \
                least one [[interfaces]] section with a name and a role (\"lan\" or \"wan\")";
    assert_eq!(error(""), none);
    assert_eq!(error("[daemon]\npoll_interval_ms = 100\n"), none);
    assert_eq!(error("interfaces = []\n"), none);
    // One that does not exist yet is waited for (ifindex 0); an impossible name is not.
    let later = parse(&with("[[interfaces]]\nname = \"ppp0\"\nrole = \"wan\"\n"))
        .expect("a missing interface is waited for");
    assert_eq!(later.ifindexes, vec![2, 0]);
    assert_eq!(
        error(&with(
            "[[interfaces]]\nname = \"a-name-far-too-long0\"\nrole = \"lan\"\n"
        )),
        "config /etc/monitor/monitor.toml: interfaces[1].name: \"a-name-far-too-long0\" is not a \
         valid interface name (1 to 15 characters, no '/' or spaces; `ip link` lists them)"
    );
    assert_eq!(
        error(&with("[[interfaces]]\nname = \"eth0\"\nrole = \"lan\"\n")),
        "config /etc/monitor/monitor.toml: interfaces[1].name: \"eth0\" is already configured as \
         interfaces[0]; list each interface once"
    );
}

#[test]
fn daemon_values_out_of_range_are_rejected_with_the_range() {
    assert_eq!(
        error(&with("[daemon]\npoll_interval_ms = 49\n")),
        "config /etc/monitor/monitor.toml: daemon.poll_interval_ms: 49 is out of range; use 50 \
         to 60000 (milliseconds)"
    );
    assert_eq!(
        error(&with("[daemon]\npoll_interval_ms = 60001\n")),
        "config /etc/monitor/monitor.toml: daemon.poll_interval_ms: 60001 is out of range; use \
         50 to 60000 (milliseconds)"
    );
    assert!(parse(&with("[daemon]\npoll_interval_ms = 60000\n")).is_ok());
    assert_eq!(
        error(&with("[daemon]\nflow_table_size = 255\n")),
        "config /etc/monitor/monitor.toml: daemon.flow_table_size: 255 is out of range; use \
         256 to 16777216 (flow map entries)"
    );
    assert_eq!(
        error(&with("[daemon]\nflow_table_size = 16777217\n")),
        "config /etc/monitor/monitor.toml: daemon.flow_table_size: 16777217 is out of range; \
         use 256 to 16777216 (flow map entries)"
    );
    assert!(parse(&with("[daemon]\nflow_table_size = 16777216\n")).is_ok());
    assert_eq!(
        error(&with("[daemon]\nflow_table_size = -1\n")),
        "config /etc/monitor/monitor.toml: daemon.flow_table_size: invalid value: integer `-1`, \
         expected u32 (line 5, column 19)"
    );
    assert_eq!(
        error(&with("[daemon]\npin_path = \"bpf/monitor\"\n")),
        "config /etc/monitor/monitor.toml: daemon.pin_path: \"bpf/monitor\" is not an absolute path"
    );
    assert_eq!(
        error(&with("[daemon]\nstatus_socket = \"monitor.sock\"\n")),
        "config /etc/monitor/monitor.toml: daemon.status_socket: \"monitor.sock\" is not an \
         absolute path"
    );
}

#[test]
fn bad_prefixes_name_the_entry() {
    assert_eq!(
        error(&with("[webex]\nprefixes = [\"203.0.113.1/24\"]\n")),
        "config /etc/monitor/monitor.toml: webex.prefixes[0]: \"203.0.113.1/24\" has host bits \
         set; did you mean 203.0.113.0/24? (line 5, column 13)"
    );
    assert_eq!(
        error(&with(
            "[webex]\nprefixes = [\"192.0.2.0/24\", \"2001:db8::/129\"]\n"
        )),
        "config /etc/monitor/monitor.toml: webex.prefixes[1]: \"2001:db8::/129\": prefix length \
         129 is longer than 128, the maximum for IPv6 (line 5, column 29)"
    );
    assert_eq!(
        error(&with("[webex]\nprefixes = [\"webex.com\"]\n")),
        "config /etc/monitor/monitor.toml: webex.prefixes[0]: \"webex.com\" is not a prefix; \
         write ADDRESS/LENGTH, e.g. 203.0.113.0/24 or 2001:db8::/32 (line 5, column 13)"
    );
    assert_eq!(
        error(&with("[webex]\nprefixes = [24]\n")),
        "config /etc/monitor/monitor.toml: webex.prefixes[0]: invalid type: integer `24`, \
         expected a prefix like \"203.0.113.0/24\" or \"2001:db8::/32\" (line 5, column 13)"
    );
}

#[test]
fn bad_port_entries_name_the_entry() {
    assert_eq!(
        error(&with("[ports]\nmedia_udp = [5004, 9000, \"9000-5004\"]\n")),
        "config /etc/monitor/monitor.toml: ports.media_udp[2]: range \"9000-5004\" starts after \
         it ends; did you mean \"5004-9000\"? (line 5, column 26)"
    );
    assert_eq!(
        error(&with("[ports]\nsip_tcp = [0]\n")),
        "config /etc/monitor/monitor.toml: ports.sip_tcp[0]: port 0 is not a valid port; use 1 \
         to 65535 (line 5, column 12)"
    );
    assert_eq!(
        error(&with("[ports]\nhttps_tcp = [443, 70000]\n")),
        "config /etc/monitor/monitor.toml: ports.https_tcp[1]: port 70000 is out of range; use 1 \
         to 65535 (line 5, column 19)"
    );
    assert_eq!(
        error(&with("[ports]\ndns = [\"domain\"]\n")),
        "config /etc/monitor/monitor.toml: ports.dns[0]: \"domain\" is not a port or a port \
         range; write a number like 5004 or a range like \"19560-65535\" (line 5, column 8)"
    );
    assert_eq!(
        error(&with("[ports]\nntp_udp = [12.5]\n")),
        "config /etc/monitor/monitor.toml: ports.ntp_udp[0]: invalid type: floating point \
         `12.5`, expected a port number like 5004 or a range like \"19560-65535\" (line 5, \
         column 12)"
    );
}

#[test]
fn a_port_in_two_lists_of_one_transport_is_a_conflict() {
    assert_eq!(
        error(&with("[ports]\nntp_udp = [123, 5004]\n")),
        "config /etc/monitor/monitor.toml: ports.ntp_udp[1]: UDP port 5004 is also in \
         ports.media_udp[0]; a port can have only one class, remove it from one of the lists"
    );
    assert_eq!(
        error(&with("[ports]\ndns = [53, \"440-450\"]\n")),
        "config /etc/monitor/monitor.toml: ports.dns[1]: TCP port 443 is also in \
         ports.https_tcp[0]; a port can have only one class, remove it from one of the lists"
    );
    assert_eq!(
        error(&with("[ports]\nhttps_tcp = [443, 5062]\n")),
        "config /etc/monitor/monitor.toml: ports.https_tcp[1]: TCP port 5062 is also in \
         ports.sip_tcp[1]; a port can have only one class, remove it from one of the lists"
    );
    // The same port on different transports is fine, and so is a repeat in one list.
    let v = parse(&with("[ports]\nsip_tcp = [5004, 5004, \"5000-5010\"]\n")).unwrap();
    assert_eq!(
        class_at(&v.port_table, IPPROTO_TCP, 5004),
        Class::SipSignalling as u8
    );
    assert_eq!(
        class_at(&v.port_table, IPPROTO_UDP, 5004),
        Class::Media as u8
    );
}

#[test]
fn status_socket_is_read_without_validating_the_rest() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("monitor-status-cfg-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[daemon]\nstatus_socket = \"/tmp/x.sock\"\nfuture_key = 1\n",
    )
    .unwrap();
    let named = read_status_socket(&path);
    std::fs::write(&path, "[[interfaces]]\nname = \"not-here\"\n").unwrap();
    let default = read_status_socket(&path);
    std::fs::write(&path, "[daemon\n").unwrap();
    let broken = read_status_socket(&path).map_err(|e| e.to_string());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(named.unwrap(), PathBuf::from("/tmp/x.sock"));
    assert_eq!(default.unwrap(), PathBuf::from("/run/monitor/monitor.sock"));
    assert_eq!(
        broken.unwrap_err(),
        format!(
            "config {}: line 1, column 8: invalid table header; expected `.`, `]`",
            path.display()
        )
    );
}

#[test]
fn suggestions_only_for_near_misses() {
    assert_eq!(edit_distance("flow_tabel_size", "flow_table_size"), 2);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("same", "same"), 0);
    assert_eq!(
        with_suggestion("unknown field `zzz`, expected `name` or `role`"),
        "unknown field `zzz`, expected `name` or `role`"
    );
    // Two edits away, but too short to be a typo of it.
    assert_eq!(
        with_suggestion("unknown field `mod`, expected `name` or `role`"),
        "unknown field `mod`, expected `name` or `role`"
    );
    assert_eq!(
        with_suggestion(
            "unknown field `dedicated`, expected `prefixes` or `dedicated_port_ranges`"
        ),
        "unknown field `dedicated`, expected `prefixes` or `dedicated_port_ranges`; did you mean \
         `dedicated_port_ranges`?"
    );
}
