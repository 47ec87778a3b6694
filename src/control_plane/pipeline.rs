//! Readings of the specs in, generations for the xDS cache out: resolve, then publish or reject as a whole.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use super::generation::MeshGeneration;
use super::status::ConfigStatus;
use crate::mesh;
use crate::source::SpecState;
use crate::xds::Cache;

/// Applies one reading: a valid one replaces what the cache serves; an invalid one changes nothing but the
/// status, so every proxy keeps the last good configuration.
pub fn apply(state: &SpecState, cache: &Cache, status: &watch::Sender<ConfigStatus>) {
    let resolved = match &state.outcome {
        Ok(config) => mesh::resolve(config),
        Err(diagnostics) => Err(diagnostics.clone()),
    };
    match resolved {
        Ok(resolved) => {
            cache.publish(Arc::new(MeshGeneration::new(resolved.mesh)));
            for w in &resolved.warnings {
                tracing::warn!("{w}");
            }
            tracing::info!(
                revision = state.revision,
                warnings = resolved.warnings.len(),
                "configuration accepted"
            );
            status.send_modify(|s| {
                s.revision = state.revision;
                s.accepted_revision = Some(state.revision);
                s.accepted_at = Some(SystemTime::now());
                s.errors.clear();
                s.warnings = resolved.warnings;
                s.accepted_total += 1;
            });
        }
        Err(diagnostics) => {
            let (errors, warnings): (Vec<_>, Vec<_>) =
                diagnostics.into_iter().partition(|d| d.is_error());
            for e in &errors {
                tracing::error!("{e}");
            }
            tracing::error!(
                revision = state.revision,
                errors = errors.len(),
                "configuration rejected; proxies keep the last good configuration"
            );
            status.send_modify(|s| {
                s.revision = state.revision;
                s.errors = errors;
                s.warnings = warnings;
                s.rejected_total += 1;
            });
        }
    }
}

/// Applies every reading of `states` until the source goes away.
pub async fn run(
    mut states: watch::Receiver<Arc<SpecState>>,
    cache: Cache,
    status: watch::Sender<ConfigStatus>,
) {
    loop {
        let state = states.borrow_and_update().clone();
        apply(&state, &cache, &status);
        if states.changed().await.is_err() {
            return;
        }
    }
}
