//! Translation cost on generated meshes: `cargo bench --bench translate`.
//!
//! - `full/<proxies>`: a generation built from scratch (`MeshGeneration::new`) and a snapshot for every proxy,
//!   what the server does when it starts with that mesh and every proxy connects.
//! - `vs_change/<proxies>`: one VirtualService weight shift (`MeshGeneration::succeed` from the previous
//!   generation) and a snapshot for every proxy, what one accepted change costs.
//!
//! Sizes: 100 and 1,000 proxies (services = proxies / 2); 10,000 with `SWITCHYARD_BENCH_10K=1`, because one
//! iteration takes long enough that criterion's minimum sample count makes the run minutes long.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use envoy_types::pb::envoy::config::core::v3::Node;
use switchyard::control_plane::{read_mesh, MeshGeneration};
use switchyard::mesh::Mesh;
use switchyard::meshgen::{GeneratedMesh, MeshOptions};
use switchyard::xds::Generation;

fn sizes() -> Vec<usize> {
    let mut sizes = vec![100, 1_000];
    if std::env::var_os("SWITCHYARD_BENCH_10K").is_some() {
        sizes.push(10_000);
    }
    sizes
}

/// The mesh as the server resolves it from the spec directory, and every proxy's node.
fn resolve(generated: &GeneratedMesh, dir: &Path) -> (Arc<Mesh>, Vec<Node>) {
    generated.write_to(dir).expect("write the generated mesh");
    let mesh = read_mesh(&[dir.to_path_buf()])
        .expect("the generated mesh is valid")
        .mesh;
    let nodes = generated
        .nodes()
        .expect("generated nodes")
        .into_iter()
        .map(|(_, n)| n.to_proto())
        .collect();
    (mesh, nodes)
}

fn snapshot_all(generation: &MeshGeneration, nodes: &[Node]) {
    for node in nodes {
        std::hint::black_box(generation.snapshot_for(node).expect("known proxy"));
    }
}

fn bench(c: &mut Criterion) {
    for proxies in sizes() {
        let mut generated = GeneratedMesh::new(MeshOptions::new(proxies)).expect("mesh options");
        let dir = tempfile::tempdir().expect("temporary directory");
        let (before, nodes) = resolve(&generated, dir.path());
        let change = generated
            .shift_weight()
            .expect("the mesh has VirtualServices");
        change.apply(dir.path()).expect("apply the weight shift");
        let after = read_mesh(&[dir.path().to_path_buf()])
            .expect("the changed mesh is valid")
            .mesh;

        let mut group = c.benchmark_group(format!("translate/{proxies}"));
        group.sample_size(10);
        group.bench_function("full", |b| {
            b.iter(|| snapshot_all(&MeshGeneration::new(before.clone()), &nodes))
        });
        group.bench_function("vs_change", |b| {
            b.iter_batched(
                || {
                    // The previous generation as a running server holds it: every proxy already served.
                    let previous = MeshGeneration::new(before.clone());
                    snapshot_all(&previous, &nodes);
                    previous
                },
                |previous| {
                    let next = MeshGeneration::succeed(after.clone(), &previous);
                    snapshot_all(&next, &nodes);
                    (previous, next)
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
