//! The per-flow rows of the report, kept across polls: a flow's text (interface,
//! addresses, class, DSCP fields) is made once, when the flow first appears or its
//! counters change, not on every poll. On a gateway most of a large flow table is idle
//! at any moment, so a poll costs a look-up and a comparison per idle flow instead of a
//! dozen formatted strings (issue #16: 65,536 flows took ~50 ms a poll to format).
//!
//! The rows also give the detectors each flow's counts since the last poll (what
//! [`crate::anomaly::window::Deltas`] computes from the text identity), keyed by the
//! kernel's own flow key.

use monitor_common::{Class, FlowKey, FlowStats};

use super::text::{busiest_key, flow_status};
use crate::{
    anomaly::window::Counts, detect::RECENT_S, fasthash::HashMap, status::model::FlowStatus,
};

/// One flow's row: its key and the counters its text was made from (and its counts
/// since the last poll are measured from). Written only when the flow changes: what
/// each poll writes per row is in [`Place`] and the row's [`Marks`], lists a few bytes a
/// row wide (at a million flows, rewriting every row's cache line was a tenth of a
/// poll).
#[derive(Clone, Debug)]
struct Row {
    key: FlowKey,
    stats: FlowStats,
}

/// Where a row's flow was in the last snapshot read.
#[derive(Clone, Copy, Debug)]
struct Place {
    /// The poll (generation) that last listed this flow.
    seen: u64,
    /// Its place in that poll's snapshot.
    at: usize,
}

/// Rows from which a table out of the snapshot's order is put back in it (fewer fit in
/// the caches in any order).
const REORDER_FROM: usize = 4096;

/// A flow idle this long keeps the age and idle time it had then in its status: longer
/// than every threshold a detector compares them with (`[detect] media_silence_s` is at
/// most 3600 s), so every verdict reads them as it would read the exact ones.
pub const FROZEN_S: f64 = 3700.0;

/// What a new or changed flow counted since the last poll (as `Deltas::update`: flows
/// that are not Webex are not judged, the first poll is the baseline, a new flow counted
/// everything it has); `before`: the counters its row had (`None` for a new row).
fn judge(before: Option<&FlowStats>, v: &FlowStats, baseline: bool) -> Counts {
    let webex = |v: &FlowStats| v.class != Class::NotWebex as u32;
    if !webex(v) || baseline {
        return Counts::default();
    }
    let now = Counts::of_stats(v);
    match before.filter(|b| webex(b)) {
        Some(b) => now.since(Counts::of_stats(b)),
        None => now,
    }
}

/// What a row's text depends on besides the flow: the interface names and the DSCP
/// marks. When either changes every row is made again.
#[derive(Clone, Debug, Default, PartialEq)]
struct Inputs {
    names: Vec<(u32, String)>,
    marks: crate::config::DscpConfig,
}

/// The rows, in a stable order (new flows at the end, a vanished flow's place taken by
/// the last row), with their statuses in a separate list that the report borrows for a
/// poll ([`FlowRows::update`], [`FlowRows::give_back`]).
#[derive(Debug, Default)]
pub struct FlowRows {
    index: KeyIndex,
    rows: Vec<Row>,
    statuses: Vec<FlowStatus>,
    /// Polls done; the first is the detectors' baseline (every delta zero).
    polls: u64,
    inputs: Inputs,
    /// The statuses are out with a report: the next update starts afresh if they do
    /// not come back.
    lent: bool,
    /// Rows whose text was made in the last update (new or changed flows).
    pub last_made: usize,
    /// Buffers used again each poll: the deltas lent out, and the row of each place of
    /// the snapshot.
    deltas: Vec<Counts>,
    /// Per place of the last snapshot, the row that held its flow.
    row_at: Vec<usize>,
    /// The rows of the flows that carried a packet within [`RECENT_S`] or counted
    /// something since the last poll, and of those that counted something.
    recent: Vec<usize>,
    changed: Vec<usize>,
    /// The rows of the flows of each [`Interest`].
    interests: [Vec<usize>; Interest::ALL.len()],
    /// The rows of the flows with a completed TCP handshake time.
    handshakes: Vec<usize>,
    /// Each row's [`Marks`] and [`Place`], in the rows' order.
    marks: Vec<Marks>,
    places: Vec<Place>,
    /// Put in the snapshot's order however few the rows (tests); otherwise only from
    /// [`REORDER_FROM`] rows ([`FlowRows::in_read_order`]).
    reorder_any: bool,
    /// How many times the rows were put in the snapshot's order.
    pub reorders: u64,
    /// The last choice of [`FlowRows::shown`] (served, call flows, places), until a flow
    /// comes, changes or goes.
    shown: Option<(usize, usize, Vec<usize>)>,
    /// Packets, bytes and flows per class, interface, direction, transport and IP
    /// family, kept as rows come, change and go ([`FlowRows::aggregate`]).
    groups: HashMap<Group, (u64, u64, u64)>,
}

