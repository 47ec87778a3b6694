//! Readings of the specs in, generations for the xDS cache out: publish a valid reading, reject an invalid
//! one as a whole. The source has already resolved each reading; nothing here reads or resolves.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::time::Instant;

use super::generation::MeshGeneration;
use crate::admin::{ConfigMetrics, ConfigStatus};
use crate::mesh::{Diagnostic, Fingerprints, LazyFingerprint, Resolved};
use crate::source::SpecState;
use crate::xds::Cache;

/// Publishes readings: each valid one as a generation built from the one before, each invalid one as status
/// only, so every proxy keeps the last good configuration.
pub struct Pipeline {
    cache: Cache,
    status: watch::Sender<ConfigStatus>,
    metrics: ConfigMetrics,
    current: Option<Arc<MeshGeneration>>,
    /// The warnings last logged: a reading with the same ones (an edit elsewhere, or the fix of a rejected
    /// edit, whose reading had none) does not repeat them.
    logged_warnings: Vec<Diagnostic>,
    /// Remembers the digests of the last fingerprinted mesh's parts: a change hashes only what it replaced.
    fingerprints: Arc<Fingerprints>,
}

impl Pipeline {
    pub fn new(
        cache: Cache,
        status: watch::Sender<ConfigStatus>,
        metrics: ConfigMetrics,
    ) -> Pipeline {
        Pipeline {
            cache,
            status,
            metrics,
            current: None,
            logged_warnings: Vec::new(),
            fingerprints: Arc::default(),
        }
    }

    /// Applies one reading. Building a generation is CPU work proportional to what changed (the whole mesh the
    /// first time): it runs on a blocking thread, never on the workers that run the xDS streams.
    pub async fn apply(&mut self, state: &SpecState) {
        match &state.outcome {
            Ok(resolved) => {
                // The moment the change is accepted: translation time and each proxy's convergence time
                // count from here.
                let accepted_at = Instant::now();
                let mesh = resolved.mesh.clone();
                let previous = self.current.clone();
                let built = tokio::task::spawn_blocking(move || match previous {
                    Some(previous) => MeshGeneration::succeed(mesh, &previous),
                    None => MeshGeneration::new(mesh),
                })
                .await;
                let generation = match built {
                    Ok(generation) => {
                        self.metrics.translated(accepted_at.elapsed());
                        Arc::new(generation.with_accepted_at(accepted_at))
                    }
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // The runtime is shutting down.
                    Err(_cancelled) => return,
                };
                self.current = Some(generation.clone());
                self.cache.publish(generation);
                self.accepted(state, resolved);
            }
            Err(diagnostics) => self.rejected(state, diagnostics),
        }
    }

    fn accepted(&mut self, state: &SpecState, resolved: &Resolved) {
        // Not hashed here: only when someone asks (`/debug/config`, `apply --wait`).
        let accepted_fingerprint =
            LazyFingerprint::of(resolved.mesh.clone(), self.fingerprints.clone());
        // Once per change, not once per reading.
        if self.logged_warnings != resolved.warnings {
            for w in &resolved.warnings {
                tracing::warn!("{w}");
            }
            self.logged_warnings = resolved.warnings.clone();
        }
        tracing::info!(
            revision = state.revision,
            warnings = resolved.warnings.len(),
            "configuration accepted"
        );
        self.status.send_modify(|s| {
            s.revision = state.revision;
            s.accepted_revision = Some(state.revision);
            s.accepted_fingerprint = Some(accepted_fingerprint);
            s.accepted_at = Some(SystemTime::now());
            s.errors.clear();
            s.warnings = resolved.warnings.clone();
            s.accepted_total += 1;
        });
    }

    fn rejected(&self, state: &SpecState, diagnostics: &[Diagnostic]) {
        let (errors, warnings): (Vec<_>, Vec<_>) =
            diagnostics.iter().cloned().partition(|d| d.is_error());
        // Once per change, like warnings; the summary below still marks every rejected reading.
        if self.status.borrow().errors != errors {
            for e in &errors {
                tracing::error!("{e}");
            }
        }
        tracing::error!(
            revision = state.revision,
            errors = errors.len(),
            "configuration rejected; proxies keep the last good configuration"
        );
        self.status.send_modify(|s| {
            s.revision = state.revision;
            s.errors = errors;
            s.warnings = warnings;
            s.rejected_total += 1;
        });
    }

    /// Applies every reading of `states` that arrives after the one it has already seen, until the source
    /// goes away. The caller applies the current reading itself before anything can connect.
    pub async fn run(mut self, mut states: watch::Receiver<Arc<SpecState>>) {
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            self.apply(&state).await;
        }
    }
}
