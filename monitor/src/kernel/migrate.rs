//! Upgrades across a map layout change. A pinned map whose key or value size differs from
//! this version's is moved aside (`pins::prepare`, to `<pin_path>/replaced/<name>`); the
//! loader creates the map afresh; [`Migration::copy`] copies what it can into it before
//! the links are swapped; [`Migration::finish`] then says exactly what was not kept.
//!
//! The rule: with the same map type and key size, and a value that grew or stayed, each
//! entry is copied with its old bytes first and the new bytes zero (fields are only ever
//! appended to the map types in `monitor-common`). Anything else (a key that changed, a
//! value that shrank, another map type) cannot be carried over: its entries are counted
//! and stated. One move: an earlier `FLOWS` held media flows too; they go into
//! `MEDIA_FLOWS` (where this version's kernel looks for them first), counters kept, no
//! embedded stream. Entries the old programs changed between the copy and the swap (they
//! keep running until their links are updated) are counted and stated too.
//!
//! Done with the raw `bpf(2)` element commands, on byte buffers: the old layout has no
//! Rust type in this version.

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::maps::MapData;
use log::{info, warn};
use monitor_common::{Class, FlowKey, FlowStats, MediaFlowStats, map_names, ports};

/// A pinned map of an earlier version that did not fit this one's layout.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub name: &'static str,
    /// Where `pins::prepare` moved its pin.
    pub aside: PathBuf,
}

/// The copies made before the swap, to compare after it.
pub struct Migration {
    maps: Vec<Copied>,
}

struct Copied {
    name: &'static str,
    aside: PathBuf,
    old: MapData,
    /// Entries as copied (key -> old value bytes); `None` when they could not be kept.
    snapshot: HashMap<Vec<u8>, Vec<u8>>,
    kept: bool,
    layout: String,
    /// Media flows of an old `FLOWS` moved into `MEDIA_FLOWS`.
    to_media: usize,
}

impl Migration {
    /// Copies each replaced map's entries into this version's map pinned at
    /// `pin_dir/<name>` where the layouts allow it. Call after loading, before attaching.
    pub fn copy(pin_dir: &Path, replaced: &[Replaced]) -> Migration {
        let mut maps = Vec::new();
        for r in replaced {
            match copy_one(pin_dir, r) {
                Ok(c) => maps.push(c),
                Err(e) => warn!(
                    "{}: the earlier version's map could not be read ({e}); its entries are \
                     not kept",
                    r.name
                ),
            }
        }
        Migration { maps }
    }

    /// After the swap: what was kept and what not, one line per map (also logged), and
    /// the old pins removed.
    pub fn finish(self) -> Vec<String> {
        let mut lines = Vec::new();
        for c in self.maps {
            let now = entries(c.old.fd().as_fd(), &c.old);
            let line = if c.kept {
                let changed = now
                    .iter()
                    .filter(|(k, v)| c.snapshot.get(*k) != Some(*v))
                    .count();
                let moved = if c.to_media > 0 {
                    format!(" ({} media flows into MEDIA_FLOWS)", c.to_media)
                } else {
                    String::new()
                };
                if changed == 0 {
                    format!(
                        "{}: layout changed ({}); all {} entries migrated{moved}, added bytes \
                         start at zero",
                        c.name,
                        c.layout,
                        c.snapshot.len()
                    )
                } else {
                    format!(
                        "{}: layout changed ({}); {} entries migrated{moved}, but {changed} were \
                         changed by the old programs between the copy and the swap and \
                         those changes are not kept",
                        c.name,
                        c.layout,
                        c.snapshot.len()
                    )
                }
            } else {
                format!(
                    "{}: layout changed ({}) and cannot be migrated: its {} entries are not \
                     kept (this map starts empty)",
                    c.name,
                    c.layout,
                    now.len()
                )
            };
            if c.kept {
                info!("{line}");
            } else {
                warn!("{line}");
            }
            lines.push(line);
            if let Err(e) = std::fs::remove_file(&c.aside) {
                warn!("cannot remove {}: {e}", c.aside.display());
            }
        }
        lines
    }
}

