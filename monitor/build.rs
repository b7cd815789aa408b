//! Builds the eBPF object (monitor-ebpf) with aya-build and places it in OUT_DIR, from
//! where `kernel::object` embeds it.

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// Shared with the library (its unit tests): see its module comment.
#[path = "src/kernel/btf_names.rs"]
mod btf_names;

fn main() -> anyhow::Result<()> {
    let out_dir = std::env::var_os("OUT_DIR").context("OUT_DIR not set")?;
    let object = std::path::Path::new(&out_dir).join("monitor");

    // AYA_BUILD_SKIP=1 builds the userspace alone (for quick host-only work). The daemon
    // then refuses to load with a clear message instead of failing to compile.
    if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        if !object.exists() {
            std::fs::write(&object, b"").context("writing the placeholder eBPF object")?;
        }
        return Ok(());
    }

    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "monitor-ebpf")
        .ok_or_else(|| anyhow!("package monitor-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("monitor-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )?;

    // The kernel refuses the whole object BTF for one name it cannot take (see
    // btf_names); fixed here, the programs load with their func and line info.
    let mut bytes = std::fs::read(&object).context("reading the linked eBPF object")?;
    let changed = btf_names::sanitize(&mut bytes)
        .map_err(|e| anyhow!("sanitizing the eBPF object's BTF names: {e}"))?;
    if changed > 0 {
        std::fs::write(&object, &bytes).context("writing the sanitized eBPF object")?;
    }
    println!("cargo:rerun-if-changed=src/kernel/btf_names.rs");
    Ok(())
}
