//! The pin directory: checks before loading, so a restart re-adopts compatible maps and
//! refuses incompatible ones with a clear message instead of corrupting them.

use std::{
    mem::size_of,
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use monitor_common::{FlowKey, FlowStats, GlobalCounters, Settings, map_names, rtp};

use super::KernelError;

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Expected (key size, value size) of each pinned map.
fn expected_sizes(name: &str) -> (u32, u32) {
    match name {
        map_names::FLOWS | map_names::MEDIA_FLOWS => {
            (size_of::<FlowKey>() as u32, size_of::<FlowStats>() as u32)
        }
        map_names::COUNTERS => (4, size_of::<GlobalCounters>() as u32),
        // LPM keys carry a u32 prefix length before the address.
        map_names::WEBEX_V4 => (8, 4),
        map_names::WEBEX_V6 => (20, 4),
        map_names::PORT_CLASS => (4, 1),
        map_names::SETTINGS => (4, size_of::<Settings>() as u32),
        map_names::DSCP_POLICY => (4, size_of::<monitor_common::dscp::Policy>() as u32),
        map_names::RTP_STREAMS => (
            size_of::<rtp::RtpStreamKey>() as u32,
            size_of::<rtp::RtpStreamState>() as u32,
        ),
        map_names::STUN_PENDING => (
            size_of::<rtp::StunTxKey>() as u32,
            size_of::<rtp::StunPending>() as u32,
        ),
        map_names::MEDIA_RTT => (
            size_of::<FlowKey>() as u32,
            size_of::<rtp::RttStats>() as u32,
        ),
        map_names::MEDIA_COUNTERS => (4, size_of::<rtp::MediaCounters>() as u32),
        map_names::LEARN_STATE => (4, 8),
        // A ring buffer has no key or value.
        map_names::LEARN_SAMPLES => (0, 0),
        // Never matches: a map missing here is refused loudly, not adopted blindly.
        _ => (u32::MAX, u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_map_has_its_expected_layout() {
        for name in monitor_common::map_names::ALL {
            assert_ne!(
                super::expected_sizes(name),
                (u32::MAX, u32::MAX),
                "{name} has no expected key/value size in pins.rs"
            );
        }
    }
}

/// What the pin directory held before loading.
#[derive(Debug, Default)]
pub struct PinState {
    /// The flow map was pinned already: this run continues an earlier one.
    pub adopted: bool,
    /// Size of the pinned flow map, when it differs from the configured size.
    pub flows_size_kept: Option<u32>,
}

/// Makes sure `dir` exists on bpffs and that any maps pinned there fit this version.
pub fn prepare(dir: &Path, flow_table_size: u32) -> Result<PinState, KernelError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    if !is_bpffs(parent) {
        return Err(KernelError::NotBpffs {
            path: parent.display().to_string(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| KernelError::PinDir {
        path: dir.display().to_string(),
        source,
    })?;

    let mut state = PinState::default();
    for name in map_names::ALL {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|e| KernelError::IncompatiblePin {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
            what: format!("cannot open it: {e}"),
        })?;
        let (key, value) = expected_sizes(name);
        if info.key_size() != key || info.value_size() != value {
            return Err(KernelError::IncompatiblePin {
                path: path.display().to_string(),
                dir: dir.display().to_string(),
                what: format!(
                    "key/value sizes {}/{} where {key}/{value} are expected",
                    info.key_size(),
                    info.value_size()
                ),
            });
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

/// Removes the maps this program pins under `dir`, and `dir` when it is then empty.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    for name in map_names::ALL {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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
