//! The live spec directory end to end: a running `ControlPlane` over a temporary copy of `config/`, driven
//! by real file operations, watched by an in-process xDS client playing productpage-v1's sidecar.
//!
//! Every wait is on an event with a deadline: the config status (`ControlPlane::status`, which changes at
//! every reading of the specs) or the client's next response. That nothing was pushed is shown with a
//! sentinel: a request the server must answer, whose answer has to be the very next response (the server
//! answers in order). Each sentinel is sent twice: a stream handles a pending request before a pending
//! generation change, so only the second round trip proves the change (if any) was looked at.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, RouteConfiguration,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use support::xds::{DeltaClient, SotwClient, DEADLINE};
use switchyard::control_plane::{ConfigStatus, ControlPlane, ControlPlaneOptions};
use switchyard::envoy::{NodeIdentity, SidecarNode};
use switchyard::source::DirectorySourceOptions;
use switchyard::xds::ResourceType::{self, Cluster, Listener, Route};
use tokio::sync::watch;

const REVIEWS_VHOST: &str = "reviews.default.svc.cluster.local:9080";
const REVIEWS_ALL: &str = "outbound|9080||reviews.default.svc.cluster.local";
const REVIEWS_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const REVIEWS_V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";
const REVIEWS_V3: &str = "outbound|9080|v3|reviews.default.svc.cluster.local";

/// Settle long enough that a deliberately slow writer (below) is always well inside it.
const SETTLE: Duration = Duration::from_secs(2);
const DEBOUNCE: Duration = Duration::from_millis(50);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn istio_sample(name: &str) -> String {
    let path = repo().join("../shared/istio-bookinfo").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running control plane over a private copy of `config/`.
struct Plane {
    dir: tempfile::TempDir,
    cp: ControlPlane,
    status: watch::Receiver<ConfigStatus>,
}

impl Plane {
    async fn start() -> Plane {
        Plane::start_with_admin(None).await
    }

    /// With an admin endpoint on `admin` (`None`: none).
    async fn start_with_admin(admin: Option<std::net::SocketAddr>) -> Plane {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(repo().join("config")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let mut options = ControlPlaneOptions::new(dir.path());
        options.xds = "127.0.0.1:0".parse().unwrap();
        options.admin = admin;
        options.source = DirectorySourceOptions {
            debounce: DEBOUNCE,
            settle: SETTLE,
            ..Default::default()
        };
        let cp = ControlPlane::start(options).await.unwrap();
        let status = cp.status();
        // The first reading is applied inside start, before the xDS port opens: no waiting here.
        let s = status.borrow().clone();
        assert!(
            s.revision == 1 && s.accepted_revision == Some(1) && s.errors.is_empty(),
            "config/ must be valid and served once start returns: {s:#?}"
        );
        Plane { dir, cp, status }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn now(&self) -> ConfigStatus {
        self.status.borrow().clone()
    }

    /// Waits for the first reading after `before`.
    async fn next_reading(&mut self, before: &ConfigStatus) -> ConfigStatus {
        let rev = before.revision;
        wait_status(&mut self.status, "a new reading of the specs", |s| {
            s.revision > rev
        })
        .await
    }

    /// Makes the directory be read again with a spec that holds only a comment (it changes no resource), and
    /// waits for that reading: changes that are not specs are not read on their own.
    async fn read_again(&mut self, before: &ConfigStatus) -> ConfigStatus {
        let n = before.revision;
        write(
            &self.path("sentinel.yaml"),
            &format!("# reading after revision {n}\n"),
        );
        self.next_reading(before).await
    }

    async fn sotw(&self) -> Proxy<SotwClient> {
        let client = support::xds::sotw_client(self.cp.xds_addr(), productpage_node()).await;
        Proxy::sotw(client).await
    }

    async fn delta(&self) -> Proxy<DeltaClient> {
        let client = support::xds::delta_client(self.cp.xds_addr(), productpage_node()).await;
        Proxy::delta(client).await
    }
}

async fn wait_status(
    status: &mut watch::Receiver<ConfigStatus>,
    what: &str,
    check: impl FnMut(&ConfigStatus) -> bool,
) -> ConfigStatus {
    let outcome = tokio::time::timeout(DEADLINE, status.wait_for(check))
        .await
        .map(|r| r.map(|s| s.clone()));
    match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => panic!("the control plane stopped while waiting for {what}"),
        Err(_) => panic!(
            "timed out waiting for {what}; status: {:#?}",
            status.borrow()
        ),
    }
}

fn productpage_node() -> envoy_types::pb::envoy::config::core::v3::Node {
    let labels = BTreeMap::from([
        ("app".to_string(), "productpage".to_string()),
        ("version".to_string(), "v1".to_string()),
    ]);
    NodeIdentity::sidecar(&SidecarNode {
        workload_name: "productpage-v1".to_string(),
        namespace: "default".to_string(),
        labels,
        pod_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)),
        app_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 1, 2)),
        outbound_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 1, 3)),
    })
    .to_proto()
}

