//! Attaching: XDP on ingress and TC on egress of every configured interface.
//!
//! The links belong to the `Ebpf` object: dropping it (on SIGINT/SIGTERM, or when the
//! process dies) detaches everything. Pinned maps stay.

use aya::{
    Ebpf,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode as AyaXdpMode, tc},
    util::KernelVersion,
};
use log::{info, warn};
use monitor_common::program_names;

use super::KernelError;
use crate::{
    config::{ValidatedConfig, XdpMode},
    status::model::InterfaceStatus,
};

/// Loads both programs and attaches them to every configured interface. On error the
/// caller drops the `Ebpf`, which detaches whatever was attached.
pub fn attach_all(
    ebpf: &mut Ebpf,
    cfg: &ValidatedConfig,
) -> Result<Vec<InterfaceStatus>, KernelError> {
    let prog_err = |program| move |source| KernelError::Program { program, source };

    let xdp: &mut Xdp = ebpf
        .program_mut(program_names::XDP)
        .ok_or(KernelError::Missing(program_names::XDP))?
        .try_into()
        .map_err(prog_err(program_names::XDP))?;
    xdp.load().map_err(prog_err(program_names::XDP))?;
    let mut xdp_modes = Vec::new();
    for (iface, ifindex) in cfg.config.interfaces.iter().zip(&cfg.ifindexes) {
        xdp_modes.push(attach_xdp(xdp, &iface.name, *ifindex, iface.xdp_mode)?);
    }

    // TCX (kernel 6.6+) needs no qdisc and detaches when the link is closed; older
    // kernels attach through a clsact qdisc over netlink.
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    let tc_prog: &mut SchedClassifier = ebpf
        .program_mut(program_names::TC)
        .ok_or(KernelError::Missing(program_names::TC))?
        .try_into()
        .map_err(prog_err(program_names::TC))?;
    tc_prog.load().map_err(prog_err(program_names::TC))?;
    let mut statuses = Vec::new();
    for ((iface, ifindex), xdp_mode) in cfg
        .config
        .interfaces
        .iter()
        .zip(&cfg.ifindexes)
        .zip(xdp_modes)
    {
        // An existing clsact qdisc is fine; anything else shows up in attach below.
        if !tcx && let Err(e) = tc::qdisc_add_clsact(&iface.name) {
            log::debug!("clsact on {}: {e}", iface.name);
        }
        tc_prog
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
        statuses.push(InterfaceStatus {
            name: iface.name.clone(),
            ifindex: *ifindex,
            role: iface.role.as_str().to_string(),
            xdp_mode: xdp_mode.to_string(),
            tc_attach: tc_attach.to_string(),
        });
    }
    Ok(statuses)
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
