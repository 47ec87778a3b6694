//! How long each pipeline stage takes on the Bookinfo mesh: `cargo bench --bench pipeline`; and what the
//! metrics add to a stream's work per response.
//!
//! `cargo bench --bench pipeline -- --change-at 10000 [--services 1000] [--sidecar-egress 5] [--remove-workload |
//! --add-service] [--changes 5]`:
//! instead, what one VirtualService weight shift (or one removed WorkloadEntry) costs the server, stage by stage, on a generated mesh of that many
//! workloads (one proxy each): where the CPU of a change at scale goes, without clients sharing the cores.
//!
//! A plain timing loop rather than criterion: the numbers go into the README, and the build stays lean.
//! Each stage runs for about a second after a warm-up; the median of 15 batches is reported.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use switchyard::control_plane::{read_mesh, MeshGeneration};
use switchyard::envoy::NodeIdentity;
use switchyard::mesh::{Mesh, Proxy};
use switchyard::topology;
use switchyard::translate::translate;
use switchyard::xds::convergence::Convergence;
use switchyard::xds::event::Event;
use switchyard::xds::{Cache, Generation, ResourceType, XdsHistograms};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(workloads) = flag(&args, "--change-at") {
        return change_at_scale(
            workloads,
            flag(&args, "--services"),
            flag(&args, "--sidecar-egress"),
            // More rounds than the default 5 when profiling, so that the changes outweigh the first reading.
            flag(&args, "--changes").unwrap_or(5),
            if args.iter().any(|a| a == "--remove-workload") {
                ChangeKind::RemoveWorkload
            } else if args.iter().any(|a| a == "--add-service") {
                ChangeKind::AddService
            } else {
                ChangeKind::WeightShift
            },
        );
    }
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

fn flag(args: &[String], name: &str) -> Option<usize> {
    let at = args.iter().position(|a| a == name)?;
    let value = args
        .get(at + 1)
        .unwrap_or_else(|| panic!("{name} needs a number"));
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {value} is not a number")),
    )
}

/// The change each round of [`change_at_scale`] makes.
#[derive(Clone, Copy)]
enum ChangeKind {
    WeightShift,
    RemoveWorkload,
    /// A new service with its workloads (and, with `--sidecar-egress`, its `Sidecar`): the workload set and
    /// the Sidecars change, so every workload's Sidecar and scope are decided again.
    AddService,
}