/// A client subscribed to CDS and LDS (wildcard) and RDS `9080`, with what it last received per type.
struct Proxy<C> {
    client: C,
    last: BTreeMap<ResourceType, Received>,
    sentinels: u32,
}

/// The last response of a type, reduced to what the tests look at.
#[derive(Clone, Debug)]
struct Received {
    version: String,
    nonce: String,
    /// Delta: only what this response carried.
    resources: BTreeMap<String, Any>,
}

const SUBSCRIPTIONS: [(ResourceType, &[&str]); 3] =
    [(Cluster, &[]), (Listener, &[]), (Route, &["9080"])];

impl Proxy<SotwClient> {
    async fn sotw(mut client: SotwClient) -> Self {
        let mut last = BTreeMap::new();
        for (t, names) in SUBSCRIPTIONS {
            client.subscribe(t, names).await;
            let r = client.recv_type(t).await;
            client.ack(&r, names).await;
            last.insert(t, sotw_received(&r));
        }
        Proxy {
            client,
            last,
            sentinels: 0,
        }
    }

    /// The next push, which must be for `t` and a new version; acknowledged.
    async fn push(&mut self, t: ResourceType) -> &Received {
        let r = self.client.recv().await;
        assert_eq!(
            r.type_url,
            t.type_url(),
            "expected a push of {t:?}, got {}",
            r.type_url
        );
        assert_ne!(
            r.version_info, self.last[&t].version,
            "a push must carry a new version"
        );
        self.client.ack(&r, names_of(t)).await;
        self.last.insert(t, sotw_received(&r));
        &self.last[&t]
    }

    /// Asserts that nothing has been pushed since the last response.
    async fn expect_quiet(&mut self) {
        for _ in 0..2 {
            // Repeating an acknowledged nonce asks again: the server answers with what it has.
            let last = self.last[&Cluster].clone();
            self.client
                .send(DiscoveryRequest {
                    type_url: Cluster.type_url().to_string(),
                    version_info: last.version.clone(),
                    response_nonce: last.nonce.clone(),
                    ..Default::default()
                })
                .await;
            let r = self.client.recv().await;
            assert_eq!(
                r.type_url,
                Cluster.type_url(),
                "something was pushed: {}",
                r.type_url
            );
            assert_eq!(r.version_info, last.version, "clusters were pushed");
            self.client.ack(&r, &[]).await;
            self.sentinels += 1;
            self.last.insert(Cluster, sotw_received(&r));
        }
    }
}

impl Proxy<DeltaClient> {
    async fn delta(mut client: DeltaClient) -> Self {
        let mut last = BTreeMap::new();
        for (t, names) in SUBSCRIPTIONS {
            client.subscribe(t, names).await;
            let r = client.recv_type(t).await;
            client.ack(&r).await;
            last.insert(t, delta_received(&r));
        }
        Proxy {
            client,
            last,
            sentinels: 0,
        }
    }

    /// The next push, which must be for `t`; acknowledged.
    async fn push(&mut self, t: ResourceType) -> DeltaDiscoveryResponse {
        let r = self.client.recv().await;
        assert_eq!(
            r.type_url,
            t.type_url(),
            "expected a push of {t:?}, got {}",
            r.type_url
        );
        self.client.ack(&r).await;
        self.last.insert(t, delta_received(&r));
        r
    }

