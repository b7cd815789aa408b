//! The capabilities the daemon needs, checked before it creates anything, so a missing
//! one is named instead of surfacing as a verifier or netlink error halfway through.

/// CAP_SYS_ADMIN, which the kernel accepts in place of CAP_BPF and CAP_PERFMON.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_NET_ADMIN: u32 = 12;

/// What the daemon needs, with why: (bit, name, what for).
pub const NEEDED: [(u32, &str, &str); 3] = [
    (39, "CAP_BPF", "to load the eBPF programs and maps"),
    (
        12,
        "CAP_NET_ADMIN",
        "to load and attach XDP and TC programs",
    ),
    (38, "CAP_PERFMON", "for the programs' packet pointer access"),
];

/// The process's effective capability mask (`CapEff` of /proc/self/status); `None` when
/// it cannot be read (then the kernel's own errors speak).
pub fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The first missing capability as one line saying what it is for and how to grant it.
pub fn check(eff: &Option<u64>) -> Result<(), String> {
    let Some(eff) = eff else { return Ok(()) };
    let held = |bit: u32| eff & (1 << bit) != 0;
    // As the kernel's bpf_capable() and perfmon_capable(): CAP_SYS_ADMIN will do.
    let granted = |bit: u32| held(bit) || (bit != CAP_NET_ADMIN && held(CAP_SYS_ADMIN));
    let missing: Vec<&(u32, &str, &str)> =
        NEEDED.iter().filter(|(bit, _, _)| !granted(*bit)).collect();
    match missing.as_slice() {
        [] => Ok(()),
        [(_, name, why), rest @ ..] => {
            let also = rest.iter().map(|(_, n, _)| *n).collect::<Vec<_>>();
            let also = if also.is_empty() {
                String::new()
            } else {
                format!(" (also missing: {})", also.join(", "))
            };
            Err(format!(
                "missing capability {name}, needed {why}{also}; run as root or through \
                 systemd/monitor.service, which grants CAP_BPF CAP_NET_ADMIN CAP_PERFMON"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << 12) | (1 << 38) | (1 << 39);

    #[test]
    fn names_the_missing_capability() {
        assert_eq!(check(&Some(ALL)), Ok(()));
        assert_eq!(check(&None), Ok(()));
        let e = check(&Some(ALL & !(1 << 12))).unwrap_err();
        assert!(
            e.starts_with("missing capability CAP_NET_ADMIN, needed"),
            "{e}"
        );
        assert!(!e.contains("also missing"), "{e}");
        let e = check(&Some(ALL & !(1 << 39))).unwrap_err();
        assert!(e.starts_with("missing capability CAP_BPF,"), "{e}");
        let e = check(&Some(0)).unwrap_err();
        assert!(
            e.contains("also missing: CAP_NET_ADMIN, CAP_PERFMON"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, not for CAP_NET_ADMIN.
        let sys_admin = 1 << CAP_SYS_ADMIN;
        assert_eq!(check(&Some(sys_admin | (1 << 12))), Ok(()));
        let e = check(&Some(sys_admin)).unwrap_err();
        assert!(e.starts_with("missing capability CAP_NET_ADMIN,"), "{e}");
    }
}
