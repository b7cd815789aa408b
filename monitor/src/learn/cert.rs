//! The leaf certificate's issuer and subject in a TLS server's first flight (TLS 1.2 and
//! older send the Certificate message in clear), read defensively for `ssl_inspection`:
//! every length is checked against its enclosing structure and the buffer; a flight cut
//! by the sample bound is read as far as it goes ([`CertError::Truncated`] asks for the
//! next segment). Only names are extracted; nothing here is ever trusted or learned.

/// Why no certificate names were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertError {
    /// Not a TLS handshake record starting with a ServerHello.
    NotServerHello,
    /// TLS 1.3 (the ServerHello selects it) or encrypted records before any
    /// certificate: the certificate is not in clear.
    Encrypted,
    /// The flight ends before the leaf's subject: more bytes are needed.
    Truncated,
    /// A length or tag that does not fit its structure.
    Malformed,
}

impl CertError {
    pub const fn as_str(self) -> &'static str {
        match self {
            CertError::NotServerHello => "not_server_hello",
            CertError::Encrypted => "encrypted",
            CertError::Truncated => "truncated",
            CertError::Malformed => "malformed",
        }
    }
}

/// The names of a server's leaf certificate, rendered `C=US, O=Example, CN=Example CA`
/// (printable ASCII, each value at most [`MAX_VALUE`] characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafNames {
    pub issuer: String,
    pub subject: String,
}

/// Characters kept of one attribute value (a forged certificate cannot grow a finding).
pub const MAX_VALUE: usize = 64;
/// Attributes rendered per name at most.
const MAX_ATTRS: usize = 8;

const HANDSHAKE: u8 = 0x16;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const TLS13: u16 = 0x0304;

/// Issuer and subject of the leaf certificate in `flight`, the TCP payload of a TLS
/// server from its first byte (a ServerHello record) on.
pub fn leaf_names(flight: &[u8]) -> Result<LeafNames, CertError> {
    if flight.len() < 6 || flight[0] != HANDSHAKE || flight[1] != 3 || flight[5] != SERVER_HELLO {
        return Err(CertError::NotServerHello);
    }
    // The handshake messages, out of their records (a message may span records). At
    // most the flight's length.
    let mut hs = Vec::with_capacity(flight.len());
    let mut pos = 0;
    while pos + 5 <= flight.len() {
        let ty = flight[pos];
        let len = u16::from_be_bytes([flight[pos + 3], flight[pos + 4]]) as usize;
        let body = &flight[pos + 5..flight.len().min(pos + 5 + len)];
        if ty != HANDSHAKE {
            // ChangeCipherSpec or application data before the certificate: TLS 1.3
            // (or a resumed session), where the certificate is encrypted.
            return match messages(&hs) {
                Err(CertError::Truncated) => Err(CertError::Encrypted),
                r => r,
            };
        }
        hs.extend_from_slice(body);
        pos += 5 + len;
    }
    messages(&hs)
}

/// Walks the handshake messages to the Certificate message.
fn messages(hs: &[u8]) -> Result<LeafNames, CertError> {
    let mut c = Der { buf: hs, pos: 0 };
    loop {
        let ty = c.u8()?;
        let len = c.u24()?;
        match ty {
            SERVER_HELLO => {
                if selects_tls13(c.take(len)?)? {
                    return Err(CertError::Encrypted);
                }
            }
            CERTIFICATE => {
                let _list = c.u24()?;
                let _leaf_len = c.u24()?;
                return leaf(&mut c);
            }
            _ => {
                c.take(len)?;
            }
        }
    }
}

/// Whether a ServerHello body carries supported_versions = TLS 1.3.
fn selects_tls13(body: &[u8]) -> Result<bool, CertError> {
    let mut c = Der { buf: body, pos: 0 };
    c.take(2 + 32)?;
    let sid = c.u8()? as usize;
    c.take(sid + 2 + 1)?;
    if c.pos == body.len() {
        return Ok(false);
    }
    let ext_len = c.u16()? as usize;
    let mut e = Der {
        buf: c.take(ext_len).map_err(|_| CertError::Malformed)?,
        pos: 0,
    };
    while e.pos < e.buf.len() {
        let ty = e.u16().map_err(|_| CertError::Malformed)?;
        let len = e.u16().map_err(|_| CertError::Malformed)? as usize;
        let v = e.take(len).map_err(|_| CertError::Malformed)?;
        if ty == EXT_SUPPORTED_VERSIONS && v.len() == 2 {
            return Ok(u16::from_be_bytes([v[0], v[1]]) == TLS13);
        }
    }
    Ok(false)
}

