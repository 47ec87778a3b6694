//! State-of-the-World ADS behaviour, through a real tonic client against the in-process server.

mod support;

use support::fixtures::Fixture;
use support::xds::{TestServer, DEADLINE};
use switchyard::xds::ResourceType::{Cluster, Endpoint, Listener, Route};

#[tokio::test]
async fn initial_wildcard_and_named_requests() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("n1").await;

    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    assert_eq!(cds.resources.len(), 2, "wildcard CDS gets every cluster");
    assert!(!cds.version_info.is_empty() && !cds.nonce.is_empty());

    c.subscribe(Endpoint, &["a"]).await;
    let eds = c.recv_type(Endpoint).await;
    assert_eq!(
        eds.resources.len(),
        1,
        "named EDS gets only what it asked for"
    );

    // Asking for more names on the ACK is a re-subscribe, answered with the new set.
    c.ack(&eds, &["a", "b"]).await;
    let eds2 = c.recv_type(Endpoint).await;
    assert_eq!(eds2.resources.len(), 2);
    assert_ne!(eds2.version_info, eds.version_info);

    c.subscribe(Listener, &[]).await;
    assert_eq!(c.recv_type(Listener).await.resources.len(), 1);
    c.subscribe(Route, &["main", "missing"]).await;
    assert_eq!(
        c.recv_type(Route).await.resources.len(),
        1,
        "unknown names are skipped"
    );
}

#[tokio::test]
async fn versions_are_identical_across_servers_for_identical_input() {
    let first = TestServer::start(Fixture::default().snapshot()).await;
    let second = TestServer::start(Fixture::default().snapshot()).await;
    let mut a = first.sotw("n").await;
    let mut b = second.sotw("n").await;
    a.subscribe(Cluster, &[]).await;
    b.subscribe(Cluster, &[]).await;
    let (ra, rb) = (a.recv().await, b.recv().await);
    assert_eq!(ra.version_info, rb.version_info);
    assert_eq!(ra.resources, rb.resources);
}

#[tokio::test]
async fn ack_is_recorded_and_not_answered() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("acker").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.ack(&cds, &[]).await;
    // Nothing is pushed in reply to the ACK: the next response is the sentinel's.
    c.expect_quiet(Listener, &[]).await;
    let status = server
        .wait_for_ack("acker", Cluster, &cds.version_info)
        .await;
    assert_eq!(status.cluster, "test");
}

#[tokio::test]
async fn nack_is_recorded_keeps_last_good_and_is_not_repushed() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("nacker").await;
    c.subscribe(Cluster, &[]).await;
    let good = c.recv_type(Cluster).await;
    c.ack(&good, &[]).await;
    // An ACK that arrives after the next push answers a superseded nonce and is ignored, so let it land.
    server
        .wait_for_ack("nacker", Cluster, &good.version_info)
        .await;

    server.cache.set_uniform(
        Fixture {
            a_timeout_ms: 2000,
            ..Default::default()
        }
        .snapshot(),
    );
    let bad = c.recv_type(Cluster).await;
    assert_ne!(bad.version_info, good.version_info);
    c.nack(&bad, &good.version_info, &[]).await;

    // The rejected version is not sent again.
    c.expect_quiet(Listener, &[]).await;
    let status = server.wait_for_rejection("nacker", Cluster, true).await;
    let cds = &status.types[&Cluster];
    let nack = cds.last_nack.as_ref().unwrap();
    assert_eq!(nack.message, "bad cluster: nope");
    assert_eq!(nack.rejected_version, bad.version_info);
    assert_eq!(nack.kept_version, good.version_info);
    assert_eq!(
        cds.acked_version.as_deref(),
        Some(good.version_info.as_str())
    );

    // Publishing the same content again changes nothing; a fix is pushed and clears the rejection.
    server.cache.set_uniform(
        Fixture {
            a_timeout_ms: 2000,
            ..Default::default()
        }
        .snapshot(),
    );
    server.cache.set_uniform(
        Fixture {
            a_timeout_ms: 3000,
            ..Default::default()
        }
        .snapshot(),
    );
    let fixed = c.recv_type(Cluster).await;
    assert_ne!(fixed.version_info, bad.version_info);
    c.ack(&fixed, &[]).await;
    server.wait_for_rejection("nacker", Cluster, false).await;
}

