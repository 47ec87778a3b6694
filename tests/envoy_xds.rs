//! The xDS server against real Envoy: convergence, traffic, live changes, NACKs, the cluster-warming
//! pitfall and server restarts, in State-of-the-World and in Delta mode.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use support::fixtures::{eds_cluster, route_to, Fixture};
use support::xds::TestServer;
use switchyard::envoy::{
    BootstrapOptions, EnvoyProcess, NodeIdentity, ProcessOptions, Stats, XdsMode,
};
use switchyard::xds::{Cache, ResourceType, Snapshot};
use tokio::net::TcpListener;
use tokio::time::Instant;

const CONVERGE: Duration = Duration::from_secs(10);

/// An HTTP backend that answers every request with its name.
struct Backend {
    addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || async move { name });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Backend { addr, _task: task }
    }

    fn endpoint(&self) -> Vec<(String, u16)> {
        vec![(self.addr.ip().to_string(), self.addr.port())]
    }
}

async fn free_port() -> u16 {
    // The port is released before Envoy binds it; nothing else on this machine races for it in practice.
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn envoy_binary() -> &'static std::path::Path {
    support::envoy::binary()
}

async fn start_envoy(xds: SocketAddr, mode: XdsMode) -> EnvoyProcess {
    let bootstrap = BootstrapOptions {
        node: NodeIdentity::new("envoy-under-test", "test", Default::default()),
        admin: "127.0.0.1:0".parse().unwrap(),
        xds,
        mode,
        tls: None,
    };
    let envoy = EnvoyProcess::start(
        envoy_binary(),
        &bootstrap.to_yaml().unwrap(),
        &ProcessOptions::default(),
    )
    .await
    .unwrap();
    envoy.wait_ready(CONVERGE).await.unwrap();
    envoy
}

fn stat(stats: &Stats, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// Waits until Envoy is connected, has accepted at least `cds`/`lds` updates and warms nothing.
async fn converged(envoy: &EnvoyProcess, cds: u64, lds: u64) {
    envoy
        .wait_until("convergence", Instant::now() + CONVERGE, |s| {
            let seen = format!(
                "connected_state={} cds.update_success={} lds.update_success={} warming_clusters={}",
                stat(s, "control_plane.connected_state"),
                stat(s, "cluster_manager.cds.update_success"),
                stat(s, "listener_manager.lds.update_success"),
                stat(s, "cluster_manager.warming_clusters"),
            );
            (stat(s, "control_plane.connected_state") == 1
                && stat(s, "cluster_manager.cds.update_success") >= cds
                && stat(s, "listener_manager.lds.update_success") >= lds
                && stat(s, "cluster_manager.warming_clusters") == 0)
                .then_some(())
                .ok_or(seen)
        })
        .await
        .unwrap();
}

/// Polls the listener until it answers `expected`.
async fn wait_for_answer(port: u16, expected: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + CONVERGE;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if status.is_success() && body == expected {
                    return;
                }
                last = format!("HTTP {status}: {body}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("listener on {port} never answered {expected:?}; last: {last}");
}

async fn scenario(mode: XdsMode) {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port().await;
    let fixture = |target: &str, a_timeout_ms: i32| Fixture {
        listen: ("127.0.0.1".into(), port),
        a_endpoints: a.endpoint(),
        b_endpoints: b.endpoint(),
        route_target: target.into(),
        a_timeout_ms,
    };

    // Converges, and traffic flows through the listener to the backend.
    let server = TestServer::start(fixture("a", 1000).snapshot()).await;
    let envoy = start_envoy(server.addr, mode).await;
    converged(&envoy, 1, 1).await;
    wait_for_answer(port, "a").await;

    // A change applies without a restart.
    server.cache.set_uniform(fixture("b", 1000).snapshot());
    wait_for_answer(port, "b").await;

    // A route configuration large enough to be written as a chunk of its own, shared by every response that
    // carries it (`xds::frame`): Envoy reads it whole and routes by it.
    let mut large = route_to("main", "a");
    large.virtual_hosts.extend((0..1000).map(|i| VirtualHost {
        name: format!("padding-{i}"),
        domains: vec![format!("padding-{i}.example")],
        ..Default::default()
    }));
    assert!(prost::Message::encoded_len(&large) > 16 * 1024);
    server
        .cache
        .set_uniform(fixture("b", 1000).snapshot_builder().route(&large).build());
    wait_for_answer(port, "a").await;
    server.cache.set_uniform(fixture("b", 1000).snapshot());
    wait_for_answer(port, "b").await;

    // A cluster that changes while its endpoints do not: Envoy re-creates and warms it, and the server must
    // send the endpoints again (SotW: answer the repeated request; Delta: push them unasked). Without that
    // the cluster stays warming for the 15 s initial fetch timeout.
    let before = stat(
        &envoy.stats().await.unwrap(),
        "cluster_manager.cds.update_success",
    );
    server.cache.set_uniform(fixture("b", 1500).snapshot());
    let started = Instant::now();
    converged(&envoy, before + 1, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cluster warmed for {:?}: its endpoints were not re-sent",
        started.elapsed()
    );

    // An invalid cluster is rejected, recorded, and Envoy keeps serving the last good config.
    let rejected_before = stat(
        &envoy.stats().await.unwrap(),
        "cluster_manager.cds.update_rejected",
    );
    let mut bad = eds_cluster("broken", 1000);
    bad.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: -1,
        nanos: 0,
    });
    server
        .cache
        .set_uniform(with_cluster(fixture("b", 1500).snapshot_builder(), &bad));
    envoy
        .wait_for_stat(
            "cluster_manager.cds.update_rejected",
            Instant::now() + CONVERGE,
            |v| v > rejected_before,
        )
        .await
        .unwrap();
    let status = server
        .wait_for_rejection("envoy-under-test", ResourceType::Cluster, true)
        .await;
    let nack = status.types[&ResourceType::Cluster]
        .last_nack
        .clone()
        .unwrap();
    assert!(
        nack.message.contains("Expected positive duration"),
        "NACK message: {}",
        nack.message
    );
    wait_for_answer(port, "b").await;

    // Fixing it clears the rejection.
    server.cache.set_uniform(fixture("b", 1500).snapshot());
    server
        .wait_for_rejection("envoy-under-test", ResourceType::Cluster, false)
        .await;

    // The server restarts: Envoy keeps serving meanwhile, reconnects and resyncs to the new server's state.
    let addr = server.addr;
    server.stop().await;
    envoy
        .wait_for_stat(
            "control_plane.connected_state",
            Instant::now() + CONVERGE,
            |v| v == 0,
        )
        .await
        .unwrap();
    wait_for_answer(port, "b").await;
    let restarted = TestServer::start_on(addr, Cache::uniform(fixture("a", 1500).snapshot())).await;
    envoy
        .wait_for_stat(
            "control_plane.connected_state",
            Instant::now() + CONVERGE,
            |v| v == 1,
        )
        .await
        .unwrap();
    wait_for_answer(port, "a").await;
    restarted
        .wait_for_status("envoy-under-test", "the proxy to reconnect", |_| true)
        .await;
}

