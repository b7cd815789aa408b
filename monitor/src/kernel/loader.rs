//! Loading the object: pinned maps are created or re-adopted, then filled from the
//! validated config (prefixes, port table, settings).

use std::{collections::HashSet, net::IpAddr};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, LpmTrie, lpm_trie::Key},
};
use log::{info, warn};
use monitor_common::{
    Settings, map_names,
    settings::{SETTING_DEDICATED_PORT_RANGES, SETTING_TRACK_ALL_FLOWS},
};

use super::{KernelError, object, pins, stages};
use crate::config::ValidatedConfig;

/// Value stored for prefixes that come from the config (bit 0). Learned peers will use
/// other bits, so a config reload only replaces its own entries.
pub const SOURCE_CONFIG: u32 = 1;

pub struct Loaded {
    pub ebpf: Ebpf,
    pub pins: pins::PinState,
    /// This load's name under `<pin_path>/stages/`, where its tail-call tables are pinned.
    pub generation: String,
}

/// Loads the programs and maps (not yet attached).
pub fn load(cfg: &ValidatedConfig) -> Result<Loaded, KernelError> {
    let daemon = &cfg.config.daemon;
    let pin_state = pins::prepare(&daemon.pin_path, daemon.flow_table_size)?;
    if pin_state.adopted {
        info!(
            "re-adopting pinned maps in {}: counters continue",
            daemon.pin_path.display()
        );
    }
    for r in &pin_state.replaced {
        warn!(
            "pinned map {} has another layout (an earlier version): moved aside to {}; \
             what can be kept is migrated after loading",
            r.name,
            r.aside.display()
        );
    }
    if let Some(kept) = pin_state.flows_size_kept {
        warn!(
            "daemon.flow_table_size is {} but the pinned flow map holds {kept} entries; keeping \
             the pinned map and its counters. To resize, stop the daemon and remove {} \
             (counters restart from zero)",
            daemon.flow_table_size,
            daemon.pin_path.display()
        );
    }

    let object = object::bytes()?;
    super::map_check::check_object(object)?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&daemon.pin_path)
        .map_max_entries(map_names::FLOWS, daemon.flow_table_size)
        .map_max_entries(
            map_names::MEDIA_FLOWS,
            monitor_common::flow::media_table_size(daemon.flow_table_size),
        )
        .load(object)
        .map_err(KernelError::Load)?;

    stages::install(&mut ebpf)?;
    super::attach::load_programs(&mut ebpf)?;
    let generation = pin_stages(&ebpf, &daemon.pin_path)?;
    apply_config(&mut ebpf, cfg)?;

    Ok(Loaded {
        ebpf,
        pins: pin_state,
        generation,
    })
}