    /// Asserts that nothing has been pushed since the last response.
    async fn expect_quiet(&mut self) {
        for _ in 0..2 {
            // A newly subscribed name that does not exist is answered at once, as removed.
            self.sentinels += 1;
            let name = format!("sentinel-{}", self.sentinels);
            self.client
                .send(DeltaDiscoveryRequest {
                    type_url: Route.type_url().to_string(),
                    resource_names_subscribe: vec![name.clone()],
                    ..Default::default()
                })
                .await;
            let r = self.client.recv().await;
            assert_eq!(
                r.type_url,
                Route.type_url(),
                "something was pushed: {}",
                r.type_url
            );
            assert!(
                r.resources.is_empty() && r.removed_resources == [name.clone()],
                "routes were pushed: {:?} (removed {:?})",
                r.resources.iter().map(|r| &r.name).collect::<Vec<_>>(),
                r.removed_resources
            );
            self.client.ack(&r).await;
        }
    }
}

fn names_of(t: ResourceType) -> &'static [&'static str] {
    SUBSCRIPTIONS
        .iter()
        .find(|(s, _)| *s == t)
        .map(|(_, names)| *names)
        .unwrap_or(&[])
}

fn sotw_received(r: &DiscoveryResponse) -> Received {
    Received {
        version: r.version_info.clone(),
        nonce: r.nonce.clone(),
        resources: r
            .resources
            .iter()
            .map(|any| (resource_name(any), any.clone()))
            .collect(),
    }
}

fn delta_received(r: &DeltaDiscoveryResponse) -> Received {
    Received {
        version: r.system_version_info.clone(),
        nonce: r.nonce.clone(),
        resources: r
            .resources
            .iter()
            .filter_map(|res| Some((res.name.clone(), res.resource.clone()?)))
            .collect(),
    }
}

fn resource_name(any: &Any) -> String {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster as C;
    use envoy_types::pb::envoy::config::listener::v3::Listener as L;
    if any.type_url == Cluster.type_url() {
        C::decode(any.value.as_slice()).unwrap().name
    } else if any.type_url == Listener.type_url() {
        L::decode(any.value.as_slice()).unwrap().name
    } else if any.type_url == Route.type_url() {
        RouteConfiguration::decode(any.value.as_slice())
            .unwrap()
            .name
    } else {
        panic!("unexpected type {}", any.type_url)
    }
}

/// The reviews virtual host of route configuration `9080`: per route, the `end-user` exact match (if any)
/// and the cluster.
fn reviews_routes(received: &Received) -> Vec<(Option<String>, String)> {
    let any = received.resources.get("9080").unwrap_or_else(|| {
        panic!(
            "no route configuration 9080 in {:?}",
            received.resources.keys()
        )
    });
    let config = RouteConfiguration::decode(any.value.as_slice()).unwrap();
    let vhost = config
        .virtual_hosts
        .iter()
        .find(|v| v.name == REVIEWS_VHOST)
        .unwrap_or_else(|| panic!("no {REVIEWS_VHOST} virtual host"));
    vhost
        .routes
        .iter()
        .map(|r| {
            let end_user = r.r#match.as_ref().and_then(|m| {
                m.headers
                    .iter()
                    .find(|h| h.name == "end-user")
                    .and_then(|h| match &h.header_match_specifier {
                        Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)) => {
                            match &s.match_pattern {
                                Some(envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(e)) => Some(e.clone()),
                                _ => None,
                            }
                        }
                        _ => None,
                    })
            });
            let cluster = match &r.action {
                Some(route::Action::Route(action)) => match &action.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => c.clone(),
                    other => panic!("route to {other:?}"),
                },
                other => panic!("route action {other:?}"),
            };
            (end_user, cluster)
        })
        .collect()
}

fn jason_v2_else_v1() -> Vec<(Option<String>, String)> {
    vec![
        (Some("jason".to_string()), REVIEWS_V2.to_string()),
        (None, REVIEWS_V1.to_string()),
    ]
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Writes `text` to a temporary name in the same directory, then renames it over `path`.
fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-save",
        path.file_name().unwrap().to_string_lossy()
    ));
    write(&tmp, text);
    std::fs::rename(&tmp, path).unwrap();
}

