//! Running the kernel programs without attaching them, through BPF_PROG_TEST_RUN: the
//! object is loaded exactly as the daemon loads it (same maps, same config), and crafted
//! packets are fed to a program. Used by the kernel tests and by `cargo xtask bench`.

use std::time::Duration;

use aya::{
    Ebpf,
    programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp},
};
use monitor_common::program_names;

use super::{KernelError, loader};
use crate::config::ValidatedConfig;

/// `struct __sk_buff` (uapi/linux/bpf.h): its size and the offset of `gso_segs`, which
/// BPF_PROG_TEST_RUN lets a caller set.
const SK_BUFF_SIZE: usize = 192;
const GSO_SEGS_OFFSET: usize = 164;

/// One test run's outcome.
#[derive(Debug)]
pub struct Run {
    /// The program's return value (verdict).
    pub verdict: u32,
    /// Kernel-measured time per repetition.
    pub per_run: Duration,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

pub struct Harness {
    pub ebpf: Ebpf,
}

impl Harness {
    /// Loads the object with `cfg` (maps pinned under its pin path) and loads every
    /// program into the kernel (the loader loads the pipeline's), without attaching any.
    pub fn load(cfg: &ValidatedConfig) -> Result<Harness, KernelError> {
        let mut ebpf = loader::load(cfg)?.ebpf;
        let name = program_names::FLOOR_XDP;
        let p: &mut Xdp = program(&mut ebpf, name)?;
        p.load().map_err(|source| KernelError::Program {
            program: name,
            source,
        })?;
        let name = program_names::FLOOR_TC;
        let p: &mut SchedClassifier = program(&mut ebpf, name)?;
        p.load().map_err(|source| KernelError::Program {
            program: name,
            source,
        })?;
        Ok(Harness { ebpf })
    }

    /// Sets the `LINK_KINDS` entry of `ifindex` (`monitor_common::link`: link kind and
    /// role bits), as the daemon does when it attaches there. The harness attaches
    /// nowhere, so by default every interface reads as Ethernet without a role.
    pub fn set_link(&mut self, ifindex: u32, entry: u8) -> Result<(), KernelError> {
        let name = monitor_common::map_names::LINK_KINDS;
        let err = |source| KernelError::Map { map: name, source };
        let mut kinds: aya::maps::Array<_, u8> =
            aya::maps::Array::try_from(self.ebpf.map_mut(name).ok_or(KernelError::Missing(name))?)
                .map_err(err)?;
        kinds.set(ifindex, entry, 0).map_err(err)
    }

    /// Runs the XDP program `name` `repeat` times on `frame`.
    pub fn xdp(
        &mut self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<Run, KernelError> {
        let p: &mut Xdp = program(&mut self.ebpf, name)?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = p.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        });
        finish(name, r, out)
    }

    /// Runs the TC program `name` `repeat` times on `frame`, as a GSO packet of
    /// `gso_segs` segments when above 1.
    pub fn tc(
        &mut self,
        name: &'static str,
        frame: &[u8],
        gso_segs: u32,
        repeat: u32,
    ) -> Result<Run, KernelError> {
        let p: &mut SchedClassifier = program(&mut self.ebpf, name)?;
        let mut ctx = vec![0u8; SK_BUFF_SIZE];
        ctx[GSO_SEGS_OFFSET..GSO_SEGS_OFFSET + 4].copy_from_slice(&gso_segs.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let r = p.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat,
            ..Default::default()
        });
        finish(name, r, out)
    }
}

/// The packet as the program left it, with the verdict and the time per repetition.
fn finish(
    name: &'static str,
    result: Result<TestRunResult, aya::programs::ProgramError>,
    mut out: Vec<u8>,
) -> Result<Run, KernelError> {
    let r = result.map_err(|source| KernelError::Program {
        program: name,
        source,
    })?;
    out.truncate(r.data_size_out as usize);
    Ok(Run {
        verdict: r.return_value,
        per_run: r.duration,
        packet: out,
    })
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, KernelError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::Missing(name))?
        .try_into()
        .map_err(|source| KernelError::Program {
            program: name,
            source,
        })
}
