//! Debian's kernel packages as boot images: which package a series ("6.1") means, and its
//! `vmlinuz`, downloaded with `apt-get download` into a cache and never installed on
//! the host. Debian builds BTF, BPF, the JIT and the 8250 serial console in, so the
//! image boots straight into an initramfs with no module.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use xtask::cmd;

/// The package for `spec`: a series ("6.1": the newest ABI apt knows of) or an exact
/// ABI ("6.1.0-56"). Prefers the `-unsigned` image (the signed one only adds a Secure
/// Boot signature qemu does not check).
pub fn resolve(spec: &str) -> Result<String> {
    let out = cmd::run(Command::new("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-[0-9.]+-[0-9]+-amd64(-unsigned)?$",
    ]))?;
    let names = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = names.lines().filter_map(|l| l.split(' ').next()).collect();
    match pick(&names, spec) {
        Some(package) => Ok(package),
        None => bail!(
            "no Debian package linux-image-{spec}* for amd64 (apt-cache search; run \
             `apt-get update`, or name another series with --kernel)"
        ),
    }
}

/// The newest of `names` (apt-cache's package names) that matches `spec`.
pub fn pick(names: &[&str], spec: &str) -> Option<String> {
    let mut best: Option<(u32, bool, &str)> = None;
    for name in names {
        let Some(rest) = name.strip_prefix("linux-image-") else {
            continue;
        };
        let (rest, unsigned) = match rest.strip_suffix("-unsigned") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let Some(abi) = rest.strip_suffix("-amd64") else {
            continue;
        };
        // abi = "6.1.0-56": version "6.1.0", ABI number 56.
        let Some((version, number)) = abi.rsplit_once('-') else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        let matches =
            abi == spec || version == spec || version.strip_suffix(".0").is_some_and(|v| v == spec);
        if matches && best.is_none_or(|(n, u, _)| (number, unsigned) > (n, u)) {
            best = Some((number, unsigned, name));
        }
    }
    best.map(|(_, _, name)| name.to_owned())
}

/// The package's `vmlinuz` under `cache` (downloaded and extracted once, then reused).
pub fn vmlinuz(package: &str, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(package);
    let image = dir.join("vmlinuz");
    if image.exists() {
        println!("kernel-matrix: {package}: cached at {}", image.display());
        return Ok(image);
    }
    let download = cache.join("download");
    std::fs::create_dir_all(&download)
        .with_context(|| format!("creating {}", download.display()))?;
    println!("kernel-matrix: {package}: apt-get download");
    cmd::run(
        Command::new("apt-get")
            // Root's downloads would otherwise warn that the _apt user cannot write here.
            .args(["-q", "-o", "APT::Sandbox::User=root", "download", package])
            .current_dir(&download),
    )?;
    let deb = std::fs::read_dir(&download)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
    let extract = cache.join(format!("{package}.extract"));
    let _ = std::fs::remove_dir_all(&extract);
    std::fs::create_dir_all(&extract)?;
    // Only ./boot: the modules (hundreds of MB) are not needed.
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    // Not cmd::run, which gives the command /dev/null as its stdin.
    let mut tar = Command::new("tar");
    tar.arg("-x")
        .arg("-C")
        .arg(&extract)
        .args(["--wildcards", "./boot/vmlinuz-*"])
        .stdin(dpkg.stdout.take().expect("piped stdout"));
    let tar_out = tar.output().context("cannot run tar")?;
    let dpkg_status = dpkg.wait()?;
    if !tar_out.status.success() {
        bail!("{}", cmd::failure(&tar, &tar_out));
    }
    if !dpkg_status.success() {
        bail!(
            "dpkg-deb --fsys-tarfile {} failed ({dpkg_status})",
            deb.display()
        );
    }
    let found = std::fs::read_dir(extract.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    std::fs::create_dir_all(&dir)?;
    std::fs::rename(&found, &image)?;
    std::fs::remove_dir_all(&extract)?;
    std::fs::remove_file(&deb)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "linux-image-6.1.0-47-amd64-unsigned",
        "linux-image-6.1.0-56-amd64",
        "linux-image-6.1.0-56-amd64-unsigned",
        "linux-image-6.1.0-9-amd64",
        "linux-image-6.12.48+deb13-amd64",
        "linux-image-amd64",
    ];

    #[test]
    fn a_series_means_its_newest_abi_unsigned_first() {
        assert_eq!(
            pick(NAMES, "6.1").as_deref(),
            Some("linux-image-6.1.0-56-amd64-unsigned")
        );
        assert_eq!(
            pick(NAMES, "6.1.0").as_deref(),
            Some("linux-image-6.1.0-56-amd64-unsigned")
        );
    }

    #[test]
    fn an_exact_abi_is_taken_as_is_and_unknown_series_give_none() {
        assert_eq!(
            pick(NAMES, "6.1.0-47").as_deref(),
            Some("linux-image-6.1.0-47-amd64-unsigned")
        );
        assert_eq!(
            pick(NAMES, "6.1.0-9").as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(pick(NAMES, "5.10"), None);
        // "6.1" is not a prefix match of 6.12.
        assert!(!pick(NAMES, "6.1").unwrap().contains("6.12"));
    }
}
