//! Totals of every tracked flow per class, interface, direction, transport and IP
//! version: what export needs of the flows that status does not serve. Made once per poll
//! by the analysis, so the report it publishes keeps only the flows some reader shows
//! (README "Scale and caps": report size).

/// The flows of one class, interface, direction, transport and IP version.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowAggregate {
    /// Stable class name, e.g. "media".
    pub class: String,
    pub interface: String,
    /// "ingress" or "egress".
    pub direction: String,
    /// "udp", "tcp", ...
    pub protocol: String,
    /// 4 or 6.
    pub ip_version: u8,
    pub packets: u64,
    pub bytes: u64,
    /// How many flows.
    pub flows: u64,
}

/// Media classes, whose flows export shows one by one (per-call series).
pub const CALL_CLASSES: &[&str] = &["media", "audio", "video"];