/// The rows by key: row numbers in a table hashed by the keys in the rows themselves.
/// A map from keys would hold every key a second time (~110 MB at a million flows).
#[derive(Debug, Default)]
struct KeyIndex {
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl KeyIndex {
    fn hash(&self, k: &FlowKey) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, k)
    }

    /// The row of `k`.
    fn get(&self, rows: &[Row], k: &FlowKey) -> Option<usize> {
        self.table
            .find(self.hash(k), |&j| rows[j as usize].key == *k)
            .map(|&j| j as usize)
    }

    /// Row `i` (already in `rows`) for its key, unless the key has a row already.
    fn insert_if_absent(&mut self, rows: &[Row], i: usize) {
        let k = &rows[i].key;
        let hash = self.hash(k);
        let hasher = &self.hasher;
        if let hashbrown::hash_table::Entry::Vacant(e) = self.table.entry(
            hash,
            |&j| rows[j as usize].key == *k,
            |&j| std::hash::BuildHasher::hash_one(hasher, rows[j as usize].key),
        ) {
            e.insert(i as u32);
        }
    }

    /// Forgets `k`'s entry if it is row `i`.
    fn remove_if(&mut self, k: &FlowKey, i: usize) {
        if let Ok(e) = self.table.find_entry(self.hash(k), |&j| j as usize == i) {
            e.remove();
        }
    }

    /// `k`'s entry moves from row `from` to row `to` (a row moved into a gap).
    fn repoint(&mut self, k: &FlowKey, from: usize, to: usize) {
        if let Some(j) = self.table.find_mut(self.hash(k), |&j| j as usize == from) {
            *j = to as u32;
        }
    }
}

/// Class, interface index, direction, transport and IP family.
type Group = (u32, u32, u8, u8, u8);

/// Counts the flow `(k, v)` in (`add`) or out of its group.
fn count_in(groups: &mut HashMap<Group, (u64, u64, u64)>, k: &FlowKey, v: &FlowStats, add: bool) {
    let g = (v.class, k.ifindex, k.direction, k.protocol, k.family);
    if add {
        let e = groups.entry(g).or_default();
        e.0 += v.packets;
        e.1 += v.bytes;
        e.2 += 1;
    } else if let Some(e) = groups.get_mut(&g) {
        e.0 = e.0.saturating_sub(v.packets);
        e.1 = e.1.saturating_sub(v.bytes);
        e.2 = e.2.saturating_sub(1);
        if e.2 == 0 {
            groups.remove(&g);
        }
    }
}

/// The few flows a pass of the analysis reads, listed per poll from the kernel's keys
/// and counters (a flow table is mostly flows none of them is about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Webex flows whose DSCP marks the kernel checked (matched or not): the only
    /// flows DSCP compliance counts.
    DscpChecked,
    /// Webex flows with IP fragments, ICMP fragmentation-needed or oversize packets:
    /// the only flows `mtu_fragmentation` reads.
    MtuSigns,
    /// Flows that are not Webex on a VPN tunnel's protocol or port (`media_in_tunnel`).
    Tunnel,
    /// SIP signalling and HTTPS control flows (the conntrack joins, `nat_timeout_short`,
    /// `signalling_blocked`).
    Signalling,
    /// Flows of the classes call series are exported for (kept in the report).
    Call,
}

impl Interest {
    pub const ALL: [Interest; 5] = [
        Interest::DscpChecked,
        Interest::MtuSigns,
        Interest::Tunnel,
        Interest::Signalling,
        Interest::Call,
    ];

    /// Whether the flow with key `k` and counters `v` is of this interest.
    pub fn of(self, k: &FlowKey, v: &FlowStats) -> bool {
        let class = Class::from_u32(v.class);
        let webex = v.class != Class::NotWebex as u32;
        match self {
            Interest::DscpChecked => webex && v.dscp_match + v.dscp_mismatch > 0,
            Interest::MtuSigns => {
                webex && (v.fragments > 0 || v.icmp_frag_needed > 0 || v.oversize > 0)
            }
            Interest::Tunnel => {
                !webex
                    && monitor_common::tunnel::tunnel(k.protocol, k.src_port, k.dst_port).is_some()
            }
            Interest::Signalling => {
                matches!(class, Some(Class::SipSignalling | Class::HttpsControl))
            }
            Interest::Call => {
                class.is_some_and(|c| crate::report::flows::CALL_CLASSES.contains(&c.as_str()))
            }
        }
    }

