//! Installs the pipeline's tail-called programs (`monitor_common::stages`): each stage's
//! XDP and TC program is loaded and put at its index of the XDP and TC tables, before
//! anything is attached, so no packet ever finds a table slot empty.

use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{ProgramError, ProgramFd, SchedClassifier, Xdp},
};
use monitor_common::stages;

use super::KernelError;

/// Loads every stage program and fills both tail-call tables.
pub fn install(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    for stage in stages::ALL {
        let xdp = load::<Xdp>(ebpf, stage.xdp, |p| p.load(), |p| p.fd())?;
        let tc = load::<SchedClassifier>(ebpf, stage.tc, |p| p.load(), |p| p.fd())?;
        set(ebpf, stages::TABLE_XDP, stage.index, &xdp)?;
        set(ebpf, stages::TABLE_TC, stage.index, &tc)?;
    }
    Ok(())
}

/// Loads program `name` of type `T` and returns a copy of its fd (the table keeps a
/// reference to the program, the `Ebpf` keeps the program).
fn load<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    load: impl FnOnce(&mut T) -> Result<(), ProgramError>,
    fd: impl FnOnce(&T) -> Result<&ProgramFd, ProgramError>,
) -> Result<ProgramFd, KernelError>
where
    for<'a> &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let err = |source| KernelError::Program {
        program: name,
        source,
    };
    let p: &mut T = ebpf
        .program_mut(name)
        .ok_or(KernelError::Missing(name))?
        .try_into()
        .map_err(err)?;
    load(p).map_err(err)?;
    fd(p)
        .map_err(err)?
        .try_clone()
        .map_err(|e| err(ProgramError::IOError(e)))
}

fn set(
    ebpf: &mut Ebpf,
    table: &'static str,
    index: u32,
    fd: &ProgramFd,
) -> Result<(), KernelError> {
    let map_err = |source| KernelError::Map { map: table, source };
    let mut array: ProgramArray<_> =
        ProgramArray::try_from(ebpf.map_mut(table).ok_or(KernelError::Missing(table))?)
            .map_err(map_err)?;
    array.set(index, fd, 0).map_err(map_err)
}
