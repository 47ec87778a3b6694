//! A deterministic mesh generator for benchmarks and load tests.
//!
//! [`GeneratedMesh::new`] lays out S services (a `ServiceEntry` on port 9080, a `DestinationRule` with traffic
//! policies and subsets v1/v2), VirtualServices for a fraction of them (header matches, weighted splits, faults,
//! retries, timeouts) and one `WorkloadEntry` per simulated proxy, spread over the services' versions and,
//! optionally, over a few namespaces. The same [`MeshOptions`] (seed included) always give the same files.
//!
//! The output is what a user would write: YAML files in a spec directory ([`GeneratedMesh::write_to`]), one
//! file per service (its ServiceEntry, DestinationRule and WorkloadEntries) and one per VirtualService, so a
//! change rewrites one file. Beside it, [`GeneratedMesh::nodes`] gives the Envoy `Node` each workload's sidecar
//! presents, built through the same identity contract as `switchyard bootstrap` (see `docs/proxy-identity.md`).
//!
//! Workload `j` sits at pod IP `127.B.C.1` with `B.C` = `1 + j / 256`, `j % 256`: the loopback layout of
//! [`crate::topology`], which holds 65,024 workloads, well past the 10,000 the benchmarks use. The simulated
//! proxies never bind these addresses; they only name them.
//!
//! The changes a load run applies ([`GeneratedMesh::shift_weight`], [`GeneratedMesh::add_header_match`],
//! [`GeneratedMesh::add_service`], [`GeneratedMesh::remove_workload`]) update the model and return the file
//! writes that make the directory match it; [`Change::apply`] performs them atomically (temporary file, then
//! rename), as an editor or `switchyard apply` would.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::envoy::{NodeIdentity, SidecarNode};
use crate::topology::PodAddresses;

/// The one service port of a generated mesh.
pub const SERVICE_PORT: u32 = 9080;
/// The header the generated VirtualServices match on.
const MATCH_HEADER: &str = "x-canary";

#[derive(Debug, thiserror::Error)]
pub enum MeshGenError {
    #[error("a mesh needs at least one service and one workload (got {services} services, {workloads} workloads)")]
    Empty { services: usize, workloads: usize },
    #[error("{workloads} workloads do not fit the loopback layout (at most {max})")]
    TooManyWorkloads { workloads: usize, max: usize },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the pod address of workload {0} does not follow the loopback layout")]
    Address(String),
}

/// The shape of a generated mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshOptions {
    /// Simulated proxies: one WorkloadEntry each.
    pub workloads: usize,
    pub services: usize,
    /// Services are spread round robin over `default` (the first) and `ns-1` .. `ns-{n-1}`.
    pub namespaces: usize,
    /// One service in this many gets a VirtualService (1: every service; 0: none).
    pub virtual_service_every: usize,
    /// With `Some(k)`, a `Sidecar` resource per service lets its workloads reach only the `k` services after
    /// it (wrapping around), as Istio users scope large meshes; `None`: every sidecar reaches every service.
    pub sidecar_egress: Option<usize>,
    pub seed: u64,
}

impl MeshOptions {
    /// The benchmark default: `workloads / 2` services in one namespace, a VirtualService for one service in
    /// five.
    pub fn new(workloads: usize) -> MeshOptions {
        MeshOptions {
            workloads,
            services: (workloads / 2).max(1),
            namespaces: 1,
            virtual_service_every: 5,
            sidecar_egress: None,
            seed: 1,
        }
    }

    pub fn sidecar_egress(self, sidecar_egress: Option<usize>) -> MeshOptions {
        MeshOptions {
            sidecar_egress,
            ..self
        }
    }

    pub fn services(self, services: usize) -> MeshOptions {
        MeshOptions { services, ..self }
    }

    pub fn namespaces(self, namespaces: usize) -> MeshOptions {
        MeshOptions {
            namespaces: namespaces.max(1),
            ..self
        }
    }

    pub fn seed(self, seed: u64) -> MeshOptions {
        MeshOptions { seed, ..self }
    }
}

/// The largest number of workloads the loopback layout `127.B.C.1` (B in 1..=254) holds.
pub const MAX_WORKLOADS: usize = 254 * 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `svc-00012`: the ServiceEntry's name and the `app` label of its workloads.
    pub name: String,
    pub namespace: String,
    pub lb: &'static str,
    /// Both subsets get a `maxConnections`; it varies so that clusters differ in more than their names.
    pub max_connections: u32,
    pub routes: Option<Routes>,
}