fn with_cluster(
    builder: switchyard::xds::SnapshotBuilder<'static>,
    cluster: &envoy_types::pb::envoy::config::cluster::v3::Cluster,
) -> Snapshot {
    builder.cluster(cluster).build()
}

#[tokio::test]
async fn sotw_against_real_envoy() {
    scenario(XdsMode::Sotw).await;
}

#[tokio::test]
async fn delta_against_real_envoy() {
    scenario(XdsMode::Delta).await;
}

/// With Istio's stats tag rules in the bootstrap, Envoy's Prometheus output names a service's cluster in a
/// `cluster_name` label (dots and all) and the response code in `response_code`, instead of folding them into
/// the metric name.
#[tokio::test]
async fn prometheus_output_carries_istio_style_labels() {
    const CLUSTER: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
    let backend = Backend::start("reviews").await;
    let port = free_port().await;
    let snapshot = Snapshot::builder()
        .cluster(&eds_cluster(CLUSTER, 1000))
        .endpoint(&support::fixtures::assignment(
            CLUSTER,
            &[("127.0.0.1", backend.addr.port())],
        ))
        .listener(&support::fixtures::http_listener(
            "main",
            "127.0.0.1",
            port,
            "main",
        ))
        .route(&support::fixtures::route_to("main", CLUSTER))
        .build();
    let server = TestServer::start(snapshot).await;
    let envoy = start_envoy(server.addr, XdsMode::Sotw).await;
    converged(&envoy, 1, 1).await;
    wait_for_answer(port, "reviews").await;

    let prometheus = envoy.get("/stats/prometheus").await.unwrap();
    let value_of = |series: &str| {
        prometheus
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {series} in Envoy's Prometheus output:\n{prometheus}"))
    };
    let labelled = format!("envoy_cluster_upstream_rq_total{{cluster_name=\"{CLUSTER}\"}}");
    assert!(value_of(&labelled) >= 1);
    let by_code =
        format!("envoy_cluster_upstream_rq{{response_code=\"200\",cluster_name=\"{CLUSTER}\"}}");
    assert!(value_of(&by_code) >= 1);
    assert!(
        !prometheus.contains("svc_cluster_local_upstream_rq"),
        "a cluster name is still folded into a metric name"
    );
}