/// A reviews VirtualService sending everyone to one subset.
fn reviews_to(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  \
         hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n        \
         subset: {subset}\n"
    )
}

fn assert_accepted(s: &ConfigStatus) {
    assert!(
        s.is_current() && s.errors.is_empty(),
        "expected the reading to be accepted: {s:#?}"
    );
}

#[tokio::test]
async fn initial_config_is_served() {
    let plane = Plane::start().await;
    let proxy = plane.sotw().await;

    let clusters: Vec<&String> = proxy.last[&Cluster].resources.keys().collect();
    for expected in [
        REVIEWS_ALL,
        REVIEWS_V1,
        REVIEWS_V2,
        REVIEWS_V3,
        "outbound|9080|v1|productpage.default.svc.cluster.local",
        "outbound|9080|v1|ratings.default.svc.cluster.local",
        "outbound|9080|v1|details.default.svc.cluster.local",
        "outbound|9080||details.default.svc.cluster.local",
    ] {
        assert!(
            clusters.iter().any(|c| *c == expected),
            "no cluster {expected} in {clusters:?}"
        );
    }
    assert!(
        proxy.last[&Listener]
            .resources
            .keys()
            .any(|l| l.contains("9080")),
        "no 9080 listener: {:?}",
        proxy.last[&Listener].resources.keys()
    );
    // No VirtualService for reviews yet: the whole service.
    assert_eq!(
        reviews_routes(&proxy.last[&Route]),
        vec![(None, REVIEWS_ALL.to_string())]
    );
    let status = plane.now();
    assert_eq!(
        (status.accepted_total, status.rejected_total),
        (1, 0),
        "{status:#?}"
    );
}