    /// The same test on a flow's status (views made without rows: tests, tools).
    pub fn of_status(self, f: &FlowStatus) -> bool {
        let webex = f.class != "not_webex";
        match self {
            Interest::DscpChecked => f
                .dscp
                .as_ref()
                .is_some_and(|d| d.matched + d.mismatched > 0),
            Interest::MtuSigns => {
                webex && (f.fragments > 0 || f.icmp_frag_needed > 0 || f.oversize > 0)
            }
            Interest::Tunnel => {
                let protocol = match f.protocol.as_str() {
                    "udp" => 17,
                    "tcp" => 6,
                    other => other.parse().unwrap_or(0),
                };
                !webex && monitor_common::tunnel::tunnel(protocol, f.src_port, f.dst_port).is_some()
            }
            Interest::Signalling => matches!(f.class.as_str(), "sip_signalling" | "https_control"),
            Interest::Call => crate::report::flows::CALL_CLASSES.contains(&f.class.as_str()),
        }
    }
}

/// A row's marks: one bit per [`Interest`] (they depend only on the flow's key and
/// counters, so they are set when its text is made), and whether the flow is recent or
/// changed in this poll. The lists the detectors read are made from these bytes in one
/// pass in the rows' order: sorted as made, with no per-poll test of each flow.
type Marks = u16;
/// A TCP handshake time the kernel completed (status `media.handshakes`, the
/// certificate detector's RTTs).
const HANDSHAKE: Marks = 1 << 12;
/// Idle past [`FROZEN_S`] when its times were last written.
const FROZEN: Marks = 1 << 13;
const RECENT: Marks = 1 << 14;
const CHANGED: Marks = 1 << 15;
const _: () = assert!(
    Interest::ALL.len() <= 12,
    "an interest bit would meet HANDSHAKE"
);

/// The interest bits of the flow `(k, v)`.
fn interest_marks(k: &FlowKey, v: &FlowStats) -> Marks {
    Interest::ALL
        .iter()
        .enumerate()
        .filter(|(_, interest)| interest.of(k, v))
        .fold(0, |m, (bit, _)| m | 1 << bit)
}

/// The marks of a flow whose text was made this poll: its interests, and recent or
/// changed by what it counted (`d`) and how long it has been idle (`s`).
fn made_marks(k: &FlowKey, v: &FlowStats, s: &FlowStatus, d: &Counts) -> Marks {
    use monitor_common::rtp::HANDSHAKE_PENDING;
    let counted = *d != Counts::default();
    let mut m = interest_marks(k, v);
    if v.handshake_rtt_ns != 0 && v.handshake_rtt_ns & HANDSHAKE_PENDING == 0 {
        m |= HANDSHAKE;
    }
    if counted {
        m |= CHANGED;
    }
    if counted || s.idle_s < RECENT_S {
        m |= RECENT;
    }
    m
}

/// One poll's rows: every flow's status (in the rows' order) and what each counted
/// since the last poll.
pub struct Polled {
    pub flows: Vec<FlowStatus>,
    pub deltas: Vec<Counts>,
    /// The first poll: every delta is zero.
    pub baseline: bool,
}

impl FlowRows {
    pub fn new() -> FlowRows {
        FlowRows::default()
    }

    /// Rows put back in the snapshot's order however small the table (tests).
    #[cfg(test)]
    fn reordering_any() -> FlowRows {
        FlowRows {
            reorder_any: true,
            ..Default::default()
        }
    }

