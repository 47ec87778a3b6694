//! The xDS port under clumsy and hostile clients: what any client can make the server hold is bounded, and
//! every refusal is a gRPC status the client sees and a counter `/metrics` shows.

mod support;

use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use support::xds::{delta_client, sotw_client, sotw_over, DEADLINE};
use switchyard::control_plane::{ControlPlane, ControlPlaneOptions};
use switchyard::envoy::{NodeIdentity, SidecarNode};
use switchyard::xds::ResourceType::{Cluster, Endpoint, Listener};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// A control plane over Bookinfo's `config/` on ephemeral loopback ports.
async fn plane_with(configure: impl FnOnce(&mut ControlPlaneOptions)) -> ControlPlane {
    let mut options =
        ControlPlaneOptions::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"));
    options.xds = "127.0.0.1:0".parse().unwrap();
    options.admin = Some("127.0.0.1:0".parse().unwrap());
    configure(&mut options);
    ControlPlane::start(options).await.unwrap()
}

async fn plane() -> ControlPlane {
    plane_with(|_| {}).await
}

/// productpage-v1's sidecar claiming pod IP `ip`: each IP is a proxy identity of its own.
fn productpage_at(ip: std::net::Ipv4Addr) -> envoy_types::pb::envoy::config::core::v3::Node {
    NodeIdentity::sidecar(&SidecarNode {
        workload_name: "productpage-v1".into(),
        namespace: "default".into(),
        labels: [("app", "productpage"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        pod_ip: ip.into(),
        app_ip: "127.0.1.2".parse().unwrap(),
        outbound_ip: "127.0.1.3".parse().unwrap(),
    })
    .to_proto()
}

/// Polls `check` until it holds, at most `DEADLINE`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_disconnected_identity_leaves_no_translation_behind() {
    let plane = plane().await;
    // One proxy stays connected: its translation must stay.
    let mut stays = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    stays.subscribe(Cluster, &[]).await;
    stays.recv_type(Cluster).await;

    for i in 0..200u32 {
        let ip = std::net::Ipv4Addr::from(0x0a01_0000 + i);
        let mut c = sotw_client(plane.xds_addr(), productpage_at(ip)).await;
        c.subscribe(Cluster, &[]).await;
        c.recv_type(Cluster).await;
        // Dropping the client ends its stream and its connection.
    }
    eventually("only the connected proxy's translation is held", || {
        plane.cache().current().translations_held() == 1
    })
    .await;
    eventually("the registry forgot the closed streams", || {
        plane.registry().list().len() == 1
    })
    .await;
    // The proxy still connected keeps being served from the same translation.
    drop(stays);
    eventually("no translation is held once nobody is connected", || {
        plane.cache().current().translations_held() == 0
    })
    .await;
}

/// The plane's `/metrics` value of `switchyard_xds_refused_total{reason}`.
async fn refused(plane: &ControlPlane, reason: &str) -> u64 {
    let limit = switchyard::xds::Limit::ALL
        .into_iter()
        .find(|l| l.label() == reason)
        .unwrap();
    let series = format!(
        "switchyard_xds_refused_total{{reason=\"{}\"}} ",
        limit.label()
    );
    metric(plane, &series).await
}

/// The `/metrics` value of `series` (its name and labels; a space after them is ignored).
async fn metric(plane: &ControlPlane, series: &str) -> u64 {
    let scrape = support::metrics::scrape(plane.admin_addr().unwrap()).await;
    scrape.value(series.trim_end()) as u64
}

/// Reads until the server closes the connection (EOF or reset); panics if it is still open after `within`.
async fn assert_closed_within(tcp: &mut tokio::net::TcpStream, within: Duration) {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            // HTTP/2 settings or a GOAWAY: keep reading until the close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_never_speak_are_closed_and_real_proxies_are_still_served() {
    let idle = Duration::from_secs(1);
    let plane = plane_with(|o| o.xds_limits.idle_timeout = idle).await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(
            tokio::net::TcpStream::connect(plane.xds_addr())
                .await
                .unwrap(),
        );
    }
    // A real proxy connecting among them is served, and its connection outlives the timeout: it has a stream.
    let mut proxy = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    proxy.subscribe(Cluster, &[]).await;
    let cds = proxy.recv_type(Cluster).await;
    for tcp in &mut silent {
        assert_closed_within(tcp, idle + DEADLINE).await;
    }
    eventually("the server forgot the silent connections", || {
        plane.ads().connections().count() == 1
    })
    .await;
    assert!(refused(&plane, "idle_connection").await >= 50);
    assert_eq!(metric(&plane, "switchyard_xds_connections ").await, 1);
    proxy.ack(&cds, &[]).await;
    proxy.subscribe(Listener, &[]).await;
    proxy.recv_type(Listener).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let plane = plane_with(|o| o.xds_limits.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(plane.xds_addr())
                .await
                .unwrap(),
        );
    }
    eventually("three connections are open", || {
        plane.ads().connections().count() == 3
    })
    .await;
    let mut over = tokio::net::TcpStream::connect(plane.xds_addr())
        .await
        .unwrap();
    // Closed long before the idle timeout (10 s) could have closed it.
    assert_closed_within(&mut over, Duration::from_secs(5)).await;
    assert_eq!(refused(&plane, "connections").await, 1);
    drop(held);
    eventually("the held connections are gone", || {
        plane.ads().connections().count() == 0
    })
    .await;
    let mut proxy = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    proxy.subscribe(Cluster, &[]).await;
    proxy.recv_type(Cluster).await;
}