/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
/// signature, issuer, validity, subject, ... }, ... }: only the headers of the two outer
/// sequences are needed, then each field whole.
fn leaf(c: &mut Der<'_>) -> Result<LeafNames, CertError> {
    c.header(0x30)?;
    c.header(0x30)?;
    if c.peek()? == 0xa0 {
        c.element(0xa0)?;
    }
    c.element(0x02)?;
    c.element(0x30)?;
    let issuer = name(c.element(0x30)?)?;
    c.element(0x30)?;
    let subject = name(c.element(0x30)?)?;
    Ok(LeafNames { issuer, subject })
}

/// Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }, rendered with the
/// short names of the usual attributes (others are left out).
fn name(rdns: &[u8]) -> Result<String, CertError> {
    let mut out: Vec<String> = Vec::new();
    let mut c = Der { buf: rdns, pos: 0 };
    let malformed = |_| CertError::Malformed;
    while c.pos < rdns.len() {
        let mut set = Der {
            buf: c.element(0x31).map_err(malformed)?,
            pos: 0,
        };
        while set.pos < set.buf.len() {
            let mut atv = Der {
                buf: set.element(0x30).map_err(malformed)?,
                pos: 0,
            };
            let oid = atv.element(0x06).map_err(malformed)?;
            let (tag, value) = atv.any().map_err(malformed)?;
            let Some(short) = short_name(oid) else {
                continue;
            };
            // String types: UTF8, Printable, T61, IA5; others (BMP) are not shown.
            if !matches!(tag, 0x0c | 0x13 | 0x14 | 0x16) || out.len() >= MAX_ATTRS {
                continue;
            }
            let v: String = value
                .iter()
                .take(MAX_VALUE)
                .map(|b| {
                    if b.is_ascii_graphic() || *b == b' ' {
                        *b as char
                    } else {
                        '?'
                    }
                })
                .collect();
            out.push(format!("{short}={v}"));
        }
    }
    Ok(out.join(", "))
}

/// id-at-* attribute short names (2.5.4.x).
fn short_name(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        _ => None,
    }
}

/// A bounded DER/TLS reader: reads past the buffer are [`CertError::Truncated`].
struct Der<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Der<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CertError> {
        let end = self.pos.checked_add(n).ok_or(CertError::Malformed)?;
        let b = self.buf.get(self.pos..end).ok_or(CertError::Truncated)?;
        self.pos = end;
        Ok(b)
    }
    fn peek(&self) -> Result<u8, CertError> {
        self.buf.get(self.pos).copied().ok_or(CertError::Truncated)
    }
    fn u8(&mut self) -> Result<u8, CertError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CertError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Result<usize, CertError> {
        let b = self.take(3)?;
        Ok(((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
    }
    /// A tag and its definite length (at most 4 length bytes).
    fn tl(&mut self) -> Result<(u8, usize), CertError> {
        let tag = self.u8()?;
        let first = self.u8()?;
        if first < 0x80 {
            return Ok((tag, first as usize));
        }
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(CertError::Malformed);
        }
        let mut len = 0usize;
        for b in self.take(n)? {
            len = (len << 8) | *b as usize;
        }
        Ok((tag, len))
    }
    /// The header of a constructed element with `tag`, entering it (its content may run
    /// past the buffer).
    fn header(&mut self, tag: u8) -> Result<usize, CertError> {
        match self.tl()? {
            (t, len) if t == tag => Ok(len),
            _ => Err(CertError::Malformed),
        }
    }
    /// A whole element with `tag`: its content.
    fn element(&mut self, tag: u8) -> Result<&'a [u8], CertError> {
        let len = self.header(tag)?;
        self.take(len)
    }
    /// A whole element of any tag.
    fn any(&mut self) -> Result<(u8, &'a [u8]), CertError> {
        let (tag, len) = self.tl()?;
        Ok((tag, self.take(len)?))
    }
}

#[cfg(test)]
#[path = "cert_tests.rs"]
pub(crate) mod tests;
