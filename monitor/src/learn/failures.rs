//! DNS failures of Webex names, for the `dns_blocks_webex` detector
//! (`crate::detect::dns`): matched answers with NXDOMAIN, SERVFAIL or REFUSED, and
//! queries that got no answer within [`QUERY_TIMEOUT_NS`](super::pending::QUERY_TIMEOUT_NS),
//! for names under `[learn] domains` only. The learner records them in a bounded ring the
//! detectors drain on each poll: a flood of failing lookups cannot grow memory, the
//! oldest event is dropped and counted instead.

use std::net::IpAddr;

/// Events kept until the detectors' next poll, at most (README "Failure detectors").
pub const MAX_EVENTS: usize = 1024;

/// How a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    ServFail,
    NxDomain,
    Refused,
    /// A matched query with no answer within the query timeout.
    Unanswered,
}

impl Code {
    /// The failing answer codes recorded (others, e.g. FORMERR, NOTIMP, are not a block).
    pub fn of_rcode(rcode: u8) -> Option<Code> {
        match rcode {
            2 => Some(Code::ServFail),
            3 => Some(Code::NxDomain),
            5 => Some(Code::Refused),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::ServFail => "servfail",
            Code::NxDomain => "nxdomain",
            Code::Refused => "refused",
            Code::Unanswered => "unanswered",
        }
    }
}

/// One failed lookup of a Webex name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsFailure {
    /// The question name (lower case, no trailing dot as sent).
    pub name: String,
    pub code: Code,
    pub resolver: IpAddr,
    /// The asker as seen on the interface (after NAT on the WAN side).
    pub client: IpAddr,
    /// CLOCK_MONOTONIC of the answer, or of the moment the query was given up.
    pub at_ns: u64,
}

/// The ring of failures not yet taken by the detectors.
pub type DnsFailures = super::ring::Ring<DnsFailure, MAX_EVENTS>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> DnsFailure {
        DnsFailure {
            name: "mtg.webex.com".into(),
            code: Code::NxDomain,
            resolver: "198.51.100.53".parse().unwrap(),
            client: "192.0.2.10".parse().unwrap(),
            at_ns: i,
        }
    }

    #[test]
    fn the_ring_is_bounded_and_counts_what_it_drops() {
        let mut r = DnsFailures::default();
        for i in 0..MAX_EVENTS as u64 + 5 {
            r.push(ev(i));
        }
        assert_eq!((r.len(), r.dropped()), (MAX_EVENTS, 5));
        let taken = r.take();
        assert_eq!(taken.len(), MAX_EVENTS);
        assert_eq!(taken[0].at_ns, 5);
        assert!(r.is_empty());
        assert_eq!(Code::of_rcode(3), Some(Code::NxDomain));
        assert_eq!(Code::of_rcode(5), Some(Code::Refused));
        assert_eq!(Code::of_rcode(2), Some(Code::ServFail));
        assert_eq!(Code::of_rcode(1), None);
    }
}
