//! The Client Status Discovery Service, through a real tonic client against the in-process server with scripted
//! proxies in each state: acknowledged, waiting, rejected.

mod support;

use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher};
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use support::fixtures::Fixture;
use support::xds::{TestServer, DEADLINE};
use switchyard::xds::ResourceType::{Cluster, Listener};
use tonic::transport::Channel;

async fn csds(server: &TestServer) -> ClientStatusDiscoveryServiceClient<Channel> {
    ClientStatusDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect to CSDS")
}

fn by_id(matcher: MatchPattern) -> ClientStatusRequest {
    ClientStatusRequest {
        node_matchers: vec![NodeMatcher {
            node_id: Some(StringMatcher {
                match_pattern: Some(matcher),
                ignore_case: false,
            }),
            node_metadatas: vec![],
        }],
        ..Default::default()
    }
}

fn node_ids(r: &ClientStatusResponse) -> Vec<String> {
    r.config
        .iter()
        .map(|c| c.node.as_ref().map(|n| n.id.clone()).unwrap_or_default())
        .collect()
}

fn config_of<'a>(r: &'a ClientStatusResponse, id: &str) -> &'a ClientConfig {
    r.config
        .iter()
        .find(|c| c.node.as_ref().is_some_and(|n| n.id == id))
        .unwrap_or_else(|| panic!("{id} missing from {r:#?}"))
}

/// (type URL, name, status) of every resource reported for a proxy.
fn statuses(c: &ClientConfig) -> Vec<(String, String, ConfigStatus)> {
    c.generic_xds_configs
        .iter()
        .map(|g| {
            (
                g.type_url.clone(),
                g.name.clone(),
                ConfigStatus::try_from(g.config_status).unwrap_or(ConfigStatus::Unknown),
            )
        })
        .collect()
}

#[tokio::test]
async fn reports_every_proxy_with_its_config_status() {
    let server = TestServer::start(Fixture::default().snapshot()).await;

    let mut synced = server.sotw("synced").await;
    synced.subscribe(Cluster, &[]).await;
    let cds = synced.recv_type(Cluster).await;
    synced.ack(&cds, &[]).await;
    synced.subscribe(Listener, &[]).await;
    let lds = synced.recv_type(Listener).await;
    synced.ack(&lds, &[]).await;
    server
        .wait_for_ack("synced", Listener, &lds.version_info)
        .await;

    let mut stale = server.delta("stale").await;
    stale.subscribe(Cluster, &[]).await;
    stale.recv_type(Cluster).await;
    server
        .wait_for_status("stale", "CDS sent", |s| {
            s.types
                .get(&Cluster)
                .is_some_and(|t| t.sent_version.is_some())
        })
        .await;

    let mut rejecter = server.sotw("rejecter").await;
    rejecter.subscribe(Cluster, &[]).await;
    let bad = rejecter.recv_type(Cluster).await;
    rejecter.nack(&bad, "", &[]).await;
    server.wait_for_rejection("rejecter", Cluster, true).await;

    let mut client = csds(&server).await;
    let all = client
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(node_ids(&all), ["rejecter", "stale", "synced"]);

    let cluster_url = Cluster.type_url().to_string();
    let synced_cfg = statuses(config_of(&all, "synced"));
    assert_eq!(
        synced_cfg,
        [
            (cluster_url.clone(), "a".into(), ConfigStatus::Synced),
            (cluster_url.clone(), "b".into(), ConfigStatus::Synced),
            (
                Listener.type_url().to_string(),
                "main".into(),
                ConfigStatus::Synced
            ),
        ],
        "the fixture's two clusters and one listener, acknowledged"
    );
    assert!(config_of(&all, "synced")
        .generic_xds_configs
        .iter()
        .all(|g| g.xds_config.is_some() && !g.version_info.is_empty()));
    assert!(statuses(config_of(&all, "stale"))
        .iter()
        .all(|(_, _, s)| *s == ConfigStatus::Stale));
    assert!(statuses(config_of(&all, "rejecter"))
        .iter()
        .all(|(_, _, s)| *s == ConfigStatus::Error));

    // Node matchers select by id (OR over matchers); contents can be left out.
    let mut one = by_id(MatchPattern::Exact("stale".into()));
    one.exclude_resource_contents = true;
    let one = client.fetch_client_status(one).await.unwrap().into_inner();
    assert_eq!(node_ids(&one), ["stale"]);
    assert!(one.config[0]
        .generic_xds_configs
        .iter()
        .all(|g| g.xds_config.is_none()));
    let prefixed = client
        .fetch_client_status(by_id(MatchPattern::Prefix("s".into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node_ids(&prefixed), ["stale", "synced"]);
    let refused = client
        .fetch_client_status(by_id(MatchPattern::SafeRegex(Default::default())))
        .await
        .expect_err("regex matchers are refused, not ignored");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // The stream answers each request in turn, from the registry as it is then.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut responses = client
        .stream_client_status(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    tx.send(by_id(MatchPattern::Exact("synced".into())))
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&first), ["synced"]);
    drop(synced);
    server
        .wait_for_status("stale", "synced to leave", |_| {
            server.registry.by_node_id("synced").is_empty()
        })
        .await;
    tx.send(ClientStatusRequest::default()).await.unwrap();
    let second = tokio::time::timeout(DEADLINE, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&second), ["rejecter", "stale"]);
}
