//! Delta (incremental) ADS behaviour, through a real tonic client against the in-process server.

mod support;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use support::fixtures::Fixture;
use support::xds::{names_of, TestServer};
use switchyard::xds::ResourceType::{Cluster, Endpoint, Listener, Route};

fn changed_a() -> Fixture {
    Fixture {
        a_timeout_ms: 2500,
        ..Default::default()
    }
}

#[tokio::test]
async fn legacy_wildcard_and_named_subscriptions() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d1").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    assert_eq!(names_of(&cds), ["a", "b"]);
    assert!(cds.resources.iter().all(|r| r.version.len() == 16));
    c.ack(&cds).await;

    c.subscribe(Endpoint, &["a"]).await;
    let eds = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&eds), ["a"]);
    c.ack(&eds).await;

    // A later subscribe adds only the new name.
    c.subscribe(Endpoint, &["b"]).await;
    let more = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&more), ["b"]);

    // A name that does not exist is answered as removed so the proxy stops waiting for it.
    c.subscribe(Route, &["main", "ghost"]).await;
    let rds = c.recv_type(Route).await;
    assert_eq!(names_of(&rds), ["main"]);
    assert_eq!(rds.removed_resources, ["ghost"]);
}

#[tokio::test]
async fn first_request_is_answered_even_when_empty() {
    let server = TestServer::start(switchyard::xds::Snapshot::default()).await;
    let mut c = server.delta("empty").await;
    c.subscribe(Listener, &[]).await;
    let lds = c.recv_type(Listener).await;
    assert!(lds.resources.is_empty() && lds.removed_resources.is_empty());
}

#[tokio::test]
async fn only_changes_are_sent_and_removals_are_named() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d2").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.ack(&cds).await;

    server.cache.set_uniform(changed_a().snapshot());
    let update = c.recv_type(Cluster).await;
    assert_eq!(
        names_of(&update),
        ["a"],
        "b did not change and is not re-sent"
    );
    assert!(update.removed_resources.is_empty());
    c.ack(&update).await;

    let only_a = switchyard::xds::Snapshot::builder()
        .cluster(&support::fixtures::eds_cluster("a", 2500))
        .build();
    server.cache.set_uniform(only_a);
    let removal = c.recv_type(Cluster).await;
    assert!(removal.resources.is_empty());
    assert_eq!(removal.removed_resources, ["b"]);
}

#[tokio::test]
async fn unsubscribe_stops_updates() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d3").await;
    c.subscribe(Endpoint, &["a", "b"]).await;
    let eds = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&eds), ["a", "b"]);
    c.send(DeltaDiscoveryRequest {
        type_url: Endpoint.type_url().to_string(),
        response_nonce: eds.nonce.clone(),
        resource_names_unsubscribe: vec!["a".into()],
        ..Default::default()
    })
    .await;
    // The server answers in order: once the sentinel is answered, the unsubscribe has been applied.
    c.subscribe(Listener, &[]).await;
    assert_eq!(c.recv().await.type_url, Listener.type_url());
    // a and b change in one generation; only b is still subscribed, so only b is pushed.
    server.cache.set_uniform(
        Fixture {
            a_endpoints: vec![("127.0.0.9".into(), 9000)],
            b_endpoints: vec![("127.0.0.9".into(), 9001)],
            ..Default::default()
        }
        .snapshot(),
    );
    let update = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&update), ["b"]);
    assert!(update.removed_resources.is_empty());
}

#[tokio::test]
async fn nack_is_recorded_and_not_repushed() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d4").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.ack(&cds).await;
    server
        .wait_for_ack("d4", Cluster, &cds.system_version_info)
        .await;
    server.cache.set_uniform(changed_a().snapshot());
    let bad = c.recv_type(Cluster).await;
    c.nack(&bad).await;
    c.subscribe(Listener, &[]).await;
    assert_eq!(
        c.recv().await.type_url,
        Listener.type_url(),
        "no re-push of the rejected version"
    );
    let status = server.wait_for_rejection("d4", Cluster, true).await;
    let t = &status.types[&Cluster];
    let nack = t.last_nack.as_ref().unwrap();
    assert_eq!(nack.message, "bad cluster: nope");
    assert_eq!(nack.rejected_version, bad.system_version_info);
    assert_eq!(nack.kept_version, cds.system_version_info);
    assert_eq!(
        t.acked_version.as_deref(),
        Some(cds.system_version_info.as_str())
    );
}

#[tokio::test]
async fn reconnect_with_initial_versions_sends_only_what_changed() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d5").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    let held: Vec<(String, String)> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(c);

    server.cache.set_uniform(changed_a().snapshot());
    let mut c = server.delta("d5").await;
    c.send(DeltaDiscoveryRequest {
        type_url: Cluster.type_url().to_string(),
        initial_resource_versions: held.into_iter().collect(),
        ..Default::default()
    })
    .await;
    let resync = c.recv_type(Cluster).await;
    assert_eq!(names_of(&resync), ["a"]);
    assert!(resync.removed_resources.is_empty());
}