#[tokio::test]
async fn the_first_generation_is_published_before_start_returns() {
    let plane = Plane::start().await;
    // Nothing has yielded to the pipeline task since start returned: what the cache serves now is what a
    // proxy connecting at this very moment gets.
    let status = plane.now();
    let fingerprint = status
        .accepted_fingerprint
        .as_ref()
        .expect("the accepted configuration is fingerprinted")
        .get()
        .to_owned();
    let on_disk = switchyard::control_plane::read_mesh(&[plane.dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        fingerprint,
        switchyard::control_plane::fingerprint(&on_disk.mesh)
    );
    let snapshot = plane
        .cp
        .cache()
        .current()
        .snapshot_for(&productpage_node())
        .expect("productpage-v1 is served the moment start returns");
    assert!(snapshot.contains(Cluster, REVIEWS_V2));

    // And a client connecting at once is answered from it.
    let proxy = plane.sotw().await;
    assert!(proxy.last[&Cluster].resources.contains_key(REVIEWS_V2));
    assert_eq!(
        plane.now().accepted_total,
        1,
        "the first reading is applied once"
    );
}

#[tokio::test]
async fn dropping_the_control_plane_ends_open_streams() {
    let Plane { dir, cp, status } = Plane::start().await;
    let mut proxy =
        Proxy::sotw(support::xds::sotw_client(cp.xds_addr(), productpage_node()).await).await;
    // No graceful shutdown: tonic's connection tasks outlive the server task unless told to end.
    drop(cp);
    proxy.client.expect_end().await;
    drop((dir, status));
}

#[tokio::test]
async fn new_file_then_rename_over_then_delete() {
    let mut plane = Plane::start().await;
    let mut proxy = plane.sotw().await;
    let file = plane.path("virtual-service-reviews.yaml");

    // A new file: only the routes change.
    let before = plane.now();
    write(&file, &istio_sample("virtual-service-reviews-test-v2.yaml"));
    let routes = proxy.push(Route).await.clone();
    assert_eq!(reviews_routes(&routes), jason_v2_else_v1());
    proxy.expect_quiet().await;
    let after = plane.next_reading(&before).await;
    assert_accepted(&after);

    // Atomic replacement, as editors and `switchyard apply` save: picked up once.
    let before = plane.now();
    write_by_rename(&file, &istio_sample("virtual-service-reviews-v3.yaml"));
    let routes = proxy.push(Route).await.clone();
    assert_eq!(
        reviews_routes(&routes),
        vec![(None, REVIEWS_V3.to_string())]
    );
    proxy.expect_quiet().await;
    assert_accepted(&plane.now());
    assert_eq!(plane.now().rejected_total, before.rejected_total);

    // Deleting the file removes its VirtualService: back to the whole service.
    std::fs::remove_file(&file).unwrap();
    let routes = proxy.push(Route).await.clone();
    assert_eq!(
        reviews_routes(&routes),
        vec![(None, REVIEWS_ALL.to_string())]
    );
    proxy.expect_quiet().await;
    assert_accepted(&plane.now());
    assert_eq!(plane.now().rejected_total, 0);

    // Deleting a file that defines subsets removes those clusters.
    std::fs::remove_file(plane.path("destination-rule-all.yaml")).unwrap();
    let clusters = proxy.push(Cluster).await.clone();
    assert!(clusters.resources.contains_key(REVIEWS_ALL));
    assert!(
        !clusters.resources.contains_key(REVIEWS_V2),
        "subset clusters must go with their DestinationRule: {:?}",
        clusters.resources.keys()
    );
    assert_accepted(&plane.now());
}

#[tokio::test]
async fn editor_temporary_and_swap_files_change_nothing() {
    let mut plane = Plane::start().await;
    let mut proxy = plane.sotw().await;
    let original = plane.path("destination-rule-all.yaml");
    let text = std::fs::read_to_string(&original).unwrap();

    // Each step is what an editor leaves in the directory while editing destination-rule-all.yaml. None is a
    // spec, so none needs a reading; the reading that follows (made to happen by a comment-only spec) must be
    // accepted and change nothing. A backup copy of a file would redefine its resources if it were read.
    type Step = Box<dyn Fn(&Plane)>;
    let steps: Vec<(&str, Step)> = vec![
        (
            "vim swap file",
            Box::new(|p: &Plane| {
                write(
                    &p.path(".destination-rule-all.yaml.swp"),
                    "b0VIM 9.0\0\0\0binary swap",
                )
            }),
        ),
        (
            "vim's writability probe 4913",
            Box::new(|p: &Plane| {
                write(&p.path("4913"), "");
                std::fs::remove_file(p.path("4913")).unwrap();
            }),
        ),
        (
            "backup file~",
            Box::new(move |p: &Plane| write(&p.path("destination-rule-all.yaml~"), &text)),
        ),
        (
            "kate swap file",
            Box::new(|p: &Plane| write(&p.path(".destination-rule-all.yaml.kate-swp"), "swap")),
        ),
        (
            "cleanup",
            Box::new(|p: &Plane| {
                for name in [
                    ".destination-rule-all.yaml.swp",
                    "destination-rule-all.yaml~",
                    ".destination-rule-all.yaml.kate-swp",
                ] {
                    std::fs::remove_file(p.path(name)).unwrap();
                }
            }),
        ),
    ];
    for (what, step) in steps {
        let before = plane.now();
        step(&plane);
        let after = plane.read_again(&before).await;
        assert!(
            after.errors.is_empty() && after.rejected_total == before.rejected_total,
            "{what}: caused a rejection: {after:#?}"
        );
        proxy.expect_quiet().await;
    }
    assert_eq!(plane.now().rejected_total, 0);
}

#[tokio::test]
async fn emacs_lock_link_changes_nothing() {
    let mut plane = Plane::start().await;
    let mut proxy = plane.sotw().await;
    // Emacs marks a file being edited with a dangling symlink `.#name` pointing at `user@host.pid:boot`.
    let lock = plane.path(".#destination-rule-all.yaml");
    let before = plane.now();
    std::os::unix::fs::symlink("someone@host.4242:1700000000", &lock).unwrap();
    let after = plane.read_again(&before).await;
    assert!(
        after.errors.is_empty() && after.rejected_total == before.rejected_total,
        "an Emacs lock link caused a rejection: {:#?}",
        after.errors
    );
    proxy.expect_quiet().await;

    let before = plane.now();
    std::fs::remove_file(&lock).unwrap();
    let after = plane.read_again(&before).await;
    assert_accepted(&after);
    proxy.expect_quiet().await;
}

/// Writes the Istio sample in two parts, pausing after `first` bytes, and asserts it is read only whole.
async fn slow_write_is_not_rejected(first: impl Fn(&str) -> usize) {
    let plane = Plane::start().await;
    let mut proxy = plane.sotw().await;
    let text = istio_sample("virtual-service-reviews-test-v2.yaml");
    let (head, tail) = text.as_bytes().split_at(first(&text));
    let path = plane.path("virtual-service-reviews-test-v2.yaml");
    let before = plane.now();

    let mut file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut file, head).unwrap();
    std::io::Write::flush(&mut file).unwrap();
    // A slow writer: the pause is part of the scenario, not synchronisation. It is several debounce periods
    // (so the half-written file is read) and far below the settle time.
    tokio::time::sleep(DEBOUNCE * 4).await;
    std::io::Write::write_all(&mut file, tail).unwrap();
    drop(file);

    let routes = proxy.push(Route).await.clone();
    assert_eq!(reviews_routes(&routes), jason_v2_else_v1());
    let now = plane.now();
    assert_accepted(&now);
    assert_eq!(
        now.rejected_total, before.rejected_total,
        "the half-written file was reported: {now:#?}"
    );
    proxy.expect_quiet().await;
}

