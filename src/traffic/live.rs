//! The server's side of the dashboard: the same window `switchyard top` keeps, kept by the server only while
//! someone looks. Asking for the figures starts a reader task that reads every connected proxy's Envoy once
//! an interval; when nobody has asked for [`Settings::idle`], the task forgets the window and ends. Nothing is
//! read while no dashboard is open.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::figures::{snapshot, Reading, Snapshot};
use super::proxy::ProxyView;
use super::read::{envoy_addresses, read};
use super::window::Window;
use crate::xds::ProxyRegistry;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Between two readings.
    pub interval: Duration,
    /// The history the figures cover.
    pub window: Duration,
    /// How long after the last request the reading goes on.
    pub idle: Duration,
}

impl Default for Settings {
    /// A reading a second (the dashboard asks about as often) over `top`'s default window of 10 s.
    fn default() -> Settings {
        Settings {
            interval: Duration::from_secs(1),
            window: Duration::from_secs(10),
            idle: Duration::from_secs(10),
        }
    }
}

/// Cloning shares it.
#[derive(Clone)]
pub struct LiveTraffic {
    inner: Arc<Inner>,
}

struct Inner {
    registry: ProxyRegistry,
    settings: Settings,
    state: Mutex<State>,
}

struct State {
    window: Window,
    last_asked: Option<Instant>,
    reading: bool,
}

impl LiveTraffic {
    pub fn new(registry: ProxyRegistry, settings: Settings) -> LiveTraffic {
        LiveTraffic {
            inner: Arc::new(Inner {
                registry,
                settings,
                state: Mutex::new(State {
                    window: Window::new(settings.window),
                    last_asked: None,
                    reading: false,
                }),
            }),
        }
    }

    /// The figures of the window as it is, for the connected proxies as they are; reading goes on for
    /// [`Settings::idle`] from now. The first request after a quiet spell has no readings yet: it lists the
    /// proxies with their sync state, and no traffic, until the next ones.
    pub fn snapshot(&self) -> Snapshot {
        let proxies = connected(&self.inner.registry);
        let mut state = self.inner.lock();
        state.last_asked = Some(Instant::now());
        if !state.reading {
            state.reading = true;
            tokio::spawn(read_while_asked(Arc::downgrade(&self.inner)));
        }
        state.window.snapshot(&proxies, None).unwrap_or_else(|| {
            let none = Reading {
                at: Instant::now(),
                stats: BTreeMap::new(),
            };
            snapshot(&none, &none, &proxies, None)
        })
    }

    /// Whether the reader task runs (for tests: it must stop when nobody asks).
    pub fn is_reading(&self) -> bool {
        self.inner.lock().reading
    }

    /// How many readings are held.
    pub fn readings(&self) -> usize {
        self.inner.lock().window.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic elsewhere while holding the lock leaves nothing half-done worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn connected(registry: &ProxyRegistry) -> Vec<ProxyView> {
    registry
        .latest_per_node()
        .values()
        .map(ProxyView::from)
        .collect()
}

/// Reads every `interval` until nobody asked for `idle`, or the dashboard's state is gone (the admin endpoint
/// stopped).
async fn read_while_asked(inner: Weak<Inner>) {
    loop {
        let started = Instant::now();
        let Some(live) = inner.upgrade() else {
            return;
        };
        let settings = live.settings;
        let addresses = envoy_addresses(&[], &connected(&live.registry));
        // Not held across the reading: a stopped endpoint frees the state while Envoys are being read.
        drop(live);
        let reading = read(&addresses).await;
        let Some(live) = inner.upgrade() else {
            return;
        };
        {
            let mut state = live.lock();
            let asked_lately = state
                .last_asked
                .is_some_and(|at| reading.at.duration_since(at) < settings.idle);
            if !asked_lately {
                state.window.clear();
                state.reading = false;
                tracing::debug!("nobody watches the traffic any more; stopped reading the Envoys");
                return;
            }
            state.window.push(reading);
        }
        drop(live);
        tokio::time::sleep_until(started + settings.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `done` until it holds, failing after a few seconds.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reading starts with the first request, goes on while requests come, and stops, forgetting what it
    /// read, once nobody asks.
    #[tokio::test]
    async fn it_reads_only_while_asked() {
        let settings = Settings {
            interval: Duration::from_millis(20),
            window: Duration::from_millis(100),
            idle: Duration::from_millis(200),
        };
        let live = LiveTraffic::new(ProxyRegistry::default(), settings);
        assert!(!live.is_reading());
        assert_eq!(live.snapshot().window_seconds, 0.0);
        assert!(live.is_reading());
        // Asked about as often as it reads, as the page does.
        let until = Instant::now() + settings.window * 4;
        while Instant::now() < until {
            live.snapshot();
            assert!(live.is_reading());
            tokio::time::sleep(settings.interval).await;
        }
        let held = live.readings();
        assert!((2..=8).contains(&held), "{held} readings held");
        assert!(live.snapshot().window_seconds >= settings.window.as_secs_f64());
        // Nobody asks: the task stops and the window is forgotten.
        eventually("the reading to stop", || !live.is_reading()).await;
        assert_eq!(live.readings(), 0);
        // A new request starts it again.
        live.snapshot();
        assert!(live.is_reading());
        eventually("a reading", || live.readings() > 0).await;
    }
}
