//! The calls in the status report: the types live in the leaf `crate::report::calls`.

pub use crate::report::calls::*;
