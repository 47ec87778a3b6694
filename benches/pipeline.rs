//! How long each pipeline stage takes on the Bookinfo mesh: `cargo bench --bench pipeline`.
//!
//! A plain timing loop rather than criterion: the numbers go into the README, and the build stays lean.
//! Each stage runs for about a second after a warm-up; the median of 15 batches is reported.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use switchyard::control_plane::{read_mesh, MeshGeneration};
use switchyard::envoy::NodeIdentity;
use switchyard::mesh::{Mesh, Proxy};
use switchyard::topology;
use switchyard::translate::translate;
use switchyard::xds::Generation;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let paths: Vec<PathBuf> = vec![
        root.join("config"),
        root.join("../shared/istio-bookinfo/virtual-service-all-v1.yaml"),
    ];
    let mesh = read_mesh(&paths)
        .expect("the Bookinfo config is valid")
        .mesh;
    let proxies = proxies(&mesh);
    println!("Bookinfo: {} proxies", proxies.len());

    report("load + resolve (config/ + all-v1)", || {
        black_box(read_mesh(&paths).ok());
    });
    report("translate one sidecar (productpage-v1)", || {
        black_box(translate(&mesh, &proxies[0]));
    });
    report("translate all proxies", || {
        for p in &proxies {
            black_box(translate(&mesh, p));
        }
    });
    let nodes = nodes(&mesh);
    let shared = mesh.clone();
    report("full generation (shared + every proxy's own)", || {
        let generation = MeshGeneration::new(shared.clone());
        for node in &nodes {
            black_box(generation.snapshot_for(node).ok());
        }
    });
}

/// Every sidecar of the mesh and the ingress gateway, as Envoy nodes.
fn nodes(mesh: &Mesh) -> Vec<Node> {
    let mut nodes: Vec<NodeIdentity> = mesh
        .workloads
        .values()
        .map(|w| {
            let (sidecar, _) = topology::sidecar(mesh, &w.namespace, &w.name, None, None)
                .expect("Bookinfo workloads follow the loopback layout");
            NodeIdentity::sidecar(&sidecar)
        })
        .collect();
    // productpage first: it is the one with the most outbound traffic.
    nodes.sort_by_key(|n| !n.id.contains("productpage"));
    nodes.push(NodeIdentity::gateway(&topology::ingress_gateway(
        std::net::Ipv4Addr::LOCALHOST.into(),
    )));
    nodes.iter().map(NodeIdentity::to_proto).collect()
}

/// Every sidecar of the mesh and the ingress gateway, identified as Switchyard would identify them.
fn proxies(mesh: &Mesh) -> Vec<Proxy> {
    nodes(mesh)
        .iter()
        .map(|n| Proxy::identify(mesh, n).expect("known proxy"))
        .collect()
}

fn report(name: &str, mut f: impl FnMut()) {
    // Warm up and size a batch to about 1/15 s.
    let start = Instant::now();
    let mut per_batch = 0u32;
    while start.elapsed() < Duration::from_millis(200) {
        f();
        per_batch += 1;
    }
    let per_batch = (per_batch / 3).max(1);
    let mut samples: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed() / per_batch
        })
        .collect();
    samples.sort();
    println!("{name:<52} {:>10.1} µs", samples[7].as_secs_f64() * 1e6);
}
