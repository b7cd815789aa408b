//! Each call's window history: one point per poll (that poll's deltas, the call's MOS
//! and health then), so the drill-down shows how the call went, not only how it is now.
//! One point per poll rather than per completed window: a window (`[quality] window_s`)
//! slides by one poll, so per-poll points show a degradation at the poll it started.

use std::collections::VecDeque;

use crate::report::calls::HistoryPoint;

/// The points kept per call (the last 30 polls: 30 s at the default 1 s poll interval);
/// the oldest is dropped first. Shown in `call_tracking.window_history_points`.
pub const POINTS: usize = 30;

/// Appends `point`, drops the oldest beyond [`POINTS`], and returns the history, oldest
/// first.
pub fn push(history: &mut VecDeque<HistoryPoint>, point: HistoryPoint) -> Vec<HistoryPoint> {
    history.push_back(point);
    while history.len() > POINTS {
        history.pop_front();
    }
    history.iter().cloned().collect()
}
