//! How long each pipeline stage takes on the Bookinfo mesh: `cargo bench --bench pipeline`; and what the
//! metrics add to a stream's work per response.
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
use switchyard::xds::convergence::Convergence;
use switchyard::xds::event::Event;
use switchyard::xds::{Generation, ResourceType, XdsHistograms};

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
    metrics();
}

/// What the metrics add to a stream task, which spends about 0.3 ms per proxy and change (BENCHMARKS.md): per
/// response, the two histograms; per change, following it to the proxy's ACK and observing the convergence.
fn metrics() {
    let histograms = XdsHistograms::default();
    report("metrics: record one pushed response (time + size)", || {
        histograms.pushed(
            ResourceType::Route,
            black_box(Duration::from_micros(300)),
            black_box(37_000),
        );
    });
    let sent = [Event::Sent {
        type_: ResourceType::Route,
        version: "f3a1c2".to_string(),
        nonce: "42".to_string(),
        resources: 1,
        removed: 0,
    }];
    let acked = [Event::Acked {
        type_: ResourceType::Route,
        version: "f3a1c2".to_string(),
        nonce: "42".to_string(),
    }];
    let mut convergence = Convergence::default();
    let accepted = tokio::time::Instant::now();
    report(
        "metrics: follow one change to its ACK and observe it",
        || {
            convergence.record(Some(accepted), black_box(&sent));
            if let Some(since) = convergence.record(None, black_box(&acked)) {
                histograms.converged(since.elapsed());
            }
        },
    );
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
    let median = samples[7].as_secs_f64() * 1e6;
    if median < 1.0 {
        println!("{name:<52} {:>10.3} µs", median);
    } else {
        println!("{name:<52} {:>10.1} µs", median);
    }
}
