//! Report types per area, as leaf modules that import nothing from the crate
//! (STYLE.md knot 1); `status::model` assembles them into the status report.

pub mod scale;
