//! The pin directory: checks before loading, so a restart re-adopts compatible maps and
//! refuses incompatible ones with a clear message instead of corrupting them.
//!
//! Beside the maps it holds the data path's attachments, so they outlive the daemon:
//! `links/<kind>:<interface>` (the pinned XDP and TCX links, see `kernel::attach`) and
//! `stages/<generation>/` (the tail-call tables of one load: the kernel empties a table
//! when its last user reference goes, and the attached programs need theirs).

use std::path::{Path, PathBuf};

use aya::maps::MapInfo;
use monitor_common::{map_names, maps};

use super::KernelError;

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

#[cfg(test)]
mod tests {
    #[test]
    fn link_pins_have_no_dot_and_give_the_interface_back() {
        let dir = std::env::temp_dir().join(format!("monitor-pins-{}", std::process::id()));
        let path = super::link_path(&dir, "eth0.7", "tcx");
        assert_eq!(path.file_name().unwrap(), "tcx:eth0:7");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        let links = super::pinned_links(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(links, vec![("eth0.7".to_string(), "tcx".to_string(), path)]);
    }
}

/// What the pin directory held before loading.
#[derive(Debug, Default)]
pub struct PinState {
    /// The flow map was pinned already: this run continues an earlier one.
    pub adopted: bool,
    /// Size of the pinned flow map, when it differs from the configured size.
    pub flows_size_kept: Option<u32>,
    /// Pinned maps of an earlier version with another layout, moved aside for
    /// `kernel::migrate`.
    pub replaced: Vec<super::migrate::Replaced>,
}

/// Sub-directory where maps of another layout wait for their migration.
pub const REPLACED_DIR: &str = "replaced";

/// Makes sure `dir` exists on bpffs and that any maps pinned there fit this version.
pub fn prepare(dir: &Path, flow_table_size: u32) -> Result<PinState, KernelError> {
    if let Some(problem) = bpffs_problem(dir) {
        return Err(KernelError::NotBpffs { problem });
    }
    std::fs::create_dir_all(dir).map_err(|source| KernelError::PinDir {
        path: dir.display().to_string(),
        source,
    })?;

    let mut state = PinState::default();
    for def in maps::pinned() {
        let name = def.name;
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|e| KernelError::IncompatiblePin {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
            what: format!("cannot open it: {e}"),
        })?;
        let (key, value) = (def.key_size, def.value_size);
        if info.key_size() != key || info.value_size() != value {
            // An earlier version's layout: moved aside (the programs attached now keep
            // using it until their links are swapped), migrated by kernel::migrate.
            let aside_dir = dir.join(REPLACED_DIR);
            let aside = aside_dir.join(name);
            let moved = std::fs::create_dir_all(&aside_dir)
                .and_then(|()| match std::fs::remove_file(&aside) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                })
                .and_then(|()| std::fs::rename(&path, &aside));
            if let Err(e) = moved {
                return Err(KernelError::IncompatiblePin {
                    path: path.display().to_string(),
                    dir: dir.display().to_string(),
                    what: format!(
                        "key/value sizes {}/{} where {key}/{value} are expected, and moving \
                         it aside failed: {e}",
                        info.key_size(),
                        info.value_size()
                    ),
                });
            }
            state
                .replaced
                .push(super::migrate::Replaced { name, aside });
            continue;
        }
        if name == map_names::FLOWS {
            state.adopted = true;
            if info.max_entries() != flow_table_size {
                state.flows_size_kept = Some(info.max_entries());
            }
        }
    }
    Ok(state)
}

/// Whether `dir` holds no pinned flow map yet: a run starting now creates the pins (and
/// removes them again if it fails to start).
pub fn fresh(dir: &Path) -> bool {
    !dir.join(map_names::FLOWS).exists()
}

/// Sub-directory of the pinned links.
pub const LINKS_DIR: &str = "links";
/// Sub-directory of the pinned tail-call tables, one directory per load.
pub const STAGES_DIR: &str = "stages";

/// `dir/links`.
pub fn links_dir(dir: &Path) -> PathBuf {
    dir.join(LINKS_DIR)
}

/// `dir/links/<kind>:<interface>`: the pinned link of one program on one interface.
/// bpffs refuses names with a dot, which interface names may have (`eth0.7`): dots
/// become `:`, which no interface name has.
pub fn link_path(dir: &Path, interface: &str, kind: &str) -> PathBuf {
    links_dir(dir).join(format!("{kind}:{}", interface.replace('.', ":")))
}

/// The pinned links: (interface, kind, path) of every `links/<kind>:<interface>`.
pub fn pinned_links(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(links_dir(dir)) else {
        return Vec::new();
    };
    let mut links: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (kind, interface) = name.split_once(':')?;
            Some((interface.replace(':', "."), kind.to_string(), e.path()))
        })
        .collect();
    links.sort();
    links
}

/// `dir/stages/<generation>`, created: where one load pins its tail-call tables.
pub fn stage_dir(dir: &Path, generation: &str) -> Result<PathBuf, KernelError> {
    let path = dir.join(STAGES_DIR).join(generation);
    std::fs::create_dir_all(&path).map_err(|source| KernelError::PinDir {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path)
}

/// The stage directories of other loads than `current` (programs no longer attached
/// anywhere once every link runs the current load's).
pub fn stale_stage_dirs(dir: &Path, current: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(STAGES_DIR)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != current)
        .map(|e| e.path())
        .collect()
}

/// Removes a directory and what is pinned in it (a missing one is fine).
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the pinned links and tail-call tables under `dir`: the programs detach once
/// no process holds them any more. Returns the links removed (interface, kind).
pub fn remove_attachments(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut removed = Vec::new();
    for (interface, kind, path) in pinned_links(dir) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => removed.push((interface, kind)),
        }
    }
    remove_tree(&links_dir(dir))?;
    remove_tree(&dir.join(STAGES_DIR))?;
    remove_tree(&dir.join(REPLACED_DIR))?;
    Ok(removed)
}

/// Removes the maps this program pins under `dir`, its pinned links and tail-call
/// tables, and `dir` when it is then empty.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    remove_attachments(dir)?;
    for def in maps::pinned() {
        match std::fs::remove_file(dir.join(def.name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Why `dir` cannot hold pinned maps (its nearest existing ancestor, where it would be
/// created, is not on a bpf filesystem), with the fix; `None` when it can.
pub fn bpffs_problem(dir: &Path) -> Option<String> {
    let mut at = dir;
    while !at.exists() {
        at = at.parent()?;
    }
    if is_bpffs(at) {
        return None;
    }
    Some(if dir.starts_with("/sys/fs/bpf") {
        format!(
            "{} is not on a bpf filesystem ({} is not bpffs); mount one with \
             `mount -t bpf bpf /sys/fs/bpf`",
            dir.display(),
            at.display()
        )
    } else {
        format!(
            "{} is not on a bpf filesystem ({} is not bpffs); choose a directory under a \
             bpffs mount, e.g. /sys/fs/bpf/monitor",
            dir.display(),
            at.display()
        )
    })
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and an out-pointer to a zeroed statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// `dir/name`, the path of one pinned map.
pub fn map_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
