//! Hash maps for the per-poll work over every flow: foldhash instead of SipHash, which
//! was most of a poll's time with 65,536 flows. Still seeded per process (flow keys
//! come from the wire, so an attacker cannot aim collisions at a known hasher).

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