impl Service {
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

/// A service's VirtualService.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// `x-canary: <value>` routes to the subset; in order, before the default route.
    pub header_matches: Vec<(String, &'static str)>,
    /// The default route's weight to v1 (the rest to v2).
    pub v1_weight: u32,
    pub retries: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Delay this per mille of requests by 1 s.
    Delay(u32),
    /// Abort this per mille of requests with 503.
    Abort(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    /// Index into [`GeneratedMesh::services`].
    pub service: usize,
    pub version: &'static str,
    pub address: Ipv4Addr,
    /// Set for workloads added by a change that no simulated proxy stands for.
    pub without_proxy: bool,
}

/// A generated mesh, as a model and as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedMesh {
    pub options: MeshOptions,
    pub services: Vec<Service>,
    /// In proxy order: workload `j` is simulated proxy `j`. A removed workload leaves `None`.
    pub workloads: Vec<Option<Workload>>,
    rng: SplitMix64,
}

/// What a change does to the spec directory: files written (whole) or removed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// A short description for reports: `weight shift svc-00007 80/20 -> 70/30`.
    pub description: String,
    pub writes: Vec<(String, Option<String>)>,
    /// Workloads (proxy indices) that no longer exist after the change.
    pub removed_workloads: Vec<usize>,
}

impl Change {
    /// Writes each file into `dir` as a hidden temporary file, then renames it into place (or removes it):
    /// the directory watcher sees whole files only, and hidden entries are not specs.
    pub fn apply(&self, dir: &Path) -> Result<(), MeshGenError> {
        for (name, content) in &self.writes {
            let path = dir.join(name);
            match content {
                Some(text) => write_atomically(&path, text)?,
                None => fs::remove_file(&path).map_err(|source| MeshGenError::Write {
                    path: path.clone(),
                    source,
                })?,
            }
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), MeshGenError> {
    let err = |source| MeshGenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.tmp"));
    fs::write(&temp, text).map_err(err)?;
    fs::rename(&temp, path).map_err(err)
}

impl GeneratedMesh {
    pub fn new(options: MeshOptions) -> Result<GeneratedMesh, MeshGenError> {
        if options.services == 0 || options.workloads == 0 {
            return Err(MeshGenError::Empty {
                services: options.services,
                workloads: options.workloads,
            });
        }
        if options.workloads > MAX_WORKLOADS {
            return Err(MeshGenError::TooManyWorkloads {
                workloads: options.workloads,
                max: MAX_WORKLOADS,
            });
        }
        let mut rng = SplitMix64(options.seed);
        let services: Vec<Service> = (0..options.services)
            .map(|i| {
                let routes = (options.virtual_service_every > 0
                    && i % options.virtual_service_every == 0)
                    .then(|| Routes::random(&mut rng));
                Service {
                    name: format!("svc-{i:05}"),
                    namespace: namespace_name(i % options.namespaces.max(1)),
                    lb: ["LEAST_REQUEST", "ROUND_ROBIN", "RANDOM"][rng.below(3)],
                    max_connections: 100 + 10 * rng.below(10) as u32,
                    routes,
                }
            })
            .collect();
        let workloads = (0..options.workloads)
            .map(|j| {
                let service = j % options.services;
                let version = if (j / options.services) % 2 == 0 {
                    "v1"
                } else {
                    "v2"
                };
                Some(Workload {
                    name: format!("{}-{version}-{j}", services[service].name),
                    namespace: services[service].namespace.clone(),
                    service,
                    version,
                    address: workload_address(j),
                    without_proxy: false,
                })
            })
            .collect();
        Ok(GeneratedMesh {
            options,
            services,
            workloads,
            rng,
        })
    }

    /// Every spec file: name and YAML text.
    pub fn files(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        for index in 0..self.services.len() {
            files.insert(self.service_file(index), self.render_service(index));
            if let Some(text) = self.render_virtual_service(index) {
                files.insert(self.virtual_service_file(index), text);
            }
            if let Some(text) = self.render_sidecar(index) {
                files.insert(format!("sidecar-{}.yaml", self.services[index].name), text);
            }
        }
        files
    }

    /// Writes every spec file into `dir` (created if missing), each atomically.
    pub fn write_to(&self, dir: &Path) -> Result<(), MeshGenError> {
        fs::create_dir_all(dir).map_err(|source| MeshGenError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for (name, text) in self.files() {
            write_atomically(&dir.join(name), &text)?;
        }
        Ok(())
    }

    /// The node of every simulated proxy still in the mesh, by proxy index.
    pub fn nodes(&self) -> Result<Vec<(usize, NodeIdentity)>, MeshGenError> {
        self.workloads
            .iter()
            .enumerate()
            .filter_map(|(j, w)| w.as_ref().filter(|w| !w.without_proxy).map(|w| (j, w)))
            .map(|(j, w)| Ok((j, self.node(w)?)))
            .collect()
    }

    /// The node a sidecar of `workload` presents.
    pub fn node(&self, workload: &Workload) -> Result<NodeIdentity, MeshGenError> {
        let addresses = PodAddresses::loopback(IpAddr::V4(workload.address))
            .map_err(|_| MeshGenError::Address(workload.name.clone()))?;
        Ok(NodeIdentity::sidecar(&SidecarNode {
            workload_name: workload.name.clone(),
            namespace: workload.namespace.clone(),
            labels: self.labels(workload),
            pod_ip: addresses.pod,
            app_ip: addresses.app,
            outbound_ip: addresses.outbound,
        }))
    }

    fn labels(&self, workload: &Workload) -> BTreeMap<String, String> {
        let app = self
            .services
            .get(workload.service)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        BTreeMap::from([
            ("app".to_string(), app),
            ("version".to_string(), workload.version.to_string()),
        ])
    }

    /// Moves 10 points of weight from v1 to v2 (wrapping) on the first service with a VirtualService.
    pub fn shift_weight(&mut self) -> Option<Change> {
        let index = self.services.iter().position(|s| s.routes.is_some())?;
        let routes = self.services[index].routes.as_mut()?;
        let before = routes.v1_weight;
        routes.v1_weight = if before >= 10 { before - 10 } else { 90 };
        let after = routes.v1_weight;
        let description = format!(
            "weight shift {}: v1 {before}% -> {after}%",
            self.services[index].name
        );
        Some(self.rewrite_virtual_service(index, description))
    }

    /// Adds a header match routing `x-canary: beta-<n>` to v2 on the last service with a VirtualService.
    pub fn add_header_match(&mut self) -> Option<Change> {
        let index = self.services.iter().rposition(|s| s.routes.is_some())?;
        let routes = self.services[index].routes.as_mut()?;
        let value = format!("beta-{}", routes.header_matches.len());
        routes.header_matches.push((value.clone(), "v2"));
        let description = format!(
            "new header match {}: {MATCH_HEADER}: {value} -> v2",
            self.services[index].name
        );
        Some(self.rewrite_virtual_service(index, description))
    }

    /// Adds a service (ServiceEntry, DestinationRule) in the first namespace with one workload per version; no
    /// simulated proxy stands for those workloads.
    pub fn add_service(&mut self) -> Change {
        let index = self.services.len();
        self.services.push(Service {
            name: format!("svc-{index:05}"),
            namespace: namespace_name(0),
            lb: "ROUND_ROBIN",
            max_connections: 100,
            routes: None,
        });
        for version in ["v1", "v2"] {
            let j = self.workloads.len();
            self.workloads.push(Some(Workload {
                name: format!("svc-{index:05}-{version}-{j}"),
                namespace: namespace_name(0),
                service: index,
                version,
                address: workload_address(j),
                without_proxy: true,
            }));
        }
        Change {
            description: format!("new service svc-{index:05} (2 workloads)"),
            writes: vec![(self.service_file(index), Some(self.render_service(index)))],
            removed_workloads: Vec::new(),
        }
    }

    /// Removes the last simulated proxy's WorkloadEntry (its service keeps at least one other endpoint when
    /// the mesh has more workloads than services).
    pub fn remove_workload(&mut self) -> Option<Change> {
        let j = self
            .workloads
            .iter()
            .rposition(|w| w.as_ref().is_some_and(|w| !w.without_proxy))?;
        let workload = self.workloads[j].take()?;
        Some(Change {
            description: format!("removed workload {}", workload.name),
            writes: vec![(
                self.service_file(workload.service),
                Some(self.render_service(workload.service)),
            )],
            removed_workloads: vec![j],
        })
    }

    fn rewrite_virtual_service(&self, index: usize, description: String) -> Change {
        Change {
            description,
            writes: vec![(
                self.virtual_service_file(index),
                self.render_virtual_service(index),
            )],
            removed_workloads: Vec::new(),
        }
    }

    fn service_file(&self, index: usize) -> String {
        format!("svc-{index:05}.yaml")
    }

    fn virtual_service_file(&self, index: usize) -> String {
        format!("vs-{index:05}.yaml")
    }

    fn render_service(&self, index: usize) -> String {
        let Some(s) = self.services.get(index) else {
            return String::new();
        };
        let (name, ns, host) = (&s.name, &s.namespace, s.host());
        let mut out = format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts:
  - {host}
  location: MESH_INTERNAL
  ports:
  - number: {SERVICE_PORT}
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: {name}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {ns}
spec:
  host: {host}
  trafficPolicy:
    loadBalancer:
      simple: {lb}
    connectionPool:
      tcp:
        maxConnections: {max}
        connectTimeout: 1s
      http:
        http1MaxPendingRequests: 64
        maxRequestsPerConnection: 10
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
",
            lb = s.lb,
            max = s.max_connections,
        );
        for w in self.workloads.iter().flatten() {
            if w.service != index {
                continue;
            }
            let _ = write!(
                out,
                "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: {}
  namespace: {ns}
spec:
  address: {}
  labels:
    app: {name}
    version: {}
  ports:
    http: {SERVICE_PORT}
",
                w.name, w.address, w.version
            );
        }
        out
    }

    /// The `Sidecar` of service `index`'s workloads, with `sidecar_egress` set: the services after it.
    fn render_sidecar(&self, index: usize) -> Option<String> {
        let reach = self.options.sidecar_egress?;
        // The services of the mesh as generated: one added later (it has no proxies) is reached by nobody.
        let count = self.options.services;
        let s = self.services.get(index).filter(|_| index < count)?;
        let mut out = format!(
            "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: {name}
  namespace: {ns}
spec:
  workloadSelector:
    labels:
      app: {name}
  egress:
  - hosts:
",
            name = s.name,
            ns = s.namespace
        );
        for step in 1..=reach.min(count.saturating_sub(1)) {
            let other = &self.services[(index + step) % count];
            let _ = writeln!(out, "    - {}/{}", other.namespace, other.host());
        }
        if reach == 0 || count == 1 {
            // Nothing to reach: Istio's way of saying so.
            out.push_str("    - \"~/*\"\n");
        }
        Some(out)
    }

    fn render_virtual_service(&self, index: usize) -> Option<String> {
        let s = self.services.get(index)?;
        let routes = s.routes.as_ref()?;
        let (name, ns, host) = (&s.name, &s.namespace, s.host());
        let mut out = format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts:
  - {host}
  http:
"
        );
        for (value, subset) in &routes.header_matches {
            let _ = write!(
                out,
                "  - match:
    - headers:
        {MATCH_HEADER}:
          exact: {value}
    route:
    - destination:
        host: {host}
        subset: {subset}
"
            );
        }
        out.push_str("  - route:\n");
        for (subset, weight) in [("v1", routes.v1_weight), ("v2", 100 - routes.v1_weight)] {
            let _ = write!(
                out,
                "    - destination:
        host: {host}
        subset: {subset}
      weight: {weight}
"
            );
        }
        if let Some(ms) = routes.timeout_ms {
            let _ = writeln!(out, "    timeout: {ms}ms");
        }
        if let Some(attempts) = routes.retries {
            let _ = write!(
                out,
                "    retries:
      attempts: {attempts}
      perTryTimeout: 2s
      retryOn: 5xx,connect-failure
"
            );
        }
        match routes.fault {
            Some(Fault::Delay(per_mille)) => {
                let _ = write!(
                    out,
                    "    fault:
      delay:
        fixedDelay: 1s
        percentage:
          value: {}
",
                    f64::from(per_mille) / 10.0
                );
            }
            Some(Fault::Abort(per_mille)) => {
                let _ = write!(
                    out,
                    "    fault:
      abort:
        httpStatus: 503
        percentage:
          value: {}
",
                    f64::from(per_mille) / 10.0
                );
            }
            None => {}
        }
        Some(out)
    }
}

impl Routes {
    fn random(rng: &mut SplitMix64) -> Routes {
        Routes {
            header_matches: (0..rng.below(3))
                .map(|k| (format!("canary-{k}"), ["v1", "v2"][rng.below(2)]))
                .collect(),
            v1_weight: 10 * (5 + rng.below(5) as u32),
            retries: (rng.below(2) == 0).then(|| 1 + rng.below(3) as u32),
            timeout_ms: (rng.below(2) == 0).then(|| 500 * (1 + rng.below(10) as u32)),
            fault: match rng.below(4) {
                0 => Some(Fault::Delay(1 + rng.below(50) as u32)),
                1 => Some(Fault::Abort(1 + rng.below(10) as u32)),
                _ => None,
            },
        }
    }
}

fn namespace_name(index: usize) -> String {
    if index == 0 {
        "default".to_string()
    } else {
        format!("ns-{index}")
    }
}

/// `127.B.C.1` with `B.C` = `1 + j / 256`, `j % 256`: B starts at 1 so that no workload takes `127.0.0.1`,
/// where the control plane listens, nor the Bookinfo demo's `127.0.N.1`.
fn workload_address(j: usize) -> Ipv4Addr {
    let b = 1 + (j / 256).min(253);
    Ipv4Addr::new(127, b as u8, (j % 256) as u8, 1)
}

/// SplitMix64: a tiny, well-mixed deterministic generator, so the mesh depends on the seed alone (and the
/// library needs no random-number crate).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for n far below 2^32; `n` must not be 0.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_plane::{read_mesh, MeshGeneration};
    use crate::xds::Generation;

