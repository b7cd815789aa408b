//! The object's maps against their definitions in `monitor_common::maps`, read from the
//! ELF before anything is loaded: every defined map is there, with its map type, key and
//! value size, entries and pinning, and the object has no map without a definition (which
//! pins, layout checks and clean-up would miss). A mismatch names the map and the field,
//! so a kernel static declared apart from its definition fails the first load (and the
//! host test below), not a later look-up.

use std::collections::HashSet;

use aya_obj::maps::PinningType;
use monitor_common::maps::{self, Def};

use super::KernelError;

/// One map as the object declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared<'a> {
    pub name: &'a str,
    /// `enum bpf_map_type`.
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub pinned: bool,
}

impl Declared<'static> {
    /// How the object declares a map that matches `def`.
    pub fn of(def: &Def) -> Self {
        Declared {
            name: def.name,
            kind: def.kind as u32,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            pinned: def.pinned,
        }
    }
}

/// Checks the maps of the object `bytes` (the embedded one: `object::bytes`).
pub fn check_object(bytes: &[u8]) -> Result<(), KernelError> {
    let object = aya_obj::Object::parse(bytes).map_err(|e| KernelError::Object(e.to_string()))?;
    check(object.maps.iter().map(|(name, m)| Declared {
        name,
        kind: m.map_type(),
        key_size: m.key_size(),
        value_size: m.value_size(),
        max_entries: m.max_entries(),
        pinned: m.pinning() == PinningType::ByName,
    }))
}

/// Checks `declared` against `maps::ALL`. aya's own maps (data sections such as
/// `.rodata`, and aya-log's `AYA_LOGS`) are not the object's and are skipped.
pub fn check<'a>(declared: impl Iterator<Item = Declared<'a>>) -> Result<(), KernelError> {
    let mut seen = HashSet::new();
    for found in declared {
        if found.name.starts_with('.') || found.name == "AYA_LOGS" {
            continue;
        }
        let def = maps::by_name(found.name)
            .ok_or_else(|| KernelError::UnknownMap(found.name.to_string()))?;
        let differences = differences(&Declared::of(def), &found);
        if !differences.is_empty() {
            return Err(KernelError::MapDefinition {
                map: found.name.to_string(),
                what: differences.join(", "),
            });
        }
        seen.insert(def.name);
    }
    match maps::ALL.iter().find(|d| !seen.contains(d.name)) {
        Some(missing) => Err(KernelError::Missing(missing.name)),
        None => Ok(()),
    }
}

/// What `found` declares other than `want`, one phrase per field.
fn differences(want: &Declared, found: &Declared) -> Vec<String> {
    let fields = [
        ("map type", want.kind, found.kind),
        ("key size", want.key_size, found.key_size),
        ("value size", want.value_size, found.value_size),
        ("max entries", want.max_entries, found.max_entries),
        ("pinned", want.pinned as u32, found.pinned as u32),
    ];
    fields
        .iter()
        .filter(|(_, w, f)| w != f)
        .map(|(field, w, f)| format!("{field} {f} where {w} is defined"))
        .collect()
}

#[cfg(test)]
mod tests {
    use monitor_common::maps::{self, flows, media_rtt};

    use super::{Declared, KernelError, check};

    fn all() -> Vec<Declared<'static>> {
        let mut all: Vec<_> = maps::ALL.iter().map(Declared::of).collect();
        for aya_own in [".rodata", ".bss", "AYA_LOGS"] {
            all.push(Declared {
                name: aya_own,
                ..Declared::of(&flows::DEF)
            });
        }
        all
    }

    /// The object this binary embeds (built from monitor-ebpf by build.rs) matches every
    /// definition: read from the ELF, no root needed.
    #[test]
    fn the_embedded_object_declares_every_map_as_defined() {
        let bytes = crate::kernel::object::bytes().expect("the build embeds the object");
        super::check_object(bytes).unwrap();
    }

    #[test]
    fn every_defined_map_and_no_other_passes() {
        assert!(check(all().into_iter()).is_ok());
        let missing = all().into_iter().filter(|d| d.name != flows::NAME);
        assert!(matches!(
            check(missing),
            Err(KernelError::Missing(flows::NAME))
        ));
        let stray = all().into_iter().chain([Declared {
            name: "STRAY",
            ..Declared::of(&flows::DEF)
        }]);
        assert!(matches!(check(stray), Err(KernelError::UnknownMap(n)) if n == "STRAY"));
    }

    #[test]
    fn a_map_declared_apart_from_its_definition_is_named_with_its_fields() {
        let changed = all().into_iter().map(|d| match d.name {
            media_rtt::NAME => Declared {
                key_size: d.key_size + 4,
                max_entries: 1,
                ..d
            },
            _ => d,
        });
        let err = check(changed).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the eBPF object's map MEDIA_RTT is not as monitor_common::maps defines it: \
                 key size {} where {} is defined, max entries 1 where 4096 is defined; the \
                 build is broken (declare it in monitor-ebpf/src/maps.rs from its definition)",
                media_rtt::DEF.key_size + 4,
                media_rtt::DEF.key_size
            )
        );
        let unpinned = all().into_iter().map(|d| match d.name {
            flows::NAME => Declared { pinned: false, ..d },
            _ => d,
        });
        assert!(matches!(
            check(unpinned),
            Err(KernelError::MapDefinition { map, what })
                if map == "FLOWS" && what == "pinned 0 where 1 is defined"
        ));
    }
}
