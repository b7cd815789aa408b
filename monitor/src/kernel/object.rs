//! The eBPF object built by `build.rs` (aya-build), embedded in the binary.

use super::KernelError;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// The object's bytes, or an error when the build skipped it.
pub fn bytes() -> Result<&'static [u8], KernelError> {
    if OBJECT.is_empty() {
        Err(KernelError::NoObject)
    } else {
        Ok(OBJECT)
    }
}
