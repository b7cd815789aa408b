//! A bounded ring of events the learner records and the detectors drain each poll: a
//! flood cannot grow memory; when it is full the oldest event is dropped and counted.

use std::collections::VecDeque;

/// At most `CAP` events, oldest first.
#[derive(Debug)]
pub struct Ring<T, const CAP: usize> {
    events: VecDeque<T>,
    /// Events dropped because the ring was full, since start.
    dropped: u64,
}

impl<T, const CAP: usize> Default for Ring<T, CAP> {
    fn default() -> Self {
        Ring {
            events: VecDeque::new(),
            dropped: 0,
        }
    }
}

impl<T, const CAP: usize> Ring<T, CAP> {
    /// Adds an event, dropping (and counting) the oldest when full.
    pub fn push(&mut self, e: T) {
        if self.events.len() >= CAP {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(e);
    }

    /// Takes every event kept, oldest first.
    pub fn take(&mut self) -> Vec<T> {
        self.events.drain(..).collect()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
