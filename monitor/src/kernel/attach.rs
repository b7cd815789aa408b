//! Attaching: XDP on ingress and TC on egress of every configured interface, through
//! pinned BPF links, so the data path outlives the daemon. With `xdp_mode = "off"` the
//! ingress hook is TC too (`monitor_tc_ingress`) and no XDP program is attached.
//!
//! Each link is pinned at `<pin_path>/links/<kind>:<interface>` (`xdp-native`,
//! `xdp-generic`, `xdp-fallback` — `auto` that fell back to generic —, `tcx` on egress
//! and `tcx-ingress`). A restart with another mode attaches the new ingress hook first,
//! then removes the other one's link: never blind, and the old hook does not stay. A
//! daemon that stops (SIGTERM) or dies (SIGKILL, a crash) leaves them attached and
//! counting into the pinned maps; the next start finds them and swaps its freshly loaded
//! programs in with one `BPF_LINK_UPDATE` each (atomic: every packet runs the old or the
//! new program, none runs neither). `monitor detach` removes them.
//!
//! Kernels before 6.6 have no TCX: TC is a clsact filter added over netlink, at a fixed
//! priority and handle. It stays on the qdisc when the daemon exits, and the next start
//! replaces it in place; `monitor detach` deletes it.
//!
//! When an interface is deleted the kernel detaches its links (a pinned link then points
//! at nothing); [`follow`] attaches afresh when the interface returns.

use std::path::Path;

use aya::{
    Ebpf,
    maps::Array,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode as AyaXdpMode,
        links::{FdLink, PinnedLink},
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
        xdp::XdpLink,
    },
    util::KernelVersion,
};
use log::{info, warn};
use monitor_common::{
    link::{LINK_ETHERNET, LINK_KIND_ENTRIES, ROLE_LAN, ROLE_WAN},
    map_names, program_names,
};

use super::{KernelError, netdev, pins};
use crate::{
    config::{InterfaceConfig, ValidatedConfig, XdpMode},
    status::model::InterfaceStatus,
};

/// Priority and handle of the netlink TC filter (kernels without TCX): fixed, so the
/// next start finds and replaces it.
const TC_PRIORITY: u16 = 0x4d4f;
const TC_HANDLE: TcHandle = TcHandle::new(0, 0x4d4f);

/// Interface states in status (`InterfaceStatus::state`).
pub const ATTACHED: &str = "attached";
/// Attached, but the interface is down or has no carrier.
pub const DOWN: &str = "down";
/// Was attached; the interface was deleted (the kernel dropped the programs with it).
pub const MISSING: &str = "missing";
/// Configured but not there since the daemon started: attached when it appears.
pub const WAITING: &str = "waiting";
/// Its link type is one the parser cannot read: not attached.
pub const REFUSED: &str = "refused";
/// It is there but attaching failed (see the log); tried again every poll.
pub const ATTACH_FAILED: &str = "attach_failed";

/// Pin kind of the TCX link on egress.
const TCX_EGRESS: &str = "tcx";
/// Pin kind of the TCX link on ingress (`xdp_mode = "off"`).
const TCX_INGRESS: &str = "tcx-ingress";

/// Loads the three entry programs (the stages are loaded by `stages::install`); TC on
/// ingress is loaded whatever the config, so a reload or a new interface can use it.
pub fn load_programs(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    let prog_err = |program| move |source| KernelError::Program { program, source };
    xdp(ebpf)?.load().map_err(prog_err(program_names::XDP))?;
    for name in [program_names::TC, program_names::TC_INGRESS] {
        classifier(ebpf, name)?.load().map_err(prog_err(name))?;
    }
    Ok(())
}

/// The status of a configured interface before anything is attached: `waiting` when it
/// does not exist (ifindex 0).
pub fn initial_status(iface: &InterfaceConfig, ifindex: u32) -> InterfaceStatus {
    InterfaceStatus {
        name: iface.name.clone(),
        ifindex,
        role: iface.role.as_str().to_string(),
        state: WAITING.to_string(),
        ..Default::default()
    }
}

