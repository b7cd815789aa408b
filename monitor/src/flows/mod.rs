//! The flows of a poll as the report and the detectors read them: each flow's text
//! ([`text`]) and the rows that keep it across polls with the lists each pass reads
//! ([`rows`]). Built from the kernel snapshot; read by the detectors and assembled into
//! the report by the daemon.

pub mod rows;
pub mod table;
pub mod text;