#[tokio::test]
async fn stale_nonce_is_ignored() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("stale").await;
    c.subscribe(Endpoint, &["a"]).await;
    let first = c.recv_type(Endpoint).await;
    server.cache.set_uniform(
        Fixture {
            a_endpoints: vec![("127.0.0.2".into(), 9000)],
            ..Default::default()
        }
        .snapshot(),
    );
    let second = c.recv_type(Endpoint).await;
    // A request answering the superseded response, even with other names, is ignored.
    c.ack(&first, &["a", "b"]).await;
    c.expect_quiet(Cluster, &[]).await;
    c.ack(&second, &["a"]).await;
    c.expect_quiet(Listener, &[]).await;
}

#[tokio::test]
async fn repeated_request_for_acked_nonce_is_answered() {
    // Envoy re-creates a changed cluster and asks for its endpoints again with the version and nonce it
    // already acknowledged; the cluster stays warming until it gets an answer.
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("resub").await;
    c.subscribe(Endpoint, &["a"]).await;
    let eds = c.recv_type(Endpoint).await;
    c.ack(&eds, &["a"]).await;
    c.ack(&eds, &["a"]).await;
    let again = c.recv_type(Endpoint).await;
    assert_eq!(again.version_info, eds.version_info);
    assert_ne!(again.nonce, eds.nonce);
    assert_eq!(again.resources, eds.resources);
}

#[tokio::test]
async fn changes_are_pushed_in_cds_eds_lds_rds_order() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("order").await;
    // Subscribe in the order Envoy uses after a reconnect, to show push order does not follow it.
    for (t, names) in [
        (Route, vec!["main"]),
        (Listener, vec![]),
        (Endpoint, vec!["a", "b"]),
        (Cluster, vec![]),
    ] {
        c.subscribe(t, &names).await;
        let r = c.recv_type(t).await;
        c.ack(&r, &names).await;
    }
    server.cache.set_uniform(
        Fixture {
            listen: ("127.0.0.1".into(), 10001),
            a_endpoints: vec![("127.0.0.3".into(), 9000)],
            route_target: "b".into(),
            a_timeout_ms: 5000,
            ..Default::default()
        }
        .snapshot(),
    );
    for t in [Cluster, Endpoint, Listener, Route] {
        c.recv_type(t).await;
    }
}

/// A generation whose CDS response is large (about 10 KB), so that transport buffers hold only a few.
fn big_generation(i: i32) -> switchyard::xds::Snapshot {
    let mut builder = switchyard::xds::Snapshot::builder();
    for n in 0..80 {
        let name =
            format!("{n:03}-a-cluster-name-long-enough-to-make-each-response-weigh-something");
        builder = builder.cluster(&support::fixtures::eds_cluster(&name, 1 + i));
    }
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_sees_latest_state_without_backlog() {
    let server = TestServer::start(big_generation(0)).await;
    // A client that reads nothing while 400 generations are published. Its small HTTP/2 window makes the
    // server stop writing early; what it can have queued is then the stream's own buffer plus h2's send
    // buffer (400 KB, about 40 of these responses), not one response per generation.
    let mut c = support::xds::sotw_client_with_window(
        server.addr,
        support::xds::node("slow"),
        Some(16 * 1024),
    )
    .await;
    c.subscribe(Cluster, &[]).await;
    c.recv_type(Cluster).await;
    for i in 1..=400 {
        server.cache.set_uniform(big_generation(i));
        // Lets the stream task run between publications, as it would in a real server.
        tokio::task::yield_now().await;
    }
    let latest = big_generation(400);
    let latest_version = switchyard::xds::snapshot::aggregate_version(
        latest.all(Cluster).into_iter().map(|r| r.as_ref()),
    );
    let mut received = 0;
    loop {
        let r = c.recv_type(Cluster).await;
        received += 1;
        if r.version_info == latest_version {
            break;
        }
        assert!(
            received < 100,
            "backlog grew: {received} responses and still not the latest"
        );
    }
    eprintln!("slow client: {received} responses until the latest of 400 generations");
}

#[tokio::test]
async fn disconnect_frees_the_proxy_record() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("leaver").await;
    c.node.metadata = None;
    c.subscribe(Cluster, &[]).await;
    c.recv_type(Cluster).await;
    server
        .wait_for_status("leaver", "registration", |_| true)
        .await;
    drop(c);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !server.registry.by_node_id("leaver").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "record not freed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reconnect_with_version_is_answered() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("back").await;
    c.subscribe(Cluster, &[]).await;
    let first = c.recv_type(Cluster).await;
    drop(c);
    let mut c = server.sotw("back").await;
    c.send(
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
            type_url: Cluster.type_url().to_string(),
            version_info: first.version_info.clone(),
            ..Default::default()
        },
    )
    .await;
    let again = c.recv_type(Cluster).await;
    assert_eq!(again.version_info, first.version_info);
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("stay").await;
    c.subscribe(Cluster, &[]).await;
    c.recv_type(Cluster).await;
    // Returns only once every stream has ended: ADS streams never finish by themselves.
    server.stop().await;
    c.expect_end().await;
}

