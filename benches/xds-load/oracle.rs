//! What each proxy should run after a phase: Switchyard's own translation of the spec directory, computed in
//! this process before the phase starts (so it costs the server nothing), as the same per-type fingerprints
//! the simulated proxies keep of what they ACKed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use switchyard::control_plane::{read_mesh, MeshGeneration};
use switchyard::xds::{Generation, ResourceType};

use crate::client::{resource_hash, Fingerprint};

/// Per proxy (by index), its fingerprint, or `None` if the mesh no longer has its workload.
pub fn targets(
    dir: &Path,
    nodes: &[(usize, Node)],
    proxies: usize,
) -> anyhow::Result<Vec<Option<Fingerprint>>> {
    let mesh = read_mesh(&[dir.to_path_buf()])
        .map_err(|d| anyhow::anyhow!("the spec directory does not resolve: {d:?}"))?
        .mesh;
    let generation = MeshGeneration::new(mesh);
    // Layers are shared between proxies: fingerprint each once. Keyed by address, which stays valid because
    // `generation` keeps every layer alive until the end of this function.
    let mut layers: BTreeMap<usize, u64> = BTreeMap::new();
    let types = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];
    let mut out = vec![None; proxies];
    for (index, node) in nodes {
        let Ok(snapshot) = generation.snapshot_for(node) else {
            continue;
        };
        let mut fingerprint = [0u64; 4];
        for (i, t) in types.into_iter().enumerate() {
            for layer in snapshot.layers(t) {
                let sum = *layers
                    .entry(Arc::as_ptr(layer) as usize)
                    .or_insert_with(|| {
                        layer.resources().iter().fold(0u64, |sum, (name, r)| {
                            sum.wrapping_add(resource_hash(name, &r.any.value))
                        })
                    });
                fingerprint[i] = fingerprint[i].wrapping_add(sum);
            }
        }
        out[*index] = Some(fingerprint);
    }
    Ok(out)
}