fn copy_one(pin_dir: &Path, r: &Replaced) -> Result<Copied, String> {
    let old = MapData::from_pin(&r.aside).map_err(|e| e.to_string())?;
    let new = MapData::from_pin(pin_dir.join(r.name)).map_err(|e| e.to_string())?;
    let (oi, ni) = (
        old.info().map_err(|e| e.to_string())?,
        new.info().map_err(|e| e.to_string())?,
    );
    let layout = format!(
        "key/value bytes {}/{} were {}/{}",
        ni.key_size(),
        ni.value_size(),
        oi.key_size(),
        oi.value_size()
    );
    let same_type = oi.map_type().ok().map(|t| t as u32) == ni.map_type().ok().map(|t| t as u32);
    let kept = same_type && oi.key_size() == ni.key_size() && ni.value_size() >= oi.value_size();
    let snapshot = entries(old.fd().as_fd(), &old);
    let mut to_media = 0;
    if kept {
        let per_cpu = is_per_cpu(&old);
        let cpus = if per_cpu { possible_cpus() } else { 1 };
        let (ovs, nvs) = (
            stride(oi.value_size(), per_cpu),
            stride(ni.value_size(), per_cpu),
        );
        // An earlier version kept media flows in the one flow map; this one's kernel looks
        // for them in the media table first, so left in `FLOWS` their next packets would
        // start a second flow of the same key there.
        let media_table = (r.name == map_names::FLOWS && !per_cpu)
            .then(|| MapData::from_pin(pin_dir.join(map_names::MEDIA_FLOWS)).ok())
            .flatten();
        for (key, value) in &snapshot {
            let mut out = vec![0u8; nvs * cpus];
            for cpu in 0..cpus {
                let from = &value[cpu * ovs..cpu * ovs + oi.value_size() as usize];
                out[cpu * nvs..cpu * nvs + from.len()].copy_from_slice(from);
            }
            if let Some(media) = &media_table
                && let Some(moved) = as_media_flow(key, &out)
                // BPF_NOEXIST: a media flow already there (a replaced MEDIA_FLOWS copied
                // first) keeps its entry, and this one stays in `FLOWS`: the snapshot sums
                // the two (`snapshot::fold_duplicates`).
                && update_flags(media.fd().as_fd(), key, &moved, BPF_NOEXIST).is_ok()
            {
                to_media += 1;
                continue;
            }
            update(new.fd().as_fd(), key, &out).map_err(|e| format!("copying an entry: {e}"))?;
        }
    }
    Ok(Copied {
        name: r.name,
        aside: r.aside.clone(),
        old,
        snapshot,
        kept,
        layout,
        to_media,
    })
}

/// The `MEDIA_FLOWS` value of a `FLOWS` entry (`key`, `value` in this version's layout)
/// when it is a media flow (a media class, UDP): its counters, no embedded stream (the
/// flow's next RTP packet starts one). `None` for any other flow.
fn as_media_flow(key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    if key.len() != size_of::<FlowKey>() || value.len() != size_of::<FlowStats>() {
        return None;
    }
    // SAFETY: plain #[repr(C)] integer structs, every bit pattern valid; the lengths
    // checked above; unaligned reads.
    let (k, stats) = unsafe {
        (
            std::ptr::read_unaligned(key.as_ptr().cast::<FlowKey>()),
            std::ptr::read_unaligned(value.as_ptr().cast::<FlowStats>()),
        )
    };
    let media = k.protocol == ports::IPPROTO_UDP
        && Class::from_u32(stats.class).is_some_and(Class::is_media);
    if !media {
        return None;
    }
    let v = MediaFlowStats {
        stats,
        ..Default::default()
    };
    // SAFETY: as above, viewed as its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&v as *const MediaFlowStats).cast::<u8>(),
            size_of::<MediaFlowStats>(),
        )
    };
    Some(bytes.to_vec())
}

/// Per-CPU values are one 8-byte-aligned slot per possible CPU.
fn stride(value_size: u32, per_cpu: bool) -> usize {
    if per_cpu {
        (value_size as usize).div_ceil(8) * 8
    } else {
        value_size as usize
    }
}

