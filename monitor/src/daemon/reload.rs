//! SIGHUP: read the config again and apply what can change while running — the Webex
//! prefixes, the port rules and the flow-tracking settings. A config that does not
//! validate is refused whole and the running one stays; changes that need a restart
//! (interfaces, pin path, socket, poll interval, table size, DSCP, export, quality) are
//! named and left for the next start, never half-applied (as are `[mtu]`, `[detect]` and
//! `[learn]`, which the detectors and the learner read once).

use std::path::Path;

use aya::Ebpf;
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, ValidatedConfig},
    kernel::loader,
};

/// The outcome of the last reload, as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub at_unix_s: u64,
    /// True when the new config was valid and its reloadable part is in effect.
    pub ok: bool,
    /// What happened, in one line (the validation error when refused).
    pub message: String,
    /// Changed settings that only a restart applies.
    pub needs_restart: Vec<String>,
}

/// Reloads `path` over `running`. Returns the config now in effect and what happened.
pub fn reload(
    path: &Path,
    running: &ValidatedConfig,
    ebpf: &mut Ebpf,
    now_unix_s: u64,
) -> (Option<ValidatedConfig>, ReloadStatus) {
    let refused = |message: String| ReloadStatus {
        at_unix_s: now_unix_s,
        ok: false,
        message,
        needs_restart: Vec::new(),
    };
    let new = match config::load(path) {
        Ok(c) => c,
        Err(e) => return (None, refused(format!("{e}; keeping the running config"))),
    };
    let (merged, needs_restart) = merge(running, new);
    if let Err(e) = loader::apply_config(ebpf, &merged) {
        return (
            None,
            refused(format!(
                "applying the new config failed: {e}; the running config stays"
            )),
        );
    }
    let message = if needs_restart.is_empty() {
        "reloaded".to_string()
    } else {
        format!(
            "reloaded; restart to apply the change of {}",
            needs_restart.join(", ")
        )
    };
    (
        Some(merged),
        ReloadStatus {
            at_unix_s: now_unix_s,
            ok: true,
            message,
            needs_restart,
        },
    )
}

/// The new config with everything that cannot change at run time taken from the running
/// one, and the names of what differed there.
fn merge(running: &ValidatedConfig, mut new: ValidatedConfig) -> (ValidatedConfig, Vec<String>) {
    let mut restart = Vec::new();
    let (r, n) = (&running.config.daemon, &new.config.daemon);
    for (name, changed) in [
        ("daemon.pin_path", r.pin_path != n.pin_path),
        ("daemon.status_socket", r.status_socket != n.status_socket),
        (
            "daemon.poll_interval_ms",
            r.poll_interval_ms != n.poll_interval_ms,
        ),
        (
            "daemon.flow_table_size",
            r.flow_table_size != n.flow_table_size,
        ),
    ] {
        if changed {
            restart.push(name.to_string());
        }
    }
    new.config.daemon = crate::config::DaemonConfig {
        track_all_flows: n.track_all_flows,
        ..r.clone()
    };
    if new.config.interfaces != running.config.interfaces {
        restart.push("interfaces".into());
    }
    new.config.interfaces = running.config.interfaces.clone();
    new.ifindexes = running.ifindexes.clone();
    if new.config.dscp != running.config.dscp {
        restart.push("dscp".into());
    }
    new.config.dscp = running.config.dscp.clone();
    if new.config.export != running.config.export {
        restart.push("export".into());
    }
    new.config.export = running.config.export.clone();
    if new.config.quality != running.config.quality {
        restart.push("quality".into());
    }
    new.config.quality = running.config.quality.clone();
    // The detectors and the learner read these once, at start.
    if new.config.mtu != running.config.mtu {
        restart.push("mtu".into());
    }
    new.config.mtu = running.config.mtu.clone();
    if new.config.detect != running.config.detect {
        restart.push("detect".into());
    }
    new.config.detect = running.config.detect.clone();
    if new.config.learn != running.config.learn {
        restart.push("learn".into());
    }
    new.config.learn = running.config.learn.clone();
    (new, restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> ValidatedConfig {
        let text = format!(
            "[daemon]\npoll_interval_ms = 1000\n\n[[interfaces]]\nname = \"eth0\"\nrole = \"wan\"\n\n{extra}"
        );
        config::parse_and_validate(&text, Path::new("t.toml"), &|_| Some(2)).expect("valid")
    }

    #[test]
    fn prefixes_and_ports_apply_the_rest_waits_for_a_restart() {
        let running =
            cfg("[webex]\nuse_default_prefixes = false\nprefixes = [\"203.0.113.0/24\"]\n");
        let new = config::parse_and_validate(
            "[daemon]\npoll_interval_ms = 500\ntrack_all_flows = true\n\n[[interfaces]]\nname = \"eth1\"\nrole = \"lan\"\n\n[webex]\nuse_default_prefixes = false\nprefixes = [\"198.51.100.0/24\"]\n\n[ports]\nmedia_udp = [5004]\n",
            Path::new("t.toml"),
            &|_| Some(3),
        )
        .unwrap();
        let (merged, restart) = merge(&running, new);
        assert_eq!(restart, ["daemon.poll_interval_ms", "interfaces"]);
        // Applied: prefixes, ports, tracking.
        assert_eq!(merged.prefixes.len(), 1);
        assert_eq!(merged.prefixes[0].to_string(), "198.51.100.0/24");
        assert!(merged.config.daemon.track_all_flows);
        assert_eq!(merged.port_table[9000], 0, "9000 is no longer a media port");
        // Kept: the running interfaces and poll interval.
        assert_eq!(merged.config.interfaces[0].name, "eth0");
        assert_eq!(merged.ifindexes, [2]);
        assert_eq!(merged.config.daemon.poll_interval_ms, 1000);
    }

    #[test]
    fn an_unchanged_config_needs_no_restart() {
        let running = cfg("");
        let (_, restart) = merge(&running, cfg(""));
        assert!(restart.is_empty());
    }
}
