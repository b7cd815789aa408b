//! Writing the DSCP policy map: each monitored interface's modes and the expected marks,
//! at start. Entries of interfaces no longer configured are removed, so a restart with a
//! changed config leaves no stale policy behind.

use aya::{
    Ebpf,
    maps::{Array, HashMap},
};
use log::info;
use monitor_common::{dscp::Policy, link::LINK_KIND_ENTRIES, map_names};

use super::{KernelError, loader::map_mut};
use crate::config::{ValidatedConfig, dscp::policies};

pub fn write_policy(ebpf: &mut Ebpf, cfg: &ValidatedConfig) -> Result<(), KernelError> {
    let name = map_names::DSCP_POLICY;
    let err = |source| KernelError::Map { map: name, source };
    let mut map: HashMap<_, u32, Policy> = HashMap::try_from(map_mut(ebpf, name)?).map_err(err)?;
    let wanted = policies(&cfg.config, &cfg.ifindexes);
    let stale: Vec<u32> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.iter().any(|(i, _)| i == k))
        .collect();
    for k in stale {
        map.remove(&k).map_err(err)?;
    }
    for (ifindex, policy) in &wanted {
        map.insert(ifindex, policy, 0).map_err(err)?;
    }
    write_by_index(ebpf, &wanted)?;
    for (interface, _) in cfg.config.interfaces.iter().zip(&cfg.ifindexes) {
        info!(
            "DSCP on {}: ingress {}, egress {}",
            interface.name,
            interface.dscp_ingress.as_str(),
            interface.dscp_egress.as_str()
        );
    }
    Ok(())
}

/// The kernel's copy by ifindex (`DSCP_BY_INDEX`): every entry written, the unwanted ones
/// zeroed (DSCP off), so a restart with a changed config leaves no stale policy there.
fn write_by_index(ebpf: &mut Ebpf, wanted: &[(u32, Policy)]) -> Result<(), KernelError> {
    let name = map_names::DSCP_POLICY_BY_INDEX;
    let err = |source| KernelError::Map { map: name, source };
    let mut map: Array<_, Policy> = Array::try_from(map_mut(ebpf, name)?).map_err(err)?;
    // DSCP off both ways.
    let off = Policy::default();
    for ifindex in 0..LINK_KIND_ENTRIES {
        let policy = wanted
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map_or(&off, |(_, p)| p);
        if map.get(&ifindex, 0).map_err(err)? != *policy {
            map.set(ifindex, policy, 0).map_err(err)?;
        }
    }
    Ok(())
}