#[tokio::test]
async fn partial_write_that_does_not_load_is_not_rejected() {
    // Cut inside `end-user:`: the first part is not a valid VirtualService (a load error).
    slow_write_is_not_rejected(|text| text.find("end-user").unwrap() + "end-u".len()).await;
}

#[tokio::test]
async fn partial_write_that_loads_but_does_not_resolve_is_not_rejected() {
    // Cut inside `subset: v2`: the first part loads, but names a subset `v` no DestinationRule defines.
    slow_write_is_not_rejected(|text| text.find("subset: v2").unwrap() + "subset: v".len()).await;
}

#[tokio::test]
async fn invalid_edit_is_rejected_as_a_whole_and_its_fix_is_pushed() {
    let mut plane = Plane::start().await;
    let mut proxy = plane.sotw().await;
    let file = plane.path("virtual-service-reviews.yaml");
    write(&file, &istio_sample("virtual-service-reviews-test-v2.yaml"));
    proxy.push(Route).await;
    let good_routes = proxy.last[&Route].version.clone();
    let node_id = productpage_node().id;

    // A subset no DestinationRule defines, together with a change that would be valid on its own (a
    // second VirtualService): neither is pushed.
    let before = plane.now();
    write(&file, &reviews_to("v9"));
    write(
        &plane.path("virtual-service-ratings.yaml"),
        &istio_sample("virtual-service-ratings-test-abort.yaml"),
    );
    let after = wait_status(&mut plane.status, "the rejection", |s| {
        s.rejected_total > before.rejected_total
    })
    .await;
    assert!(!after.is_current());
    let error = after
        .errors
        .iter()
        .find(|d| d.code == "IST0101")
        .unwrap_or_else(|| panic!("no IST0101 diagnostic: {:#?}", after.errors));
    assert_eq!(error.file, file, "{error}");
    assert_eq!(
        error.field, "spec.http[0].route[0].destination.subset",
        "{error}"
    );
    let resource = error
        .resource
        .as_ref()
        .expect("the diagnostic names the resource");
    assert_eq!(resource.name, "reviews");
    assert!(error.message.contains("v9"), "{error}");
    proxy.expect_quiet().await;
    // The proxy keeps the last good version.
    let registered = plane.cp.registry().by_node_id(&node_id);
    assert_eq!(registered.len(), 1);
    let routes = &registered[0].types[&Route];
    assert_eq!(routes.acked_version.as_deref(), Some(good_routes.as_str()));
    assert_eq!(routes.sent_version.as_deref(), Some(good_routes.as_str()));

    // Bad YAML on top: still rejected, now for both problems; still nothing pushed.
    let before = plane.now();
    write(
        &plane.path("broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: [unclosed\n",
    );
    let broken = plane.path("broken.yaml");
    let after = wait_status(&mut plane.status, "the YAML error of broken.yaml", |s| {
        s.errors.iter().any(|d| d.file == broken)
    })
    .await;
    assert!(after.rejected_total > before.rejected_total);
    assert!(
        after
            .errors
            .iter()
            .any(|d| d.file == broken && d.code == "SY0001"),
        "{:#?}",
        after.errors
    );
    proxy.expect_quiet().await;

    // Fixing both clears the errors and pushes everything that changed meanwhile, at once.
    let before = plane.now();
    std::fs::remove_file(plane.path("broken.yaml")).unwrap();
    write(&file, &reviews_to("v2"));
    let routes = proxy.push(Route).await.clone();
    assert_eq!(
        reviews_routes(&routes),
        vec![(None, REVIEWS_V2.to_string())]
    );
    let config = RouteConfiguration::decode(routes.resources["9080"].value.as_slice()).unwrap();
    assert!(
        config
            .virtual_hosts
            .iter()
            .any(|v| v.name == "ratings.default.svc.cluster.local:9080"
                && v.routes
                    .iter()
                    .any(|r| r.r#match.as_ref().is_some_and(|m| !m.headers.is_empty()))),
        "the ratings VirtualService written during the rejection is pushed with the fix"
    );
    proxy.expect_quiet().await;
    let now = wait_status(&mut plane.status, "the fix", |s| {
        s.accepted_total > before.accepted_total
    })
    .await;
    assert_accepted(&now);
    assert!(now.errors.is_empty());
}

#[tokio::test]
async fn delta_client_gets_changes_and_nothing_of_a_rejection() {
    let mut plane = Plane::start().await;
    let mut proxy = plane.delta().await;
    assert_eq!(
        reviews_routes(&proxy.last[&Route]),
        vec![(None, REVIEWS_ALL.to_string())]
    );
    let file = plane.path("virtual-service-reviews.yaml");

    // A change: only the route configuration that changed.
    write(&file, &istio_sample("virtual-service-reviews-test-v2.yaml"));
    let r = proxy.push(Route).await;
    assert_eq!(
        r.resources
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["9080"]
    );
    assert!(r.removed_resources.is_empty());
    assert_eq!(reviews_routes(&proxy.last[&Route]), jason_v2_else_v1());
    proxy.expect_quiet().await;

    // A rejection: nothing.
    let before = plane.now();
    write_by_rename(&file, &reviews_to("v9"));
    let after = wait_status(&mut plane.status, "the rejection", |s| {
        s.rejected_total > before.rejected_total
    })
    .await;
    assert!(
        after
            .errors
            .iter()
            .any(|d| d.code == "IST0101" && d.file == file),
        "{:#?}",
        after.errors
    );
    proxy.expect_quiet().await;

    // The fix.
    write_by_rename(&file, &reviews_to("v3"));
    proxy.push(Route).await;
    assert_eq!(
        reviews_routes(&proxy.last[&Route]),
        vec![(None, REVIEWS_V3.to_string())]
    );
    proxy.expect_quiet().await;
    assert_accepted(&plane.now());

    // Deleting the DestinationRules removes the subset clusters by name.
    std::fs::remove_file(&file).unwrap();
    proxy.push(Route).await;
    std::fs::remove_file(plane.path("destination-rule-all.yaml")).unwrap();
    let r = proxy.push(Cluster).await;
    assert!(
        r.removed_resources.iter().any(|n| n == REVIEWS_V2),
        "removed: {:?}",
        r.removed_resources
    );
}

/// The admin endpoint's histograms and counters follow what happened: the first answers of a new stream are
/// sized and timed but are no change; a change is measured once the proxy acknowledged it; a reading that
/// changes nothing for the proxy and a rejected one are not; each accepted reading is translated once.
#[tokio::test]
async fn metrics_measure_a_change_until_the_proxy_acknowledges_it_and_count_a_rejected_revision() {
    let mut plane = Plane::start_with_admin(Some("127.0.0.1:0".parse().unwrap())).await;
    let admin = plane.cp.admin_addr().unwrap();
    let mut proxy = plane.sotw().await;
    let convergence = "switchyard_proxy_convergence_time_count";
    let translations = "switchyard_translation_time_count";
    let rejected = "switchyard_config_reloads_total{outcome=\"rejected\"}";
    let sized = |t: &str| format!("switchyard_xds_config_size_bytes_count{{type=\"{t}\"}}");
    let timed = |t: &str| format!("switchyard_xds_push_time_count{{type=\"{t}\"}}");

    let connected = support::metrics::scrape(admin).await;
    assert_eq!(connected.value(convergence), 0.0, "{}", connected.text);
    assert!(connected.value(translations) >= 1.0, "the first reading");
    for t in ["CDS", "LDS", "RDS"] {
        assert_eq!(connected.value(&sized(t)), 1.0, "{}", connected.text);
        assert_eq!(connected.value(&timed(t)), 1.0, "{}", connected.text);
        let bytes = connected.value(&format!(
            "switchyard_xds_config_size_bytes_sum{{type=\"{t}\"}}"
        ));
        assert!(bytes > 100.0, "{t}: {bytes} bytes");
    }
    // The client never asks for endpoints: that type is shown, with nothing in it.
    assert_eq!(connected.value(&sized("EDS")), 0.0);

    // A change to the proxy's routes, measured once it is acknowledged.
    let written = tokio::time::Instant::now();
    write(
        &plane.path("virtual-service-reviews.yaml"),
        &istio_sample("virtual-service-reviews-test-v2.yaml"),
    );
    proxy.push(Route).await;
    // The server records the ACK after the client sent it.
    let changed = support::metrics::wait_for(admin, "the convergence", DEADLINE, |scrape| {
        scrape.value(convergence) > 0.0
    })
    .await;
    let seen = written.elapsed();
    assert_eq!(changed.value(convergence), 1.0, "{}", changed.text);
    let took = changed.value("switchyard_proxy_convergence_time_sum");
    assert!(
        took > 0.0 && took < seen.as_secs_f64(),
        "converged in {took} s, seen {seen:?} after the write"
    );
    let first = connected.value(translations);
    assert_eq!(changed.value(translations), first + 1.0);
    assert_eq!(changed.value(&sized("RDS")), 2.0);
    assert_eq!(changed.value(&sized("CDS")), 1.0, "nothing else was sent");

    // A reading that changes nothing for the proxy: a generation, but nothing pushed and nothing measured.
    let before = plane.now();
    plane.read_again(&before).await;
    proxy.expect_quiet().await;
    let quiet = support::metrics::scrape(admin).await;
    assert_eq!(quiet.value(translations), first + 2.0);
    assert_eq!(quiet.value(convergence), 1.0, "{}", quiet.text);

    // An invalid edit: a rejected revision, neither translated nor pushed.
    let before = plane.now();
    write(
        &plane.path("virtual-service-reviews.yaml"),
        &reviews_to("v9"),
    );
    wait_status(&mut plane.status, "the rejection", |s| {
        s.rejected_total > before.rejected_total
    })
    .await;
    proxy.expect_quiet().await;
    let bad = support::metrics::scrape(admin).await;
    assert_eq!(bad.value(rejected), quiet.value(rejected) + 1.0);
    assert_eq!(bad.value(translations), first + 2.0);
    assert_eq!(bad.value(convergence), 1.0);
    assert!(bad.value("switchyard_config_errors") >= 1.0, "{}", bad.text);
}

/// Delta acknowledges by nonce alone: a change is measured there too, once.
#[tokio::test]
async fn metrics_measure_a_change_to_a_delta_proxy() {
    let plane = Plane::start_with_admin(Some("127.0.0.1:0".parse().unwrap())).await;
    let admin = plane.cp.admin_addr().unwrap();
    let mut proxy = plane.delta().await;
    write(
        &plane.path("virtual-service-reviews.yaml"),
        &istio_sample("virtual-service-reviews-test-v2.yaml"),
    );
    proxy.push(Route).await;
    let changed = support::metrics::wait_for(admin, "the convergence", DEADLINE, |scrape| {
        scrape.value("switchyard_proxy_convergence_time_count") > 0.0
    })
    .await;
    assert_eq!(
        changed.value("switchyard_proxy_convergence_time_count"),
        1.0
    );
    assert!(changed.value("switchyard_proxy_convergence_time_sum") > 0.0);
    proxy.expect_quiet().await;
    let quiet = support::metrics::scrape(admin).await;
    assert_eq!(quiet.value("switchyard_proxy_convergence_time_count"), 1.0);
}