#[tokio::test]
async fn cluster_change_resends_its_endpoints() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d6").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.ack(&cds).await;
    c.subscribe(Endpoint, &["a", "b"]).await;
    let eds = c.recv_type(Endpoint).await;
    c.ack(&eds).await;

    // Only the cluster changes; its assignment is identical but must follow it.
    server.cache.set_uniform(changed_a().snapshot());
    let cds2 = c.recv_type(Cluster).await;
    assert_eq!(names_of(&cds2), ["a"]);
    let eds2 = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&eds2), ["a"]);
}

#[tokio::test]
async fn changes_are_pushed_in_cds_eds_lds_rds_order() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("d7").await;
    // Endpoints are subscribed after clusters here: subscribed before, they would be re-sent right
    // after the clusters arrive (see cluster_change_resends_its_endpoints).
    for (t, names) in [
        (Route, vec!["main"]),
        (Listener, vec![]),
        (Cluster, vec![]),
        (Endpoint, vec!["a", "b"]),
    ] {
        c.subscribe(t, &names).await;
        let r = c.recv_type(t).await;
        c.ack(&r).await;
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

#[tokio::test]
async fn a_first_request_made_before_identification_is_answered_even_if_empty() {
    let server = TestServer::start_with(switchyard::xds::Cache::new(std::sync::Arc::new(
        support::xds::Nobody,
    )))
    .await;
    let mut c = server.delta("early").await;
    c.subscribe(Listener, &[]).await;
    server
        .wait_for_status("early", "the identity error", |s| {
            s.identity_error.is_some()
        })
        .await;
    // The snapshot that finally applies has no listeners: the proxy must still get its answer.
    server
        .cache
        .set_uniform(switchyard::xds::Snapshot::default());
    let lds = c.recv_type(Listener).await;
    assert!(lds.resources.is_empty() && lds.removed_resources.is_empty());
}

#[tokio::test]
async fn reconnect_with_everything_current_gets_an_empty_answer() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("same").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    drop(c);
    let mut c = server.delta("same").await;
    c.send(DeltaDiscoveryRequest {
        type_url: Cluster.type_url().to_string(),
        initial_resource_versions: cds
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect(),
        ..Default::default()
    })
    .await;
    let resync = c.recv_type(Cluster).await;
    assert!(resync.resources.is_empty() && resync.removed_resources.is_empty());
}

#[tokio::test]
async fn reconnect_holding_a_deleted_resource_is_told_it_is_gone() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("stale-holder").await;
    let held = [("a", "0123456789abcdef"), ("gone", "0123456789abcdef")]
        .map(|(name, version)| (name.to_string(), version.to_string()));
    c.send(DeltaDiscoveryRequest {
        type_url: Cluster.type_url().to_string(),
        initial_resource_versions: held.into_iter().collect(),
        ..Default::default()
    })
    .await;
    let resync = c.recv_type(Cluster).await;
    assert_eq!(
        names_of(&resync),
        ["a", "b"],
        "a's version differs, b is new"
    );
    assert_eq!(resync.removed_resources, ["gone"]);
}

#[tokio::test]
async fn explicit_wildcard_subscribe_and_unsubscribe() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("star").await;
    c.subscribe(Endpoint, &["*"]).await;
    let eds = c.recv_type(Endpoint).await;
    assert_eq!(names_of(&eds), ["a", "b"]);
    // Dropping the wildcard while keeping `a` explicitly: b is no longer wanted, a stays.
    c.send(DeltaDiscoveryRequest {
        type_url: Endpoint.type_url().to_string(),
        response_nonce: eds.nonce.clone(),
        resource_names_subscribe: vec!["a".into()],
        resource_names_unsubscribe: vec!["*".into()],
        ..Default::default()
    })
    .await;
    let after = c.recv_type(Endpoint).await;
    assert!(after.resources.is_empty());
    assert_eq!(after.removed_resources, ["b"]);
}

#[tokio::test]
async fn stale_nonce_is_not_an_ack_but_its_subscriptions_apply() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("stale").await;
    c.subscribe(Endpoint, &["a"]).await;
    let first = c.recv_type(Endpoint).await;
    c.subscribe(Endpoint, &["b"]).await;
    let second = c.recv_type(Endpoint).await;
    // Acknowledges the superseded response while subscribing to nothing new: ignored.
    c.ack(&first).await;
    c.subscribe(Listener, &[]).await;
    c.recv_type(Listener).await;
    let status = server.latest("stale");
    assert_eq!(
        status.types[&Endpoint].acked_version, None,
        "a stale nonce acknowledges nothing"
    );
    c.ack(&second).await;
    server
        .wait_for_ack("stale", Endpoint, &second.system_version_info)
        .await;
}

#[tokio::test]
async fn a_repeated_ack_counts_once() {
    let server = TestServer::start(Fixture::default().snapshot()).await;
    let mut c = server.delta("twice").await;
    c.subscribe(Cluster, &[]).await;
    let cds = c.recv_type(Cluster).await;
    c.ack(&cds).await;
    c.ack(&cds).await;
    c.subscribe(Listener, &[]).await;
    c.recv_type(Listener).await;
    assert_eq!(
        switchyard::xds::status::Counters::get(&server.registry.counters().acks, Cluster),
        1
    );
}
