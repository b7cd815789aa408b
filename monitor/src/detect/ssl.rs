//! `ssl_inspection`: a TLS-intercepting proxy or firewall between the site and Webex
//! (README "Failure detectors"). Two kinds of passive evidence, combined:
//!
//! - the certificate: on TLS 1.2 the server's certificate is in clear. A connection
//!   whose ClientHello named a Webex host (`[learn] domains`) answered by a leaf whose
//!   issuer matches none of `[detect] tls_expected_issuers` was signed by someone else:
//!   the inspection appliance's CA (critical: Webex clients refuse it);
//! - the round trip: a proxy terminates TCP nearby, so the TCP handshake (SYN to
//!   SYN/ACK, timed by the kernel on the connection's flow) is answered much faster than
//!   the path RTT to Webex measured outside TCP (STUN consent checks to the same peer or
//!   prefix, [`super::Failures::set_stun_rtt`]). Shown with every certificate finding;
//!   on its own (TLS 1.3, certificate hidden) it is a warning, "likely", and only when
//!   no certificate from an expected issuer was seen in that prefix in the window.
//!
//! False positives: a Webex edge node or CDN close to the site answers TCP fast while
//! media goes further (the RTT evidence alone); a new Webex CA not yet in the list
//! (the certificate evidence: add it to `tls_expected_issuers`). Each connection's
//! verdict holds for [`WINDOW_S`]; a later connection to the same name and server that
//! shows an expected issuer replaces it at once (the inspection was bypassed).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use monitor_common::{FlowKey, rtp::RttStats};

use crate::{
    anomaly::{Finding, Severity},
    config::detect::DetectConfig,
    learn::certs::ServerCert,
};

pub const ID: &str = "ssl_inspection";
/// Seconds a connection's certificate and RTTs count as evidence.
pub const WINDOW_S: u64 = 600;
/// Connections (name, server) remembered at most; the oldest goes first, counted.
pub const MAX_CONNECTIONS: usize = 1024;
/// "Much faster": the handshake takes at most 1/`RTT_RATIO` of the STUN RTT ...
pub const RTT_RATIO: f64 = 4.0;
/// ... and at least this many ms less.
pub const RTT_GAP_MS: f64 = 20.0;
/// Names listed in the evidence at most.
const MAX_NAMES_SHOWN: usize = 4;

pub const REMEDIATION: &str = "Exclude the Webex domains (*.webex.com, *.wbx2.com, \
     *.ciscospark.com, ...) from SSL/TLS inspection on the proxy or firewall that issued \
     this certificate; Webex clients reject certificates not from Webex's CAs.";
pub const LIKELY_REMEDIATION: &str = "Check whether a proxy or firewall near the site \
     terminates TLS to Webex (its handshakes answer far faster than the path to Webex); \
     if so, exclude the Webex domains from SSL/TLS inspection.";

/// The latest connection to one name on one server.
#[derive(Clone, Debug)]
struct Seen {
    at: u64,
    /// The latest connection's ends (its interface, client and ports), to find its
    /// handshake in a later snapshot when this one did not have it yet.
    ifindex: u32,
    client: IpAddr,
    client_port: u16,
    server_port: u16,
    /// The leaf's issuer and subject (`None`: TLS 1.3, not in clear).
    names: Option<(String, String)>,
    /// Whether the issuer matches `tls_expected_issuers`.
    expected: bool,
    /// Connections to it in the window (with an unexpected issuer, for a finding).
    connections: u64,
    handshake_ms: Option<f64>,
    stun_ms: Option<f64>,
}

/// A remembered connection: (name, server) and what was seen.
type Conn<'a> = (&'a (String, IpAddr), &'a Seen);

#[derive(Default)]
pub struct State {
    seen: HashMap<(String, IpAddr), Seen>,
    /// Connections forgotten to keep within [`MAX_CONNECTIONS`], since start.
    pub dropped: u64,
}

/// Whether `issuer` (rendered `C=.., O=.., CN=..`) names one of `expected`: an O or CN
/// value containing it, case-insensitively.
pub fn issuer_expected(issuer: &str, expected: &[String]) -> bool {
    let values: Vec<String> = issuer
        .split(", ")
        .filter_map(|a| a.strip_prefix("O=").or_else(|| a.strip_prefix("CN=")))
        .map(str::to_ascii_lowercase)
        .collect();
    expected.iter().any(|e| {
        let e = e.to_ascii_lowercase();
        values.iter().any(|v| v.contains(&e))
    })
}

