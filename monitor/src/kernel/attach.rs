//! Attaching: XDP on ingress and TC on egress of every configured interface.
//!
//! The links belong to the `Ebpf` object: dropping it (on SIGINT/SIGTERM, or when the
//! process dies) detaches everything. Pinned maps stay. When an interface is deleted the
//! kernel drops its links; [`reattach`] attaches again when it comes back.

use aya::{
    Ebpf,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode as AyaXdpMode, tc},
    util::KernelVersion,
};
use log::{info, warn};
use monitor_common::program_names;

use super::KernelError;
use crate::{
    config::{InterfaceConfig, ValidatedConfig, XdpMode},
    status::model::InterfaceStatus,
};

/// Loads both programs and attaches them to every configured interface. On error the
/// caller drops the `Ebpf`, which detaches whatever was attached.
pub fn attach_all(
    ebpf: &mut Ebpf,
    cfg: &ValidatedConfig,
) -> Result<Vec<InterfaceStatus>, KernelError> {
    let prog_err = |program| move |source| KernelError::Program { program, source };
    xdp(ebpf)?.load().map_err(prog_err(program_names::XDP))?;
    tc_program(ebpf)?
        .load()
        .map_err(prog_err(program_names::TC))?;
    cfg.config
        .interfaces
        .iter()
        .zip(&cfg.ifindexes)
        .map(|(iface, ifindex)| attach_one(ebpf, iface, *ifindex))
        .collect()
}

/// Attaches both (loaded) programs to one interface.
pub fn attach_one(
    ebpf: &mut Ebpf,
    iface: &InterfaceConfig,
    ifindex: u32,
) -> Result<InterfaceStatus, KernelError> {
    let xdp_mode = attach_xdp(xdp(ebpf)?, &iface.name, ifindex, iface.xdp_mode)?;
    // TCX (kernel 6.6+) needs no qdisc and detaches when the link is closed; older
    // kernels attach through a clsact qdisc over netlink.
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    // An existing clsact qdisc is fine; anything else shows up in attach below.
    if !tcx && let Err(e) = tc::qdisc_add_clsact(&iface.name) {
        log::debug!("clsact on {}: {e}", iface.name);
    }
    tc_program(ebpf)?
        .attach(&iface.name, TcAttachType::Egress)
        .map_err(|e| KernelError::Attach {
            what: "the TC egress program",
            interface: iface.name.clone(),
            detail: e.to_string(),
        })?;
    let tc_attach = if tcx { "tcx" } else { "netlink" };
    info!(
        "attached to {} (ifindex {ifindex}, {}): XDP {xdp_mode} on ingress, TC ({tc_attach}) on egress",
        iface.name,
        iface.role.as_str()
    );
    Ok(InterfaceStatus {
        name: iface.name.clone(),
        ifindex,
        role: iface.role.as_str().to_string(),
        xdp_mode: xdp_mode.to_string(),
        tc_attach: tc_attach.to_string(),
        state: "attached".to_string(),
        reattached: 0,
    })
}

/// Follows the configured interfaces: one that vanished is marked `missing` (the kernel
/// dropped its links with it); one that is back, or came back under a new ifindex, is
/// attached again. Returns true when anything changed.
pub fn reattach(ebpf: &mut Ebpf, cfg: &ValidatedConfig, statuses: &mut [InterfaceStatus]) -> bool {
    let mut changed = false;
    for (iface, status) in cfg.config.interfaces.iter().zip(statuses.iter_mut()) {
        let now = ifindex_of(&iface.name);
        match now {
            None if status.state != "missing" => {
                warn!(
                    "interface {} disappeared: monitoring stops there until it returns",
                    iface.name
                );
                status.state = "missing".into();
                changed = true;
            }
            Some(index) if status.state == "missing" || index != status.ifindex => {
                match attach_one(ebpf, iface, index) {
                    Ok(fresh) => {
                        info!(
                            "interface {} is back (ifindex {index}): re-attached",
                            iface.name
                        );
                        *status = InterfaceStatus {
                            reattached: status.reattached + 1,
                            ..fresh
                        };
                    }
                    Err(e) => {
                        warn!(
                            "interface {} is back but re-attaching failed: {e}",
                            iface.name
                        );
                        status.state = "attach_failed".into();
                        status.ifindex = index;
                    }
                }
                changed = true;
            }
            _ => {}
        }
    }
    changed
}

fn ifindex_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

fn xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp, KernelError> {
    ebpf.program_mut(program_names::XDP)
        .ok_or(KernelError::Missing(program_names::XDP))?
        .try_into()
        .map_err(|source| KernelError::Program {
            program: program_names::XDP,
            source,
        })
}

fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, KernelError> {
    ebpf.program_mut(program_names::TC)
        .ok_or(KernelError::Missing(program_names::TC))?
        .try_into()
        .map_err(|source| KernelError::Program {
            program: program_names::TC,
            source,
        })
}

/// Attaches XDP in the configured mode; in `auto`, native first and generic when the
/// driver refuses (with a warning: generic XDP runs later and costs more).
fn attach_xdp(
    xdp: &mut Xdp,
    name: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<&'static str, KernelError> {
    let fail = |e: aya::programs::ProgramError| KernelError::Attach {
        what: "XDP",
        interface: name.to_string(),
        detail: format!(
            "{e}{}",
            if is_busy(&e) {
                " (another XDP program is attached: see `ip link show`)"
            } else {
                ""
            }
        ),
    };
    match mode {
        XdpMode::Native => xdp
            .attach_to_if_index(ifindex, AyaXdpMode::Driver)
            .map(|_| "native")
            .map_err(fail),
        XdpMode::Generic => xdp
            .attach_to_if_index(ifindex, AyaXdpMode::Skb)
            .map(|_| "generic")
            .map_err(fail),
        XdpMode::Auto => match xdp.attach_to_if_index(ifindex, AyaXdpMode::Driver) {
            Ok(_) => Ok("native"),
            Err(e) if is_busy(&e) => Err(fail(e)),
            Err(e) => {
                warn!(
                    "{name}: native XDP refused ({e}); using generic XDP, which sees packets \
                     later and costs more. Set xdp_mode = \"generic\" to silence this."
                );
                xdp.attach_to_if_index(ifindex, AyaXdpMode::Skb)
                    .map(|_| "generic")
                    .map_err(fail)
            }
        },
    }
}

fn is_busy(e: &aya::programs::ProgramError) -> bool {
    let text = format!("{e:?}");
    text.contains("EBUSY") || text.contains("Device or resource busy") || text.contains("code: 16")
}
