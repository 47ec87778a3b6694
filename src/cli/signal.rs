//! SIGINT (Ctrl-C) and SIGTERM as one "stop" event.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Both handlers are installed when this is created, not when it is first awaited: from then on the
/// signals no longer kill the process outright, so whatever was started meanwhile is stopped by its own
/// `Drop` (Envoy children included).
pub struct ShutdownSignal {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignal {
    /// Must run inside the runtime.
    pub fn install() -> anyhow::Result<ShutdownSignal> {
        Ok(ShutdownSignal {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// Resolves at the first SIGINT or SIGTERM received since `install`.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
