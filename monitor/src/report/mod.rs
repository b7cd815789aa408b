//! Report types, one leaf module per area (STYLE.md knot 1): what status serves and
//! export reads. They import nothing from the crate; each area builds its section from
//! the poll's typed view, and `status::model` re-exports them so the JSON keeps its shape.

pub mod anomaly;
pub mod calls;
pub mod detectors;
pub mod dscp;
pub mod flows;
pub mod learn;
pub mod scale;
