//! The status report's types, one leaf module per area (STYLE.md knot 1): they import
//! nothing from the crate, so every part can build reports without depending on the
//! daemon.

pub mod learn;
