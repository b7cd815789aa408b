//! `monitor check` sees a SIP helper assigned through iptables (`-j CT --helper sip`),
//! with either back end: iptables-legacy (invisible to nftables) and iptables-nft (whose
//! CT target nftables shows only as `xt target CT`). A CT rule for another helper passes.

use std::process::{Command, Stdio};

use serde_json::Value;
use xtask::{PinDir, TempDir, Testbed, monitor_bin};

/// `monitor check --json` on the gateway of `tb` (nsenter: bpffs stays visible).
fn check(tb: &Testbed) -> (i32, Value) {
    let dir = TempDir::new().expect("tempdir");
    let pin = PinDir::new();
    let config = dir.join("monitor.toml");
    xtask::config::write_gateway_config(&config, pin.path(), &dir.join("monitor.sock"))
        .expect("config");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", tb.gw.path().display()))
        .arg("--")
        .arg(monitor_bin())
        .args(["check", "--json", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("monitor check");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check output is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), json)
}

fn sip_helper(report: &Value) -> Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sip_helper")
        .unwrap_or_else(|| panic!("no sip_helper check: {report:#}"))
        .clone()
}

#[test]
fn iptables_ct_sip_helper_fails_the_check_with_both_back_ends() {
    for tool in ["iptables-legacy", "iptables-nft"] {
        let tb = Testbed::new().expect("testbed");
        // Another helper first: not a SIP ALG.
        tb.gw
            .exec(&[
                tool,
                "-t",
                "raw",
                "-A",
                "PREROUTING",
                "-p",
                "tcp",
                "--dport",
                "21",
                "-j",
                "CT",
                "--helper",
                "ftp",
            ])
            .expect("iptables ftp helper");
        let (_, report) = check(&tb);
        let sip = sip_helper(&report);
        assert_eq!(sip["status"], "pass", "{tool}: {sip:#}");

        tb.gw
            .exec(&[
                tool,
                "-t",
                "raw",
                "-A",
                "PREROUTING",
                "-p",
                "udp",
                "--dport",
                "5060",
                "-j",
                "CT",
                "--helper",
                "sip",
            ])
            .expect("iptables sip helper");
        let (code, report) = check(&tb);
        let sip = sip_helper(&report);
        assert_eq!(sip["status"], "fail", "{tool}: {sip:#}");
        assert_eq!(
            sip["value"],
            format!(
                "iptables rules: {tool}: -A PREROUTING -p udp -m udp --dport 5060 -j CT --helper sip"
            ),
            "{tool}"
        );
        assert!(!sip["fix"].as_str().unwrap().is_empty());
        assert_eq!(report["status"], "fail");
        assert_eq!(code, 2);
    }
}