fn is_per_cpu(map: &MapData) -> bool {
    use aya::maps::MapType;
    map.info()
        .ok()
        .and_then(|i| i.map_type().ok())
        .is_some_and(|t| {
            matches!(
                t,
                MapType::PerCpuArray | MapType::PerCpuHash | MapType::LruPerCpuHash
            )
        })
}

fn possible_cpus() -> usize {
    aya::util::nr_cpus().unwrap_or(1)
}

/// Every (key, value) of `map`, values as the lookup returns them (all CPUs' slots for
/// per-CPU maps). Bounded by the map's capacity.
fn entries(fd: BorrowedFd<'_>, map: &MapData) -> HashMap<Vec<u8>, Vec<u8>> {
    let Ok(info) = map.info() else {
        return HashMap::new();
    };
    let per_cpu = is_per_cpu(map);
    let value_len = stride(info.value_size(), per_cpu) * if per_cpu { possible_cpus() } else { 1 };
    let mut out = HashMap::new();
    let mut key: Option<Vec<u8>> = None;
    for _ in 0..info.max_entries() {
        let mut next = vec![0u8; info.key_size() as usize];
        if next_key(fd, key.as_deref(), &mut next).is_err() {
            break;
        }
        let mut value = vec![0u8; value_len];
        if lookup(fd, &next, &mut value).is_ok() {
            out.insert(next.clone(), value);
        }
        key = Some(next);
    }
    out
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// The element commands' part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut ElemAttr) -> std::io::Result<()> {
    // SAFETY: bpf(2) with a properly sized attribute struct whose pointers refer to live
    // buffers of the map's key and value sizes (the callers make them so).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut ElemAttr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One element command on `fd`: `key` (null for the first key) and the value or next-key
/// buffer.
fn elem(
    cmd: libc::c_long,
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    second: *const u8,
) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value_or_next_key: second as u64,
        ..Default::default()
    };
    bpf(cmd, &mut attr)
}

fn next_key(fd: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> std::io::Result<()> {
    elem(BPF_MAP_GET_NEXT_KEY, fd, key, next.as_mut_ptr())
}

fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> std::io::Result<()> {
    elem(BPF_MAP_LOOKUP_ELEM, fd, Some(key), value.as_mut_ptr())
}

fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    update_flags(fd, key, value, 0)
}

/// `BPF_MAP_UPDATE_ELEM`'s flag: only when the key is not there yet.
const BPF_NOEXIST: u64 = 1;

fn update_flags(fd: BorrowedFd<'_>, key: &[u8], value: &[u8], flags: u64) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value_or_next_key: value.as_ptr() as u64,
        flags,
        ..Default::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: plain #[repr(C)] data viewed as bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn an_old_flow_maps_media_flows_become_media_table_values_without_a_stream() {
        let udp = FlowKey {
            protocol: ports::IPPROTO_UDP,
            dst_port: 5004,
            ..Default::default()
        };
        let tcp = FlowKey { protocol: 6, ..udp };
        let audio = FlowStats {
            packets: 60,
            bytes: 6000,
            class: Class::Audio as u32,
            ..Default::default()
        };
        let signalling = FlowStats {
            class: Class::SipSignalling as u32,
            ..audio
        };
        let got = as_media_flow(&bytes(&udp), &bytes(&audio)).expect("media");
        let want = MediaFlowStats {
            stats: audio,
            ..Default::default()
        };
        assert_eq!(got, bytes(&want));
        assert_eq!(want.embedded(&udp), None);
        // Not media: another class, or media ports over TCP (never in MEDIA_FLOWS).
        assert_eq!(as_media_flow(&bytes(&udp), &bytes(&signalling)), None);
        assert_eq!(as_media_flow(&bytes(&tcp), &bytes(&audio)), None);
        // Another layout: not read as one.
        assert_eq!(as_media_flow(&bytes(&udp)[..8], &bytes(&audio)), None);
    }
}