    fn check_valid(options: MeshOptions) -> (GeneratedMesh, tempfile::TempDir) {
        let mesh = GeneratedMesh::new(options).unwrap();
        let dir = tempfile::tempdir().unwrap();
        mesh.write_to(dir.path()).unwrap();
        if let Err(diagnostics) = read_mesh(&[dir.path().to_path_buf()]) {
            panic!("generated mesh does not validate: {diagnostics:#?}");
        }
        (mesh, dir)
    }

    #[test]
    fn generation_is_deterministic() {
        let a = GeneratedMesh::new(MeshOptions::new(100)).unwrap();
        let b = GeneratedMesh::new(MeshOptions::new(100)).unwrap();
        assert_eq!(a.files(), b.files());
        let c = GeneratedMesh::new(MeshOptions::new(100).seed(2)).unwrap();
        assert_ne!(a.files(), c.files());
    }

    #[test]
    fn mesh_of_100_validates_and_every_node_is_served() {
        let (mesh, dir) = check_valid(MeshOptions::new(100).namespaces(3));
        let resolved = read_mesh(&[dir.path().to_path_buf()]).unwrap();
        let generation = MeshGeneration::new(resolved.mesh.clone());
        let nodes = mesh.nodes().unwrap();
        assert_eq!(nodes.len(), 100);
        for (_, node) in nodes {
            let snapshot = generation.snapshot_for(&node.to_proto()).unwrap();
            assert!(snapshot.len(crate::xds::ResourceType::Cluster) > 150);
        }
    }