/// The prefix a STUN peer must share with a TLS server to compare their RTTs: /24 for
/// IPv4, /48 for IPv6.
fn same_prefix(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..6] == b.octets()[..6],
        _ => false,
    }
}

fn prefix_of(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v) => {
            let mut o = v.octets();
            o[6..].fill(0);
            format!("{}/48", std::net::Ipv6Addr::from(o))
        }
    }
}

/// The path RTT to `server`'s prefix outside TCP: the lowest STUN RTT (ms) of requests
/// that left towards an address in it.
pub fn stun_rtt_ms(stun_rtt: &[(FlowKey, RttStats)], server: IpAddr) -> Option<f64> {
    stun_rtt
        .iter()
        .filter(|(k, r)| r.samples > 0 && same_prefix(k.dst_ip(), server))
        .map(|(_, r)| r.min_ns)
        .min()
        .map(|ns| ns as f64 / 1e6)
}

/// The kernel's SYN to SYN/ACK time (ms) of `s`'s latest connection to `server`: on its
/// interface, else on any (the other side of the gateway, same ports).
fn handshake_ms(handshakes: &[(FlowKey, u64)], s: &Seen, server: IpAddr) -> Option<f64> {
    let conn = |k: &FlowKey| {
        k.dst_ip() == server
            && k.dst_port == s.server_port
            && k.src_port == s.client_port
            && k.protocol == 6
    };
    handshakes
        .iter()
        .find(|(k, _)| conn(k) && k.ifindex == s.ifindex && k.src_ip() == s.client)
        .or_else(|| handshakes.iter().find(|(k, _)| conn(k)))
        .map(|(_, ns)| *ns as f64 / 1e6)
}