/// Attaches both programs to every configured interface that exists (re-adopting the
/// pinned links of an earlier run), and detaches pinned links of interfaces no longer
/// configured. An interface whose attach fails is reported in its status and tried
/// again by [`follow`]; only a broken object is an error.
pub fn attach_all(
    ebpf: &mut Ebpf,
    cfg: &ValidatedConfig,
) -> Result<Vec<InterfaceStatus>, KernelError> {
    let pin_dir = &cfg.config.daemon.pin_path;
    std::fs::create_dir_all(pins::links_dir(pin_dir)).map_err(|source| KernelError::PinDir {
        path: pins::links_dir(pin_dir).display().to_string(),
        source,
    })?;
    for (name, kind, path) in pins::pinned_links(pin_dir) {
        if !cfg.config.interfaces.iter().any(|i| i.name == name) {
            info!("{name} is no longer configured: detaching its {kind} link");
            let _ = std::fs::remove_file(path);
        }
    }
    let mut out = Vec::new();
    for (iface, ifindex) in cfg.config.interfaces.iter().zip(&cfg.ifindexes) {
        let mut status = initial_status(iface, *ifindex);
        if *ifindex == 0 {
            warn!(
                "interface {} does not exist (yet): waiting for it; it is attached within \
                 one poll of appearing (check the name if it never does)",
                iface.name
            );
        } else {
            attach_into(ebpf, pin_dir, iface, *ifindex, &mut status);
        }
        out.push(status);
    }
    Ok(out)
}

/// Attaches to `iface` (now `ifindex`) and records the outcome in `status`.
fn attach_into(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    iface: &InterfaceConfig,
    ifindex: u32,
    status: &mut InterfaceStatus,
) {
    let link_type = netdev::link_type(&iface.name).unwrap_or(u16::MAX);
    status.link_type = netdev::link_type_name(link_type).to_string();
    status.ifindex = ifindex;
    let kind =
        netdev::link_kind(link_type).filter(|k| *k == LINK_ETHERNET || ifindex < LINK_KIND_ENTRIES);
    let Some(kind) = kind else {
        if status.state != REFUSED {
            warn!(
                "interface {} has link type {} ({link_type}, ifindex {ifindex}), which the \
                 parser cannot read: not attached",
                iface.name, status.link_type
            );
        }
        status.state = REFUSED.to_string();
        // Programs of an earlier run stay on no interface the parser cannot read.
        for (name, _, path) in pins::pinned_links(pin_dir) {
            if name == iface.name {
                let _ = std::fs::remove_file(path);
            }
        }
        return;
    };
    // Before the programs run there: the parser reads the kind on every packet.
    if let Err(e) = set_link_kind(ebpf, ifindex, kind) {
        warn!("{e}");
        status.state = ATTACH_FAILED.to_string();
        return;
    }
    match attach_one(ebpf, pin_dir, iface, ifindex) {
        Ok(a) => {
            // The role (which address classification looks up) only once this version's
            // programs run there: an earlier version's, attached until the links were
            // swapped, would read an entry with role bits as no L3 kind. Until then this
            // version looks up both addresses, as without a role.
            let role = match iface.role {
                crate::config::Role::Lan => ROLE_LAN,
                crate::config::Role::Wan => ROLE_WAN,
            };
            if let Err(e) = set_link_kind(ebpf, ifindex, kind | role) {
                warn!("{e}; classification looks up both addresses there");
            }
            status.xdp_mode = a.xdp_mode.to_string();
            status.ingress_hook = a.ingress_hook.to_string();
            status.xdp_fallback = a.xdp_fallback;
            status.tc_attach = a.tc_attach.to_string();
            status.pinned = a.pinned;
            status.adopted = a.adopted;
            status.state = up_state(&iface.name).to_string();
        }
        Err(e) => {
            // Once per failure, not every poll it is tried again.
            if status.state != ATTACH_FAILED {
                warn!("{e}; trying again every poll");
            }
            status.state = ATTACH_FAILED.to_string();
        }
    }
}

