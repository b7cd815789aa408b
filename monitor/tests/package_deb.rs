//! The Debian package (`cargo xtask package`, xtask/src/package.rs), built from this test
//! binary and installed with the real dpkg into a scratch root (`dpkg --root`, maintainer
//! scripts run with DPKG_ROOT set, as on an image build; this machine does not run
//! systemd as PID 1, so the scripts take that path): every file where the unit expects
//! it with its mode, `systemd-analyze verify` on the installed unit, the completions and
//! man page present, an upgrade keeps a locally changed configuration, and
//! `dpkg --purge` leaves nothing behind.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::TempDir;
use xtask::package::{self, BIN, CONFIG, DOC_DIR, FILES, UNIT};

fn dpkg(root: &Path, args: &[&str]) -> String {
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            // The scratch root's package database is empty: libc6 is not "installed" there.
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args)
        .output()
        .expect("dpkg");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dpkg {args:?} failed:\n{text}");
    text
}

/// An empty dpkg database under `root`.
fn scratch_root(dir: &TempDir) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "var/lib/dpkg/updates",
        "var/lib/dpkg/info",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    root
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every regular file and symlink under `root`, outside dpkg's own database.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("var/lib/dpkg") {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn the_package_installs_upgrades_keeps_the_config_and_purges_clean() {
    let dir = TempDir::new().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_monitor"));
    let v1 = package::build_deb(binary, "0.1.0", dir.path()).expect("package 0.1.0");
    let root = scratch_root(&dir);

    let out = dpkg(&root, &["-i", v1.to_str().unwrap()]);
    assert!(
        out.contains("set your LAN and WAN interfaces in /etc/monitor/monitor.toml"),
        "postinst's first-install note:\n{out}"
    );
    for (path, want) in FILES {
        assert_eq!(mode(&root.join(path)), *want, "{path}");
    }
    for (from, name) in package::doc_files() {
        let dest = root.join(DOC_DIR).join(name);
        assert_eq!(mode(&dest), 0o644, "{name}");
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&from).unwrap());
    }
    let src = xtask::workspace_dir();
    assert_eq!(
        std::fs::read(root.join(CONFIG)).unwrap(),
        std::fs::read(src.join("systemd/monitor.toml")).unwrap()
    );
    let listed = dpkg(&root, &["-L", "monitor"]);
    for (path, _) in FILES {
        assert!(
            listed.contains(&format!("/{path}\n")),
            "{path} not in dpkg -L"
        );
    }
    let status = dpkg(&root, &["-s", "monitor"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains(&format!("Conffiles:\n /{CONFIG} ")),
        "{status}"
    );

    // The installed binary runs and is the one the unit starts.
    let installed = root.join(BIN);
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "monitor 0.1.0"
    );
    let unit = std::fs::read_to_string(root.join(UNIT)).unwrap();
    assert!(unit.contains(&format!("ExecStart=/{BIN} run --config /{CONFIG}\n")));
    assert!(unit.contains(&format!(
        "Documentation=man:monitor(1) file:///{DOC_DIR}/README.md\n"
    )));
    assert!(!unit.contains("/usr/local"), "{unit}");
    // The man page and completions are the binary's own.
    let man = std::fs::read(root.join(package::MAN)).unwrap();
    assert_eq!(&man[..2], &[0x1f, 0x8b], "gzip");
    let bash = std::fs::read_to_string(root.join(package::BASH_COMPLETION)).unwrap();
    assert!(bash.contains("complete -F _monitor"), "{bash}");
    assert!(
        std::fs::read_to_string(root.join(package::ZSH_COMPLETION))
            .unwrap()
            .starts_with("#compdef monitor")
    );
    assert!(
        std::fs::read_to_string(root.join(package::FISH_COMPLETION))
            .unwrap()
            .contains("complete -c monitor")
    );

    // systemd-analyze verify on the installed unit (ExecStart pointed at the scratch root,
    // since verify checks that the binary exists).
    let checked = dir.join("monitor.service");
    std::fs::write(
        &checked,
        unit.replace(&format!("/{BIN} "), &format!("{} ", installed.display())),
    )
    .unwrap();
    // (verify runs `man` for the man: link: the page is looked up in the scratch root.)
    let verify = Command::new("systemd-analyze")
        .env("MANPATH", root.join("usr/share/man"))
        .arg("verify")
        .arg(&checked)
        .output()
        .expect("systemd-analyze (package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The user edits the config; an upgrade keeps it (the shipped default is unchanged,
    // so dpkg keeps it silently), and replaces the binary.
    let edited = "# mine\n[[interfaces]]\nname = \"wan7\"\nrole = \"wan\"\n";
    std::fs::write(root.join(CONFIG), edited).unwrap();
    let v2 = package::build_deb(binary, "0.1.1", dir.path()).expect("package 0.1.1");
    let out = dpkg(&root, &["-i", v2.to_str().unwrap()]);
    assert!(
        !out.contains("set your LAN and WAN"),
        "no first-install note on upgrade:\n{out}"
    );
    assert_eq!(std::fs::read_to_string(root.join(CONFIG)).unwrap(), edited);
    assert_eq!(mode(&root.join(CONFIG)), 0o600);
    assert!(dpkg(&root, &["-s", "monitor"]).contains("Version: 0.1.1"));

    // Purge: everything the package installed is gone, config and its directory too.
    dpkg(&root, &["--purge", "monitor"]);
    let left = files_under(&root);
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert!(!root.join("etc/monitor").exists());
    assert!(!root.join("usr/share/doc/monitor").exists());
}
