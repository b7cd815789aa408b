//! Makes the eBPF object's BTF type names ones the kernel accepts, in place.
//!
//! bpf-linker 0.10 (the version `cargo xtask setup` installs, see xtask/src/setup.rs)
//! rewrites Rust type names into C identifiers (`Global<u8>` → `Global_3C_u8_3E_`) for
//! structs only, not for unions (fixed upstream in bpf-linker PR #346, in versions that
//! need a system LLVM). aya-log-ebpf's `AYA_LOG_LEVEL: Global<u8>` holds a
//! `MaybeUninit<u8>` union, so the kernel refused the whole object BTF with "Invalid
//! name" and the programs loaded without func and line info. `monitor/build.rs` runs
//! [`sanitize`] on the linked object; every character a C identifier cannot hold becomes
//! `_`, which keeps the string table's layout (no offset moves).
//!
//! Self-contained (no crate imports): build.rs includes this file with `#[path]`, and the
//! library compiles it for its unit tests.

/// BTF kinds (uapi/linux/btf.h) whose names the kernel checks as C identifiers.
const NAMED_KINDS: [u32; 6] = [
    4,  // STRUCT
    5,  // UNION
    6,  // ENUM
    7,  // FWD
    8,  // TYPEDEF
    19, // ENUM64
];

/// Sanitizes the names of the `.BTF` section of the ELF object `elf`. Returns how many
/// names were changed; an object without `.BTF` is left alone (`Ok(0)`).
pub fn sanitize(elf: &mut [u8]) -> Result<usize, String> {
    let Some((offset, size)) = section(elf, b".BTF")? else {
        return Ok(0);
    };
    let end = offset
        .checked_add(size)
        .filter(|e| *e <= elf.len())
        .ok_or(".BTF section beyond the file")?;
    sanitize_btf(&mut elf[offset..end])
}

/// Sanitizes the names in one raw BTF blob (header, types, strings).
pub fn sanitize_btf(btf: &mut [u8]) -> Result<usize, String> {
    if u16_at(btf, 0)? != 0xeb9f {
        return Err("not little-endian BTF (bad magic)".into());
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let str_len = u32_at(btf, 20)? as usize;
    let types = hdr_len + type_off..hdr_len + type_off + type_len;
    let strings = hdr_len + str_off..hdr_len + str_off + str_len;
    if types.end > btf.len() || strings.end > btf.len() {
        return Err("BTF header points beyond the section".into());
    }
    let mut names = Vec::new();
    let mut at = types.start;
    while at < types.end {
        let name_off = u32_at(btf, at)? as usize;
        let info = u32_at(btf, at + 4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if NAMED_KINDS.contains(&kind) && name_off != 0 {
            names.push(strings.start + name_off);
        }
        at += 12 + trailing_len(kind, vlen)?;
    }
    let mut changed = 0;
    for start in names {
        let end = btf[start..strings.end]
            .iter()
            .position(|b| *b == 0)
            .map(|n| start + n)
            .ok_or("BTF name without its terminating NUL")?;
        let name = &mut btf[start..end];
        let mut touched = false;
        for (i, b) in name.iter_mut().enumerate() {
            let ok = b.is_ascii_alphabetic() || *b == b'_' || (i > 0 && b.is_ascii_digit());
            if !ok {
                *b = b'_';
                touched = true;
            }
        }
        changed += usize::from(touched);
    }
    Ok(changed)
}

/// Bytes that follow the 12-byte `btf_type` of `kind` with `vlen` entries.
fn trailing_len(kind: u32, vlen: usize) -> Result<usize, String> {
    Ok(match kind {
        1 => 4,                    // INT: encoding, offset, bits
        3 => 12,                   // ARRAY: type, index type, count
        4 | 5 => vlen * 12,        // STRUCT, UNION: members
        6 => vlen * 8,             // ENUM: values
        13 => vlen * 8,            // FUNC_PROTO: params
        14 => 4,                   // VAR: linkage
        15 => vlen * 12,           // DATASEC: variables
        17 => 4,                   // DECL_TAG: component index
        19 => vlen * 12,           // ENUM64: values
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        other => return Err(format!("unknown BTF kind {other}")),
    })
}

/// (offset, size) of the ELF64 little-endian section called `wanted`.
fn section(elf: &[u8], wanted: &[u8]) -> Result<Option<(usize, usize)>, String> {
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err("not a 64-bit little-endian ELF object".into());
    }
    let shoff = u64_at(elf, 0x28)? as usize;
    let shentsize = u16_at(elf, 0x3a)? as usize;
    let shnum = u16_at(elf, 0x3c)? as usize;
    let shstrndx = u16_at(elf, 0x3e)? as usize;
    let header = |i: usize| shoff + i * shentsize;
    let names_at = u64_at(elf, header(shstrndx) + 24)? as usize;
    for i in 0..shnum {
        let h = header(i);
        let name_at = names_at + u32_at(elf, h)? as usize;
        let name = elf
            .get(name_at..)
            .and_then(|s| s.split(|b| *b == 0).next())
            .ok_or("section name beyond the file")?;
        if name == wanted {
            return Ok(Some((
                u64_at(elf, h + 24)? as usize,
                u64_at(elf, h + 32)? as usize,
            )));
        }
    }
    Ok(None)
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], String> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("truncated object at byte {at}"))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    bytes(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    bytes(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    bytes(b, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: a header, the given types (raw words) and the string table.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xeb9fu16.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        let type_len = (types.len() * 4) as u32;
        for v in [24, 0, type_len, type_len, strings.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for w in types {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn union_and_struct_names_become_identifiers_and_others_stay() {
        // Strings: 0 "", 1 "MaybeUninit<u8>", 17 "()", 20 "Ok_3C_u8_3E_", 33 "v".
        let strings = b"\0MaybeUninit<u8>\0()\0Ok_3C_u8_3E_\0v\0";
        let types = [
            // [1] INT "()" size 0 (INT names are not checked by the kernel: kept).
            17,
            1 << 24,
            0,
            0,
            // [2] UNION "MaybeUninit<u8>" size 1, one member "v" of type 1.
            1,
            (5 << 24) | 1,
            1,
            33,
            1,
            0,
            // [3] STRUCT "Ok_3C_u8_3E_" size 1, no members.
            20,
            4 << 24,
            1,
        ];
        let mut b = blob(&types, strings);
        assert_eq!(sanitize_btf(&mut b), Ok(1));
        let table = &b[b.len() - strings.len()..];
        assert_eq!(table, b"\0MaybeUninit_u8_\0()\0Ok_3C_u8_3E_\0v\0");
        // Idempotent: the built object may be sanitized again.
        assert_eq!(sanitize_btf(&mut b), Ok(0));
    }

    #[test]
    fn a_leading_digit_is_replaced_and_bad_input_is_an_error() {
        let mut b = blob(&[1, 4 << 24, 0], b"\x009lives\0");
        assert_eq!(sanitize_btf(&mut b), Ok(1));
        assert!(b.ends_with(b"\0_lives\0"));
        let mut truncated = blob(&[1, 4 << 24, 0], b"\0x\0");
        truncated.truncate(truncated.len() - 2);
        assert!(sanitize_btf(&mut truncated).is_err());
        assert!(sanitize_btf(&mut [0u8; 4]).is_err());
        assert!(sanitize(&mut b"not an elf".to_vec()).is_err());
    }
}
