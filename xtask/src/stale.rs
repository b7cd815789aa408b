//! Telling leftovers of crashed runs from resources of runs still going on.
//!
//! Testbed namespaces and test/demo pin directories carry their creator's pid right after
//! a fixed prefix (`mtb1234x0-gw`, `monitor-test-1234-0`, `monitor-demo-1234`). A leftover is one whose creator
//! is gone; resources of a live process (a test running concurrently) are never touched.

/// True if `name` is `<prefix><pid>` or `<prefix><pid><sep>...` and process `pid` no
/// longer exists. Names that do not follow the format are not ours and never stale.
pub fn is_stale(name: &str, prefix: &str, sep: char) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let pid = rest.split_once(sep).map_or(rest, |(pid, _)| pid);
    match pid.parse::<libc::pid_t>() {
        Ok(pid) if pid > 0 => !pid_alive(pid),
        _ => false,
    }
}

fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::is_stale;

    #[test]
    fn own_process_is_not_stale() {
        let name = format!("mtb{}x3-gw", std::process::id());
        assert!(!is_stale(&name, "mtb", 'x'));
    }

    #[test]
    fn dead_process_is_stale() {
        // Above the largest possible pid_max (2^22), so no process can have it.
        assert!(is_stale("mtb4194305x0-lan", "mtb", 'x'));
        assert!(is_stale("monitor-test-4194305-7", "monitor-test-", '-'));
        assert!(is_stale("monitor-demo-4194305", "monitor-demo-", '-'));
    }

    #[test]
    fn foreign_names_are_left_alone() {
        for name in ["other", "mtb", "mtbx1-gw", "mtb-1x0-gw", "mtb0x0-gw"] {
            assert!(!is_stale(name, "mtb", 'x'), "{name}");
        }
    }
}
