//! The report types of each area (STYLE.md knot 1): leaf modules that import nothing from
//! the crate, so every area, the status server, detectors and export can share them
//! without importing each other.

pub mod calls;