/// Pins this load's tail-call tables under `stages/<generation>`: the kernel empties a
/// table when the last user reference to it goes, so without a pin the programs left
/// attached after the daemon exits would lose their later stages.
fn pin_stages(ebpf: &Ebpf, dir: &std::path::Path) -> Result<String, KernelError> {
    let generation = format!("{}-{}", std::process::id(), super::snapshot::monotonic_ns());
    let stage_dir = pins::stage_dir(dir, &generation)?;
    for table in [
        monitor_common::stages::TABLE_XDP,
        monitor_common::stages::TABLE_TC,
    ] {
        let map = ebpf.map(table).ok_or(KernelError::Missing(table))?;
        map.pin(stage_dir.join(table))
            .map_err(|e| KernelError::PinDir {
                path: stage_dir.join(table).display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    Ok(generation)
}

/// Writes everything the kernel takes from the config and can change while running:
/// prefixes, port rules, DSCP policy and settings. Used at start and on SIGHUP.
pub fn apply_config(ebpf: &mut Ebpf, cfg: &ValidatedConfig) -> Result<(), KernelError> {
    let daemon = &cfg.config.daemon;
    fill_prefixes(ebpf, cfg)?;
    fill_port_table(ebpf, &cfg.port_table)?;
    super::dscp::write_policy(ebpf, cfg)?;
    let mut flags = 0;
    if daemon.track_all_flows {
        flags |= SETTING_TRACK_ALL_FLOWS;
    }
    if cfg.config.webex.dedicated_port_ranges {
        flags |= SETTING_DEDICATED_PORT_RANGES;
    }
    let mut settings: Array<_, Settings> = Array::try_from(map_mut(ebpf, map_names::SETTINGS)?)
        .map_err(|source| KernelError::Map {
            map: map_names::SETTINGS,
            source,
        })?;
    settings
        .set(
            0,
            Settings {
                flags,
                path_mtu: cfg.config.mtu.path_mtu,
                ..Default::default()
            },
            0,
        )
        .map_err(|source| KernelError::Map {
            map: map_names::SETTINGS,
            source,
        })?;

    Ok(())
}

pub(crate) fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, KernelError> {
    ebpf.map_mut(name).ok_or(KernelError::Missing(name))
}

/// Makes the prefix tries hold exactly the configured prefixes (entries of other
/// sources are left alone).
fn fill_prefixes(ebpf: &mut Ebpf, cfg: &ValidatedConfig) -> Result<(), KernelError> {
    let mut v4 = HashSet::new();
    let mut v6 = HashSet::new();
    for p in &cfg.prefixes {
        match p.addr {
            IpAddr::V4(a) => v4.insert((p.len as u32, a.octets())),
            IpAddr::V6(a) => v6.insert((p.len as u32, a.octets())),
        };
    }
    sync_trie::<4>(ebpf, map_names::WEBEX_V4, &v4)?;
    sync_trie::<16>(ebpf, map_names::WEBEX_V6, &v6)?;
    info!(
        "classifying Webex peers by {} IPv4 and {} IPv6 prefixes",
        v4.len(),
        v6.len()
    );
    Ok(())
}

fn sync_trie<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    wanted: &HashSet<(u32, [u8; N])>,
) -> Result<(), KernelError>
where
    [u8; N]: aya::Pod,
{
    let err = |source| KernelError::Map { map: name, source };
    let mut trie: LpmTrie<_, [u8; N], u32> =
        LpmTrie::try_from(map_mut(ebpf, name)?).map_err(err)?;
    // Learned peers (other bits, see crate::learn) share the tries: a stale configured
    // entry that is also learned keeps its learned bits, and a configured prefix that is
    // also learned gets both.
    let mut stale = Vec::new();
    let mut existing = std::collections::HashMap::new();
    for entry in trie.iter() {
        let (key, value) = entry.map_err(err)?;
        existing.insert((key.prefix_len(), key.data()), value);
        if value & SOURCE_CONFIG != 0 && !wanted.contains(&(key.prefix_len(), key.data())) {
            stale.push((key, value & !SOURCE_CONFIG));
        }
    }
    for (key, rest) in stale {
        if rest == 0 {
            trie.remove(&key).map_err(err)?;
        } else {
            trie.insert(&key, rest, 0).map_err(err)?;
        }
    }
    for (len, data) in wanted {
        let others = existing.get(&(*len, *data)).copied().unwrap_or(0);
        trie.insert(&Key::new(*len, *data), others | SOURCE_CONFIG, 0)
            .map_err(err)?;
    }
    Ok(())
}

/// Writes the port table. Only entries that differ are written, so re-adopting an
/// unchanged table costs reads, not writes.
fn fill_port_table(ebpf: &mut Ebpf, table: &[u8]) -> Result<(), KernelError> {
    let name = map_names::PORT_CLASS;
    let err = |source| KernelError::Map { map: name, source };
    let mut array: Array<_, u8> = Array::try_from(map_mut(ebpf, name)?).map_err(err)?;
    for (index, want) in table.iter().enumerate() {
        let index = index as u32;
        if array.get(&index, 0).map_err(err)? != *want {
            array.set(index, want, 0).map_err(err)?;
        }
    }
    Ok(())
}
