//! A bounded, defensive DNS response parser: just enough to learn A and AAAA answers and
//! follow CNAME chains. Nothing in a message is trusted: every read is checked against
//! the buffer, compression pointers may only point backwards (so they cannot loop) and
//! are followed at most [`MAX_POINTER_HOPS`] times, names are limited to 255 octets and
//! labels to 63, counts are bounded by [`MAX_RECORDS`]. A malformed message yields an
//! error and teaches nothing; it never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name before giving up.
pub const MAX_POINTER_HOPS: usize = 32;
/// Longest name on the wire (RFC 1035 2.3.4).
pub const MAX_NAME_OCTETS: usize = 255;
/// Answer records read from one message.
pub const MAX_RECORDS: usize = 64;
/// CNAME links followed from the question name.
pub const MAX_CHAIN: usize = 16;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a message taught nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// A field runs past the end of the message.
    Truncated,
    /// Not a response (or, for [`parse_query`], not a query), or not a standard query.
    NotAnswer,
    /// No question, or more than one (no resolver sends that).
    BadQuestionCount,
    /// A compression pointer pointing forward or at itself (a loop), or too many hops.
    BadPointer,
    /// A label of type 0x40/0x80, a label over 63 or a name over 255 octets.
    BadName,
    /// An A or AAAA record whose data length is not 4 or 16.
    BadRdata,
}

impl DnsError {
    pub const fn as_str(self) -> &'static str {
        match self {
            DnsError::Truncated => "truncated",
            DnsError::NotAnswer => "not_answer",
            DnsError::BadQuestionCount => "bad_question_count",
            DnsError::BadPointer => "bad_pointer",
            DnsError::BadName => "bad_name",
            DnsError::BadRdata => "bad_rdata",
        }
    }
}

/// Data of an answer record we care about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    Addr(IpAddr),
    Cname(String),
    Other,
}

/// One answer record (class IN only; others are skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Rdata,
}

/// A parsed response: the question name and the answer records read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The message ID, which must be the query's.
    pub id: u16,
    /// The response code: 0 for an answer, else negative (NXDOMAIN 3, SERVFAIL 2,
    /// REFUSED 5, ...), whose answer records are not read.
    pub rcode: u8,
    pub question: String,
    pub answers: Vec<Record>,
    /// The message was cut (by the sample bound or a TCP segment) and records after the
    /// cut were not read. The records before it are whole and used.
    pub cut: bool,
}

/// An address learned from a response: the name that matched the domains (the head of
/// the CNAME chain that led to it), the address and its TTL (the smallest along the
/// chain: the resolver forgets the link first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub name: String,
    pub addr: IpAddr,
    pub ttl: u32,
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Truncated)?;
        let b = self.msg.get(self.pos..end).ok_or(DnsError::Truncated)?;
        self.pos = end;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn name(&mut self) -> Result<String, DnsError> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// Reads the name at `start`. Returns it (lowercase, labels joined by '.', bytes other
/// than letters, digits, '-' and '_' escaped as `\DDD` so they can never fake a dot) and
/// the offset after it in the message.
pub fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut pos = start;
    // Where reading continues after the name: set at the first pointer.
    let mut after: Option<usize> = None;
    let mut hops = 0;
    let mut octets = 0;
    // Every pointer must go strictly below the lowest offset read so far; names can
    // therefore not loop, and the hop bound is a second line of defence.
    let mut floor = start;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)? as usize;
        match len & 0xc0 {
            0x00 => {}
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Truncated)? as usize;
                let target = ((len & 0x3f) << 8) | low;
                hops += 1;
                if target >= floor || hops > MAX_POINTER_HOPS {
                    return Err(DnsError::BadPointer);
                }
                after.get_or_insert(pos + 2);
                floor = target;
                pos = target;
                continue;
            }
            _ => return Err(DnsError::BadName),
        }
        octets += len + 1;
        if octets > MAX_NAME_OCTETS {
            return Err(DnsError::BadName);
        }
        if len == 0 {
            return Ok((name, after.unwrap_or(pos + 1)));
        }
        let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            match b {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => name.push(b as char),
                b'A'..=b'Z' => name.push(b.to_ascii_lowercase() as char),
                _ => name.push_str(&format!("\\{b:03}")),
            }
        }
        pos += 1 + len;
    }
}

