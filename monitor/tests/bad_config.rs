//! A bad config is one clear message naming the problem, exit status 64, and nothing
//! attached or pinned. Each case changes one thing in an otherwise valid config for the
//! testbed gateway, so a daemon that did start would attach to its interfaces.

use std::{path::Path, process::Command};

use xtask::{PinDir, TempDir, Testbed, monitor_bin};

const VALID_INTERFACES: &str = r#"
[[interfaces]]
name = "lan0"
role = "lan"

[[interfaces]]
name = "wan0"
role = "wan"
"#;

fn base(pin: &Path, sock: &Path) -> String {
    format!(
        "[daemon]\npin_path = \"{}\"\nstatus_socket = \"{}\"\n",
        pin.display(),
        sock.display()
    )
}

struct Case {
    name: &'static str,
    /// Config text after the [daemon] section (None: the file is not written).
    body: Option<String>,
    /// Words the one-line message must contain.
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let webex = "\n[webex]\nuse_default_prefixes = false\nprefixes = [\"203.0.113.0/24\"]\n";
    vec![
        Case {
            name: "unknown key",
            body: Some(format!("flow_tabel_size = 2048\n{VALID_INTERFACES}{webex}")),
            expect: &["flow_tabel_size"],
        },
        Case {
            name: "bad prefix",
            body: Some(format!(
                "{VALID_INTERFACES}\n[webex]\nprefixes = [\"203.0.113.300/24\"]\n"
            )),
            expect: &["webex.prefixes", "203.0.113.300/24"],
        },
        Case {
            name: "prefix with host bits",
            body: Some(format!(
                "{VALID_INTERFACES}\n[webex]\nprefixes = [\"203.0.113.1/24\"]\n"
            )),
            expect: &["webex.prefixes", "203.0.113.0/24"],
        },
        // A missing interface is waited for (tests/interface_health.rs); a name no interface
        // can have is not.
        Case {
            name: "impossible interface name",
            body: Some(format!(
                "{VALID_INTERFACES}\n[[interfaces]]\nname = \"no such/if\"\nrole = \"wan\"\n{webex}"
            )),
            expect: &["interfaces[2]", "no such/if", "not a valid interface name"],
        },
        Case {
            name: "bad port range",
            body: Some(format!(
                "{VALID_INTERFACES}{webex}\n[ports]\nmedia_udp = [\"9000-5004\"]\n"
            )),
            expect: &["ports.media_udp", "9000-5004"],
        },
        Case {
            name: "port out of range",
            body: Some(format!(
                "{VALID_INTERFACES}{webex}\n[ports]\nsip_tcp = [70000]\n"
            )),
            expect: &["ports.sip_tcp", "70000"],
        },
        Case {
            name: "invalid toml",
            body: Some(format!("{VALID_INTERFACES}\n[webex\nprefixes = []\n")),
            expect: &["line"],
        },
        Case {
            name: "unreadable file",
            body: None,
            expect: &["cannot read", "No such file"],
        },
    ]
}

#[test]
fn each_bad_config_exits_64_with_a_message_and_attaches_nothing() {
    let tb = Testbed::new().expect("testbed");
    let dir = TempDir::new().expect("tempdir");
    for (i, case) in cases().into_iter().enumerate() {
        let pin = PinDir::new();
        let sock = dir.join(format!("{i}.sock"));
        let path = dir.join(format!("{i}.toml"));
        if let Some(body) = &case.body {
            std::fs::write(&path, format!("{}{body}", base(pin.path(), &sock))).unwrap();
        }
        let out = Command::new("nsenter")
            .arg(format!("--net={}", tb.gw.path().display()))
            .arg("--")
            .arg(monitor_bin())
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .expect("run monitor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{}: exit status; stderr: {stderr}",
            case.name
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{}: one message, got: {stderr}", case.name);
        assert!(
            lines[0].contains(&path.display().to_string()),
            "{}: names the file: {stderr}",
            case.name
        );
        for word in case.expect {
            assert!(
                stderr.contains(word),
                "{}: {word:?} missing in: {stderr}",
                case.name
            );
        }
        // Nothing attached, pinned or bound.
        assert!(!pin.path().exists(), "{}: pin dir created", case.name);
        assert!(!sock.exists(), "{}: socket created", case.name);
        for iface in ["lan0", "wan0"] {
            let out = tb.gw.ip(&["-d", "link", "show", iface]).expect("ip link");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains("prog/xdp"), "{}: XDP on {iface}", case.name);
        }
    }
}

#[test]
fn check_config_accepts_a_valid_config_without_attaching() {
    let tb = Testbed::new().expect("testbed");
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    let path = dir.join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "{}{VALID_INTERFACES}",
            base(pin.path(), &dir.join("s.sock"))
        ),
    )
    .unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(["run", "--check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run monitor");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pin.path().exists());
}