#[tokio::test]
async fn streams_beyond_the_limit_of_a_connection_are_refused() {
    let plane = plane_with(|o| o.xds_limits.max_streams_per_connection = 2).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", plane.xds_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = AggregatedDiscoveryServiceClient::new(channel);
    let mut open = Vec::new();
    for i in 0..2u8 {
        let mut c = sotw_over(client.clone(), productpage_at([10, 0, 0, i].into()))
            .await
            .unwrap();
        c.subscribe(Cluster, &[]).await;
        c.recv_type(Cluster).await;
        open.push(c);
    }
    let third = sotw_over(client.clone(), productpage_at([10, 0, 0, 3].into())).await;
    let status = third
        .err()
        .expect("a third stream on the connection is refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(refused(&plane, "streams_per_connection").await, 1);
    // Once one ends, there is room again.
    drop(open.pop());
    let mut again = None;
    let deadline = Instant::now() + DEADLINE;
    while again.is_none() {
        assert!(Instant::now() < deadline, "no room after a stream ended");
        again = sotw_over(client.clone(), productpage_at([10, 0, 0, 4].into()))
            .await
            .ok();
    }
}

#[tokio::test]
async fn an_oversized_node_is_refused_before_it_is_stored() {
    let plane = plane().await;
    let mut node = productpage_at([10, 0, 0, 1].into());
    let metadata = node.metadata.get_or_insert_with(Default::default);
    metadata
        .fields
        .insert("PADDING".into(), prost_types_value("x".repeat(100 << 10)));
    let mut c = sotw_client(plane.xds_addr(), node).await;
    c.subscribe(Cluster, &[]).await;
    let status = c.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("65536"), "{status:?}");
    assert_eq!(refused(&plane, "node_size").await, 1);
    assert!(plane.registry().list().is_empty());
    assert_eq!(plane.cache().current().translations_held(), 0);
}

fn prost_types_value(s: String) -> envoy_types::pb::google::protobuf::Value {
    envoy_types::pb::google::protobuf::Value {
        kind: Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(
            s,
        )),
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("outbound|9080||service-{i}.default.svc.cluster.local"))
        .collect()
}

#[tokio::test]
async fn too_many_resource_names_are_refused_per_request_and_per_stream() {
    let plane = plane_with(|o| o.xds_limits.max_resource_names = 100).await;
    let node = || productpage_at([10, 0, 0, 1].into());

    let mut sotw = sotw_client(plane.xds_addr(), node()).await;
    let names_101 = names(101);
    let refs: Vec<&str> = names_101.iter().map(String::as_str).collect();
    sotw.subscribe(Endpoint, &refs).await;
    let status = sotw.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Delta subscriptions add up: 60 names twice is over 100 on one stream.
    let mut delta = delta_client(plane.xds_addr(), node()).await;
    let all = names(120);
    let (first, second): (Vec<&str>, Vec<&str>) = (
        all[..60].iter().map(String::as_str).collect(),
        all[60..].iter().map(String::as_str).collect(),
    );
    delta.subscribe(Endpoint, &first).await;
    delta.recv_type(Endpoint).await;
    delta.subscribe(Endpoint, &second).await;
    let status = delta.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(refused(&plane, "resource_names").await, 2);
}

