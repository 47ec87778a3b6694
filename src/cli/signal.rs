//! SIGINT (Ctrl-C) and SIGTERM as one "stop" event.

use std::time::Duration;

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

/// Ends a long-running command's runtime without waiting on stuck threads. Dropping a runtime waits for its
/// blocking threads, and one reading the spec directory can be stuck in a system call nothing here can
/// interrupt (a file on a hung network mount, say): after a moment the process exits without it, so a stop
/// request always ends the process.
pub fn leave_runtime(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(BLOCKING_GRACE);
}

/// How long a stop waits for blocking threads once everything else has finished.
const BLOCKING_GRACE: Duration = Duration::from_secs(1);