/// Records how the parser reads `ifindex`'s packets and the interface's role
/// (`LINK_KINDS`). Indexes beyond the table are Ethernet without a role (L3 devices there
/// are refused before; without a role both addresses are looked up).
fn set_link_kind(ebpf: &mut Ebpf, ifindex: u32, kind: u8) -> Result<(), KernelError> {
    if ifindex >= LINK_KIND_ENTRIES {
        return Ok(());
    }
    let name = map_names::LINK_KINDS;
    let err = |source| KernelError::Map { map: name, source };
    let mut kinds: Array<_, u8> =
        Array::try_from(ebpf.map_mut(name).ok_or(KernelError::Missing(name))?).map_err(err)?;
    kinds.set(ifindex, kind, 0).map_err(err)
}

fn up_state(name: &str) -> &'static str {
    match netdev::is_up(name) {
        Some(true) => ATTACHED,
        Some(false) => DOWN,
        None => MISSING,
    }
}

/// How one interface was attached.
pub struct Attachment {
    /// "native", "generic", or "off" (TC on ingress).
    pub xdp_mode: &'static str,
    /// The program on ingress: "xdp" or "tc".
    pub ingress_hook: &'static str,
    /// `auto` fell back to generic XDP (the driver refused native).
    pub xdp_fallback: bool,
    pub tc_attach: &'static str,
    /// Both links are pinned: they stay when the daemon stops.
    pub pinned: bool,
    /// Both programs were attached already (an earlier run) and were replaced in place.
    pub adopted: bool,
}

/// Attaches both (loaded) programs to one interface, replacing the programs of pinned
/// links of an earlier run when there are any.
pub fn attach_one(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
    iface: &InterfaceConfig,
    ifindex: u32,
) -> Result<Attachment, KernelError> {
    let name = &iface.name;
    let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
    let tc_attach = if tcx { "tcx" } else { "netlink" };
    let (xdp_mode, xdp_fallback, ingress_adopted, ingress_pinned) =
        if iface.xdp_mode == XdpMode::Off {
            let tc = classifier(ebpf, program_names::TC_INGRESS)?;
            let (adopted, pinned) = attach_tc(tc, pin_dir, name, TcAttachType::Ingress, tcx)?;
            // Only now, with TC counting on ingress: the XDP hook of an earlier run goes.
            remove_xdp(pin_dir, name, ifindex);
            ("off", false, adopted, pinned)
        } else {
            let (kind, adopted, pinned) =
                attach_xdp(xdp(ebpf)?, pin_dir, name, ifindex, iface.xdp_mode)?;
            remove_tc_ingress(pin_dir, name, tcx);
            let mode = if kind == XdpKind::Native {
                "native"
            } else {
                "generic"
            };
            (mode, kind == XdpKind::Fallback, adopted, pinned)
        };
    let tc = classifier(ebpf, program_names::TC)?;
    let (tc_adopted, tc_pinned) = attach_tc(tc, pin_dir, name, TcAttachType::Egress, tcx)?;
    let ingress_hook = if xdp_mode == "off" { "tc" } else { "xdp" };
    let adopted = ingress_adopted && tc_adopted;
    info!(
        "{} {name} (ifindex {ifindex}, {}): {} on ingress, TC ({tc_attach}) on egress{}",
        if adopted { "re-adopted" } else { "attached to" },
        iface.role.as_str(),
        if ingress_hook == "tc" {
            format!("TC ({tc_attach}, xdp_mode off)")
        } else {
            format!("XDP {xdp_mode}")
        },
        if adopted {
            ": the programs kept running and are now this version's"
        } else {
            ""
        }
    );
    Ok(Attachment {
        xdp_mode,
        ingress_hook,
        xdp_fallback,
        tc_attach,
        pinned: ingress_pinned && tc_pinned,
        adopted,
    })
}

/// Attaches a TC program on `direction` through TCX (pinned link, re-adopted) or, on
/// kernels before 6.6, a netlink filter. Returns (adopted, pinned).
fn attach_tc(
    tc: &mut SchedClassifier,
    pin_dir: &Path,
    name: &str,
    direction: TcAttachType,
    tcx: bool,
) -> Result<(bool, bool), KernelError> {
    if tcx {
        attach_tcx(tc, pin_dir, name, direction)
    } else {
        Ok((attach_netlink(tc, name, direction)?, false))
    }
}