    #[test]
    fn a_scoped_mesh_validates_and_each_sidecar_sees_only_what_its_sidecar_resource_admits() {
        let (mut mesh, dir) =
            check_valid(MeshOptions::new(100).namespaces(3).sidecar_egress(Some(3)));
        let resolved = read_mesh(&[dir.path().to_path_buf()]).unwrap();
        let generation = MeshGeneration::new(resolved.mesh.clone());
        for (_, node) in mesh.nodes().unwrap() {
            let snapshot = generation.snapshot_for(&node.to_proto()).unwrap();
            // Three services of three clusters (default, v1, v2), and its own inbound cluster.
            assert_eq!(snapshot.len(crate::xds::ResourceType::Cluster), 10);
        }
        // A service added later has no Sidecar of its own; the mesh stays valid.
        mesh.add_service().apply(dir.path()).unwrap();
        read_mesh(&[dir.path().to_path_buf()]).unwrap();
    }

    #[test]
    fn mesh_of_1000_validates() {
        check_valid(MeshOptions::new(1_000));
    }

    #[test]
    fn every_change_keeps_the_mesh_valid() {
        let (mut mesh, dir) = check_valid(MeshOptions::new(40).namespaces(2));
        let changes = [
            mesh.shift_weight().unwrap(),
            mesh.add_header_match().unwrap(),
            mesh.add_service(),
            mesh.remove_workload().unwrap(),
        ];
        for change in &changes {
            let before = read_mesh(&[dir.path().to_path_buf()]).unwrap().mesh;
            change.apply(dir.path()).unwrap();
            let after = read_mesh(&[dir.path().to_path_buf()])
                .unwrap_or_else(|d| panic!("{}: {d:#?}", change.description))
                .mesh;
            assert_ne!(before, after, "{} changed nothing", change.description);
        }
        // The directory now holds exactly what the model renders, and no temporary files.
        let on_disk: BTreeMap<String, String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, fs::read_to_string(&path).unwrap())
            })
            .collect();
        assert_eq!(on_disk, mesh.files());
        assert_eq!(changes[3].removed_workloads, vec![39]);
        assert_eq!(mesh.nodes().unwrap().len(), 39);
    }

    #[test]
    fn addresses_stay_on_loopback_and_distinct() {
        assert_eq!(workload_address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(workload_address(9_999), Ipv4Addr::new(127, 40, 15, 1));
        let mut seen = std::collections::BTreeSet::new();
        assert!((0..MAX_WORKLOADS).all(|j| seen.insert(workload_address(j))));
    }
}