/// Parses a DNS response message (UDP payload, or a TCP payload without its length
/// prefix). `cut` says the message may be longer than `msg` (the sample was bounded):
/// then records are read up to the cut and the whole ones are kept.
pub fn parse_response(msg: &[u8], cut: bool) -> Result<Response, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = (flags & 0xf) as u8;
    if !qr || opcode != 0 {
        return Err(DnsError::NotAnswer);
    }
    let qdcount = r.u16()?;
    let ancount = r.u16()? as usize;
    let _nscount = r.u16()?;
    let _arcount = r.u16()?;
    if qdcount != 1 {
        return Err(DnsError::BadQuestionCount);
    }
    let question = r.name()?;
    let _qtype = r.u16()?;
    let _qclass = r.u16()?;

    let mut answers = Vec::new();
    let mut was_cut = false;
    // A negative answer teaches nothing: its records (an SOA, if any) are not read.
    let ancount = if rcode == 0 { ancount } else { 0 };
    for _ in 0..ancount.min(MAX_RECORDS) {
        match record(&mut r) {
            Ok(Some(rec)) => answers.push(rec),
            Ok(None) => {}
            // A cut sample ends mid-record: keep the whole records before it.
            Err(DnsError::Truncated) if cut => {
                was_cut = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Response {
        id,
        rcode,
        question,
        answers,
        cut: was_cut,
    })
}

/// A parsed query: its ID and question name, which the answer must repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub question: String,
}

/// Parses a DNS query (UDP payload, or a TCP payload without its length prefix): a
/// standard query with one question.
pub fn parse_query(msg: &[u8]) -> Result<Query, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return Err(DnsError::NotAnswer);
    }
    if r.u16()? != 1 {
        return Err(DnsError::BadQuestionCount);
    }
    r.bytes(6)?;
    let question = r.name()?;
    Ok(Query { id, question })
}

fn record(r: &mut Reader<'_>) -> Result<Option<Record>, DnsError> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let rdlen = r.u16()? as usize;
    let rdata_start = r.pos;
    let rdata = r.bytes(rdlen)?;
    if class != CLASS_IN {
        return Ok(None);
    }
    let data = match rtype {
        TYPE_A => {
            let a: [u8; 4] = rdata.try_into().map_err(|_| DnsError::BadRdata)?;
            Rdata::Addr(IpAddr::V4(Ipv4Addr::from(a)))
        }
        TYPE_AAAA => {
            let a: [u8; 16] = rdata.try_into().map_err(|_| DnsError::BadRdata)?;
            Rdata::Addr(IpAddr::V6(Ipv6Addr::from(a)))
        }
        TYPE_CNAME => {
            let (target, end) = read_name(r.msg, rdata_start)?;
            // The target must be exactly the record data, not run past it.
            if end != rdata_start + rdlen {
                return Err(DnsError::BadRdata);
            }
            Rdata::Cname(target)
        }
        _ => Rdata::Other,
    };
    // RFC 2181 8: a TTL with the top bit set is treated as zero.
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    Ok(Some(Record { name, ttl, data }))
}

/// The addresses a response teaches: those of the question name and of the names its
/// CNAME chain (inside this response) leads to, once the chain has passed a name that
/// `matches`. Records about other names are ignored, so a response cannot teach an
/// address for a name nobody asked about.
pub fn learn(resp: &Response, matches: impl Fn(&str) -> bool) -> Vec<Learned> {
    let mut out = Vec::new();
    let mut current = resp.question.clone();
    let mut head: Option<String> = matches(&current).then(|| current.clone());
    let mut chain_ttl = u32::MAX;
    for _ in 0..=MAX_CHAIN {
        if let Some(head) = &head {
            for rec in &resp.answers {
                if rec.name == current
                    && let Rdata::Addr(addr) = rec.data
                    && !out.iter().any(|l: &Learned| l.addr == addr)
                {
                    out.push(Learned {
                        name: head.clone(),
                        addr,
                        ttl: rec.ttl.min(chain_ttl),
                    });
                }
            }
        }
        let next = resp.answers.iter().find_map(|rec| match &rec.data {
            Rdata::Cname(t) if rec.name == current => Some((t.clone(), rec.ttl)),
            _ => None,
        });
        let Some((target, ttl)) = next else { break };
        chain_ttl = chain_ttl.min(ttl);
        if head.is_none() && matches(&target) {
            head = Some(target.clone());
        }
        current = target;
    }
    out
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
