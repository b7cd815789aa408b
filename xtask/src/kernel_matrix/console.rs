//! Reading the guest's serial console: the markers `/init` prints around each test
//! executable, its exit status, and libtest's summary and failures in between.

/// Prefix of every marker line; unlikely in test or kernel output.
pub const MARK: &str = "@@KM";

/// One test executable's run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Binary {
    pub name: String,
    /// Its exit status; `None` if the END marker never came (the guest died or hung).
    pub status: Option<i32>,
    /// From libtest's "test result:" line, when there was one.
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
    /// Names of the tests libtest reported as FAILED.
    pub failures: Vec<String>,
}

impl Binary {
    /// Exited 0 after a libtest summary with no failure.
    pub fn ok(&self) -> bool {
        self.status == Some(0) && self.failed == 0 && self.passed + self.ignored > 0
    }
}

/// One boot's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Boot {
    /// `uname -r` in the guest.
    pub kernel: Option<String>,
    pub binaries: Vec<Binary>,
    /// `/init` reached its end (no test executable hung or took the guest down).
    pub done: bool,
}

impl Boot {
    pub fn ok(&self, expected: &[&str]) -> bool {
        self.done
            && self.binaries.len() == expected.len()
            && self
                .binaries
                .iter()
                .zip(expected)
                .all(|(b, name)| b.name == *name && b.ok())
    }
}

/// Parses a console capture (any line endings; kernel lines may be interleaved).
pub fn parse(console: &str) -> Boot {
    let mut boot = Boot::default();
    let mut current: Option<Binary> = None;
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(MARK).map(str::trim) {
            if let Some(kernel) = rest.strip_prefix("KERNEL ") {
                boot.kernel = Some(kernel.trim().to_owned());
            } else if let Some(name) = rest.strip_prefix("BEGIN ") {
                boot.binaries.extend(current.take());
                current = Some(Binary {
                    name: name.trim().to_owned(),
                    ..Binary::default()
                });
            } else if let Some(end) = rest.strip_prefix("END ") {
                if let Some(mut bin) = current.take() {
                    bin.status = end
                        .rsplit_once("status=")
                        .and_then(|(_, s)| s.trim().parse().ok());
                    boot.binaries.push(bin);
                }
            } else if rest == "DONE" {
                boot.done = true;
            }
            continue;
        }
        let Some(bin) = current.as_mut() else {
            continue;
        };
        if let Some(summary) = line.strip_prefix("test result: ") {
            // A binary prints one summary (doc tests aside); add in case of several.
            bin.passed += count(summary, "passed");
            bin.failed += count(summary, "failed");
            bin.ignored += count(summary, "ignored");
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            bin.failures.push(name.to_owned());
        }
    }
    boot.binaries.extend(current);
    boot
}

/// N in "...; N <what>; ..." of a libtest summary ("ok. 5 passed; 0 failed; ...").
fn count(summary: &str, what: &str) -> u32 {
    summary
        .split([';', '.'])
        .filter_map(|part| part.trim().strip_suffix(what))
        .find_map(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &str = "\
SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\
[    0.000000] Linux version 6.1.0-56-amd64\r\n\
@@KM KERNEL 6.1.0-56-amd64\r\n\
@@KM BEGIN kernel_parser\r\n\
\r\n\
running 3 tests\r\n\
test a ... ok\r\n\
[   12.345678] random: crng init done\r\n\
test b ... ok\r\n\
test c ... ignored\r\n\
\r\n\
test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 3.21s\r\n\
\r\n\
@@KM END kernel_parser status=0\r\n\
@@KM BEGIN kernel_maps\r\n\
running 2 tests\r\n\
test refuses_old_layout ... FAILED\r\n\
test snapshot ... ok\r\n\
failures:\r\n\
    refuses_old_layout\r\n\
test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.50s\r\n\
@@KM END kernel_maps status=101\r\n\
@@KM DONE\r\n";

    #[test]
    fn a_capture_gives_each_binary_its_counts_status_and_failures() {
        let boot = parse(CAPTURE);
        assert_eq!(boot.kernel.as_deref(), Some("6.1.0-56-amd64"));
        assert!(boot.done);
        assert_eq!(
            boot.binaries,
            vec![
                Binary {
                    name: "kernel_parser".into(),
                    status: Some(0),
                    passed: 2,
                    failed: 0,
                    ignored: 1,
                    failures: vec![],
                },
                Binary {
                    name: "kernel_maps".into(),
                    status: Some(101),
                    passed: 1,
                    failed: 1,
                    ignored: 0,
                    failures: vec!["refuses_old_layout".into()],
                },
            ]
        );
        assert!(boot.binaries[0].ok());
        assert!(!boot.binaries[1].ok());
        assert!(!boot.ok(&["kernel_parser", "kernel_maps"]));
    }

    #[test]
    fn a_guest_that_died_mid_test_is_not_ok() {
        let capture = "@@KM KERNEL 6.1.0-56-amd64\n@@KM BEGIN kernel_fuzz\nrunning 1 test\n\
                       [  99.0] BUG: kernel NULL pointer dereference\n";
        let boot = parse(capture);
        assert!(!boot.done);
        assert_eq!(boot.binaries.len(), 1);
        assert_eq!(boot.binaries[0].status, None);
        assert!(!boot.ok(&["kernel_fuzz"]));
    }

    #[test]
    fn all_passing_with_every_binary_present_is_ok() {
        let capture = "@@KM BEGIN kernel_a\ntest result: ok. 4 passed; 0 failed; 0 ignored; \
                       0 measured; 0 filtered out; finished in 1.00s\n@@KM END kernel_a status=0\n\
                       @@KM DONE\n";
        let boot = parse(capture);
        assert!(boot.ok(&["kernel_a"]));
        // A binary the guest never ran is a failure, not a pass.
        assert!(!boot.ok(&["kernel_a", "kernel_b"]));
    }
}