fn much_faster(handshake_ms: Option<f64>, stun_ms: Option<f64>) -> bool {
    match (handshake_ms, stun_ms) {
        (Some(h), Some(s)) => h * RTT_RATIO <= s && s - h >= RTT_GAP_MS,
        _ => false,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

impl State {
    /// Its table for status `detectors`.
    pub fn table(&self) -> crate::report::detectors::DetectorTable {
        crate::report::detectors::DetectorTable::new(
            ID,
            "connections",
            self.seen.len(),
            MAX_CONNECTIONS,
            self.dropped,
        )
    }

    /// Takes the certificates the learner read since the last poll, at `now` (unix s);
    /// `handshakes`: the kernel's handshake RTTs per TCP flow of this poll's snapshot.
    pub fn add(
        &mut self,
        certs: Vec<ServerCert>,
        handshakes: &[(FlowKey, u64)],
        cfg: &DetectConfig,
        now: u64,
    ) {
        for c in certs {
            let key = (c.sni.clone(), c.server);
            if !self.seen.contains_key(&key) && self.seen.len() >= MAX_CONNECTIONS {
                let oldest = self
                    .seen
                    .iter()
                    .min_by_key(|(_, s)| s.at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.seen.remove(&k);
                    self.dropped += 1;
                }
            }
            let names = c
                .names
                .as_ref()
                .map(|n| (n.issuer.clone(), n.subject.clone()));
            let expected = names
                .as_ref()
                .is_some_and(|(i, _)| issuer_expected(i, &cfg.tls_expected_issuers));
            let e = self.seen.entry(key).or_insert(Seen {
                at: now,
                ifindex: c.ifindex,
                client: c.client,
                client_port: c.client_port,
                server_port: c.server_port,
                names: names.clone(),
                expected,
                connections: 0,
                handshake_ms: None,
                stun_ms: None,
            });
            // The same verdict again counts; another one starts over.
            if e.names != names || e.expected != expected {
                e.connections = 0;
            }
            e.at = now;
            (e.ifindex, e.client, e.client_port) = (c.ifindex, c.client, c.client_port);
            e.server_port = c.server_port;
            e.names = names;
            e.expected = expected;
            e.connections += 1;
            e.handshake_ms = None;
        }
        // This connection's handshake, or one an earlier snapshot did not have yet.
        for ((_, server), s) in self.seen.iter_mut() {
            if s.handshake_ms.is_none() {
                s.handshake_ms = handshake_ms(handshakes, s, *server);
            }
        }
    }

    /// The findings of this poll at `now`: per foreign issuer (critical), and per prefix
    /// of TLS 1.3 connections answered much faster than STUN (warning).
    pub fn detect(
        &mut self,
        cfg: &DetectConfig,
        stun_rtt: &[(FlowKey, RttStats)],
        now: u64,
    ) -> Vec<Finding> {
        self.seen.retain(|_, s| now.saturating_sub(s.at) < WINDOW_S);
        for ((_, server), s) in self.seen.iter_mut() {
            if let Some(r) = stun_rtt_ms(stun_rtt, *server) {
                s.stun_ms = Some(r);
            }
        }
        let mut out = Vec::new();
        let mut by_issuer: BTreeMap<&str, Vec<Conn<'_>>> = BTreeMap::new();
        let mut by_prefix: BTreeMap<String, Vec<Conn<'_>>> = BTreeMap::new();
        for (k, s) in &self.seen {
            match &s.names {
                Some((issuer, _)) if !s.expected && !cfg.tls_expected_issuers.is_empty() => {
                    by_issuer.entry(issuer).or_default().push((k, s));
                }
                None if much_faster(s.handshake_ms, s.stun_ms) => {
                    by_prefix.entry(prefix_of(k.1)).or_default().push((k, s));
                }
                _ => {}
            }
        }
        for (issuer, mut conns) in by_issuer {
            let (n, shared) = group_evidence(&mut conns);
            let subject = conns[0].1.names.as_ref().map_or("", |(_, s)| s.as_str());
            let mut evidence = vec![
                ("issuer".into(), issuer.to_string()),
                ("certificate_subject".into(), subject.to_string()),
            ];
            evidence.extend(shared);
            out.push(Finding {
                id: ID,
                severity: Severity::Critical,
                subject: format!("tls issuer {issuer}"),
                summary: format!(
                    "TLS to Webex is intercepted: {n} connections for Webex names were \
                     answered with certificates issued by \"{issuer}\", not a Webex CA"
                ),
                evidence,
                remediation: REMEDIATION,
            });
        }
        for (prefix, mut conns) in by_prefix {
            // A certificate from an expected issuer in the prefix: not inspected.
            if self
                .seen
                .iter()
                .any(|((_, server), s)| s.expected && prefix_of(*server) == prefix)
            {
                continue;
            }
            let (n, shared) = group_evidence(&mut conns);
            let latest = conns[0].1;
            let mut evidence = vec![("issuer".into(), "- (TLS 1.3: not in clear)".into())];
            evidence.extend(shared);
            out.push(Finding {
                id: ID,
                severity: Severity::Warning,
                subject: format!("tls to {prefix}"),
                summary: format!(
                    "TLS to Webex is likely intercepted: {n} TLS 1.3 connections to \
                     {prefix} completed their TCP handshake in {} ms, the path to Webex \
                     takes {} ms (STUN)",
                    ms(latest.handshake_ms),
                    ms(latest.stun_ms)
                ),
                evidence,
                remediation: LIKELY_REMEDIATION,
            });
        }
        out
    }
}

/// Sorts a group's connections latest first; their count and the evidence they share:
/// the latest's name, server and round trips, the names, the count and the window.
fn group_evidence(conns: &mut [Conn<'_>]) -> (u64, Vec<(String, String)>) {
    conns.sort_by_key(|(k, s)| (std::cmp::Reverse(s.at), k.0.clone()));
    let ((sni, server), latest) = conns[0];
    let n: u64 = conns.iter().map(|(_, s)| s.connections).sum();
    let evidence = vec![
        ("sni".into(), sni.clone()),
        ("server".into(), format!("{server}:{}", latest.server_port)),
        ("names".into(), names(conns)),
        ("connections".into(), n.to_string()),
        ("handshake_rtt_ms".into(), ms(latest.handshake_ms)),
        ("stun_rtt_ms".into(), ms(latest.stun_ms)),
        ("window_s".into(), WINDOW_S.to_string()),
    ];
    (n, evidence)
}

fn names(conns: &[Conn<'_>]) -> String {
    let mut n: Vec<&str> = conns.iter().map(|((sni, _), _)| sni.as_str()).collect();
    n.sort_unstable();
    n.dedup();
    n.truncate(MAX_NAMES_SHOWN);
    n.join(", ")
}

#[cfg(test)]
#[path = "ssl_tests.rs"]
mod tests;
