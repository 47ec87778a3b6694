//! Readings of the specs in, generations for the xDS cache out: publish a valid reading, reject an invalid
//! one as a whole. The source has already resolved each reading; nothing here reads or resolves.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use super::fingerprint;
use super::generation::MeshGeneration;
use crate::admin::ConfigStatus;
use crate::source::SpecState;
use crate::xds::Cache;

/// Applies one reading: a valid one replaces what the cache serves; an invalid one changes nothing but the
/// status, so every proxy keeps the last good configuration.
pub fn apply(state: &SpecState, cache: &Cache, status: &watch::Sender<ConfigStatus>) {
    match &state.outcome {
        Ok(resolved) => {
            let accepted_fingerprint = fingerprint(&resolved.mesh);
            cache.publish(Arc::new(MeshGeneration::new(resolved.mesh.clone())));
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
                s.accepted_fingerprint = Some(accepted_fingerprint);
                s.accepted_at = Some(SystemTime::now());
                s.errors.clear();
                s.warnings = resolved.warnings.clone();
                s.accepted_total += 1;
            });
        }
        Err(diagnostics) => {
            let (errors, warnings): (Vec<_>, Vec<_>) =
                diagnostics.iter().cloned().partition(|d| d.is_error());
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

/// Applies every reading of `states` that arrives after the one it has already seen, until the source goes
/// away. The caller applies the current reading itself before anything can connect.
pub async fn run(
    mut states: watch::Receiver<Arc<SpecState>>,
    cache: Cache,
    status: watch::Sender<ConfigStatus>,
) {
    while states.changed().await.is_ok() {
        let state = states.borrow_and_update().clone();
        apply(&state, &cache, &status);
    }
}