#[tokio::test]
async fn a_proxy_not_identified_yet_is_answered_once_it_is() {
    let server = TestServer::start_with(switchyard::xds::Cache::new(std::sync::Arc::new(
        support::xds::Nobody,
    )))
    .await;
    let mut c = server.sotw("early").await;
    c.subscribe(Cluster, &[]).await;
    let status = server
        .wait_for_status("early", "the identity error", |s| {
            s.identity_error.is_some()
        })
        .await;
    assert_eq!(
        status.identity_error.as_deref(),
        Some("no workload matches this node")
    );
    server.cache.set_uniform(Fixture::default().snapshot());
    assert_eq!(c.recv_type(Cluster).await.resources.len(), 2);
    server
        .wait_for_status("early", "the identity error to clear", |s| {
            s.identity_error.is_none()
        })
        .await;
}

#[tokio::test]
async fn nack_asking_for_new_names_is_answered() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("nack-names").await;
    c.subscribe(Endpoint, &["a"]).await;
    let eds = c.recv_type(Endpoint).await;
    // Rejects the response and, in the same request, asks for another name (as Envoy does when a cluster
    // is added while an EDS update is rejected): the new name must not wait for the next change.
    c.nack(&eds, "", &["a", "b"]).await;
    let answer = c.recv_type(Endpoint).await;
    assert_eq!(answer.resources.len(), 2);
}

#[tokio::test]
async fn repeating_a_rejected_nonce_is_not_an_ack() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("still-bad").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.nack(&cds, "", &[]).await;
    // Later requests repeat the rejected nonce with the version the proxy still runs (none here).
    c.send(
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
            type_url: Cluster.type_url().to_string(),
            response_nonce: cds.nonce.clone(),
            ..Default::default()
        },
    )
    .await;
    c.expect_quiet(Listener, &[]).await;
    let status = server.wait_for_rejection("still-bad", Cluster, true).await;
    assert_eq!(status.types[&Cluster].acked_version, None);
    assert_eq!(
        switchyard::xds::status::Counters::get(&server.registry.counters().acks, Cluster),
        0
    );
}

#[tokio::test]
async fn unknown_types_are_ignored() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("secrets").await;
    c.send(
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
                .to_string(),
            ..Default::default()
        },
    )
    .await;
    c.expect_quiet(Cluster, &[]).await;
}

#[tokio::test]
async fn a_stream_without_a_node_is_refused() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("anonymous").await;
    c.node = envoy_types::pb::envoy::config::core::v3::Node::default();
    // The harness sends the node on the first request; an empty node is still a node. Send none at all:
    c.send_without_node(Cluster).await;
    let status = c.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_reconnect_overlapping_the_old_stream_is_the_latest() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut old = server.sotw("twice").await;
    old.subscribe(Cluster, &[]).await;
    old.recv_type(Cluster).await;
    let mut new = server.sotw("twice").await;
    new.subscribe(Listener, &[]).await;
    new.recv_type(Listener).await;
    assert_eq!(server.registry.by_node_id("twice").len(), 2);
    let latest = server.registry.latest_by_node_id("twice").unwrap();
    assert!(latest.types.contains_key(&Listener) && !latest.types.contains_key(&Cluster));
}

#[tokio::test]
async fn unchanged_content_is_not_pushed_again() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.sotw("same").await;
    for (t, names) in [(Cluster, vec![]), (Listener, vec![])] {
        c.subscribe(t, &names).await;
        let r = c.recv_type(t).await;
        c.ack(&r, &names).await;
    }
    // A new generation whose clusters are identical and whose listener moved: only LDS is pushed.
    server.cache.set_uniform(
        Fixture {
            listen: ("127.0.0.1".into(), 10009),
            ..Default::default()
        }
        .snapshot(),
    );
    c.recv_type(Listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_proxy_that_stopped_reading() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    // A tiny HTTP/2 window: the server can send little before it must wait for this client to read.
    let mut c =
        support::xds::sotw_client_with_window(server.addr, support::xds::node("stuck"), Some(1024))
            .await;
    c.subscribe(Cluster, &[]).await;
    for i in 0..200 {
        server.cache.set_uniform(
            Fixture {
                a_timeout_ms: 1 + i,
                ..Default::default()
            }
            .snapshot(),
        );
        tokio::task::yield_now().await;
    }
    server.stop().await;
}