    /// Brings the rows to `flows` (a snapshot taken at `now_mono_ns`) and lends out the
    /// statuses; give them back with [`FlowRows::give_back`] after the poll.
    pub fn update(
        &mut self,
        flows: &crate::flows::table::FlowTable,
        names: &HashMap<u32, &str>,
        marks: &crate::config::dscp::DscpConfig,
        now_mono_ns: u64,
    ) -> Polled {
        let inputs = Inputs {
            names: {
                let mut n: Vec<(u32, String)> =
                    names.iter().map(|(i, n)| (*i, n.to_string())).collect();
                n.sort_unstable();
                n
            },
            marks: marks.clone(),
        };
        if self.lent || inputs != self.inputs {
            // Statuses not returned (an analysis failed) or made from other names or
            // marks: start afresh, keeping only the poll count (deltas stay valid).
            let (polls, reorder_any) = (self.polls, self.reorder_any);
            *self = FlowRows {
                polls,
                inputs,
                reorder_any,
                ..Default::default()
            };
        }
        let baseline = self.polls == 0;
        self.polls += 1;
        let generation = self.polls;
        let marks_of = |s: &mut FlowStatus, v: &FlowStats| crate::dscp::annotate(s, v, marks);
        let seconds = |ns: u64| now_mono_ns.saturating_sub(ns) as f64 / 1e9;

        // One pass over the snapshot, in its order. A table that did not change lists
        // its flows in the same order (the kernel walks its buckets), so each place is
        // first tried against the row that was there last poll: no hashing for most.
        // Only the rows that counted something last poll have a delta to clear (at a
        // million rows, zeroing them all was ~70 MB written a poll).
        let mut deltas = std::mem::take(&mut self.deltas);
        if deltas.len() == self.rows.len() {
            for &i in &self.changed {
                deltas[i] = Counts::default();
            }
        } else {
            deltas.clear();
            deltas.resize(self.rows.len(), Counts::default());
        }
        let mut row_at = std::mem::take(&mut self.row_at);
        row_at.resize(flows.len(), usize::MAX);
        let (mut made, mut kept) = (0, 0);
        // Places whose row is not the one after the last place's: rows out of the
        // snapshot's order (see `in_read_order`).
        let (mut jumps, mut last) = (0, usize::MAX);
        let mut new = Vec::new();
        for (at, (k, v)) in flows.iter().enumerate() {
            let hinted = row_at[at];
            let i = if self
                .places
                .get(hinted)
                .is_some_and(|p| p.seen != generation && self.rows[hinted].key == *k)
            {
                hinted
            } else {
                match self.index.get(&self.rows, k) {
                    Some(i) if self.places[i].seen != generation => i,
                    // A key listed twice (one map read between two evictions): its own row.
                    _ => {
                        new.push(at);
                        continue;
                    }
                }
            };
            row_at[at] = i;
            kept += 1;
            if i != last.wrapping_add(1) {
                jumps += 1;
            }
            last = i;
            let (r, s) = (&mut self.rows[i], &mut self.statuses[i]);
            let m = &mut self.marks[i];
            self.places[i] = Place {
                seen: generation,
                at,
            };
            if r.stats == *v {
                // Unchanged counters: it counted nothing (what `Deltas::update` finds
                // comparing equal counts) and only the times move on. A flow idle past
                // every detector's horizon keeps the times it had then: every verdict
                // reads them the same way, and the flows shown get exact ones
                // ([`FlowRows::times`]).
                *m &= !(RECENT | CHANGED);
                if *m & FROZEN == 0 {
                    s.age_s = seconds(v.first_seen_ns);
                    s.idle_s = seconds(v.last_seen_ns);
                    if s.idle_s >= FROZEN_S {
                        *m |= FROZEN;
                    }
                    if s.idle_s < RECENT_S {
                        *m |= RECENT;
                    }
                }
                continue;
            }
            *s = flow_status(k, v, names, now_mono_ns);
            marks_of(s, v);
            count_in(&mut self.groups, &r.key, &r.stats, false);
            count_in(&mut self.groups, k, v, true);
            deltas[i] = judge(Some(&r.stats), v, baseline);
            r.stats = *v;
            made += 1;
            // Not frozen: its times were just written.
            *m = made_marks(k, v, s, &deltas[i]);
        }

        // Vanished flows leave; from the back, so a row moved into a gap was checked.
        let removed = kept < self.rows.len();
        if removed {
            for i in (0..self.rows.len()).rev() {
                if self.places[i].seen == generation {
                    continue;
                }
                let gone = self.rows.swap_remove(i);
                self.places.swap_remove(i);
                count_in(&mut self.groups, &gone.key, &gone.stats, false);
                self.statuses.swap_remove(i);
                self.marks.swap_remove(i);
                deltas.swap_remove(i);
                self.index.remove_if(&gone.key, i);
                if let Some(moved) = self.rows.get(i) {
                    row_at[self.places[i].at] = i;
                    self.index.repoint(&moved.key, self.rows.len(), i);
                }
            }
        }
        for at in new {
            let Some((k, v)) = flows.get(at) else {
                continue;
            };
            let mut s = flow_status(k, v, names, now_mono_ns);
            marks_of(&mut s, v);
            let i = self.rows.len();
            row_at[at] = i;
            count_in(&mut self.groups, k, v, true);
            let r = Row { key: *k, stats: *v };
            self.places.push(Place {
                seen: generation,
                at,
            });
            let d = judge(None, v, baseline);
            self.marks.push(made_marks(k, v, &s, &d));
            deltas.push(d);
            self.rows.push(r);
            self.index.insert_if_absent(&self.rows, i);
            self.statuses.push(s);
            made += 1;
        }
        if made > 0 || removed {
            self.shown = None;
        }
        row_at.truncate(flows.len());
        let enough = self.reorder_any || self.rows.len() >= REORDER_FROM;
        if enough && jumps > self.rows.len() / 8 {
            self.in_read_order(&mut row_at, &mut deltas);
        }
        self.list_marked();
        self.row_at = row_at;
        self.last_made = made;
        self.lent = true;
        Polled {
            flows: std::mem::take(&mut self.statuses),
            deltas,
            baseline,
        }
    }