#[tokio::test]
async fn an_oversized_request_ends_its_stream_with_a_status_the_client_sees() {
    let plane = plane_with(|o| o.xds_limits.max_request_bytes = 64 << 10).await;
    let mut c = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    c.subscribe(Cluster, &[]).await;
    c.recv_type(Cluster).await;
    // 2,000 names of about 50 bytes: some 100 KB.
    let big = names(2_000);
    let refs: Vec<&str> = big.iter().map(String::as_str).collect();
    c.subscribe(Endpoint, &refs).await;
    let status = c.expect_end().await.expect("the client is told why");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(refused(&plane, "request_size").await, 1);
}

/// A generation whose CDS response is about 40 KB; `i` changes every cluster.
fn heavy_generation(i: i32) -> switchyard::xds::Snapshot {
    let mut builder = switchyard::xds::Snapshot::builder();
    for n in 0..300 {
        let name =
            format!("{n:03}-a-cluster-name-long-enough-to-make-each-response-weigh-something");
        builder = builder.cluster(&support::fixtures::eds_cluster(&name, 1 + i));
    }
    builder.build()
}

/// `count` proxies with a 1 KB window, each subscribed to every cluster, that never read what they are sent.
async fn subscribed_without_reading(
    server: &support::xds::TestServer,
    prefix: &str,
    count: usize,
) -> Vec<support::xds::SotwClient> {
    let mut clients = Vec::new();
    for i in 0..count {
        let mut c = support::xds::sotw_client_with_window(
            server.addr,
            support::xds::node(&format!("{prefix}-{i}")),
            Some(1024),
        )
        .await;
        c.subscribe(Cluster, &[]).await;
        clients.push(c);
    }
    clients
}

