//! A writer of the "newc" cpio format, the one the kernel unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst). Written here rather than
//! by `cpio(1)`, which Debian does not install by default, and so that every entry's
//! owner, mode and time are fixed: the same inputs give the same archive.

use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// Streams entries into `out`; [`Cpio::finish`] writes the trailer.
pub struct Cpio<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Cpio<W> {
        Cpio {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// A directory; `path` is relative to the root ("bin", "sys/fs").
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, 2, &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, 1, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry(TRAILER, 0, 1, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::other(format!("{name}: larger than newc's 4 GiB")))?;
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let name_size = name.len() as u32 + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check: all but the magic 8 hex digits.
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{name_size:08x}{:08x}",
            0, 0, 0, 0, 0, 0, 0, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Headers (with their name) and file data each start on a 4-byte boundary.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One parsed entry: (name, mode, data).
    pub(crate) type Entry = (String, u32, Vec<u8>);

    /// A strict reader of what [`Cpio`] writes, checking the format as the kernel's
    /// unpacker does: magic, hex fields, NUL-terminated name, 4-byte alignment, trailer.
    pub(crate) fn parse(mut bytes: &[u8]) -> Vec<Entry> {
        let start = bytes.len();
        let mut entries = Vec::new();
        loop {
            assert_eq!((start - bytes.len()) % 4, 0, "header not 4-aligned");
            assert_eq!(&bytes[..6], b"070701", "bad magic");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name_end = 110 + name_size;
            assert_eq!(bytes[name_end - 1], 0, "name not NUL-terminated");
            let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.next_multiple_of(4);
            let data = bytes[data_start..data_start + size].to_vec();
            bytes = &bytes[(data_start + size).next_multiple_of(4)..];
            if name == TRAILER {
                assert!(bytes.is_empty(), "bytes after the trailer");
                return entries;
            }
            entries.push((name, mode, data));
        }
    }

    #[test]
    fn entries_round_trip_with_their_types_and_alignment() {
        let mut cpio = Cpio::new(Vec::new());
        cpio.dir("bin", 0o755).unwrap();
        cpio.file("bin/busybox", 0o755, b"\x7fELF12345").unwrap();
        cpio.symlink("bin/sh", "busybox").unwrap();
        cpio.file("empty", 0o644, b"").unwrap();
        let bytes = cpio.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            parse(&bytes),
            vec![
                ("bin".into(), 0o040_755, vec![]),
                ("bin/busybox".into(), 0o100_755, b"\x7fELF12345".to_vec()),
                ("bin/sh".into(), 0o120_777, b"busybox".to_vec()),
                ("empty".into(), 0o100_644, vec![]),
            ]
        );
    }

    #[test]
    fn the_header_is_the_documented_110_bytes() {
        let mut cpio = Cpio::new(Vec::new());
        cpio.file("a", 0o600, b"xyz").unwrap();
        let bytes = cpio.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001000081800000000000000000000000010000000000000003\
             0000000000000000000000000000000000000002\
             00000000"
        );
        // "a\0" ends at 112, already aligned; the data follows, then one pad byte.
        assert_eq!(&bytes[110..116], b"a\0xyz\0");
    }
}