/// One weight shift on a generated mesh, as the server processes it: the directory re-read (told by the
/// watcher which files changed, only those looked at and parsed again), resolution, the next generation, and every proxy's
/// stream looking up its snapshot. Each stage runs once per round; the median of the rounds is reported.
fn change_at_scale(
    workloads: usize,
    services: Option<usize>,
    sidecar_egress: Option<usize>,
    changes: usize,
    kind: ChangeKind,
) {
    use switchyard::meshgen::{GeneratedMesh, MeshOptions};
    use switchyard::spec::{LoadOptions, Loader};

    let mut options = MeshOptions::new(workloads).sidecar_egress(sidecar_egress);
    if let Some(services) = services {
        options = options.services(services);
    }
    let mut generated = GeneratedMesh::new(options.clone()).expect("mesh options");
    let dir = tempfile::tempdir().expect("temporary directory");
    generated.write_to(dir.path()).expect("write the mesh");
    let written = Instant::now();
    let paths = vec![dir.path().to_path_buf()];
    // As streams hold them: one allocation each for the stream's life.
    let nodes: Vec<Arc<Node>> = generated
        .nodes()
        .expect("generated nodes")
        .into_iter()
        .map(|(_, n)| Arc::new(n.to_proto()))
        .collect();
    let mut loader = Loader::new(LoadOptions::default());
    let config = loader.load_paths(&paths).expect("the generated mesh loads");
    let mut resolver = switchyard::mesh::Resolver::default();
    let mesh = resolver.resolve(&config).expect("valid").mesh;
    let mut previous = Arc::new(MeshGeneration::new(mesh));
    // An operator edits a directory written well before: its other files' stamps vouch for them by then
    // (`spec::Loader`). Here the files were written a moment ago.
    let settle = switchyard::spec::SETTLED + Duration::from_millis(100);
    std::thread::sleep(settle.saturating_sub(written.elapsed()));
    // The streams' places on the cache's board, and what they hold: a generation keeps a proxy's translation
    // only while some stream holds it.
    let cache = Cache::new(previous.clone());
    let watches: Vec<_> = nodes.iter().map(|_| cache.watch()).collect();
    let generation = cache.current();
    let mut held: Vec<_> = nodes
        .iter()
        .zip(&watches)
        .map(|(node, watch)| {
            let snapshot = generation.snapshot_for_stream(node).expect("known proxy");
            watch.hold(&generation, Some(&snapshot));
            snapshot
        })
        .collect();
    let what = match kind {
        ChangeKind::WeightShift => "one weight shift",
        ChangeKind::RemoveWorkload => "one removed workload",
        ChangeKind::AddService => "one new service (with its workloads and Sidecar)",
    };
    println!(
        "{what}: {workloads} workloads, {} services, sidecar egress {sidecar_egress:?}, {} files",
        options.services,
        generated.files().len()
    );
    let stages = [
        "re-read (changed files looked at)",
        "resolve",
        "next generation",
        "publish; rung streams' lookups",
        "total",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); stages.len()];
    let mut snapshots_changed = Vec::new();
    let mut streams_rung = Vec::new();
    let mut files_read = Vec::new();
    for _ in 0..changes {
        let change = match kind {
            ChangeKind::WeightShift => generated
                .shift_weight()
                .expect("the mesh has VirtualServices"),
            ChangeKind::RemoveWorkload => {
                generated.remove_workload().expect("the mesh has workloads")
            }
            ChangeKind::AddService => generated.add_service(),
        };
        change.apply(dir.path()).expect("apply the change");
        let mut times = Vec::new();
        let start = Instant::now();
        let mut lap = Instant::now();
        let mut stage = |times: &mut Vec<Duration>| {
            times.push(lap.elapsed());
            lap = Instant::now();
        };
        // As the directory watcher names them.
        let changed: std::collections::BTreeSet<_> = change
            .writes
            .iter()
            .map(|(name, _)| dir.path().join(name))
            .collect();
        let config = loader
            .load_changes(&paths, Some(&changed))
            .expect("the changed mesh loads");
        stage(&mut times);
        files_read.push(loader.files_read());
        let mesh = resolver.resolve(&config).expect("valid").mesh;
        stage(&mut times);
        let next = Arc::new(MeshGeneration::succeed(mesh, &previous));
        stage(&mut times);
        cache.publish(next.clone());
        let generation = cache.current();
        let (mut changed, mut rung) = (0, 0);
        for ((node, held), watch) in nodes.iter().zip(held.iter_mut()).zip(&watches) {
            // As a stream does: it looks only when rung.
            if !watch.take_ring() {
                continue;
            }
            rung += 1;
            // A removed workload's proxy is known no more; its stream keeps what it had.
            let Ok(snapshot) = generation.snapshot_for_stream(node) else {
                continue;
            };
            watch.hold(&generation, Some(&snapshot));
            // A stream acts on a change only when its snapshot is another one.
            if !Arc::ptr_eq(&snapshot, held) {
                changed += 1;
            }
            *held = snapshot;
        }
        stage(&mut times);
        streams_rung.push(rung);
        times.push(start.elapsed());
        for (s, t) in samples.iter_mut().zip(times) {
            s.push(t);
        }
        snapshots_changed.push(changed);
        previous = next;
    }
    for (name, mut s) in stages.iter().zip(samples) {
        s.sort();
        println!("{name:<40} {:>10.1} ms", s[s.len() / 2].as_secs_f64() * 1e3);
    }
    println!(
        "files read per change: {files_read:?} of {}; streams rung: {streams_rung:?}; given another snapshot: \
         {snapshots_changed:?}; of {}",
        generated.files().len(),
        nodes.len()
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