/// Removes the pinned XDP links of `name` (any mode): the program detaches, as its
/// process is gone.
fn remove_xdp(pin_dir: &Path, name: &str, ifindex: u32) {
    for kind in XdpKind::ALL {
        let path = pins::link_path(pin_dir, name, kind.pin_kind());
        if std::fs::remove_file(&path).is_ok() {
            info!(
                "{name} (ifindex {ifindex}): xdp_mode is off: the XDP program of an earlier \
                 run is detached"
            );
        }
    }
}

/// Removes the TC ingress program of an earlier run (`xdp_mode = "off"` then) from
/// `name`: its pinned TCX link, or its netlink filter.
fn remove_tc_ingress(pin_dir: &Path, name: &str, tcx: bool) {
    let removed = if tcx {
        std::fs::remove_file(pins::link_path(pin_dir, name, TCX_INGRESS)).is_ok()
    } else {
        detach_netlink_ingress(name)
    };
    if removed {
        info!(
            "{name}: XDP is on ingress now: the TC ingress program of an earlier run is detached"
        );
    }
}

/// Follows the configured interfaces every poll: one that vanished is `missing` (the
/// kernel dropped its links with it); one that appeared, came back (under a new ifindex
/// too) or failed before is attached; `down` follows the interface's flags. Returns the
/// interfaces whose ifindex changed (old, new), for the DSCP policy and flow names.
pub fn follow(
    ebpf: &mut Ebpf,
    cfg: &ValidatedConfig,
    statuses: &mut [InterfaceStatus],
) -> Vec<(u32, u32)> {
    let pin_dir = &cfg.config.daemon.pin_path;
    let mut moved = Vec::new();
    for (iface, status) in cfg.config.interfaces.iter().zip(statuses.iter_mut()) {
        match netdev::ifindex_of(&iface.name) {
            None => {
                if status.state != WAITING && status.state != MISSING {
                    warn!(
                        "interface {} disappeared: monitoring stops there until it returns",
                        iface.name
                    );
                    status.state = MISSING.to_string();
                }
            }
            Some(index) => {
                let fresh = index != status.ifindex
                    || [WAITING, MISSING, ATTACH_FAILED].contains(&status.state.as_str());
                if fresh {
                    let old = status.ifindex;
                    let was = status.state.clone();
                    if old != 0 && old != index && !status.previous_ifindexes.contains(&old) {
                        status.previous_ifindexes.push(old);
                    }
                    attach_into(ebpf, pin_dir, iface, index, status);
                    if status.state == ATTACHED || status.state == DOWN {
                        if was != WAITING {
                            status.reattached += 1;
                        }
                        info!(
                            "interface {} is there (ifindex {index}, was {was}): attached",
                            iface.name
                        );
                    }
                    if old != index {
                        moved.push((old, index));
                    }
                } else if status.state == ATTACHED || status.state == DOWN {
                    let now = up_state(&iface.name);
                    if now != status.state {
                        info!("interface {} is {now}", iface.name);
                        status.state = now.to_string();
                    }
                }
            }
        }
    }
    moved
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum XdpKind {
    Native,
    Generic,
    /// `auto`, and the driver refused native.
    Fallback,
}

impl XdpKind {
    const ALL: [XdpKind; 3] = [XdpKind::Native, XdpKind::Generic, XdpKind::Fallback];

    fn pin_kind(self) -> &'static str {
        match self {
            XdpKind::Native => "xdp-native",
            XdpKind::Generic => "xdp-generic",
            XdpKind::Fallback => "xdp-fallback",
        }
    }

    /// Whether a link of this kind is what the configured mode asks for.
    fn fits(self, mode: XdpMode) -> bool {
        matches!(
            (mode, self),
            (XdpMode::Native, XdpKind::Native)
                | (XdpMode::Generic, XdpKind::Generic)
                | (XdpMode::Auto, XdpKind::Native | XdpKind::Fallback)
        )
    }
}

