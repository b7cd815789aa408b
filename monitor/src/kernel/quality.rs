//! Installs the call-quality programs as tail-call targets of the XDP and TC programs
//! (see monitor-ebpf/src/quality.rs: they run with their own stack frame).

use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{SchedClassifier, Xdp},
};

use super::KernelError;

pub const QUALITY_XDP_PROGRAM: &str = "monitor_quality_xdp";
pub const QUALITY_TC_PROGRAM: &str = "monitor_quality_tc";
const QUALITY_XDP_TABLE: &str = "QUALITY_XDP";
const QUALITY_TC_TABLE: &str = "QUALITY_TC";

/// Loads both quality programs and puts them at index 0 of their tail-call tables.
pub fn install(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    let prog_err = |program| move |source| KernelError::Program { program, source };
    let xdp_fd = {
        let p: &mut Xdp = program(ebpf, QUALITY_XDP_PROGRAM)?
            .try_into()
            .map_err(prog_err(QUALITY_XDP_PROGRAM))?;
        p.load().map_err(prog_err(QUALITY_XDP_PROGRAM))?;
        p.fd()
            .map_err(prog_err(QUALITY_XDP_PROGRAM))?
            .try_clone()
            .map_err(|e| KernelError::Program {
                program: QUALITY_XDP_PROGRAM,
                source: aya::programs::ProgramError::IOError(e),
            })?
    };
    let tc_fd = {
        let p: &mut SchedClassifier = program(ebpf, QUALITY_TC_PROGRAM)?
            .try_into()
            .map_err(prog_err(QUALITY_TC_PROGRAM))?;
        p.load().map_err(prog_err(QUALITY_TC_PROGRAM))?;
        p.fd()
            .map_err(prog_err(QUALITY_TC_PROGRAM))?
            .try_clone()
            .map_err(|e| KernelError::Program {
                program: QUALITY_TC_PROGRAM,
                source: aya::programs::ProgramError::IOError(e),
            })?
    };
    for (table, fd) in [(QUALITY_XDP_TABLE, &xdp_fd), (QUALITY_TC_TABLE, &tc_fd)] {
        let map_err = |source| KernelError::Map { map: table, source };
        let mut array: ProgramArray<_> =
            ProgramArray::try_from(ebpf.map_mut(table).ok_or(KernelError::Missing(table))?)
                .map_err(map_err)?;
        array.set(0, fd, 0).map_err(map_err)?;
    }
    Ok(())
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, KernelError> {
    ebpf.program_mut(name).ok_or(KernelError::Missing(name))
}
