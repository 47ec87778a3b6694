//! The sliding window of readings the figures are computed over.

use std::collections::VecDeque;
use std::time::Duration;

use super::figures::{snapshot, Reading, Snapshot};
use super::proxy::ProxyView;

/// A hard bound on the readings held, whatever the interval they come at.
const MAX_READINGS: usize = 128;

#[derive(Debug)]
pub struct Window {
    length: Duration,
    readings: VecDeque<Reading>,
}

impl Window {
    pub fn new(length: Duration) -> Window {
        Window {
            length,
            readings: VecDeque::new(),
        }
    }

    /// Adds the newest reading and forgets those the window no longer needs: the oldest one kept is the
    /// newest that is at least `length` old, so the figures always cover at least `length` once there is
    /// that much history.
    pub fn push(&mut self, reading: Reading) {
        self.readings.push_back(reading);
        while self
            .readings
            .get(1)
            .zip(self.readings.back())
            .is_some_and(|(second, last)| last.at.duration_since(second.at) >= self.length)
            || self.readings.len() > MAX_READINGS
        {
            self.readings.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.readings.clear();
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// The figures between the oldest and the newest reading; `None` before the first.
    pub fn snapshot(&self, proxies: &[ProxyView], service: Option<&str>) -> Option<Snapshot> {
        let (first, last) = (self.readings.front()?, self.readings.back()?);
        Some(snapshot(first, last, proxies, service))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::time::Instant;

    use super::*;

    #[test]
    fn it_keeps_just_enough_history_for_its_length() {
        let mut window = Window::new(Duration::from_secs(10));
        assert!(window.snapshot(&[], None).is_none());
        let t0 = Instant::now();
        for second in 0..=30 {
            window.push(Reading {
                at: t0 + Duration::from_secs(second),
                stats: BTreeMap::new(),
            });
            let covered = window.snapshot(&[], None).unwrap().window_seconds;
            assert_eq!(covered, (second.min(10)) as f64, "after {second} s");
        }
        assert_eq!(window.len(), 11);
        // However fast readings come, what is held is bounded.
        for i in 0..1000 {
            window.push(Reading {
                at: t0 + Duration::from_secs(31) + Duration::from_micros(i),
                stats: BTreeMap::new(),
            });
        }
        assert_eq!(window.len(), MAX_READINGS);
    }
}