/// Re-adopts the pinned XDP link of `name` when it fits the configured mode, or attaches
/// afresh and pins the link. Returns (kind, adopted, pinned).
fn attach_xdp(
    xdp: &mut Xdp,
    pin_dir: &Path,
    name: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<(XdpKind, bool, bool), KernelError> {
    for kind in XdpKind::ALL {
        let path = pins::link_path(pin_dir, name, kind.pin_kind());
        if !path.exists() {
            continue;
        }
        if kind.fits(mode) {
            let adopted = PinnedLink::from_pin(&path)
                .map_err(|e| e.to_string())
                .map(FdLink::from)
                .and_then(|fd| XdpLink::try_from(fd).map_err(|e| e.to_string()))
                .and_then(|link| xdp.attach_to_link(link).map_err(|e| e.to_string()));
            match adopted {
                Ok(_) => return Ok((kind, true, true)),
                // A link whose interface was deleted: nothing to keep.
                Err(e) => info!("{name}: the pinned XDP link is stale ({e}); attaching afresh"),
            }
        } else {
            info!(
                "{name}: the pinned XDP link is {} but xdp_mode is {mode:?}: replacing it",
                kind.pin_kind()
            );
        }
        // Its process is gone: removing the pin detaches it.
        let _ = std::fs::remove_file(&path);
    }
    let (id, kind) = attach_xdp_fresh(xdp, name, ifindex, mode)?;
    let fail = |detail: String| KernelError::Attach {
        what: "XDP",
        interface: name.to_string(),
        detail,
    };
    let link = xdp.take_link(id).map_err(|e| fail(e.to_string()))?;
    match FdLink::try_from(link) {
        Ok(fd) => {
            fd.pin(pins::link_path(pin_dir, name, kind.pin_kind()))
                .map_err(|e| fail(format!("pinning the link: {}", chain(&e))))?;
            Ok((kind, false, true))
        }
        Err(_) => {
            // A netlink attach (no XDP links in this kernel): it stays on the interface
            // as the link is not detached here, but the next start cannot replace it.
            warn!("{name}: XDP attached through netlink, not as a pinnable link");
            Ok((kind, false, false))
        }
    }
}

/// Attaches XDP in the configured mode; in `auto`, native first and generic when the
/// driver refuses (with a warning: generic XDP runs later and costs more).
fn attach_xdp_fresh(
    xdp: &mut Xdp,
    name: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<(aya::programs::xdp::XdpLinkId, XdpKind), KernelError> {
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
            .map(|id| (id, XdpKind::Native))
            .map_err(fail),
        XdpMode::Generic => xdp
            .attach_to_if_index(ifindex, AyaXdpMode::Skb)
            .map(|id| (id, XdpKind::Generic))
            .map_err(fail),
        // attach_one attaches TC on ingress instead.
        XdpMode::Off => Err(KernelError::Attach {
            what: "XDP",
            interface: name.to_string(),
            detail: "xdp_mode is off".into(),
        }),
        XdpMode::Auto => match xdp.attach_to_if_index(ifindex, AyaXdpMode::Driver) {
            Ok(id) => Ok((id, XdpKind::Native)),
            Err(e) if is_busy(&e) => Err(fail(e)),
            Err(e) => {
                warn!(
                    "{name}: native XDP refused ({e}); using generic XDP, which sees packets \
                     later and costs more. Set xdp_mode = \"generic\" to silence this."
                );
                xdp.attach_to_if_index(ifindex, AyaXdpMode::Skb)
                    .map(|id| (id, XdpKind::Fallback))
                    .map_err(fail)
            }
        },
    }
}

/// What the TC program on `direction` is called in errors.
fn tc_what(direction: TcAttachType) -> &'static str {
    if matches!(direction, TcAttachType::Ingress) {
        "the TC ingress program"
    } else {
        "the TC egress program"
    }
}

