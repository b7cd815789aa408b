//! The server name (SNI) of a TLS ClientHello, read defensively: every length is checked
//! against its enclosing structure and the buffer; a hello cut by the sample bound is
//! read as far as it goes. Only a well-formed DNS host name is returned.

/// Why no server name was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SniError {
    /// Not a TLS handshake record carrying a ClientHello.
    NotClientHello,
    /// A length runs past its enclosing structure or the buffer.
    Truncated,
    /// The hello has no server_name extension (or it was beyond the cut).
    NoServerName,
    /// The server name is not a valid host name.
    BadName,
}

impl SniError {
    pub const fn as_str(self) -> &'static str {
        match self {
            SniError::NotClientHello => "not_client_hello",
            SniError::Truncated => "truncated",
            SniError::NoServerName => "no_server_name",
            SniError::BadName => "bad_name",
        }
    }
}

const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// A bounded cursor: reads fail past `end`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SniError> {
        let end = self.pos.checked_add(n).ok_or(SniError::Truncated)?;
        if end > self.end {
            return Err(SniError::Truncated);
        }
        let b = self.buf.get(self.pos..end).ok_or(SniError::Truncated)?;
        self.pos = end;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, SniError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SniError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Result<usize, SniError> {
        let b = self.take(3)?;
        Ok(((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
    }
    /// A sub-cursor over the next `n` bytes, which may extend past the buffer (a cut
    /// hello): reads inside it still fail at the buffer's end.
    fn sub(&mut self, n: usize) -> Result<Cursor<'a>, SniError> {
        let end = self.pos.checked_add(n).ok_or(SniError::Truncated)?;
        if end > self.end {
            return Err(SniError::Truncated);
        }
        let c = Cursor {
            buf: self.buf,
            pos: self.pos,
            end,
        };
        self.pos = end;
        Ok(c)
    }
}

/// The server name in the ClientHello that starts `payload` (a TCP payload starting
/// with the TLS record), lowercase.
pub fn server_name(payload: &[u8]) -> Result<String, SniError> {
    // Lengths may describe more than the (possibly cut) sample holds: the structure is
    // bounded by the lengths, the reads by the buffer.
    let unbounded = usize::MAX / 2;
    let mut rec = Cursor {
        buf: payload,
        pos: 0,
        end: unbounded,
    };
    let content_type = rec.u8().map_err(|_| SniError::NotClientHello)?;
    let major = rec.u8().map_err(|_| SniError::NotClientHello)?;
    let _minor = rec.u8()?;
    let record_len = rec.u16()? as usize;
    if content_type != 0x16 || major != 3 {
        return Err(SniError::NotClientHello);
    }
    let mut hs = rec.sub(record_len)?;
    if hs.u8()? != 1 {
        return Err(SniError::NotClientHello);
    }
    let hello_len = hs.u24()?;
    // A hello may continue in the next record; we only read this one.
    let mut hello = Cursor {
        buf: payload,
        pos: hs.pos,
        end: hs.pos.saturating_add(hello_len).min(hs.end),
    };
    let _version = hello.take(2)?;
    let _random = hello.take(32)?;
    let sid = hello.u8()? as usize;
    hello.take(sid)?;
    let suites = hello.u16()? as usize;
    hello.take(suites)?;
    let comp = hello.u8()? as usize;
    hello.take(comp)?;
    let ext_len = hello.u16().map_err(|_| SniError::NoServerName)? as usize;
    let mut exts = hello.sub(ext_len)?;
    // Extensions are at least 4 bytes each, so the loop is bounded by the length.
    while exts.pos < exts.end {
        let ty = exts.u16()?;
        let len = exts.u16()? as usize;
        let mut ext = exts.sub(len)?;
        if ty != EXT_SERVER_NAME {
            continue;
        }
        let list_len = ext.u16()? as usize;
        let mut list = ext.sub(list_len)?;
        while list.pos < list.end {
            let name_type = list.u8()?;
            let name_len = list.u16()? as usize;
            let name = list.take(name_len)?;
            if name_type == NAME_TYPE_HOST {
                return host_name(name);
            }
        }
        return Err(SniError::NoServerName);
    }
    Err(SniError::NoServerName)
}

/// A DNS host name: 1 to 253 bytes of letters, digits, '-', '_' and non-empty labels of
/// at most 63 bytes, without a trailing dot.
fn host_name(raw: &[u8]) -> Result<String, SniError> {
    if raw.is_empty() || raw.len() > 253 {
        return Err(SniError::BadName);
    }
    for label in raw.split(|b| *b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return Err(SniError::BadName);
        }
    }
    Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

#[cfg(test)]
#[path = "sni_tests.rs"]
mod tests;

/// A minimal ClientHello with a server name, for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub fn hello_with_sni(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&((entry.len() + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        ext.extend_from_slice(&entry);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }
}
