//! Reading a whole hash map in batches (BPF_MAP_LOOKUP_BATCH, Linux 5.6+): a few
//! syscalls per thousands of entries instead of two per entry, so a poll of a large flow
//! table stays cheap. aya 0.14 has no batch API, so this calls bpf(2) directly.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per syscall.
pub const BATCH: usize = 4096;
/// The kernel's internal ENOTSUPP (524), which bpf(2) can leak to userspace.
const ENOTSUPP: i32 = 524;

/// `union bpf_attr` as used by the batch commands (uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every key and value of the hash map behind `fd`, appended to `keys` and `values`
/// at the same places: the kernel writes them straight into the lists' spare capacity
/// (reserve it first: growing copies everything read so far). `Ok(false)` when the
/// kernel does not support batch lookups for this map (the caller then iterates key by
/// key); the lists may then hold part of a batch, which the caller drops.
pub fn lookup_all<K: Pod, V: Pod>(
    fd: BorrowedFd<'_>,
    keys: &mut Vec<K>,
    values: &mut Vec<V>,
) -> io::Result<bool> {
    // The batch token of hash maps is a bucket index (u32); 8 bytes leave room.
    let mut token_in = [0u8; 8];
    let mut token_out = [0u8; 8];
    let mut first = true;
    loop {
        keys.reserve(BATCH);
        values.reserve(BATCH);
        let (nk, nv) = (keys.len(), values.len());
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token_in.as_ptr() as u64 },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.spare_capacity_mut().as_mut_ptr() as u64,
            values: values.spare_capacity_mut().as_mut_ptr() as u64,
            count: BATCH as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: the attr points at room for BATCH keys and values of the map's sizes
        // (the caller's K and V match the map), and at 8-byte tokens.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let filled = (attr.count as usize).min(BATCH);
        // SAFETY: the kernel wrote `filled` keys and values after the lists' ends (Pod:
        // any bytes are a valid value).
        unsafe {
            keys.set_len(nk + filled);
            values.set_len(nv + filled);
        }
        match err {
            None => {}
            // ENOENT: the walk reached the end (possibly with a last partial batch).
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(true),
            Some(e)
                if first
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP)
                    ) =>
            {
                return Ok(false);
            }
            Some(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}