    /// Puts the rows in the order of the snapshot just read. A poll walks the snapshot in
    /// its order and each place's row with it: rows in another order (flows that came
    /// over several reads are listed by the kernel in its bucket order, not in the order
    /// they came) make that walk a cache miss per row, a million flows ~70 ms a poll.
    /// Done in place (each row swapped at most once into its place), so memory does not
    /// double; the index is made again.
    fn in_read_order(&mut self, row_at: &mut [usize], deltas: &mut [Counts]) {
        for start in 0..self.rows.len() {
            loop {
                let to = self.places[start].at;
                if to == start {
                    break;
                }
                self.rows.swap(start, to);
                self.statuses.swap(start, to);
                self.places.swap(start, to);
                self.marks.swap(start, to);
                deltas.swap(start, to);
            }
        }
        for (at, row) in row_at.iter_mut().enumerate() {
            *row = at;
        }
        self.index.table.clear();
        for i in 0..self.rows.len() {
            self.index.insert_if_absent(&self.rows, i);
        }
        self.shown = None;
        self.reorders += 1;
    }

    /// The recent, changed and interest lists from the rows' marks, in the rows' order.
    fn list_marked(&mut self) {
        self.recent.clear();
        self.changed.clear();
        self.handshakes.clear();
        for list in self.interests.iter_mut() {
            list.clear();
        }
        for (i, &m) in self.marks.iter().enumerate() {
            if m == 0 {
                continue;
            }
            if m & RECENT != 0 {
                self.recent.push(i);
            }
            if m & CHANGED != 0 {
                self.changed.push(i);
            }
            if m & HANDSHAKE != 0 {
                self.handshakes.push(i);
            }
            for (bit, list) in self.interests.iter_mut().enumerate() {
                if m & 1 << bit != 0 {
                    list.push(i);
                }
            }
        }
    }

    /// The exact age and idle time of the flow at `i` at `now_mono_ns` (a flow idle
    /// past [`FROZEN_S`] keeps older ones in the statuses lent out).
    pub fn times(&self, i: usize, now_mono_ns: u64) -> (f64, f64) {
        let v = &self.rows[i].stats;
        let seconds = |ns: u64| now_mono_ns.saturating_sub(ns) as f64 / 1e9;
        (seconds(v.first_seen_ns), seconds(v.last_seen_ns))
    }

    /// The places (in the statuses lent out) of the flows that carried a packet within
    /// [`RECENT_S`] or counted something since the last poll, in order.
    pub fn recent(&self) -> &[usize] {
        &self.recent
    }

    /// The places of the flows that counted something since the last poll, in order.
    pub fn changed(&self) -> &[usize] {
        &self.changed
    }

    /// The flows with a completed TCP handshake time (key and counters), in order: what
    /// a pass over every flow for `handshake_rtt_ns` finds.
    pub fn handshakes(&self) -> impl Iterator<Item = (&FlowKey, &FlowStats)> {
        self.handshakes
            .iter()
            .map(|&i| (&self.rows[i].key, &self.rows[i].stats))
    }

    /// The places of the flows of `interest`, in order.
    pub fn of_interest(&self, interest: Interest) -> &[usize] {
        &self.interests[interest as usize]
    }

    /// Rows (flows) of the last update.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The kernel key of the row at `i` (the flow at `i` of the statuses lent out).
    pub fn key(&self, i: usize) -> &FlowKey {
        &self.rows[i].key
    }

    /// Where the flow with key `k` is in the statuses lent out.
    pub fn position(&self, k: &FlowKey) -> Option<usize> {
        self.index.get(&self.rows, k)
    }

    /// Takes back the statuses lent by the last [`FlowRows::update`] (the same list,
    /// in the same order), and its deltas as lent (their memory is used again).
    pub fn give_back(&mut self, flows: Vec<FlowStatus>, deltas: Vec<Counts>) {
        if self.lent && flows.len() == self.rows.len() {
            self.statuses = flows;
            self.lent = false;
        }
        // As lent: only the rows changed last poll hold a delta (the next update clears
        // just those). Any other list is cleared there in full.
        self.deltas = if deltas.len() == self.rows.len() {
            deltas
        } else {
            Vec::new()
        };
    }

    /// The places of the flows status and export show, busiest first: the `served`
    /// busiest, then up to `call_flows` more of the call classes (as
    /// [`StatusReport::keep_shown_flows`](crate::status::model::StatusReport::keep_shown_flows)
    /// keeps of a sorted list). `rank` orders interfaces by name. Chosen again only when
    /// a flow came, changed or went since the last choice.
    pub fn shown(
        &mut self,
        served: usize,
        call_flows: usize,
        rank: &dyn Fn(u32) -> (u8, usize),
    ) -> Vec<usize> {
        if let Some((s, c, places)) = &self.shown
            && (*s, *c) == (served, call_flows)
        {
            return places.clone();
        }
        // Each row's order key made once (it looks the interface's rank up).
        let key = |i: usize| {
            let r = &self.rows[i];
            (busiest_key(&r.key, &r.stats, rank), i)
        };
        let mut all: Vec<_> = (0..self.rows.len()).map(key).collect();
        if all.len() > served {
            all.select_nth_unstable(served);
            all.truncate(served);
            let mut top = vec![false; self.rows.len()];
            for (_, i) in &all {
                top[*i] = true;
            }
            let mut calls: Vec<_> = self
                .of_interest(Interest::Call)
                .iter()
                .filter(|i| !top[**i])
                .map(|&i| key(i))
                .collect();
            if calls.len() > call_flows {
                calls.select_nth_unstable(call_flows);
                calls.truncate(call_flows);
            }
            all.sort_unstable();
            calls.sort_unstable();
            all.extend(calls);
        } else {
            all.sort_unstable();
        }
        let places: Vec<usize> = all.into_iter().map(|(_, i)| i).collect();
        self.shown = Some((served, call_flows, places.clone()));
        places
    }