/// TCX (kernel 6.6+): re-adopts the pinned link or attaches afresh and pins it. Returns
/// (adopted, pinned).
fn attach_tcx(
    tc: &mut SchedClassifier,
    pin_dir: &Path,
    name: &str,
    direction: TcAttachType,
) -> Result<(bool, bool), KernelError> {
    let fail = |detail: String| KernelError::Attach {
        what: tc_what(direction),
        interface: name.to_string(),
        detail,
    };
    let kind = if matches!(direction, TcAttachType::Ingress) {
        TCX_INGRESS
    } else {
        TCX_EGRESS
    };
    let path = pins::link_path(pin_dir, name, kind);
    if path.exists() {
        let adopted = PinnedLink::from_pin(&path)
            .map_err(|e| e.to_string())
            .map(FdLink::from)
            .and_then(|fd| SchedClassifierLink::try_from(fd).map_err(|e| e.to_string()))
            .and_then(|link| tc.attach_to_link(link).map_err(|e| e.to_string()));
        match adopted {
            Ok(_) => return Ok((true, true)),
            Err(e) => {
                info!("{name}: the pinned TC link is stale ({e}); attaching afresh");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let id = tc
        .attach_with_options(
            name,
            direction,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map_err(|e| fail(e.to_string()))?;
    let link = tc.take_link(id).map_err(|e| fail(e.to_string()))?;
    let fd = FdLink::try_from(link).map_err(|e| fail(e.to_string()))?;
    fd.pin(&path)
        .map_err(|e| fail(format!("pinning the link: {}", chain(&e))))?;
    Ok((false, true))
}

/// Netlink clsact filter (kernels before 6.6) at a fixed priority and handle: replaces
/// the filter of an earlier run in place, or adds it. Left on the qdisc when the daemon
/// exits. Returns whether one was replaced.
fn attach_netlink(
    tc: &mut SchedClassifier,
    name: &str,
    direction: TcAttachType,
) -> Result<bool, KernelError> {
    let fail = |detail: String| KernelError::Attach {
        what: tc_what(direction),
        interface: name.to_string(),
        detail,
    };
    // An existing clsact qdisc is fine; anything else shows up in attach below.
    if let Err(e) = tc::qdisc_add_clsact(name) {
        log::debug!("clsact on {name}: {e}");
    }
    let replaced = SchedClassifierLink::attached(name, direction, TC_PRIORITY, TC_HANDLE, None)
        .map_err(|e| e.to_string())
        .and_then(|link| tc.attach_to_link(link).map_err(|e| e.to_string()));
    let (id, adopted) = match replaced {
        Ok(id) => (id, true),
        Err(_) => {
            let options = NlOptions {
                priority: TC_PRIORITY,
                handle: TC_HANDLE,
                ..Default::default()
            };
            let id = tc
                .attach_with_options(name, direction, TcAttachOptions::Netlink(options))
                .map_err(|e| fail(e.to_string()))?;
            (id, false)
        }
    };
    // Dropping the link would delete the filter: it must outlive the daemon.
    let link = tc.take_link(id).map_err(|e| fail(e.to_string()))?;
    std::mem::forget(link);
    Ok(adopted)
}

/// Deletes the netlink TC filters of the monitor on `name` (kernels without TCX), on
/// egress and on ingress. True when there was one.
pub fn detach_netlink(name: &str) -> bool {
    let egress = tc::qdisc_detach_program(name, TcAttachType::Egress, program_names::TC).is_ok();
    detach_netlink_ingress(name) || egress
}

/// Deletes the netlink TC ingress filter of the monitor on `name` (`xdp_mode = "off"`
/// on kernels without TCX). True when there was one.
fn detach_netlink_ingress(name: &str) -> bool {
    tc::qdisc_detach_program(name, TcAttachType::Ingress, program_names::TC_INGRESS).is_ok()
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

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, KernelError> {
    ebpf.program_mut(name)
        .ok_or(KernelError::Missing(name))?
        .try_into()
        .map_err(|source| KernelError::Program {
            program: name,
            source,
        })
}

/// An error with its sources ("`BPF_OBJ_PIN` failed: File exists").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn is_busy(e: &aya::programs::ProgramError) -> bool {
    let text = format!("{e:?}");
    text.contains("EBUSY") || text.contains("Device or resource busy") || text.contains("code: 16")
}