/// Twenty proxies with a 1 KB window that never read, and one that reads, on a server whose pending bytes
/// may not pass `limit`, through `changes` generations made by `generation`: the budget holds at every
/// change and the reading proxy ends up to date. Returns the server, the stalled clients, how many streams
/// were evicted and the most bytes queued at once.
async fn stall_twenty_through(
    generation: fn(i32) -> switchyard::xds::Snapshot,
    limit: usize,
    changes: i32,
) -> (
    support::xds::TestServer,
    Vec<support::xds::SotwClient>,
    u64,
    usize,
) {
    let server = support::xds::TestServer::start_limited(
        "127.0.0.1:0".parse().unwrap(),
        switchyard::xds::Cache::uniform(generation(0)),
        switchyard::xds::XdsLimits {
            max_pending_bytes: limit,
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let stuck = subscribed_without_reading(&server, "stuck", 20).await;
    let mut healthy = server.sotw("healthy").await;
    healthy.subscribe(Cluster, &[]).await;
    healthy.recv_type(Cluster).await;
    let mut most = 0;
    for i in 1..=changes {
        server.cache.set_uniform(generation(i));
        let r = healthy.recv_type(Cluster).await;
        healthy.ack(&r, &[]).await;
        most = most.max(server.ads.pending_bytes());
        assert!(server.ads.pending_bytes() <= limit);
    }
    // The healthy proxy was never the one evicted, and it is up to date.
    let version = switchyard::xds::snapshot::aggregate_version(
        generation(changes)
            .all(Cluster)
            .into_iter()
            .map(|r| r.as_ref()),
    );
    server.wait_for_ack("healthy", Cluster, &version).await;
    let evicted = server
        .registry
        .counters()
        .limits
        .get(switchyard::xds::Limit::PendingBytes);
    (server, stuck, evicted, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_that_do_not_read_cannot_make_the_server_queue_without_bound() {
    // Without a budget each stalled proxy would hold its queue (4 responses) and the response being written,
    // some 200 KB each, 4 MB in all.
    let limit = 300 << 10;
    let (server, stuck, evicted, most) = stall_twenty_through(heavy_generation, limit, 20).await;
    eprintln!("most bytes queued: {most} of {limit}");
    assert!(evicted >= 10, "only {evicted} streams evicted");
    // Evicted streams leave their connections without a stream: the idle timeout closes them.
    eventually("the stuck proxies' connections are closed", || {
        server.ads.connections().count() < 20 - 9
    })
    .await;
    drop(stuck);
}

/// A generation whose CDS response is one cluster of about 200 KB (a long `alt_stat_name`); `i` changes it.
fn one_large_cluster(i: i32) -> switchyard::xds::Snapshot {
    let mut cluster = support::fixtures::eds_cluster("large", 1 + i);
    cluster.alt_stat_name = "x".repeat(200 << 10);
    switchyard::xds::Snapshot::builder()
        .cluster(&cluster)
        .build()
}

/// A large resource is encoded once and every response shares it: twenty proxies slow to read it, answered in
/// one burst, reserve one copy between them, within a pending-bytes budget smaller than two copies, and nobody
/// is evicted; counted per stream, the burst was twenty copies, and most of those proxies were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_slow_to_read_a_shared_resource_do_not_fill_the_budget_with_it() {
    let limit = 300 << 10;
    let server = support::xds::TestServer::start_limited(
        "127.0.0.1:0".parse().unwrap(),
        switchyard::xds::Cache::uniform(one_large_cluster(0)),
        switchyard::xds::XdsLimits {
            max_pending_bytes: limit,
            ..Default::default()
        },
    )
    .await;
    let slow = subscribed_without_reading(&server, "slow", 20).await;
    let mut healthy = server.sotw("healthy").await;
    healthy.subscribe(Cluster, &[]).await;
    healthy.recv_type(Cluster).await;
    // The burst: one new generation answered to all twenty-one streams at once.
    server.cache.set_uniform(one_large_cluster(1));
    let r = healthy.recv_type(Cluster).await;
    healthy.ack(&r, &[]).await;
    let version = switchyard::xds::snapshot::aggregate_version(
        one_large_cluster(1)
            .all(Cluster)
            .into_iter()
            .map(|r| r.as_ref()),
    );
    // Each stream records what it sends just before it reserves room for it.
    eventually("every slow proxy is sent the new cluster", || {
        (0..20).all(|i| {
            server
                .registry
                .latest_by_node_id(&format!("slow-{i}"))
                .and_then(|s| s.types.get(&Cluster)?.sent_version.clone())
                .as_deref()
                == Some(version.as_str())
        })
    })
    .await;
    assert!(server.ads.pending_bytes() <= limit);
    let evicted = server
        .registry
        .counters()
        .limits
        .get(switchyard::xds::Limit::PendingBytes);
    assert_eq!(evicted, 0, "streams evicted for a resource they share");
    drop(slow);
}

/// Proxies that never read keep the responses they were queued alive, each generation's copy of a large
/// resource among them: those copies are counted, so stalled streams cannot pin old generations without
/// bound; the longest stalled are evicted, and a proxy that reads stays up to date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_that_do_not_read_cannot_pin_old_copies_of_a_shared_resource_without_bound() {
    let (_server, stuck, evicted, _) = stall_twenty_through(one_large_cluster, 700 << 10, 8).await;
    assert!(evicted >= 1, "no stalled stream evicted");
    drop(stuck);
}

/// The HTTP/2 frame types the server sends on a connection on which `bytes` were written, until it closes it
/// (which must be well before the idle timeout).
async fn frames_until_closed(plane: &ControlPlane, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(plane.xds_addr())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, bytes)
        .await
        .unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the connection was not closed (before the idle timeout)"
    );
    // HTTP/2 frames: 3 bytes length, 1 byte type, 1 byte flags, 4 bytes stream id.
    let mut frames = Vec::new();
    let mut rest = &received[..];
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        frames.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    frames
}

#[tokio::test]
async fn garbage_on_the_port_is_closed_at_once_and_the_port_keeps_serving() {
    let plane = plane().await;
    // Not HTTP/2 at all: closed after the server's SETTINGS.
    frames_until_closed(&plane, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // The HTTP/2 preface, then a SETTINGS frame on a stream (a protocol error): GOAWAY (type 7), then closed.
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend([0, 0, 4, 4, 0, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
    let frames = frames_until_closed(&plane, &bytes).await;
    assert!(
        frames.contains(&7),
        "no GOAWAY among frame types {frames:?}"
    );
    let mut proxy = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    proxy.subscribe(Cluster, &[]).await;
    proxy.recv_type(Cluster).await;
}