    /// The flows' totals per class, interface, direction, transport and IP version
    /// (status `flow_aggregates`), from the totals kept per kernel group: no pass over
    /// the flows.
    pub fn aggregate(&self) -> Vec<crate::report::flows::FlowAggregate> {
        use super::text::protocol_name;
        use monitor_common::Direction;
        let names: HashMap<u32, &str> = self
            .inputs
            .names
            .iter()
            .map(|(i, n)| (*i, n.as_str()))
            .collect();
        // (class, interface, direction, transport, IP version) → packets, bytes, flows
        type Text = (String, String, String, String, u8);
        let mut text: std::collections::BTreeMap<Text, (u64, u64, u64)> = Default::default();
        for (&(class, ifindex, direction, protocol, family), &(p, b, n)) in &self.groups {
            let key = (
                Class::from_u32(class)
                    .map(Class::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
                names
                    .get(&ifindex)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| format!("if{ifindex}")),
                Direction::from_u8(direction)
                    .map(Direction::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
                protocol_name(protocol),
                if family == monitor_common::flow::FAMILY_V4 {
                    4
                } else {
                    6
                },
            );
            let e = text.entry(key).or_default();
            e.0 += p;
            e.1 += b;
            e.2 += n;
        }
        text.into_iter()
            .map(
                |((class, interface, direction, protocol, ip_version), (packets, bytes, flows))| {
                    crate::report::flows::FlowAggregate {
                        class,
                        interface,
                        direction,
                        protocol,
                        ip_version,
                        packets,
                        bytes,
                        flows,
                    }
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        anomaly::window::Deltas,
        daemon::report::{self, StaticInfo},
        flows::text::{interface_names, interface_rank},
        kernel::snapshot::Snapshot,
        status::model::InterfaceStatus,
    };

    fn iface(name: &str, ifindex: u32, role: &str) -> InterfaceStatus {
        InterfaceStatus {
            name: name.into(),
            ifindex,
            role: role.into(),
            ..Default::default()
        }
    }

    fn info() -> StaticInfo {
        StaticInfo::for_interfaces(vec![iface("lan0", 2, "lan"), iface("wan0", 3, "wan")])
    }

    fn flow(n: u8, ifindex: u32, class: Class, packets: u64) -> (FlowKey, FlowStats) {
        (
            FlowKey {
                src_addr: FlowKey::v4_mapped([192, 0, 2, n]),
                dst_addr: FlowKey::v4_mapped([203, 0, 113, 10]),
                ifindex,
                src_port: 40000 + n as u16,
                dst_port: 5004,
                protocol: 17,
                family: 4,
                direction: 0,
                _pad: 0,
            },
            FlowStats {
                packets,
                bytes: packets * 200,
                first_seen_ns: 1_000_000_000,
                last_seen_ns: 2_000_000_000 + packets,
                class: class as u32,
                // Media marked (some of it wrongly); signalling not checked.
                dscp_match: if class == Class::Media {
                    packets / 2
                } else {
                    0
                },
                dscp_mismatch: if class == Class::Media {
                    packets % 3
                } else {
                    0
                },
                ..Default::default()
            },
        )
    }

    fn snap(flows: Vec<(FlowKey, FlowStats)>, at_s: u64) -> Snapshot {
        Snapshot {
            taken_mono_ns: at_s * 1_000_000_000,
            flows: flows.into(),
            ..Default::default()
        }
    }

    /// Each poll's rows, deltas and shown flows equal what a fresh build of the same
    /// snapshot, the text-keyed deltas and `keep_shown_flows` give.
    #[test]
    fn rows_equal_a_fresh_build_with_the_same_deltas_and_shown_flows() {
        let info = info();
        let polls = [
            vec![
                flow(1, 2, Class::Media, 10),
                flow(2, 2, Class::Media, 20),
                flow(3, 3, Class::SipSignalling, 5),
                flow(4, 2, Class::NotWebex, 7),
            ],
            // 1 counts more, 2 unchanged, 3 gone, 5 new, 4 still not Webex.
            vec![
                flow(1, 2, Class::Media, 30),
                flow(2, 2, Class::Media, 20),
                flow(5, 3, Class::Media, 1),
                flow(4, 2, Class::NotWebex, 9),
            ],
            // Listed in another order; 1 evicted and created again (fewer packets).
            vec![
                flow(5, 3, Class::Media, 4),
                flow(1, 2, Class::Media, 2),
                flow(2, 2, Class::Media, 20),
            ],
            // Nothing changed: the choice of the shown flows is kept.
            vec![
                flow(5, 3, Class::Media, 4),
                flow(1, 2, Class::Media, 2),
                flow(2, 2, Class::Media, 20),
            ],
        ];
        // A WireGuard flow (not Webex) and a fragmented media flow in the first two.
        let mut polls = polls;
        for p in &mut polls[..2] {
            let mut wg = flow(6, 2, Class::NotWebex, 3);
            wg.0.dst_port = 51820;
            p.push(wg);
            let mut frag = flow(7, 3, Class::Media, 8);
            frag.1.fragments = 2;
            p.push(frag);
        }
        let mut rows = FlowRows::reordering_any();
        let mut deltas = Deltas::default();
        let mut made = Vec::new();
        for (p, flows) in polls.into_iter().enumerate() {
            let s = snap(flows, 10 + p as u64);
            let names = interface_names(&info.interfaces);
            let polled = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
            made.push(rows.last_made);
            let mut fresh = report::build(&info, &s, s.taken_mono_ns);
            let expected_deltas = deltas.update(&fresh.flows);
            assert_eq!(polled.baseline, p == 0);
            // The same flows with the same text and counts, and the same deltas.
            let by_subject = |flows: &[FlowStatus], d: &[Counts]| {
                let mut v: Vec<(String, FlowStatus, Counts)> = flows
                    .iter()
                    .zip(d)
                    .map(|(f, c)| (crate::detect::subject(f), f.clone(), *c))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            };
            assert_eq!(
                by_subject(&polled.flows, &polled.deltas),
                by_subject(&fresh.flows, &expected_deltas),
                "poll {p}"
            );
            // The recent and the changed flows, as a pass over them all finds them.
            let zero = Counts::default();
            let changed: Vec<usize> = (0..polled.flows.len())
                .filter(|&i| polled.deltas[i] != zero)
                .collect();
            let recent: Vec<usize> = (0..polled.flows.len())
                .filter(|&i| polled.deltas[i] != zero || polled.flows[i].idle_s < RECENT_S)
                .collect();
            assert_eq!(rows.changed(), changed, "poll {p}");
            assert_eq!(rows.recent(), recent, "poll {p}");
            assert_eq!(recent.len(), polled.flows.len(), "all recent here");
            let checked: Vec<usize> = (0..polled.flows.len())
                .filter(|&i| {
                    polled.flows[i]
                        .dscp
                        .as_ref()
                        .is_some_and(|d| d.matched + d.mismatched > 0)
                })
                .collect();
            assert_eq!(rows.of_interest(Interest::DscpChecked), checked, "poll {p}");
            assert!(!checked.is_empty());
            // Every interest lists exactly the flows its test on the status finds.
            for interest in Interest::ALL {
                let expected: Vec<usize> = (0..polled.flows.len())
                    .filter(|&i| interest.of_status(&polled.flows[i]))
                    .collect();
                assert_eq!(
                    rows.of_interest(interest),
                    expected,
                    "poll {p} {interest:?}"
                );
                if p == 0 {
                    assert!(!expected.is_empty(), "poll {p} {interest:?}");
                }
            }
            // The shown flows: the busiest 2, then up to 1 more media flow.
            let rank = interface_rank(&names);
            let shown: Vec<FlowStatus> = rows
                .shown(2, 1, &rank)
                .into_iter()
                .map(|i| polled.flows[i].clone())
                .collect();
            let aggregates = rows.aggregate();
            fresh.keep_shown_flows(2, 1);
            assert_eq!(shown, fresh.flows, "poll {p}");
            assert_eq!(Some(aggregates), fresh.flow_aggregates, "poll {p}");
            rows.give_back(polled.flows, polled.deltas);
        }
        // Text made for new and changed flows only: all 6, then 1 and 4 changed and
        // 5 new, then 1 and 5 changed, then none.
        assert_eq!(made, vec![6, 3, 2, 0]);
    }

    /// Rows found by key through many comings and goings, a key listed twice in one
    /// read included: every flow of a poll has its row, found by its key.
    #[test]
    fn every_flow_is_found_by_key_as_flows_come_and_go() {
        let info = info();
        let names = interface_names(&info.interfaces);
        let mut rows = FlowRows::reordering_any();
        // Flows n..n+40 in poll n (steps of 7), so each poll some go and some come, and
        // the table is listed in a different order each time.
        for p in 0..12u8 {
            // Listed in a stride order: most polls list the table in another order.
            let stride = [1, 7, 3, 9, 11][p as usize % 5];
            let mut flows: Vec<(FlowKey, FlowStats)> = (0..40u8)
                .map(|j| {
                    let n = (j as usize * stride + p as usize) % 40;
                    flow(p * 7 + n as u8, 2, Class::Media, 10)
                })
                .collect();
            if p == 5 {
                // One read listed a key twice (between two evictions).
                flows.push(flows[0]);
            }
            let s = snap(flows.clone(), 10 + p as u64);
            let polled = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
            assert_eq!(rows.len(), flows.len(), "poll {p}");
            for (k, _) in &flows {
                let i = rows
                    .position(k)
                    .unwrap_or_else(|| panic!("poll {p}: no row"));
                assert_eq!(rows.key(i), k, "poll {p}");
                assert_eq!(polled.flows[i].src_port, k.src_port, "poll {p}");
            }
            rows.give_back(polled.flows, polled.deltas);
        }
        // The table listed in another order was put back in it.
        assert!(rows.reorders >= 8, "{} reorders", rows.reorders);
    }

    /// The rows list the flows with a completed handshake time as a pass over every
    /// flow finds them, as the times come, go pending and the flows go.
    #[test]
    fn handshakes_are_the_flows_with_a_completed_handshake_time() {
        use monitor_common::rtp::HANDSHAKE_PENDING;
        let info = info();
        let names = interface_names(&info.interfaces);
        let mut rows = FlowRows::reordering_any();
        let timed = |n: u8, rtt: u64| {
            let (k, mut v) = flow(n, 2, Class::HttpsControl, 5);
            v.handshake_rtt_ns = rtt;
            (k, v)
        };
        let polls = [
            vec![
                timed(1, 0),
                timed(2, 30_000_000),
                timed(3, HANDSHAKE_PENDING),
            ],
            // 3 completes, 2 is unchanged, a new one pending.
            vec![
                timed(2, 30_000_000),
                timed(3, 12_000_000),
                timed(1, 0),
                timed(4, HANDSHAKE_PENDING | 5),
            ],
            // 2 goes.
            vec![
                timed(3, 12_000_000),
                timed(1, 0),
                timed(4, HANDSHAKE_PENDING | 5),
            ],
        ];
        for (p, flows) in polls.into_iter().enumerate() {
            let s = snap(flows.clone(), 10 + p as u64);
            let polled = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
            let mut got: Vec<u16> = rows.handshakes().map(|(k, _)| k.src_port).collect();
            let mut want: Vec<u16> = flows
                .iter()
                .filter(|(_, v)| {
                    v.handshake_rtt_ns != 0 && v.handshake_rtt_ns & HANDSHAKE_PENDING == 0
                })
                .map(|(k, _)| k.src_port)
                .collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "poll {p}");
            rows.give_back(polled.flows, polled.deltas);
        }
    }

    #[test]
    fn a_flow_idle_past_the_horizon_keeps_its_times_and_the_shown_ones_are_exact() {
        let info = info();
        let names = interface_names(&info.interfaces);
        let mut rows = FlowRows::new();
        // Last packet at 2 s; polls at 10 s, at FROZEN_S + 10 s and 1000 s later.
        let mut at = Vec::new();
        for t in [10.0, FROZEN_S + 10.0, FROZEN_S + 1010.0] {
            let s = snap(vec![flow(1, 2, Class::Media, 10)], t as u64);
            let polled = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
            at.push((polled.flows[0].idle_s, rows.times(0, s.taken_mono_ns).1));
            rows.give_back(polled.flows, polled.deltas);
        }
        let last_packet_s = 2.000_000_010;
        assert!((at[0].0 - (10.0 - last_packet_s)).abs() < 1e-6);
        // Past the horizon it is written once more, then kept.
        assert!(at[1].0 >= FROZEN_S && at[2].0 == at[1].0);
        assert!((at[2].1 - (FROZEN_S + 1010.0 - last_packet_s)).abs() < 1e-6);
    }

    #[test]
    fn rows_not_given_back_or_new_names_start_afresh_without_a_second_baseline() {
        let info = info();
        let mut rows = FlowRows::new();
        let names = interface_names(&info.interfaces);
        let s = snap(vec![flow(1, 2, Class::Media, 10)], 10);
        let first = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
        assert!(first.baseline);
        // Not given back (an analysis failed): everything is made again, and the flow
        // counts as new (its counts so far) rather than a second baseline.
        let s = snap(vec![flow(1, 2, Class::Media, 12)], 11);
        let again = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
        assert!(!again.baseline);
        assert_eq!(rows.last_made, 1);
        assert_eq!(again.deltas[0].packets, 12);
        rows.give_back(again.flows, again.deltas);
        // An interface renamed: the text is made again.
        let renamed = vec![iface("inside0", 2, "lan"), iface("wan0", 3, "wan")];
        let names = interface_names(&renamed);
        let s = snap(vec![flow(1, 2, Class::Media, 12)], 12);
        let polled = rows.update(&s.flows, &names, &info.dscp.marks, s.taken_mono_ns);
        assert_eq!(polled.flows[0].interface, "inside0");
        assert_eq!(rows.last_made, 1);
    }
}
