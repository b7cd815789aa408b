//! `cargo xtask install --root DIR --binary PATH` into a temporary root: every file where
//! the unit expects it, with the right mode, and a user's configuration never
//! overwritten. (`--binary` skips the release build: a nested cargo would wait for the
//! lock this test run holds. The real binary is installed and the unit verified by
//! systemd in monitor/tests/systemd_unit.rs.)

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use xtask::install::{BIN, CONFIG, DOC, UNIT};
use xtask::{TempDir, workspace_dir};

fn xtask_install(root: &Path, binary: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("install")
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(binary)
        .output()
        .expect("run xtask");
    assert!(
        out.status.success(),
        "xtask install failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn installs_everything_and_never_overwrites_the_config() {
    let dir = TempDir::new().unwrap();
    let root = dir.join("root");
    let binary = dir.join("monitor-build");
    std::fs::write(&binary, "#!/bin/sh\necho first\n").unwrap();
    let src = workspace_dir();

    let first = xtask_install(&root, &binary);
    for (path, mode_want, source) in [
        (BIN, 0o755, binary.clone()),
        (UNIT, 0o644, src.join("systemd/monitor.service")),
        (DOC, 0o644, src.join("README.md")),
        (CONFIG, 0o600, src.join("systemd/monitor.toml")),
    ] {
        let dest = root.join(path);
        assert_eq!(mode(&dest), mode_want, "{path}");
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&source).unwrap(),
            "{path} is a copy of {}",
            source.display()
        );
    }
    for d in [
        "etc/monitor",
        "usr/local/bin",
        "usr/local/share/doc/monitor",
    ] {
        assert_eq!(mode(&root.join(d)), 0o755, "{d}");
    }
    // The unit points at what was installed.
    let unit = std::fs::read_to_string(root.join(UNIT)).unwrap();
    assert!(unit.contains(&format!("ExecStart=/{BIN} run --config /{CONFIG}\n")));
    assert!(unit.contains(&format!("Documentation=file:///{DOC}\n")));
    assert!(first.contains(&format!("installed {}", root.join(CONFIG).display())));
    assert!(
        first.contains("$EDITOR /etc/monitor/monitor.toml"),
        "{first}"
    );
    assert!(first.contains("systemctl daemon-reload && systemctl enable --now monitor"));
    // No temporary files left next to the destinations.
    for d in ["etc/monitor", "usr/local/bin", "etc/systemd/system"] {
        for e in std::fs::read_dir(root.join(d)).unwrap() {
            let name = e.unwrap().file_name();
            assert!(!name.to_string_lossy().starts_with('.'), "{name:?} in {d}");
        }
    }

    // The user edits the config; a later install (a new build) keeps it.
    let edited = "# mine\n[[interfaces]]\nname = \"wan7\"\nrole = \"wan\"\n";
    std::fs::write(root.join(CONFIG), edited).unwrap();
    std::fs::write(&binary, "#!/bin/sh\necho second\n").unwrap();
    let second = xtask_install(&root, &binary);
    assert_eq!(std::fs::read_to_string(root.join(CONFIG)).unwrap(), edited);
    assert!(
        second.contains(&format!("kept {}", root.join(CONFIG).display())),
        "{second}"
    );
    assert!(second.contains("never overwritten"));
    assert_eq!(
        std::fs::read_to_string(root.join(BIN)).unwrap(),
        "#!/bin/sh\necho second\n",
        "the binary is replaced"
    );
    assert_eq!(mode(&root.join(BIN)), 0o755);
}
